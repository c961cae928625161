"""The security suite: every escape/abuse attempt of the escape lab (`tests/escape_lab.py`) is refused or contained, and
nothing outside the sandbox changes (files, environment, processes, the loopback canary servers)."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from escape_lab import ATTEMPTS, Attempt, EscapeLab

from smoltrace_tools import patterns
from smoltrace_tools import sandbox as sandbox_module
from smoltrace_tools import system as system_module


@pytest.fixture(scope="module")
def lab() -> Iterator[EscapeLab]:
    with EscapeLab() as the_lab:
        yield the_lab


def test_the_suite_is_big_enough() -> None:
    assert len(ATTEMPTS) >= 40
    categories = {a.category for a in ATTEMPTS}
    expected = {"path", "symlink", "glob", "special-file", "size", "regex", "process", "env", "network", "scheme"}
    assert expected | {"code", "write"} <= categories


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=[a.id for a in ATTEMPTS])
def test_attempt_is_blocked(lab: EscapeLab, attempt: Attempt) -> None:
    result = lab.run(attempt)
    assert result.outcome != "escaped", result.detail
    assert result.outcome == attempt.expect, result.detail
    assert lab.hits == 0
    # cut off by the tools' own limits (a pattern's match budget is 5 s), never left to run: a bound, not a speed test
    assert result.duration_s < patterns.DEFAULT_MATCH_BUDGET_S + patterns.COMPILE_BUDGET_S


def test_unrelated_processes_survive_the_kill_attempts(lab: EscapeLab) -> None:
    for attempt in (a for a in ATTEMPTS if a.tool == "kill"):
        lab.run(attempt)
    for child in lab._children:
        assert child.poll() is None, f"pid {child.pid} was killed"


# ---------------------------------------------------------------------------- the lab itself catches escapes


def test_lab_detects_a_request_to_the_canary_server(lab: EscapeLab) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{lab.port}/", timeout=5) as response:
        assert response.read() == b"CANARY-SERVED"
    assert any("canary server" in v for v in lab.violations())
    lab.reset()
    assert lab.violations() == []


def test_lab_detects_a_write_outside_and_an_env_change(lab: EscapeLab) -> None:
    (lab.outside / "secret.txt").write_text("changed", encoding="utf-8")
    os.environ["SMOLTRACE_LAB_PROBE"] = "1"
    try:
        problems = lab.violations()
        assert any("outside directory changed" in p for p in problems)
        assert any("environment changed" in p for p in problems)
    finally:
        os.environ.pop("SMOLTRACE_LAB_PROBE")
        (lab.outside / "secret.txt").write_text(f"top secret: {lab.canary}\n", encoding="utf-8")
    lab._outside_before = lab._snapshot_outside()
    assert lab.violations() == []


def test_lab_reports_an_escape_when_the_sandbox_is_disabled(lab: EscapeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox that does not check would be caught: the attempt reads the secret and the lab says "escaped"."""

    def no_check(self: sandbox_module.Sandbox, path: object, *, what: str = "path") -> Path:
        return Path(os.path.realpath(self.root / str(path)))

    monkeypatch.setattr(sandbox_module.Sandbox, "resolve", no_check)
    attempt = Attempt(
        "probe", "path", "read_file", lambda lab: {"file_path": "../outside/dir/inner.txt"}, "refused", "probe"
    )
    result = lab.run(attempt)
    assert result.outcome == "escaped"
    assert "reveals" in result.detail


def test_lab_reports_an_escape_when_agent_code_can_reach_the_context(
    lab: EscapeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the context were a plain instance attribute, CodeAgent code could start a shell: the lab must see it."""
    original = system_module.KillTool.__init__

    def leaky_init(self: system_module.KillTool, context: object) -> None:
        original(self, context)  # type: ignore[arg-type]
        self.__dict__["context"] = context  # what a naive implementation would do

    monkeypatch.setattr(system_module.KillTool, "__init__", leaky_init)
    attempt = next(a for a in ATTEMPTS if a.id == "code-spawn-shell")
    result = lab.run(attempt)
    assert result.outcome == "escaped" and "files were created" in result.detail, result.detail
    assert lab.violations() == []  # reset() removed what the escape created
