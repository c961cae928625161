"""smoltrace-cleanup against the local Hub stand-in: filters, dry run, protections, confirmation, partial failures."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_export_rows import write_sample_run

from pytest_smoltrace.testing.hub import FakeHub
from smoltrace_export.cleanup import cleanup_datasets, parse_age, plan_cleanup
from smoltrace_export.cli import cleanup_main
from smoltrace_export.hub import publish_run_dir

# huggingface_hub's own LFS upload (the non-Xet path the stand-in speaks) passes bytes as `data=`
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DATA = {"data/train-00000-of-00001.parquet": b"PAR1 fake", "README.md": "---\nlicense: apache-2.0\n---\n"}

OLD = "20260101_080000_0a0a0a0a"  # complete, 165 days old
RECENT = "20260614_120000_1b1b1b1b"  # complete, 1 day old
HALF = "20260610_090000_2c2c2c2c"  # incomplete: traces created but never filled, no metrics
NO_RESULTS = "20260612_090000_3d3d3d3d"  # incomplete: results missing
LEGACY = "20250301_101010"  # a SMOLTRACE-made run (no suffix), complete, old
BAD_DATE = "20261399_999999_4e4e4e4e"  # matches the pattern, but not a date

PROTECTED = ["tester/smoltrace-leaderboard", "tester/smoltrace-benchmark-v1", "tester/smoltrace-tasks"]
NOT_OURS = [
    "tester/smoltrace-results-foo",
    "tester/my-smoltrace-results-20250101_000000",
    "tester/smoltrace-results-20250101_000000-copy",
    "tester/smoltrace-results-20250101_000000_ABCDEF12",
    "other/smoltrace-results-20250101_000000",
]


def names(ts: str, kinds: tuple[str, ...] = ("results", "traces", "metrics")) -> list[str]:
    return [f"tester/smoltrace-{k}-{ts}" for k in kinds]


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_user("other", "hf_other")
    for ts in (OLD, RECENT, LEGACY):
        for repo_id in names(ts):
            fake_hub.seed(repo_id, DATA, created_at=NOW)  # creation dates say nothing: the name's date counts
    fake_hub.seed(names(HALF)[0], DATA)
    fake_hub.seed(names(HALF)[1], {})
    fake_hub.seed(names(NO_RESULTS)[1], DATA)
    fake_hub.seed(names(BAD_DATE)[0], DATA)
    for repo_id in PROTECTED + NOT_OURS:
        fake_hub.seed(repo_id, DATA)
    return fake_hub


def all_ids(hub: FakeHub) -> set[str]:
    return set(hub.repos.ids())


def test_filters_plan_the_right_runs_and_a_dry_run_deletes_nothing(hub: FakeHub) -> None:
    before = all_ids(hub)
    older = cleanup_datasets(older_than=timedelta(days=30), now=NOW)
    assert older.dry_run and set(older.plan.to_delete) == set(names(OLD) + names(LEGACY))
    recent = cleanup_datasets(keep_recent=2, now=NOW)  # newest first: RECENT, NO_RESULTS | HALF, OLD, LEGACY
    assert set(recent.plan.to_delete) == set(names(HALF, ("results", "traces")) + names(OLD) + names(LEGACY))
    incomplete = cleanup_datasets(incomplete_only=True, now=NOW)
    assert set(incomplete.plan.to_delete) == set(names(HALF, ("results", "traces")) + names(NO_RESULTS, ("traces",)))
    everything = cleanup_datasets(all_runs=True, now=NOW)
    assert len(everything.plan.runs) == 5 and len(everything.plan.to_delete) == 3 + 3 + 3 + 2 + 1
    only = cleanup_datasets(all_runs=True, only="traces", now=NOW)
    assert set(only.plan.to_delete) == {n for n in everything.plan.to_delete if "-traces-" in n}
    assert names(OLD)[0] in only.plan.kept
    # protections: the leaderboard and the task datasets are reported, never planned; odd names are not touched
    for report in (older, recent, incomplete, everything, only):
        assert not set(report.plan.to_delete) & set(PROTECTED + NOT_OURS)
        assert set(report.plan.protected) == set(PROTECTED)
        assert report.plan.skipped == ((names(BAD_DATE)[0], "the date in the name cannot be parsed"),)
    assert all_ids(hub) == before and not hub.requests_matching(r"/api/repos/delete")


def test_deleting_keeps_protected_and_foreign_datasets(hub: FakeHub) -> None:
    report = cleanup_datasets(all_runs=True, dry_run=False, now=NOW)
    assert report.ok and set(report.deleted) == set(report.plan.to_delete)
    assert all_ids(hub) == set(PROTECTED + NOT_OURS) | {names(BAD_DATE)[0]}
    assert hub.repos.exists("other/smoltrace-results-20250101_000000")
    board = cleanup_datasets(older_than=timedelta(days=1), delete_leaderboard=True, dry_run=False, now=NOW)
    assert board.deleted == ("tester/smoltrace-leaderboard",)
    assert hub.repos.exists("tester/smoltrace-benchmark-v1") and hub.repos.exists("tester/smoltrace-tasks")


def test_exactly_one_filter(hub: FakeHub) -> None:
    with pytest.raises(ValueError, match="exactly one filter"):
        plan_cleanup(all_runs=True, keep_recent=1)
    with pytest.raises(ValueError, match="exactly one filter"):
        plan_cleanup()
    with pytest.raises(SystemExit) as exit_info:
        cleanup_main(["--all", "--keep-recent", "2"])
    assert exit_info.value.code == 2


def test_partial_failure_is_reported_with_a_non_zero_exit(hub: FakeHub, capsys: Any) -> None:
    hub.fail_next(1, status=500, path=r"/api/repos/delete")
    report = cleanup_datasets(older_than=timedelta(days=30), dry_run=False, now=NOW)
    assert not report.ok and len(report.failed) == 1 and len(report.deleted) == 5
    assert "500" in report.failed[0][1]
    failed_id = report.failed[0][0]
    assert hub.repos.exists(failed_id)
    hub.fail_next(1, status=500, path=r"/api/repos/delete")
    assert cleanup_main(["--incomplete-only", "--no-dry-run", "--yes"]) == 1
    captured = capsys.readouterr()
    assert "to delete (4)" in captured.out and "deleted 3 datasets" in captured.out  # the earlier failure is incomplete
    assert "failed: tester/smoltrace-" in captured.err


def test_cli_dry_run_by_default(hub: FakeHub, capsys: Any) -> None:
    before = all_ids(hub)
    assert cleanup_main(["--all"]) == 0
    out = capsys.readouterr().out
    assert "would delete (12)" in out and "dry run: nothing deleted" in out
    assert "protected: tester/smoltrace-leaderboard" in out and f"skipped: {names(BAD_DATE)[0]}" in out
    assert all_ids(hub) == before


def _cli(*args: str, stdin: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smoltrace_export.cli", "cleanup", *args],
        input=stdin if isinstance(stdin, str) else None,
        stdin=None if isinstance(stdin, str) else stdin,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_cli_asks_to_type_delete(hub: FakeHub) -> None:
    before = all_ids(hub)
    refused = _cli("--incomplete-only", "--no-dry-run", stdin="yes please\n")
    assert refused.returncode == 1 and "type DELETE" in refused.stdout and "nothing deleted" in refused.stderr
    no_stdin = _cli("--incomplete-only", "--no-dry-run", stdin=subprocess.DEVNULL)
    assert no_stdin.returncode == 1 and "nothing deleted" in no_stdin.stderr
    assert all_ids(hub) == before
    confirmed = _cli("--incomplete-only", "--no-dry-run", stdin="DELETE\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "deleted 3 datasets" in confirmed.stdout
    assert all_ids(hub) == before - set(names(HALF, ("results", "traces")) + names(NO_RESULTS, ("traces",)))


def test_published_runs_cleanup_by_recency(fake_hub: FakeHub, tmp_path: Path) -> None:
    older = publish_run_dir(write_sample_run(tmp_path, run_id="old", started_at=1_780_000_000.0))
    newer = publish_run_dir(write_sample_run(tmp_path, run_id="new", started_at=1_790_000_000.0))
    assert cleanup_main(["--keep-recent", "1", "--no-dry-run", "--yes"]) == 0
    assert set(fake_hub.repos.ids()) == {newer.results.repo_id, "tester/smoltrace-leaderboard"}
    assert not fake_hub.repos.exists(older.results.repo_id)


def test_parse_age() -> None:
    assert parse_age("7") == parse_age("7d") == timedelta(days=7)
    assert parse_age("2w") == timedelta(weeks=2) and parse_age("1m") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    with pytest.raises(ValueError):
        parse_age("soon")
