"""Ctrl-C once stops the run, writes the outputs and exits promptly — every time.

Before, 2 of 3 Ctrl-Cs left the process hanging after the summary until a second Ctrl-C: at interpreter exit the
garbage collector ran litellm's ``AsyncHTTPHandler.__del__``, which imports a module while the import system is
torn down (``importlib._get_module_lock``). Now litellm's async clients are released at exit while the interpreter
is whole (``models.release_litellm_clients``, registered with ``atexit``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from test_resilience import journal_nodeids, start_run_and_wait

from pytest_smoltrace.testing import ScriptedModelServer


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_one_ctrl_c_writes_the_outputs_and_exits_within_seconds(
    pytester: pytest.Pytester, server: ScriptedModelServer, attempt: int
) -> None:
    # 48 items of ≥ 0.4 s at concurrency 4 take ≥ 5 s: the Ctrl-C lands mid-run even on a loaded machine
    proc, run_dir = start_run_and_wait(pytester, server, 48, f"ctrl-c-{attempt}", journaled=2, concurrency=4)
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
    # ≈ 3 s on an idle 2-core machine; the bound leaves room for a loaded one (the old hang lasted until a 2nd Ctrl-C)
    assert waited < 15, f"exit took {waited:.1f} s\n{output[-2000:]}"
    done = journal_nodeids(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    # every journaled item has its rows, and nothing else is there (per-attempt agreement: test_attempts)
    assert len(done) >= 2 and {r["test_case_uid"] for r in results} == set(done)
    assert (run_dir / "metadata.json").is_file()


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
