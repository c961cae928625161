"""Console scripts: ``smoltrace-publish``, ``smoltrace-cleanup``, ``smoltrace-copy-datasets``.

Also ``python -m smoltrace_export.cli {publish|cleanup|copy-datasets} …``. Tokens given with ``--token`` are
passed on, never printed or written anywhere (prefer ``HF_TOKEN`` or ``hf auth login``: command lines are visible
to other users of the machine).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .cleanup import CleanupPlan, execute_cleanup, parse_age, plan_cleanup, plan_lines
from .cli_args import configure_logging
from .copy_datasets import DEFAULT_SOURCE_USER, copy_standard_datasets
from .hub import PublishError, publish_run_dir

CONFIRM_WORD = "DELETE"


def _token_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", help="Hugging Face token (default: HF_TOKEN, else the stored `hf auth login`)")


def publish_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smoltrace-publish",
        description="Publish a pytest-smoltrace run directory to the Hugging Face Hub "
        "(results/traces/metrics datasets + the leaderboard).",
    )
    parser.add_argument("run_dir", type=Path, help="the run directory (<output-dir>/<run-id>)")
    parser.add_argument("--private", action="store_true", help="make all datasets private, the leaderboard too")
    _token_arg(parser)
    parser.add_argument("--force", action="store_true", help="push again even if published.json says it is done")
    parser.add_argument("--retries", type=int, default=3, help="retries of transient failures (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        result = publish_run_dir(
            args.run_dir, private=args.private, token=args.token, retries=args.retries, force=args.force
        )
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.already_published:
        print(f"{args.run_dir} was already published (use --force to push again):")
    else:
        print(f"published {args.run_dir} as {result.user}{' (private)' if result.private else ''}:")
    for ref in result.datasets:
        print(f"  {ref.repo_id}  {ref.url}")
    return 0


def _confirm(prompt: str, stdin: TextIO | None, stdout: TextIO) -> bool:
    if stdin is None or stdin.closed:
        return False
    print(prompt, end="", file=stdout, flush=True)
    try:
        answer = stdin.readline()
    except (OSError, ValueError):
        return False
    if not answer:  # end of input: nobody to ask
        print(file=stdout)
        return False
    return answer.strip() == CONFIRM_WORD


def _print_plan(plan: CleanupPlan, dry_run: bool) -> None:
    print(f"smoltrace datasets of {plan.user}: {len(plan.runs)} runs")
    verb = "would delete" if dry_run else "to delete"
    print(f"{verb} ({len(plan.to_delete)}):")
    for line in plan_lines(plan, plan.to_delete):
        print(f"  - {line}")
    if plan.kept:
        print(f"kept ({len(plan.kept)}):")
        for line in plan_lines(plan, plan.kept):
            print(f"    {line}")
    for repo_id in plan.protected:
        print(f"protected: {repo_id}")
    for repo_id, reason in plan.skipped:
        print(f"skipped: {repo_id} ({reason})")


def cleanup_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smoltrace-cleanup",
        description="Delete smoltrace run datasets ({user}/smoltrace-{results,traces,metrics}-<timestamp>) on the "
        "Hub. Dry run unless --no-dry-run. The leaderboard is kept unless --delete-leaderboard; "
        "smoltrace-benchmark-v1 and smoltrace-tasks are never deleted.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--older-than", metavar="AGE", help="runs older than AGE: N or Nd days, Nw weeks, Nm months")
    which.add_argument("--keep-recent", metavar="N", type=int, help="keep the N most recent runs, delete the rest")
    which.add_argument("--incomplete-only", action="store_true", help="runs whose publish did not finish")
    which.add_argument("--all", dest="all_runs", action="store_true", help="every run")
    parser.add_argument("--only", choices=["results", "traces", "metrics"], help="only this kind of dataset")
    parser.add_argument("--no-dry-run", dest="dry_run", action="store_false", help="really delete")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", default=True, help="(default)")
    parser.add_argument("--yes", action="store_true", help=f"do not ask to type {CONFIRM_WORD}")
    parser.add_argument("--delete-leaderboard", action="store_true", help="also delete {user}/smoltrace-leaderboard")
    _token_arg(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        older_than = parse_age(args.older_than) if args.older_than is not None else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.keep_recent is not None and args.keep_recent < 0:
        parser.error("--keep-recent must be >= 0")
    try:
        plan = plan_cleanup(
            older_than=older_than,
            keep_recent=args.keep_recent,
            incomplete_only=args.incomplete_only,
            all_runs=args.all_runs,
            only=args.only,
            delete_leaderboard=args.delete_leaderboard,
            token=args.token,
        )
    except Exception as exc:
        print(f"error: could not list the datasets: {exc}", file=sys.stderr)
        return 1
    _print_plan(plan, args.dry_run)
    if args.dry_run:
        print("dry run: nothing deleted (pass --no-dry-run to delete)")
        return 0
    if not plan.to_delete:
        print("nothing to delete")
        return 0
    if not args.yes and not _confirm(
        f"type {CONFIRM_WORD} to delete {len(plan.to_delete)} datasets: ", sys.stdin, sys.stdout
    ):
        print("not confirmed: nothing deleted", file=sys.stderr)
        return 1
    report = execute_cleanup(plan, token=args.token)
    print(f"deleted {len(report.deleted)} datasets")
    for repo_id, error in report.failed:
        print(f"failed: {repo_id}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


def copy_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smoltrace-copy-datasets",
        description="Copy smoltrace-benchmark-v1 and smoltrace-tasks into your namespace, pinned to the source's "
        "current revision.",
    )
    parser.add_argument("--only", choices=["benchmark", "tasks"], help="copy only this one")
    parser.add_argument("--private", action="store_true", help="make the copies private")
    parser.add_argument("--yes", action="store_true", help="overwrite copies that already exist")
    parser.add_argument("--source-user", default=DEFAULT_SOURCE_USER, help=f"default {DEFAULT_SOURCE_USER}")
    _token_arg(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        report = copy_standard_datasets(
            only=args.only, private=args.private, source_user=args.source_user, token=args.token, overwrite=args.yes
        )
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for copied in report.copied:
        print(f"copied {copied.source}@{copied.revision[:12]} → {copied.destination} ({copied.rows} rows) {copied.url}")
    for destination, reason in report.skipped:
        print(f"not copied: {destination}: {reason}", file=sys.stderr)
    for source, error in report.failed:
        print(f"failed: {source}: {error}", file=sys.stderr)
    return 0 if report.ok else 1


COMMANDS = {"publish": publish_main, "cleanup": cleanup_main, "copy-datasets": copy_main}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m smoltrace_export.cli COMMAND …``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m smoltrace_export.cli {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
