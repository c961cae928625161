"""Publishing run directories to the Hub, over real HTTP to the local Hub stand-in, read back with ``datasets``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_export_rows import SAMPLE_METRICS, SAMPLE_TRACES, STARTED, write_sample_run

from pytest_smoltrace.testing.hub import DEFAULT_TOKEN, FakeHub
from smoltrace_export.cli import publish_main
from smoltrace_export.hub import PublishError, PublishResult, hub_row, publish_run_dir
from smoltrace_export.naming import dataset_pattern, parse_dataset_name
from smoltrace_export.rows import metric_rows
from smoltrace_export.schemas import LEADERBOARD_SCHEMA, METRICS_SCHEMA, RESULTS_SCHEMA

# huggingface_hub's own LFS upload (the non-Xet path the stand-in speaks) passes bytes as `data=`
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

FAST = {"retries": 1, "backoff_s": 0.01}


def load(repo_id: str) -> list[dict[str, Any]]:
    import datasets

    return list(datasets.load_dataset(repo_id, split="train").to_list())


def snapshot(run_dir: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.iterdir())
        if p.name != "published.json"
    }


def test_publish_creates_four_private_datasets_with_contents_and_cards(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path, traces=SAMPLE_TRACES, metrics=SAMPLE_METRICS)
    result = publish_run_dir(run_dir, private=True)

    assert isinstance(result, PublishResult) and result.user == "tester" and result.private
    assert result.results.repo_id == f"tester/smoltrace-results-{result.timestamp}"
    assert result.traces is not None and result.traces.repo_id == f"tester/smoltrace-traces-{result.timestamp}"
    assert result.metrics is not None and result.metrics.repo_id == f"tester/smoltrace-metrics-{result.timestamp}"
    assert result.leaderboard.repo_id == "tester/smoltrace-leaderboard"
    assert result.urls[0] == f"{fake_hub.endpoint}/datasets/{result.results.repo_id}"
    for repo_id in result.repo_ids[:3]:  # names cleanup recognises, with the run's start date in them
        parsed = parse_dataset_name(repo_id, "tester")
        assert parsed is not None and parsed.when is not None and parsed.when.timestamp() == int(STARTED)
        assert dataset_pattern("tester").fullmatch(repo_id)
    assert sorted(fake_hub.repos.ids()) == sorted(result.repo_ids)
    assert all(fake_hub.repos.private(r) for r in result.repo_ids)  # the leaderboard too

    # contents, read back with datasets.load_dataset over HTTP
    local_rows = json.loads((run_dir / "results.json").read_text())
    assert load(result.results.repo_id) == [hub_row(r, RESULTS_SCHEMA) for r in local_rows]
    traces = load(result.traces.repo_id)
    assert len(traces) == 1 and len(json.loads(traces[0]["spans"])) == 2
    expected_metrics = [hub_row(m, METRICS_SCHEMA) for m in metric_rows(SAMPLE_METRICS, "run-a")]
    assert load(result.metrics.repo_id) == expected_metrics
    board = load(result.leaderboard.repo_id)
    assert [r["agent_type"] for r in board] == ["tool", "code"]
    for row in board:
        assert list(row) == list(LEADERBOARD_SCHEMA)
        assert row["results_dataset"] == result.results.repo_id and row["traces_dataset"] == result.traces.repo_id
        assert row["metrics_dataset"] == result.metrics.repo_id and row["submitted_by"] == "tester"

    # one commit per dataset (data + card together), cards with a YAML header, schema table and usage
    for repo_id in result.repo_ids:
        assert len(fake_hub.repos.commits(repo_id)) == 2  # creation + one commit
        card = fake_hub.repos.read(repo_id, "README.md").decode()
        assert card.startswith("---\nlicense: apache-2.0") and "| column | type | description |" in card
        assert f'load_dataset("{repo_id}", split="train")' in card
    assert fake_hub.repos.files(result.leaderboard.repo_id)[1].startswith("runs/run-a-")

    # the record of what was published; no token anywhere in the run directory
    record = json.loads((run_dir / "published.json").read_text())
    assert record["status"] == "complete" and record["results"]["repo_id"] == result.results.repo_id
    assert all(DEFAULT_TOKEN not in p.read_text() for p in run_dir.iterdir())


def test_public_run_without_telemetry_publishes_results_and_leaderboard_only(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path, "code")  # traces.json == [], metrics.json says unavailable
    result = publish_run_dir(run_dir)
    assert result.traces is None and result.metrics is None
    assert sorted(fake_hub.repos.ids()) == sorted([result.results.repo_id, "tester/smoltrace-leaderboard"])
    assert not any(fake_hub.repos.private(r) for r in result.repo_ids)
    (row,) = load("tester/smoltrace-leaderboard")
    assert row["agent_type"] == "code" and row["traces_dataset"] is None and row["co2_label"] == "unavailable"


def test_republish_is_idempotent(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path)
    first = publish_run_dir(run_dir)
    before = len(fake_hub.requests)
    again = publish_run_dir(run_dir)
    assert again.already_published and again == first and len(fake_hub.requests) == before  # no network at all
    forced = publish_run_dir(run_dir, force=True)  # pushes again: identical files, so no new commits
    assert forced == first
    assert all(len(fake_hub.repos.commits(r)) == 2 for r in first.repo_ids)


def test_leaderboard_grows_one_file_per_run_and_a_republished_run_replaces_its_rows(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    runs = [write_sample_run(tmp_path, run_id=f"run-{i}", started_at=STARTED) for i in range(3)]  # same second
    results = [publish_run_dir(r) for r in runs]
    assert len({r.results.repo_id for r in results}) == 3  # same start second, distinct names
    board = load("tester/smoltrace-leaderboard")
    for agent in ("tool", "code"):
        assert sorted(r["run_id"] for r in board if r["agent_type"] == agent) == ["run-0", "run-1", "run-2"]
    assert len(fake_hub.repos.commits("tester/smoltrace-leaderboard")) == 1 + 3  # one commit per run

    # run-1 is re-run and republished: its rows are replaced, not added
    lb_file = runs[1] / "leaderboard_row.json"
    rows = json.loads(lb_file.read_text())
    for row in rows:
        row["successful_tests"], row["success_rate"] = 3, 100.0
    lb_file.write_text(json.dumps(rows))
    publish_run_dir(runs[1], force=True)
    board = load("tester/smoltrace-leaderboard")
    assert len(board) == 6
    assert {r["successful_tests"] for r in board if r["run_id"] == "run-1"} == {3}
    assert {r["successful_tests"] for r in board if r["run_id"] != "run-1"} == {1}
    assert len([f for f in fake_hub.repos.files("tester/smoltrace-leaderboard") if f.startswith("runs/")]) == 3


def test_transient_500_is_retried(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path)
    fake_hub.fail_next(1, status=500, path=r"/commit/")
    result = publish_run_dir(run_dir, **FAST)
    commits = fake_hub.requests_matching(r"/commit/", "POST")
    assert [c.status for c in commits[:2]] == [500, 200]
    assert load(result.results.repo_id)


def test_500_mid_publish_keeps_the_run_and_smoltrace_publish_finishes_later(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path, traces=SAMPLE_TRACES)
    before = snapshot(run_dir)
    fake_hub.fail_next(100, status=500, path=r"/commit/")
    with pytest.raises(PublishError) as info:
        publish_run_dir(run_dir, **FAST)
    message = str(info.value)
    assert str(run_dir) in message and f"smoltrace-publish {run_dir}" in message and "500" in message
    assert info.value.retry_command == f"smoltrace-publish {run_dir}"
    assert snapshot(run_dir) == before  # the local copy is intact
    assert json.loads((run_dir / "published.json").read_text())["status"] == "partial"
    assert len(fake_hub.requests_matching(r"/commit/", "POST")) == 2  # first try + 1 retry
    # the datasets were created first, so the half-done publish is visible as empty (incomplete) datasets
    assert all(fake_hub.repos.files(r) == [] for r in fake_hub.repos.ids())

    fake_hub.clear_faults()
    done = subprocess.run(
        [sys.executable, "-m", "smoltrace_export.cli", "publish", str(run_dir), "-v"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "tester/smoltrace-results-" in done.stdout and "tester/smoltrace-leaderboard" in done.stdout
    assert DEFAULT_TOKEN not in done.stdout + done.stderr
    assert json.loads((run_dir / "published.json").read_text())["status"] == "complete"
    assert len(load("tester/smoltrace-leaderboard")) == 2


def test_401_is_not_retried_and_names_the_fix(fake_hub: FakeHub, tmp_path: Path, capsys: Any) -> None:
    run_dir = write_sample_run(tmp_path)
    fake_hub.fail_next(1, status=401, path=r"/commit/")
    with pytest.raises(PublishError) as info:
        publish_run_dir(run_dir, retries=3, backoff_s=0.01)
    assert info.value.status == 401 and "token" in str(info.value) and f"smoltrace-publish {run_dir}" in str(info.value)
    assert len(fake_hub.requests_matching(r"/commit/", "POST")) == 1

    # a wrong token: whoami answers 401; the console script reports it and exits 1
    fake_hub.require_token = True
    assert publish_main([str(run_dir), "--token", "hf_wrong"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and f"smoltrace-publish {run_dir}" in err and "hf_wrong" not in err
    # the right token (HF_TOKEN, set by the fixture) succeeds
    assert publish_main([str(run_dir)]) == 0
    assert "tester/smoltrace-leaderboard" in capsys.readouterr().out


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match=r"results\.json is missing"):
        publish_run_dir(tmp_path)


def test_plugin_run_directory_publishes(bench: Any, fake_hub: FakeHub) -> None:
    """A run directory written by the plugin itself (both agent types) publishes and reads back."""
    from test_core_e2e import CHECKS_SCRIPTS, CHECKS_TASKS

    run = bench(CHECKS_TASKS, CHECKS_SCRIPTS)
    run.result.assert_outcomes(passed=2, failed=4)
    result = publish_run_dir(run.run_dir, private=True)
    rows = load(result.results.repo_id)
    assert len(rows) == 6 and {r["agent_type"] for r in rows} == {"tool", "code"}
    board = load(result.leaderboard.repo_id)
    assert {r["agent_type"]: r["successful_tests"] for r in board} == {"tool": 1, "code": 1}


def test_no_token_is_a_clear_error(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN")  # and the fixture's token file location is empty: no stored login either
    run_dir = write_sample_run(tmp_path)
    with pytest.raises(PublishError, match="no Hugging Face token") as info:
        publish_run_dir(run_dir)
    assert f"smoltrace-publish {run_dir}" in str(info.value) and not fake_hub.requests
    assert not (run_dir / "published.json").exists()


def test_output_hub_publishes_after_the_json_copy(bench: Any, fake_hub: FakeHub) -> None:
    """``--smoltrace-output hub``: the run directory first, then four Hub datasets, private leaderboard included."""
    from test_core_e2e import CHECKS_SCRIPTS, CHECKS_TASKS

    run = bench(CHECKS_TASKS, CHECKS_SCRIPTS, "--smoltrace-output", "hub", "--smoltrace-private")
    run.result.assert_outcomes(passed=2, failed=4)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED  # the items' verdicts, not the publishing
    assert (run.run_dir / "results.json").exists() and (run.run_dir / "published.json").exists()
    repos = set(fake_hub.repos.ids())
    kinds = {
        name.split("/")[1].split("-")[1]
        for name in repos
        if "-results-" in name or "-traces-" in name or "-metrics-" in name
    }
    assert kinds == {"results", "traces", "metrics"} and "tester/smoltrace-leaderboard" in repos
    assert all(fake_hub.repos.private(r) for r in repos)
    run.result.stdout.fnmatch_lines(["published: *smoltrace-leaderboard*"])


def test_output_hub_failure_keeps_the_run_and_fails_the_session(bench: Any, fake_hub: FakeHub) -> None:
    tasks = [{"id": "fine", "prompt": "Answer directly [k-hub-fail]", "agent_type": "tool"}]
    fake_hub.fail_next(1000, status=500, path=r"/commit/")
    run = bench(tasks, {"[k-hub-fail]": {"tool": [{"final_answer": "ok"}]}}, "--smoltrace-output", "hub")
    run.result.assert_outcomes(passed=1)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED  # every item passed, but publishing failed
    assert len(run.rows) == 1  # the local copy is intact
    run.result.stdout.fnmatch_lines([f"*Publishing the run directory {run.run_dir} *smoltrace-publish {run.run_dir}*"])
