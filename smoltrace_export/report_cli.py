"""``smoltrace-report RUN_DIR [RUN_DIR …] -o FILE``: the HTML report of one run directory, or of several side by side.

Also ``python -m smoltrace_export.report_cli``. ``-o`` defaults to ``RUN_DIR/report.html`` for one run directory and
to ``./report.html`` for several. Exit status 0; 2 for bad input (a path that is not a run directory, an output file
that cannot be written), with a message naming it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .cli_args import configure_logging, run_dirs_parser
from .html_report import NotARunDirectory, write_html_report

__all__ = ["BAD_INPUT_EXIT_STATUS", "main"]

BAD_INPUT_EXIT_STATUS = 2


def _parser() -> argparse.ArgumentParser:
    return run_dirs_parser(
        "smoltrace-report",
        "Write one self-contained HTML report (no network: open it from disk) of a pytest-smoltrace run "
        "directory, or of several side by side: header, summary with intervals, comparisons, charts and every item "
        "with its checks, tool calls and trace. See docs/report.md.",
        run_dir_help="a run directory (<output-dir>/<run-id>)",
        output_metavar="FILE",
        output_help="the HTML file to write (default: RUN_DIR/report.html for one run, ./report.html for several)",
        output_required=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    out: Path = args.output or (args.run_dirs[0] / "report.html" if len(args.run_dirs) == 1 else Path("report.html"))
    started = time.perf_counter()
    try:
        written = write_html_report(args.run_dirs, out)
    except NotARunDirectory as exc:
        print(f"smoltrace-report: error: {exc}", file=sys.stderr)
        return BAD_INPUT_EXIT_STATUS
    except OSError as exc:
        print(f"smoltrace-report: error: {out}: cannot write it ({exc})", file=sys.stderr)
        return BAD_INPUT_EXIT_STATUS
    size = written.stat().st_size
    print(f"report written to {written} ({size / 1024:.0f} KB, {time.perf_counter() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
