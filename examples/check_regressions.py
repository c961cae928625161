"""Fail CI on regressions: compare a run directory with a baseline run directory, item by item.

    python check_regressions.py BASELINE_RUN_DIR RUN_DIR

Exit code 1 when an item that passed in the baseline did not pass now (failed, errored, or is missing), else 0.
Items that are new, or that failed in both runs, are listed but do not fail the job: a benchmark where some tasks
are hard for the model should still gate CI. Both directories are pytest-smoltrace run directories
(``<output-dir>/<run-id>/``); their ``journal.jsonl`` files are compared by node id.

A single run of a non-deterministic model is a noisy signal: raise ``--allowed`` to tolerate a few flips, or
compare runs with several repeats once the plugin has them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_smoltrace.journal import read_journal


def compare(baseline: Path, current: Path) -> tuple[list[str], list[str], list[str]]:
    """(regressions, fixed, new): node ids that stopped passing, started passing, and have no baseline."""
    before = {r.nodeid: r.verdict.passed for r in read_journal(baseline)}
    after = {r.nodeid: r.verdict.passed for r in read_journal(current)}
    regressions = sorted(n for n, passed in before.items() if passed and not after.get(n, False))
    fixed = sorted(n for n, passed in after.items() if passed and before.get(n) is False)
    new = sorted(n for n in after if n not in before)
    return regressions, fixed, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", type=Path)
    parser.add_argument("current", type=Path)
    parser.add_argument("--allowed", type=int, default=0, help="regressions tolerated (default 0)")
    args = parser.parse_args(argv)
    if not (args.baseline / "journal.jsonl").is_file():
        sys.stdout.write(f"no baseline journal in {args.baseline}: nothing to compare, passing\n")
        return 0
    regressions, fixed, new = compare(args.baseline, args.current)
    for title, ids in (("regressed", regressions), ("fixed", fixed), ("new", new)):
        for nodeid in ids:
            sys.stdout.write(f"{title}: {nodeid}\n")
    sys.stdout.write(f"{len(regressions)} regressed, {len(fixed)} fixed, {len(new)} new\n")
    return 1 if len(regressions) > args.allowed else 0


if __name__ == "__main__":
    sys.exit(main())
