"""Ctrl-C under pytest-xdist keeps every run the workers finished, even those whose reports the controller never read.

A worker's reports wait in the controller's queue; Ctrl-C makes pytest-xdist stop reading it at once. Before, the
results in it — finished runs, with their spend — were in no output. Now each worker also keeps every result it hands
over in the run directory's handoff (:mod:`pytest_smoltrace.handoff`), and the controller files what it missed.
The controller here is made slow (1 s per report), so reports pile up in its queue before the signal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import scripted_args
from test_resilience import assert_spend_recorded, journal_nodeids, served_when_idle, tasks_and_scripts

from pytest_smoltrace.testing import ScriptedModelServer

SLOW_CONTROLLER = """
import time

CONTROLLER = []


def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        CONTROLLER.append(True)


def pytest_runtest_logreport(report):
    if CONTROLLER and report.when == "call":
        time.sleep(1.0)  # the controller reads one report a second: the workers' reports wait in its queue
"""


def _finished(server: ScriptedModelServer, n: int) -> set[str]:
    """The tasks whose final model call the server has answered (their runs are done, results handed over)."""
    return {f"t{i}" for i in range(n) if server.usage_for(f"[k-t{i}]")["requests"] >= 2}


@pytest.mark.parametrize("to", ["group", "controller"])
def test_ctrl_c_under_xdist_files_the_results_the_controller_had_not_read(
    pytester: pytest.Pytester, server: ScriptedModelServer, to: str
) -> None:
    n = 16
    pytester.makeconftest(SLOW_CONTROLLER)
    tasks, scripts = tasks_and_scripts(n)
    for key, script in scripts.items():
        server.add_script(key, script)
    (pytester.path / "tasks.json").write_text(json.dumps(tasks))
    run_dir = pytester.path / "smoltrace_results" / "xdist-ctrl-c"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]
    argv += [*scripted_args(server.base_url), "--smoltrace-run-id", "xdist-ctrl-c", "-n", "2"]
    # its own process group, as a terminal's foreground job: Ctrl-C reaches the controller and both workers
    proc = subprocess.Popen(
        argv,
        cwd=pytester.path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        # wait until the workers have finished at least three runs more than the controller has filed
        while time.monotonic() < deadline and proc.poll() is None:
            filed = len(journal_nodeids(run_dir))
            if filed >= 1 and len(_finished(server, n)) >= filed + 3:
                break
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the Ctrl-C could be sent:\n{proc.communicate()[0][-3000:]}")
        finished = _finished(server, n)
        if to == "group":  # a terminal's Ctrl-C
            os.killpg(proc.pid, signal.SIGINT)
        else:  # kill -INT of the controller alone: the workers go on until pytest-xdist tears them down
            proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    # every model call the server answered is in results.json once, the unread reports' runs among them
    rows = assert_spend_recorded(run_dir, served_when_idle(server))
    by_task = {r["task_id"]: r for r in rows}
    assert finished <= set(by_task), (sorted(finished - set(by_task)), output[-3000:])
    # the runs whose reports waited in the queue are filed from the handoff, as they were (passed); a run started
    # ahead for an item pytest never ran is cancelled, with its spend
    assert all(by_task[t]["outcome"] == "passed" or by_task[t]["error_type"] == "Cancelled" for t in finished)
    match = re.search(r"smoltrace: (\d+) result\(s\) the controller had not read when the session stopped", output)
    assert match and int(match.group(1)) >= 1, output[-3000:]
    assert len(rows) == len(by_task) == len(journal_nodeids(run_dir))  # each run once
    assert not (run_dir / ".handoff").exists()  # removed once the run directory holds everything
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["totals"]["total_tokens"] == sum(r["total_tokens"] for r in rows)


def test_a_run_without_interruption_leaves_no_handoff_behind(bench: object, pytester: pytest.Pytester) -> None:
    tasks, scripts = tasks_and_scripts(4)
    run = bench(tasks, scripts, "-n", "2", subprocess=True)  # type: ignore[operator]
    assert run.result.ret == 0, run.stdout[-3000:]
    assert len(json.loads((run.run_dir / "results.json").read_text())) == 4
    assert not (Path(run.run_dir) / ".handoff").exists()
