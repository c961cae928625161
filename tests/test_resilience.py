"""Nothing finished is lost: worker crashes, Ctrl-C, and --smoltrace-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.testing import ScriptedModelServer

WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}


def tasks_and_scripts(n: int, delay: float = 0.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tasks = [
        {
            "id": f"t{i}",
            "prompt": f"Weather in Paris? [k-t{i}]",
            "agent_type": "tool",
            "expected_tool": "get_weather",
            "expected_keywords": ["20"],
        }
        for i in range(n)
    ]
    scripts = {
        f"[k-t{i}]": {"tool": [{**WEATHER_TOOL, "delay": delay}, {"final_answer": f"20°C #{i}"}]} for i in range(n)
    }
    return tasks, scripts


def journal_nodeids(run_dir: Path) -> list[str]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["nodeid"] for line in path.read_text().splitlines() if line.strip()]


def test_killed_worker_loses_nothing_and_the_crashed_item_is_reported(bench: Any, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import os, signal
        from pathlib import Path

        def pytest_smoltrace_judge(task, record):
            marker = Path(__file__).parent / "crash-once"
            if task.id == "t3" and marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGKILL)  # kill -9 of the xdist worker running t3
            return None
        """
    )
    (pytester.path / "crash-once").write_text("x")
    tasks, scripts = tasks_and_scripts(6)
    run = bench(tasks, scripts, "-n", "2", "--smoltrace-concurrency", "1")
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("passed") == 5 and outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1
    crashed = run.row("t3", "tool")
    assert crashed["outcome"] == "error" and "crashed" in crashed["error"]
    assert {r["task_id"] for r in run.rows} == {f"t{i}" for i in range(6)}
    assert sorted(journal_nodeids(run.run_dir)) == sorted(r["test_case_uid"] for r in run.rows)
    # a resume runs the crashed item again (and only it), and the run is then complete
    resumed = bench(tasks, None, "--smoltrace-resume", "test-run")
    resumed.result.assert_outcomes(passed=1, deselected=5)
    assert crashed["success"] is False and resumed.row("t3", "tool")["success"] is True
    assert len(resumed.rows) == 6 and all(r["success"] for r in resumed.rows)
    lb = resumed.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "completed" and lb["planned_tests"] == 6 and lb["completed_tests"] == 6


def _run_pytest(cwd: Path, server: ScriptedModelServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--smoltrace-model",
        "openai/scripted",
        "--smoltrace-api-base",
        server.base_url,
        "--smoltrace-dataset",
        "tasks.json",
        *args,
    ]
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def start_run_and_wait(
    pytester: pytest.Pytester,
    server: ScriptedModelServer,
    n_tasks: int,
    run_id: str,
    journaled: int,
    concurrency: int = 1,
) -> tuple[subprocess.Popen[str], Path]:
    """Start a slow run in a subprocess and return once ``journaled`` items are in its journal."""
    tasks, scripts = tasks_and_scripts(n_tasks, delay=0.4)
    for key, script in scripts.items():
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(tasks))
    run_dir = pytester.path / "smoltrace_results" / run_id
    proc = _run_pytest(pytester.path, server, "--smoltrace-run-id", run_id, "--smoltrace-concurrency", str(concurrency))
    deadline = time.monotonic() + 60
    while len(journal_nodeids(run_dir)) < journaled and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    return proc, run_dir


def test_sigint_keeps_the_journal_and_resume_completes_the_run(
    pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    proc, run_dir = start_run_and_wait(pytester, server, 8, "interrupted", journaled=3)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    done = journal_nodeids(run_dir)
    assert 3 <= len(done) < 8
    results = json.loads((run_dir / "results.json").read_text())
    assert sorted(r["test_case_uid"] for r in results) == sorted(done)  # written at exit, nothing lost or invented
    lb = json.loads((run_dir / "leaderboard_row.json").read_text())[0]
    assert lb["run_status"] == "partial" and lb["planned_tests"] == 8 and lb["completed_tests"] == len(done)

    resumed = _run_pytest(pytester.path, server, "--smoltrace-resume", "interrupted")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert f"{8 - len(done)} passed, {len(done)} deselected" in output

    reference = _run_pytest(pytester.path, server, "--smoltrace-run-id", "reference")
    reference.communicate(timeout=120)

    def comparable(name: str) -> list[dict[str, Any]]:
        rows = json.loads((pytester.path / "smoltrace_results" / name / "results.json").read_text())
        keep = ("test_case_uid", "success", "tools_used", "steps", "response", "checks", "total_tokens")
        return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: r["test_case_uid"])

    assert comparable("interrupted") == comparable("reference")
    lb = json.loads((run_dir / "leaderboard_row.json").read_text())[0]
    assert lb["run_status"] == "completed" and lb["completed_tests"] == 8 and lb["successful_tests"] == 8
    assert json.loads((run_dir / "metadata.json").read_text())["resumed_items"] == len(done)


def test_resume_of_an_unknown_run_is_a_usage_error(bench: Any) -> None:
    tasks, scripts = tasks_and_scripts(1)
    run = bench(tasks, scripts, "--smoltrace-resume", "nope", run_id="nope")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--smoltrace-resume nope: no journal.jsonl in *nope*"])
    clash = bench(tasks, None, "--smoltrace-resume", "nope", run_id="other")
    assert clash.result.ret == pytest.ExitCode.USAGE_ERROR
    clash.result.stderr.fnmatch_lines(["*--smoltrace-resume nope and --smoltrace-run-id other disagree*"])


def test_budget_stops_new_items_across_two_workers(bench: Any) -> None:
    tasks, scripts = tasks_and_scripts(12)
    # $1 per input token and per output token: every item costs a few thousand dollars
    run = bench(
        tasks,
        scripts,
        "-n",
        "2",
        "--smoltrace-concurrency",
        "1",
        "-rs",
        "--smoltrace-price-input",
        "1000000",
        "--smoltrace-price-output",
        "1000000",
        "--smoltrace-max-cost",
        "6000",
    )
    outcomes = run.result.parseoutcomes()
    ran, skipped = outcomes.get("passed", 0), outcomes.get("skipped", 0)
    assert ran + skipped == 12 and skipped >= 6 and 2 <= ran <= 4, outcomes
    run.result.stdout.fnmatch_lines(["*budget reached: the run has spent $* of --smoltrace-max-cost $6000*"])
    spent = sum(r["cost_usd"] for r in run.rows)
    cheapest = min(r["cost_usd"] for r in run.rows)
    assert spent >= 6000 and spent - cheapest < 6000 + 2 * cheapest  # only runs already in flight finish after
    lb = run.read("leaderboard_row.json")[0]
    assert lb["run_status"] == "partial" and lb["planned_tests"] == 12 and lb["completed_tests"] == ran


def test_budget_needs_a_price(bench: Any) -> None:
    tasks, scripts = tasks_and_scripts(1)
    run = bench(tasks, scripts, "--smoltrace-max-cost", "1")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--smoltrace-max-cost: litellm has no price for openai/scripted*"])


def test_kill_9_of_the_controller_loses_no_finished_item(
    pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    proc, run_dir = start_run_and_wait(pytester, server, 6, "killed", journaled=2)
    proc.kill()  # SIGKILL: no sessionfinish, no results.json — only the journal
    proc.communicate(timeout=30)
    done = journal_nodeids(run_dir)
    assert len(done) >= 2 and not (run_dir / "results.json").exists()
    resumed = _run_pytest(pytester.path, server, "--smoltrace-resume", "killed")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    rows = json.loads((run_dir / "results.json").read_text())
    assert sorted(r["task_id"] for r in rows) == [f"t{i}" for i in range(6)] and all(r["success"] for r in rows)
