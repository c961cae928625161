"""``smoltrace-compare RUN BASELINE``: the statistics of two runs and the comparison of RUN against BASELINE.

RUN and BASELINE are run directories (``<output-dir>/<run-id>``, read from their ``results.json``) or Hub results
datasets (``hf://datasets/USER/NAME[@REVISION]`` or ``USER/NAME[@REVISION]``; ``HF_ENDPOINT`` and ``HF_TOKEN`` are
followed). Also ``python -m smoltrace_export.compare_cli``.

Exit status: 0; :data:`~smoltrace_export.comparison.REGRESSION_EXIT_STATUS` (6) with ``--fail-on-regression`` when a
row says ``regressed``; 2 for bad input (a reference that cannot be read, a run without finished items, a bad
``--alpha``), with a message naming it and what was expected.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_args import configure_logging
from .comparison import REGRESSED, REGRESSION_EXIT_STATUS, any_regressed, compare, comparison_table, write_comparison
from .statistics import LoadError, Outcome, load_outcomes, statistics, statistics_table

__all__ = ["BAD_INPUT_EXIT_STATUS", "main"]

#: argparse's own status for a bad command line, used for every bad input.
BAD_INPUT_EXIT_STATUS = 2


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (expected a significance level, e.g. 0.05)"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (expected a significance level, e.g. 0.05)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smoltrace-compare",
        description="Compare a pytest-smoltrace run with a baseline run, task by task: the statistics of both "
        "(success rate with its Wilson interval, pass@k, pass^k, flaky tasks) and, per model and agent type, the "
        "paired difference, its p-value and a verdict (regressed, improved, no significant change, insufficient "
        "data). See docs/statistics.md.",
    )
    where = "a run directory or a Hub results dataset (hf://datasets/USER/NAME[@REVISION] or USER/NAME[@REVISION])"
    parser.add_argument("run", metavar="RUN", help=f"the run: {where}")
    parser.add_argument("baseline", metavar="BASELINE", help=f"the baseline: {where}")
    parser.add_argument("--alpha", type=_alpha, default=0.05, help="significance level of the tests (default 0.05)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison rows to FILE (JSON)")
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help=f"exit with status {REGRESSION_EXIT_STATUS} when any model and agent type regressed",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _load(role: str, ref: str) -> list[Outcome]:
    try:
        outcomes = load_outcomes(ref)
    except LoadError as exc:
        raise LoadError(f"{role} {exc}") from None
    if not outcomes:
        raise LoadError(
            f"{role} {ref}: no finished items (every item was cancelled or lost, or results.json is empty); "
            "expected a run with at least one finished item"
        )
    return outcomes


def _print(title: str, lines: Sequence[str]) -> None:
    print(title)
    for line in lines:
        print(f"  {line}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        current = _load("RUN", args.run)
        baseline = _load("BASELINE", args.baseline)
    except LoadError as exc:
        print(f"smoltrace-compare: error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT_STATUS
    rows = compare(current, baseline, alpha=args.alpha)
    _print(f"statistics of {args.run}:", statistics_table(statistics(current)))
    print()
    _print(f"statistics of the baseline {args.baseline}:", statistics_table(statistics(baseline)))
    print()
    _print(f"{args.run} against {args.baseline} (alpha {args.alpha:g}):", comparison_table(rows))
    if args.json is not None:
        try:
            write_comparison(args.json, rows)
        except OSError as exc:
            print(f"smoltrace-compare: error: --json {args.json}: cannot write it ({exc})", file=sys.stderr)
            return BAD_INPUT_EXIT_STATUS
        print(f"comparison written to {args.json}")
    if any_regressed(rows):
        regressed = ", ".join(f"{r.model} ({r.agent_type})" for r in rows if r.verdict == REGRESSED)
        print(f"regressed: {regressed}")
        if args.fail_on_regression:
            return REGRESSION_EXIT_STATUS
    return 0


if __name__ == "__main__":
    sys.exit(main())
