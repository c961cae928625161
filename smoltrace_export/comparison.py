"""Comparing a run with a baseline run, or the models of one session with each other, task by task.

The unit of pairing is the task: a (model, agent type) of one side is paired with a (model, agent type) of the other
on the (agent type, task id) both have (tasks only one side ran are ignored). Each side's per-task success rate is
its successes over its counted attempts of that task (item outcomes, :mod:`smoltrace_export.statistics`); ``rate`` is
the mean of them over the paired tasks, ``difference`` is ``rate − baseline_rate``.

The test (docs/statistics.md says why):

- every paired task has exactly one attempt on both sides: the exact McNemar test, i.e. a two-sided exact binomial
  (sign) test of the discordant tasks, ``scipy.stats.binomtest(worse, worse + better, 0.5)``;
- otherwise (repeats): the exact paired permutation test of the mean per-task difference (each task's two rates
  swapped or not: ``scipy.stats.permutation_test(..., permutation_type="samples")``; exact enumeration up to
  :data:`PERMUTATIONS` sign patterns, a seeded Monte Carlo beyond). On one attempt per task it *is* McNemar's test.

``difference_ci95`` is a paired bootstrap (BCa, :data:`BOOTSTRAP_RESAMPLES` resamples of the tasks, seeded: the same
data give the same interval). Verdicts: ``insufficient data`` below :func:`minimum_paired_tasks` paired tasks (so few
that no outcome could reach ``p < alpha``); else ``regressed`` / ``improved`` when ``p < alpha`` and the difference is
negative / positive; else ``no significant change`` (every pair tied gives p = 1 and this verdict).

scipy and numpy are imported when a comparison is computed, not when this module is imported.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import json_sink
from .records import REGRESSION_EXIT_STATUS
from .statistics import DECIMALS, Outcome, agent_order, group_outcomes, text_table

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "IMPROVED",
    "INSUFFICIENT",
    "KINDS",
    "MCNEMAR",
    "NO_CHANGE",
    "NO_TEST",
    "PERMUTATION",
    "PERMUTATIONS",
    "REGRESSED",
    "REGRESSION_EXIT_STATUS",
    "SEED",
    "VERDICTS",
    "ComparisonKind",
    "ComparisonRow",
    "ComparisonVerdict",
    "any_regressed",
    "compare",
    "compare_models",
    "comparison_document",
    "comparison_table",
    "minimum_paired_tasks",
    "read_comparison",
    "write_comparison",
]

log = logging.getLogger(__name__)

ComparisonVerdict = Literal["regressed", "improved", "no significant change", "insufficient data"]
REGRESSED: ComparisonVerdict = "regressed"
IMPROVED: ComparisonVerdict = "improved"
NO_CHANGE: ComparisonVerdict = "no significant change"
INSUFFICIENT: ComparisonVerdict = "insufficient data"
VERDICTS: tuple[ComparisonVerdict, ...] = (REGRESSED, IMPROVED, NO_CHANGE, INSUFFICIENT)

#: ``baseline``: a run against a baseline run; ``models``: two models of one session.
ComparisonKind = Literal["baseline", "models"]
KINDS: tuple[ComparisonKind, ...] = ("baseline", "models")

MCNEMAR = "exact McNemar"
PERMUTATION = "paired permutation"
#: The ``test`` of a row without paired tasks.
NO_TEST = "none"

#: Sign patterns the permutation test enumerates exactly (2**16: 16 tasks whose rates differ); beyond, as many
#: Monte Carlo patterns.
PERMUTATIONS = 2**16
BOOTSTRAP_RESAMPLES = 9_999
#: The seed of the bootstrap and of a Monte Carlo permutation test: the same outcomes give the same figures.
SEED = 20_260_921


def minimum_paired_tasks(alpha: float) -> int:
    """The fewest paired tasks on which a verdict can be significant at ``alpha``: the smallest n for which the most
    extreme outcome (n tasks, all moved the same way) has a two-sided p = 2 · 0.5ⁿ below ``alpha``. 6 for 0.05 (5
    tasks all worse give p = 0.0625), 8 for 0.01."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    n = 1
    while Fraction(2, 2**n) >= Fraction(alpha):
        n += 1
    return n


@dataclass(frozen=True)
class ComparisonRow:
    """One (model, agent type) against its baseline (another run's, or another model of the same session)."""

    kind: ComparisonKind
    model: str
    #: The model it is compared with; None when the baseline has no model to compare it with.
    baseline_model: str | None
    agent_type: str
    #: Tasks of this agent type both sides have.
    paired_tasks: int
    #: Mean per-task success rate over the paired tasks (0..1), the baseline's and this one's; None without tasks.
    baseline_rate: float | None
    rate: float | None
    #: ``rate − baseline_rate`` and its paired-bootstrap 95 % interval.
    difference: float | None
    difference_ci95: tuple[float, float] | None
    #: :data:`MCNEMAR`, :data:`PERMUTATION` or :data:`NO_TEST`.
    test: str
    p_value: float | None
    verdict: ComparisonVerdict
    #: Paired tasks whose success rate went down / up.
    tasks_worse: int = 0
    tasks_better: int = 0
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return json_sink.fields_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonRow:
        kind = data.get("kind") or "baseline"
        verdict = data["verdict"]
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        ci = data.get("difference_ci95")
        return cls(
            kind=kind,
            model=str(data["model"]),
            baseline_model=None if data.get("baseline_model") is None else str(data["baseline_model"]),
            agent_type=str(data["agent_type"]),
            paired_tasks=int(data["paired_tasks"]),
            baseline_rate=_optional_float(data.get("baseline_rate")),
            rate=_optional_float(data.get("rate")),
            difference=_optional_float(data.get("difference")),
            difference_ci95=(float(ci[0]), float(ci[1])) if ci is not None else None,
            test=str(data.get("test") or NO_TEST),
            p_value=_optional_float(data.get("p_value")),
            verdict=verdict,
            tasks_worse=int(data.get("tasks_worse") or 0),
            tasks_better=int(data.get("tasks_better") or 0),
            alpha=float(data.get("alpha") or 0.05),
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _round(value: float) -> float:
    return round(float(value), DECIMALS)


def _round_p(value: float) -> float:
    """A p-value to 6 significant digits (a tiny p stays tiny; 6 decimals would make it 0)."""
    return float(f"{min(max(float(value), 0.0), 1.0):.6g}")


def _seeded(func: Callable[..., Any]) -> dict[str, Any]:
    """The seeded generator argument of a scipy resampling function: ``rng`` (scipy ≥ 1.15), else ``random_state``."""
    import numpy as np

    name = "rng" if "rng" in inspect.signature(func).parameters else "random_state"
    return {name: np.random.default_rng(SEED)}


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    return np.asarray(np.mean(d, axis=axis))


def _permutation_p(differences: Sequence[float]) -> float:
    """Two-sided p of the paired permutation (sign-flip) test of the mean difference; tasks whose rates are equal
    cannot change the statistic under a flip, so they are left out (the p-value is the same; fewer patterns)."""
    import numpy as np
    from scipy.stats import permutation_test

    moved = np.array([d for d in differences if d != 0], dtype=float)
    if moved.size < 2:  # no task moved, or one: its two sign patterns are equally extreme (scipy needs two)
        return 1.0
    result = permutation_test(
        (moved,),
        _mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=PERMUTATIONS,
        alternative="two-sided",
        **_seeded(permutation_test),
    )
    return float(result.pvalue)


def _bootstrap_ci(current: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """The paired bootstrap 95 % interval of ``mean(current) − mean(baseline)`` (tasks resampled with both rates):
    BCa, else the percentile interval where BCa cannot be computed; the point itself when every task's difference is
    the same (nothing to resample)."""
    import numpy as np
    from scipy.stats import bootstrap

    x, y = np.array(current, dtype=float), np.array(baseline, dtype=float)
    d = x - y
    if np.all(d == d[0]):
        return _round(d[0]), _round(d[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bootstrap(
                (x, y),
                _mean_difference,
                paired=True,
                vectorized=True,
                n_resamples=BOOTSTRAP_RESAMPLES,
                confidence_level=0.95,
                method=method,
                **_seeded(bootstrap),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return _round(low), _round(high)
        log.debug("the %s bootstrap interval is not finite; trying the next method", method)
    return _round(float(np.min(d))), _round(float(np.max(d)))


def _compare_tasks(
    kind: ComparisonKind,
    model: str,
    baseline_model: str | None,
    agent_type: str,
    current: Mapping[str, Sequence[bool]],
    baseline: Mapping[str, Sequence[bool]],
    *,
    alpha: float,
    min_tasks: int,
) -> ComparisonRow:
    shared = [task for task in current if task in baseline]
    if not shared:
        return ComparisonRow(
            kind, model, baseline_model, agent_type, 0, None, None, None, None, NO_TEST, None, INSUFFICIENT, alpha=alpha
        )
    rates = [Fraction(sum(current[t]), len(current[t])) for t in shared]
    base_rates = [Fraction(sum(baseline[t]), len(baseline[t])) for t in shared]
    # exact per-task differences: equal differences are equal floats, so the permutation test sees its ties
    differences = [float(r - b) for r, b in zip(rates, base_rates, strict=True)]
    worse = sum(d < 0 for d in differences)
    better = sum(d > 0 for d in differences)
    single = all(len(current[t]) == 1 and len(baseline[t]) == 1 for t in shared)
    if single:
        from scipy.stats import binomtest

        test = MCNEMAR
        p = float(binomtest(worse, worse + better, 0.5).pvalue) if worse + better else 1.0
    else:
        test = PERMUTATION
        p = _permutation_p(differences)
    rate = sum(rates, Fraction(0)) / len(shared)
    baseline_rate = sum(base_rates, Fraction(0)) / len(shared)
    difference = rate - baseline_rate
    if len(shared) < min_tasks:
        verdict = INSUFFICIENT
    elif p < alpha and difference < 0:
        verdict = REGRESSED
    elif p < alpha and difference > 0:
        verdict = IMPROVED
    else:
        verdict = NO_CHANGE
    return ComparisonRow(
        kind=kind,
        model=model,
        baseline_model=baseline_model,
        agent_type=agent_type,
        paired_tasks=len(shared),
        baseline_rate=_round(float(baseline_rate)),
        rate=_round(float(rate)),
        difference=_round(float(difference)),
        difference_ci95=_bootstrap_ci([float(r) for r in rates], [float(b) for b in base_rates]),
        test=test,
        p_value=_round_p(p),
        verdict=verdict,
        tasks_worse=worse,
        tasks_better=better,
        alpha=alpha,
    )


def compare(
    current: Iterable[Outcome], baseline: Iterable[Outcome], *, alpha: float = 0.05, min_tasks: int | None = None
) -> list[ComparisonRow]:
    """Each (model, agent type) of ``current`` against the same (model, agent type) of ``baseline`` (rows in the
    order of :func:`~smoltrace_export.statistics.statistics`). When the baseline has exactly one model, every current
    model is compared with it, whatever its name; a current model the baseline has no counterpart for gets a row with
    ``baseline_model`` None and ``insufficient data``.

    ``min_tasks``: the fewest paired tasks for a verdict (default :func:`minimum_paired_tasks` of ``alpha``)."""
    minimum = minimum_paired_tasks(alpha) if min_tasks is None else min_tasks
    groups = group_outcomes(current)
    base_groups = group_outcomes(baseline)
    base_models = list(dict.fromkeys(model for model, _ in base_groups))
    rows = []
    for (model, agent_type), tasks in groups.items():
        if model in base_models:
            against: str | None = model
        elif len(base_models) == 1:
            against = base_models[0]
        else:
            against = None
            log.warning("the baseline has no model %r (it has %s): not compared", model, ", ".join(base_models))
        base_tasks = base_groups.get((against, agent_type), {}) if against is not None else {}
        rows.append(
            _compare_tasks("baseline", model, against, agent_type, tasks, base_tasks, alpha=alpha, min_tasks=minimum)
        )
    return rows


def compare_models(
    outcomes: Iterable[Outcome], *, alpha: float = 0.05, min_tasks: int | None = None
) -> list[ComparisonRow]:
    """Every pair of models of one session, per agent type: models in first-seen order, the earlier model of a pair
    is its ``baseline_model`` (so the first model is everyone's reference first); no rows for a single model."""
    minimum = minimum_paired_tasks(alpha) if min_tasks is None else min_tasks
    groups = group_outcomes(outcomes)
    models = list(dict.fromkeys(model for model, _ in groups))
    rows = []
    for i, reference in enumerate(models):
        for model in models[i + 1 :]:
            agent_types = agent_order(a for m, a in groups if m in (reference, model))
            for agent_type in agent_types:
                rows.append(
                    _compare_tasks(
                        "models",
                        model,
                        reference,
                        agent_type,
                        groups.get((model, agent_type), {}),
                        groups.get((reference, agent_type), {}),
                        alpha=alpha,
                        min_tasks=minimum,
                    )
                )
    return rows


def any_regressed(rows: Iterable[ComparisonRow]) -> bool:
    """Whether any row's verdict is ``regressed`` (the exit status is then :data:`REGRESSION_EXIT_STATUS`)."""
    return any(row.verdict == REGRESSED for row in rows)


def comparison_document(rows: Iterable[ComparisonRow]) -> list[dict[str, Any]]:
    """The ``comparison.json`` document: a JSON list of rows."""
    return [row.to_dict() for row in rows]


def write_comparison(path: Path, rows: Iterable[ComparisonRow]) -> Path:
    """Write ``comparison.json`` atomically."""
    return json_sink.write_json(Path(path), comparison_document(rows))


def read_comparison(path: Path | str) -> list[ComparisonRow]:
    """Read ``comparison.json``; raises ``ValueError`` naming the file when it is not a list of rows."""
    return json_sink.read_rows(
        path, ComparisonRow.from_dict, "comparison", (KeyError, TypeError, ValueError, IndexError)
    )


# -- the terminal table ----------------------------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if value >= 0.001 else f"{value:.1e}"


def comparison_table(rows: Sequence[ComparisonRow]) -> list[str]:
    """Fixed-width lines for a terminal: per row the model and what it is compared with, the agent type, the paired
    tasks (and how many got worse / better), both rates, the difference with its 95 % interval, the p-value, the
    test and the verdict."""
    header = ["model", "vs", "agent", "tasks", "worse/better", "rate", "Δ [95% CI]", "p", "test", "verdict"]
    body = []
    for row in rows:
        if row.difference is None or row.difference_ci95 is None:
            delta = "—"
        else:
            low, high = row.difference_ci95
            delta = f"{_signed(row.difference)} [{_signed(low)}, {_signed(high)}]"
        body.append(
            [
                row.model,
                row.baseline_model if row.baseline_model is not None else "—",
                row.agent_type,
                str(row.paired_tasks),
                f"{row.tasks_worse}/{row.tasks_better}",
                f"{_rate(row.baseline_rate)} → {_rate(row.rate)}",
                delta,
                _p(row.p_value),
                row.test,
                row.verdict,
            ]
        )
    return text_table(header, body, right=(3,))
