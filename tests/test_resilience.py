"""Nothing finished is lost: worker crashes, Ctrl-C, and --smoltrace-resume."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import scripted_args

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


def journal_lines(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def journal_nodeids(run_dir: Path) -> list[str]:
    return [line["nodeid"] for line in journal_lines(run_dir)]


def served_when_idle(server: ScriptedModelServer, timeout: float = 30.0) -> dict[str, int]:
    """The server's usage once no connection is open (each request is logged before it is answered, so a call the
    run's process sent but never read is in the log too, once its handler ends)."""
    deadline = time.monotonic() + timeout
    while server._httpd is not None and server._httpd.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server._httpd is not None and not server._httpd.connections, "the model server still has open requests"
    return server.usage_for()


def assert_spend_recorded(run_dir: Path, served: dict[str, int]) -> list[dict[str, Any]]:
    """Every model call the server answered is in results.json, once: its tokens (Σ over the rows = the metadata and
    leaderboard totals) and its step; results.json holds one row per journal line. Returns the rows."""
    rows: list[dict[str, Any]] = json.loads((run_dir / "results.json").read_text())
    assert collections.Counter(r["test_case_uid"] for r in rows) == collections.Counter(journal_nodeids(run_dir))
    assert sum(r["total_tokens"] for r in rows) == served["total_tokens"], (served, rows)
    assert sum(r["steps"] for r in rows) == served["requests"]  # one model call per step here
    totals = json.loads((run_dir / "metadata.json").read_text())["totals"]
    leaderboard = json.loads((run_dir / "leaderboard_row.json").read_text())
    assert totals["total_tokens"] == sum(r["total_tokens"] for r in leaderboard) == served["total_tokens"]
    return rows


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


def run_pytest(cwd: Path, server: ScriptedModelServer, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",  # items in collection order (pytest-randomly would shuffle them)
        *scripted_args(server.base_url),
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
    in_flight: bool = False,
) -> tuple[subprocess.Popen[str], Path]:
    """Start a slow run in a subprocess and return once ``journaled`` items are in its journal (and, ``in_flight``, an
    item not in it has been served its first model call: its run is then mid-way, its second call 0.4 s long)."""
    tasks, scripts = tasks_and_scripts(n_tasks, delay=0.4)
    for key, script in scripts.items():
        script["tool"][1]["delay"] = 0.4
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(tasks))
    run_dir = pytester.path / "smoltrace_results" / run_id
    proc = run_pytest(pytester.path, server, "--smoltrace-run-id", run_id, "--smoltrace-concurrency", str(concurrency))

    def ready() -> bool:
        done = journal_nodeids(run_dir)
        if len(done) < journaled:
            return False
        finished = {nodeid.rsplit("::", 1)[-1] for nodeid in done}
        served = {e.key.removeprefix("[k-").removesuffix("]") for e in server.requests if e.key and e.usage}
        return not in_flight or bool(served - finished)

    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    return proc, run_dir


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sigint_keeps_the_journal_and_resume_completes_the_run(
    pytester: pytest.Pytester, server: ScriptedModelServer, concurrency: int
) -> None:
    proc, run_dir = start_run_and_wait(
        pytester, server, 8, "interrupted", journaled=3, concurrency=concurrency, in_flight=True
    )
    assert proc.poll() is None, "the run ended before the Ctrl-C could be sent"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    # the runs in flight (the item pytest waited for, and those started ahead) are stopped after their step in flight
    # and recorded as cancelled with what they spent: every token the server served is in the outputs
    rows = assert_spend_recorded(run_dir, served_when_idle(server))
    done = [r["test_case_uid"] for r in rows if r["error_type"] != "Cancelled"]
    cancelled = [r for r in rows if r["error_type"] == "Cancelled"]
    assert 3 <= len(done) < 8 and len(set(done)) == len(done) and all(r["success"] for r in rows if r not in cancelled)
    assert cancelled and sum(r["total_tokens"] for r in cancelled) > 0, output[-3000:]
    assert all(r["test_case_uid"] not in done and r["outcome"] == "error" for r in cancelled)
    lb = json.loads((run_dir / "leaderboard_row.json").read_text())[0]
    assert lb["run_status"] == "partial" and lb["planned_tests"] == 8 and lb["completed_tests"] == len(done)

    # a resume runs every item not done, the cancelled ones included, and keeps the cancelled attempts' spend
    resumed = run_pytest(pytester.path, server, "--smoltrace-resume", "interrupted")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert f"{8 - len(done)} passed, {len(done)} deselected" in output
    rows = assert_spend_recorded(run_dir, served_when_idle(server))  # both sessions' calls
    assert len(rows) == 8 + len(cancelled)

    reference = run_pytest(pytester.path, server, "--smoltrace-run-id", "reference")
    reference.communicate(timeout=120)

    def comparable(name: str) -> list[dict[str, Any]]:
        rows = json.loads((pytester.path / "smoltrace_results" / name / "results.json").read_text())
        keep = ("test_case_uid", "success", "tools_used", "steps", "response", "checks", "total_tokens")
        finals = [r for r in rows if r["final_attempt"]]
        return sorted(({k: r[k] for k in keep} for r in finals), key=lambda r: r["test_case_uid"])

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
    resumed = run_pytest(pytester.path, server, "--smoltrace-resume", "killed")
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    rows = json.loads((run_dir / "results.json").read_text())
    assert sorted(r["task_id"] for r in rows) == [f"t{i}" for i in range(6)] and all(r["success"] for r in rows)
