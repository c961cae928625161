"""The run's standing: its statistics per (model, agent type), its comparisons (with ``--smoltrace-baseline``, and
between the models of one session), and the regression gate (``--smoltrace-fail-on-regression``).

Computed once, on the controller, from the run's records at the end of the session (:func:`standing`); the figures
and tests are :mod:`smoltrace_export.statistics` and :mod:`smoltrace_export.comparison`, so that ``smoltrace-compare``
computes the same from run directories after the fact.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from .records import REGRESSION_EXIT_STATUS
from .settings import Settings

if TYPE_CHECKING:
    from smoltrace_export.comparison import ComparisonRow
    from smoltrace_export.statistics import Outcome, StatisticsRow
    from smoltrace_export.summary import Attempt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """The baseline run a session is compared with: where it came from and its item outcomes."""

    ref: str
    outcomes: tuple[Outcome, ...]


def load_baseline(settings: Settings) -> Baseline | None:
    """``--smoltrace-baseline``'s outcomes, read at the start (a baseline that cannot be read is a usage error, before
    any item runs); None without the option."""
    ref = settings.baseline
    if not ref:
        return None
    from smoltrace_export.statistics import LoadError, load_outcomes

    try:
        outcomes = load_outcomes(ref)
    except LoadError as exc:
        raise pytest.UsageError(f"--smoltrace-baseline: {exc}") from None
    if not outcomes:
        raise pytest.UsageError(f"--smoltrace-baseline {ref}: the run has no finished items to compare with")
    return Baseline(ref, tuple(outcomes))


@dataclass(frozen=True)
class Standing:
    statistics: tuple[StatisticsRow, ...]
    comparisons: tuple[ComparisonRow, ...]

    @property
    def regressed(self) -> bool:
        """A (model, agent type) of this run regressed against the baseline run (the gate's question; a model of the
        session that does worse than another is a comparison, not a regression)."""
        return any(row.kind == "baseline" and row.verdict == "regressed" for row in self.comparisons)


def standing(results: Iterable[Attempt], baseline: Baseline | None, *, models: int) -> Standing:
    """Statistics of the run's items, this run against the baseline, and (several models) every pair of models."""
    from smoltrace_export.comparison import compare, compare_models
    from smoltrace_export.statistics import outcomes_from_results, statistics

    outcomes = outcomes_from_results(results)
    rows: list[ComparisonRow] = []
    if baseline is not None:
        rows += compare(outcomes, list(baseline.outcomes))
    if models > 1:
        rows += compare_models(outcomes)
    return Standing(tuple(statistics(outcomes)), tuple(rows))


def gated_exit_status(exitstatus: int, standing: Standing, settings: Settings) -> int:
    """The session's exit status under the gate: :data:`REGRESSION_EXIT_STATUS` when a comparison says regressed
    and ``--smoltrace-fail-on-regression`` is on — over "items failed" (1), never over a broken run (2-5)."""
    if settings.fail_on_regression and standing.regressed and exitstatus in (0, 1):
        return REGRESSION_EXIT_STATUS
    return exitstatus


def summary_lines(
    standing: Standing, *, repeats: int, gate: bool, baseline: str | None = None, models: int = 1
) -> Sequence[tuple[str, bool]]:
    """The terminal summary's statistics and comparison tables: (line, red). ``baseline``: its reference as given."""
    from smoltrace_export.comparison import comparison_table
    from smoltrace_export.statistics import statistics_table

    lines: list[tuple[str, bool]] = []
    if standing.statistics and (repeats > 1 or standing.comparisons):
        lines.append(("statistics (statistics.json; pass^N: every one of N attempts passed):", False))
        lines += [(line, False) for line in statistics_table(list(standing.statistics))]
    if standing.comparisons:
        against = [f"the baseline {baseline}" if baseline else "", "each other" if models > 1 else ""]
        lines.append((f"comparison with {' and '.join(a for a in against if a)} (comparison.json):", False))
        lines += [(line, "regressed" in line) for line in comparison_table(list(standing.comparisons))]
        if standing.regressed:
            status = (
                f"exit status {REGRESSION_EXIT_STATUS} (--smoltrace-fail-on-regression)"
                if gate
                else "add --smoltrace-fail-on-regression to fail the session on it"
            )
            lines.append((f"smoltrace: a regression was found: {status}", True))
    return lines
