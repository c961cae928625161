"""What the console scripts share: their logging set-up and the parser of ``RUN_DIR… -o OUT`` commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def configure_logging(verbose: bool) -> None:
    """``-v``: INFO, else WARNING, as ``LEVEL message`` lines (unless the caller configured logging already)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


def run_dirs_parser(
    prog: str, description: str, *, run_dir_help: str, output_metavar: str, output_help: str, output_required: bool
) -> argparse.ArgumentParser:
    """A parser for ``PROG RUN_DIR [RUN_DIR …] -o OUTPUT [-v]``; the caller adds its own options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help=run_dir_help)
    parser.add_argument("-o", "--output", type=Path, required=output_required, metavar=output_metavar, help=output_help)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser
