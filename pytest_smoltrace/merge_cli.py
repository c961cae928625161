"""``smoltrace-merge RUN_DIR... -o RUN_DIR``: merge the run directories of one benchmark (the shards of
``--smoltrace-shard``, or runs made with the same settings) into one run directory (:mod:`.merge`).

Also ``python -m pytest_smoltrace.merge_cli``. Exit status 0 when the merged run is written (an incomplete shard set
is then a warning on stderr, unless ``--complete``); 2 when the inputs are refused (a path that is not a finished run
directory, other run settings, the same item twice, shards of different splits, an output directory that is not
new), with a message naming the directories, the items or the settings and both values; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from smoltrace_export.cli_args import configure_logging, run_dirs_parser

__all__ = ["REFUSED_EXIT_STATUS", "main"]

REFUSED_EXIT_STATUS = 2


def _parser() -> argparse.ArgumentParser:
    parser = run_dirs_parser(
        "smoltrace-merge",
        "Merge pytest-smoltrace run directories of one benchmark (the shards of --smoltrace-shard I/N, "
        "or runs made with the same settings) into one run directory: journal, results, traces, metrics, "
        "statistics, comparison, leaderboard and report regenerated from the merged records. "
        "See docs/multi-machine.md.",
        run_dir_help="a run directory to merge",
        output_metavar="RUN_DIR",
        output_help="the merged run directory to write (new or empty; its name is the merged run's id)",
        output_required=True,
    )
    parser.add_argument(
        "--complete",
        action="store_true",
        help="refuse an incomplete shard set (default: merge what is there, with a warning naming the missing shards)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    from .merge import MergeError, merge

    started = time.perf_counter()
    try:
        merged = merge(args.run_dirs, args.output, complete=args.complete)
    except MergeError as exc:
        print(f"smoltrace-merge: error: {exc}", file=sys.stderr)
        return REFUSED_EXIT_STATUS
    print(
        f"merged {len(args.run_dirs)} run directories into {merged.run_dir}: {merged.items} items "
        f"({merged.passed} passed), {merged.attempts} attempts ({time.perf_counter() - started:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
