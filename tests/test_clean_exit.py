"""Ctrl-C once stops the run, writes the outputs and exits promptly — every time.

Before, 2 of 3 Ctrl-Cs left the process hanging after the summary until a second Ctrl-C: at interpreter exit the
garbage collector ran litellm's ``AsyncHTTPHandler.__del__``, which imports a module while the import system is
torn down (``importlib._get_module_lock``). Now litellm's async clients are released at exit while the interpreter
is whole (``models.release_litellm_clients``, registered with ``atexit``).

And nothing it spent is lost: the agent runs in flight are stopped after the step they are in (its model call is paid
for) and recorded as cancelled with their tokens; every token the model server served is in results.json, once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from test_resilience import (
    WEATHER_TOOL,
    assert_spend_recorded,
    run_pytest,
    served_when_idle,
    start_run_and_wait,
    tasks_and_scripts,
)

from pytest_smoltrace.runner import CANCEL_GRACE_S
from pytest_smoltrace.testing import ScriptedModelServer


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_one_ctrl_c_writes_the_outputs_and_exits_within_seconds(
    pytester: pytest.Pytester, server: ScriptedModelServer, attempt: int
) -> None:
    # 48 items of 2 x 0.4 s at concurrency 4 take ≥ 10 s: the Ctrl-C lands mid-run even on a loaded machine
    proc, run_dir = start_run_and_wait(
        pytester, server, 48, f"ctrl-c-{attempt}", journaled=2, concurrency=4, in_flight=True
    )
    assert proc.poll() is None, "the run ended before the Ctrl-C could be sent"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"still running 30 s after one Ctrl-C:\n{output[-3000:]}")
    waited = time.monotonic() - sent
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    # ≈ 3-6 s on a 2-core machine; the bound leaves room for a loaded one (the old hang lasted until a 2nd Ctrl-C)
    assert waited < 15, f"exit took {waited:.1f} s\n{output[-2000:]}"
    # every model call the server answered is counted once: the runs in flight at the Ctrl-C (the one pytest waited
    # for, those started ahead) end their step in flight and are recorded as cancelled with their spend
    rows = assert_spend_recorded(run_dir, served_when_idle(server))
    done = [r for r in rows if r["error_type"] != "Cancelled"]
    cancelled = [r for r in rows if r["error_type"] == "Cancelled"]
    assert len(done) >= 2 and all(r["success"] for r in done)
    assert cancelled and sum(r["total_tokens"] for r in cancelled) > 0
    assert all(r["outcome"] == "error" for r in cancelled)
    assert {r["test_case_uid"] for r in done}.isdisjoint(r["test_case_uid"] for r in cancelled)
    assert json.loads((run_dir / "metadata.json").read_text())["totals"]["cancelled"] == len(cancelled)


CTRL_C_IN_REPORT = """
import pytest

WHEN = {when!r}


def _interrupt(report):
    if report.nodeid.endswith("::t1") and report.when == "call":
        raise KeyboardInterrupt


if WHEN == "before":  # the result was handed to pytest, and its report is not recorded yet

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(report):
        _interrupt(report)

else:  # the report is recorded: the run must not be counted twice

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(report):
        yield
        _interrupt(report)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_ctrl_c_while_pytest_reports_a_result_counts_its_run_once(
    bench: Any, pytester: pytest.Pytester, server: ScriptedModelServer, when: str
) -> None:
    pytester.makeconftest(CTRL_C_IN_REPORT.format(when=when))
    tasks, scripts = tasks_and_scripts(8, delay=0.2)
    run = bench(tasks, scripts, "--smoltrace-concurrency", "4", subprocess=True)
    assert run.result.ret == pytest.ExitCode.INTERRUPTED, run.stdout[-3000:]
    rows = assert_spend_recorded(run.run_dir, served_when_idle(server))
    t1 = run.row("t1", "tool")
    if when == "before":  # its report never reached the results: the run is recorded from the run itself
        assert t1["error_type"] == "Cancelled" and "as pytest was reporting" in t1["error"]
    else:
        assert t1["outcome"] == "passed" and t1["error_type"] is None
    assert t1["total_tokens"] > 0 and t1["steps"] == 2
    assert run.row("t0", "tool")["outcome"] == "passed"
    # the runs started ahead (t2 ... t4 at most) are cancelled with their spend
    ahead = [r for r in rows if r["task_id"] not in ("t0", "t1")]
    assert ahead and all(r["error_type"] == "Cancelled" for r in ahead)


def test_ctrl_c_while_x_waits_for_the_runs_started_ahead_stops_them_and_keeps_their_spend(
    pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    tasks, scripts = tasks_and_scripts(4)
    scripts["[k-t0]"] = {"tool": [{"final_answer": "no idea"}]}  # fails at once: -x stops the session
    for i in range(1, 4):  # started ahead, each 6 slow steps: -x waits for them, and Ctrl-C cuts that short
        scripts[f"[k-t{i}]"] = {"tool": [{**WEATHER_TOOL, "delay": 1.0}] * 5 + [{"final_answer": "20", "delay": 1.0}]}
    for key, script in scripts.items():
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(tasks))
    proc = run_pytest(pytester.path, server, "--smoltrace-run-id", "x", "--smoltrace-concurrency", "4", "-x")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "smoltrace: waiting for" in line:
            break
    # every run started ahead has sent its first model call (a loaded machine may start one late): Ctrl-C then finds
    # each of them in a step, and the step in flight ends within the grace
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(server.usage_for(f"[k-t{i}]")["requests"] >= 1 for i in range(1, 4)):
        time.sleep(0.05)
    assert proc.poll() is None, "".join(lines)[-3000:]
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, "".join(lines) + output
    rows = assert_spend_recorded(pytester.path / "smoltrace_results" / "x", served_when_idle(server))
    ahead = [r for r in rows if r["task_id"] != "t0"]
    assert len(ahead) == 3 and all(r["error_type"] == "Cancelled" for r in ahead), output[-3000:]
    # stopped after their step in flight (a loaded machine may let a run take one or two more steps before the signal)
    assert all(1 <= r["steps"] < 6 and r["total_tokens"] > 0 for r in ahead), [
        (r["task_id"], r["steps"], r["total_tokens"], r["error"]) for r in ahead
    ]


def test_a_model_call_longer_than_the_grace_is_not_waited_for_and_the_row_says_so(
    pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    # the one model call takes longer than the grace a cancelled run gets for its step in flight
    server.add_script("[k-slow]", {"tool": [{**WEATHER_TOOL, "delay": CANCEL_GRACE_S + 4}, {"final_answer": "20"}]})
    (pytester.path / "tasks.json").write_text(json.dumps([{"id": "slow", "prompt": "Weather? [k-slow]"}]))
    proc = run_pytest(pytester.path, server, "--smoltrace-run-id", "slow", "--smoltrace-agent-type", "tool")
    deadline = time.monotonic() + 60
    while not (server._httpd is not None and server._httpd.connections) and time.monotonic() < deadline:
        time.sleep(0.05)  # the agent has connected to send its first model call
    assert proc.poll() is None, "the run ended before the Ctrl-C could be sent"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    [row] = json.loads((pytester.path / "smoltrace_results" / "slow" / "results.json").read_text())
    assert row["error_type"] == "Cancelled" and row["steps"] == 0
    assert f"did not end within {CANCEL_GRACE_S:g} s: that model call is not counted" in row["error"]
    assert served_when_idle(server)["requests"] == 1  # it was served after the run had gone: the gap is real


def test_litellm_async_clients_are_released_at_exit() -> None:
    code = (
        "import atexit\n"
        "from pytest_smoltrace import models\n"
        "models.prepare_litellm(); models.prepare_litellm()\n"
        "import litellm\n"
        "handler = litellm.module_level_aclient\n"
        "assert handler._owns_client\n"
        "models.release_litellm_clients()\n"
        "assert handler._owns_client is False  # its __del__ has nothing left to do at interpreter exit\n"
        "print('released')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "released", proc.stderr[-2000:]
