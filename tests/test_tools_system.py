"""Process and system tools on ordinary input: ps, kill (of the run's own children), env, which, ping.

Signals are only ever sent to children these tests start themselves (through the tools' process registry)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from smoltrace_tools import get_tools
from smoltrace_tools.addresses import NetworkPolicy
from smoltrace_tools.environment import EnvOverlay, secret_reason
from smoltrace_tools.errors import NetworkPolicyViolation, ProcessPolicyViolation
from smoltrace_tools.processes import SUBPROCESS_ENV, protected_reason

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def tools(tmp_path: Path) -> Any:
    built = {t.name: t for t in get_tools(["ps", "kill", "env", "which", "ping"], working_dir=tmp_path)}
    yield built
    built["kill"].context.close()


# -------------------------------------------------------------------------------------------------------- ps


def test_ps_lists_this_process_without_command_lines(tools: dict[str, Any]) -> None:
    tools["kill"].context.processes.spawn([*SLEEP, "SMOLTRACE-PS-MARKER"])
    name = psutil.Process().name()  # "python…", or "pytest" when run through its console script
    out = tools["ps"](filter_name=name, sort_by="pid", limit=500, descending=False)
    header, *rows, footer = out.splitlines()
    assert header.split() == ["PID", "CPU%", "MEM%", "STATUS", "USER", "NAME"]
    assert any(int(row.split()[0]) == os.getpid() for row in rows)
    assert f"processes matching '{name}'" in footer
    assert "SMOLTRACE-PS-MARKER" not in out  # command lines (which may carry secrets) are never shown


def test_ps_sorting_and_limits(tools: dict[str, Any]) -> None:
    out = tools["ps"](sort_by="memory", limit=3)
    assert len(out.splitlines()) == 5  # header, 3 rows, footer
    by_pid = tools["ps"](sort_by="pid", limit=5, descending=False).splitlines()[1:-1]
    pids = [int(r.split()[0]) for r in by_pid]
    assert pids == sorted(pids)
    with pytest.raises(ValueError, match="sort_by"):
        tools["ps"](sort_by="age")
    with pytest.raises(ValueError, match="between 1 and 500"):
        tools["ps"](limit=501)


# ------------------------------------------------------------------------------------------------------ kill


def test_kill_stops_a_child_the_run_started(tools: dict[str, Any]) -> None:
    child = tools["kill"].context.processes.spawn(SLEEP)
    assert tools["kill"].context.processes.running() == [child.pid]
    assert tools["kill"](pid=child.pid) == f"Sent SIGTERM to process {child.pid}; it exited (exit code -15)."
    assert child.poll() == -15
    assert tools["kill"](pid=child.pid) == f"Process {child.pid} had already exited (exit code -15)."


def test_kill_force_uses_sigkill(tools: dict[str, Any]) -> None:
    child = tools["kill"].context.processes.spawn(SLEEP)
    assert "SIGKILL" in tools["kill"](pid=str(child.pid), force=True)
    assert child.wait(timeout=5) == -9


def test_kill_refuses_everything_else(tools: dict[str, Any]) -> None:
    stranger = subprocess.Popen(SLEEP)  # started by this test, not by the tools
    try:
        for pid in (0, -1, 1, os.getpid(), os.getppid(), stranger.pid):
            with pytest.raises(ProcessPolicyViolation, match="refusing to signal"):
                tools["kill"](pid=pid)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
    with pytest.raises(ValueError, match="integer"):
        tools["kill"](pid="init")


def test_protected_reason() -> None:
    assert protected_reason(1) is not None and protected_reason(os.getpid()) is not None
    assert protected_reason(os.getppid()) is not None
    assert protected_reason(0) is not None and protected_reason(-5) is not None


def test_children_get_a_fixed_environment(tools: dict[str, Any]) -> None:
    tools["env"](action="set", name="LD_PRELOAD", value="/tmp/evil.so")
    child = tools["kill"].context.processes.spawn(
        [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"]
    )
    out, _ = child.communicate(timeout=30)
    env = __import__("json").loads(out)
    assert "LD_PRELOAD" not in env and env["PATH"] == SUBPROCESS_ENV["PATH"]
    assert not any(k.startswith("SMOLTRACE") or "KEY" in k for k in env)


# ------------------------------------------------------------------------------------------------------- env


def test_env_get_set_list(tools: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    env = tools["env"]
    monkeypatch.setenv("SMOLTRACE_TEST_COLOR", "blue")
    assert env(action="get", name="SMOLTRACE_TEST_COLOR") == "SMOLTRACE_TEST_COLOR=blue"
    assert env(action="get", name="SMOLTRACE_TEST_MISSING") == "SMOLTRACE_TEST_MISSING is not set"
    assert "not changed" in env(action="set", name="SMOLTRACE_TEST_COLOR", value="red")
    assert env(action="get", name="SMOLTRACE_TEST_COLOR") == "SMOLTRACE_TEST_COLOR=red"
    assert os.environ["SMOLTRACE_TEST_COLOR"] == "blue"  # the evaluator keeps its value
    env(action="set", name="SMOLTRACE_TEST_NEW", value="1")
    assert "SMOLTRACE_TEST_NEW" not in os.environ
    listed = env(action="list", filter_pattern="smoltrace_test")
    assert listed.splitlines() == ["SMOLTRACE_TEST_COLOR=red", "SMOLTRACE_TEST_NEW=1"]
    assert env(action="list", filter_pattern="SMOLTRACE_TEST_N*") == "SMOLTRACE_TEST_NEW=1"
    assert env(action="list", filter_pattern="no_such_variable_xyz") == "No variables match 'no_such_variable_xyz'"


def test_env_argument_errors(tools: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'get', 'set' or 'list'"):
        tools["env"](action="unset", name="X")
    with pytest.raises(ValueError, match="name is required"):
        tools["env"](action="get")
    with pytest.raises(ValueError, match="invalid variable name"):
        tools["env"](action="set", name="A=B", value="x")
    with pytest.raises(ValueError, match="value is required"):
        tools["env"](action="set", name="A")
    with pytest.raises(ProcessPolicyViolation, match="limit"):
        tools["env"](action="set", name="A", value="x" * 5000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_API_KEY", "anything"),
        ("HF_TOKEN", "x"),
        ("DB_PASSWORD", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("SESSION_COOKIE", "x"),
        ("SLACK_WEBHOOK", "https://hooks.example/T000/B000/abc"),
        ("DATABASE_URL", "postgres://user:pass@db:5432/app"),
        ("REDIS_URL", "redis://:hunter2@cache:6379/0"),
        ("GIT_REMOTE", "https://ghp_abcdefghij0123456789@github.com/o/r"),
        ("MY_VALUE", "sk-proj-abcdefghijklmnop"),
        ("MY_VALUE", "hf_abcdefghijklmnopqrstu"),
        ("MY_VALUE", "AKIAIOSFODNN7EXAMPLE"),
        ("MY_VALUE", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"),
        ("MY_VALUE", "Bearer abcdefghijklmnop"),
        ("MY_VALUE", "0123456789abcdef0123456789abcdef"),
        ("MY_VALUE", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo"),
        ("MY_VALUE", "-----BEGIN OPENSSH PRIVATE KEY-----"),
    ],
)
def test_secret_looking_names_and_values_are_hidden(name: str, value: str) -> None:
    assert secret_reason(name, value) is not None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOME", "/root"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/home/user/.local/share/virtualenvs/project-1a2b3c/bin"),
        ("LANG", "en_US.UTF-8"),
        ("OPENAI_API_BASE", "http://127.0.0.1:8000/v1"),
        ("PWD", "/work/main"),
        ("HOSTNAME", "ip-10-0-0-12"),
        ("PYTHONHASHSEED", "0"),
    ],
)
def test_ordinary_values_are_shown(name: str, value: str) -> None:
    assert secret_reason(name, value) is None


def test_env_overlay_with_a_fixed_base() -> None:
    overlay = EnvOverlay({"A": "1"})
    overlay.set("B", "2")
    assert overlay.get("A") == "1" and overlay.get("B") == "2" and overlay.names() == ["A", "B"]
    assert overlay.changes == {"B": "2"}


# ----------------------------------------------------------------------------------------------------- which


def test_which(tools: dict[str, Any]) -> None:
    found = tools["which"](command="python3")
    assert os.path.basename(found) == "python3" and os.access(found, os.X_OK)
    every = tools["which"](command="python3", all_matches=True).splitlines()
    assert every[0] == found and len(every) == len(set(every))
    assert tools["which"](command="no-such-command-xyz") == "no-such-command-xyz not found on the PATH"
    with pytest.raises(ValueError, match="bare name"):
        tools["which"](command="-rf")


def test_which_ignores_an_agent_set_path(tools: dict[str, Any], tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "secret-tool").write_text("#!/bin/sh\n", encoding="utf-8")
    (fake / "secret-tool").chmod(0o755)
    tools["env"](action="set", name="PATH", value=str(fake))
    assert tools["which"](command="secret-tool") == "secret-tool not found on the PATH"


# ------------------------------------------------------------------------------------------------------ ping


@pytest.fixture
def fake_ping(tmp_path: Path) -> str:
    script = tmp_path / "fake-ping"
    script.write_text('#!/bin/sh\necho "fake ping $*"\n', encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def test_ping_runs_on_the_pinned_address(tmp_path: Path, fake_ping: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"]

    (ping,) = get_tools(["ping"], working_dir=tmp_path, network=NetworkPolicy(resolver=resolver))
    monkeypatch.setattr(type(ping), "executable", fake_ping)
    out = ping(host="example.test", count=2, timeout=1)
    assert lookups == ["example.test"]
    assert out.endswith("fake ping -4 -n -c 2 -W 1 93.184.216.34")  # the checked IP, never the name
    assert "(exit code 0)" in out


def test_ping_refusals(tools: dict[str, Any]) -> None:
    for host in ("127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "[::1]", "-c 1 8.8.8.8"):
        with pytest.raises(NetworkPolicyViolation):
            tools["ping"](host=host)
    with pytest.raises(ValueError, match="between 1 and 20"):
        tools["ping"](host="8.8.8.8", count=100)


def test_ping_without_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ping,) = get_tools(["ping"], working_dir=tmp_path, network=NetworkPolicy(resolver=lambda h, p: ["93.184.216.34"]))
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="not installed"):
        ping(host="example.test")
