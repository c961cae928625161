"""Run every sandbox escape/abuse attempt of the escape lab (``tests/escape_lab.py``) and print what happened.

    python benchmarks/security_suite.py            # summary per category + totals
    python benchmarks/security_suite.py -v         # one line per attempt

"refused" means the tool raised a refusal (the agent sees the message); "contained" means the call returned (e.g.
``env get`` with the value hidden) and nothing leaked or changed; "escaped" means the canary leaked, a file
outside the working directory changed, a canary server on 127.0.0.1 was contacted, the evaluator's environment
changed or a process died. Exit status 1 when any attempt escaped or did not end as the catalogue expects.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the lab lives beside its tests

from escape_lab import run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print one line per attempt")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    results = run_suite()
    elapsed = time.perf_counter() - started

    if args.verbose:
        for r in results:
            mark = "ok " if r.as_expected else "BAD"
            print(f"{mark} {r.outcome:<9} {r.attempt.category:<12} {r.attempt.id:<44} {r.detail[:90]!r}")
        print()

    by_category: dict[str, Counter[str]] = {}
    for r in results:
        by_category.setdefault(r.attempt.category, Counter())[r.outcome] += 1
    print(f"{'category':<14}{'attempts':>9}{'refused':>9}{'contained':>11}{'escaped':>9}")
    for category, counts in sorted(by_category.items()):
        total = sum(counts.values())
        print(f"{category:<14}{total:>9}{counts['refused']:>9}{counts['contained']:>11}{counts['escaped']:>9}")
    totals = Counter(r.outcome for r in results)
    unexpected = [r for r in results if not r.as_expected]
    print(
        f"{'total':<14}{len(results):>9}{totals['refused']:>9}{totals['contained']:>11}{totals['escaped']:>9}"
        f"   ({elapsed:.1f} s)"
    )
    print(
        f"attempts: {len(results)}, refusals: {totals['refused']}, contained: {totals['contained']}, "
        f"succeeded (escaped): {totals['escaped']}, unexpected outcomes: {len(unexpected)}"
    )
    for r in unexpected:
        print(f"UNEXPECTED {r.attempt.id}: expected {r.attempt.expect}, got {r.outcome}: {r.detail}")
    return 1 if unexpected or totals["escaped"] else 0


if __name__ == "__main__":
    sys.exit(main())
