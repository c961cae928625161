"""With the plugin installed but no model configured, nothing heavy is imported and nothing is collected."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("litellm", "smolagents", "datasets", "torch", "transformers", "openai")


def test_unrelated_run_imports_no_heavy_module(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert 1 + 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMOLTRACE_")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pytest_smoltrace.options" in imported  # the plugin is installed and loaded
    assert "pytest_smoltrace.collect" not in imported  # …but its collection machinery is not
    top_level = {name.split(".")[0] for name in imported}
    assert not top_level & set(HEAVY), sorted(top_level & set(HEAVY))


def test_inactive_plugin_collects_no_tasks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    (pytester.path / "smoltrace_tasks.jsonl").write_text('{"id": "a", "prompt": "p"}\n')
    result = pytester.runpytest("--co", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["test_plain.py::test_ok"]


def test_options_come_from_ini_and_env(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini(
        "[pytest]\nsmoltrace_model = openai/from-ini\nsmoltrace_agent_type = code\n"
        "smoltrace_api_base = http://127.0.0.1:9/v1\n"
    )
    result = pytester.runpytest("--co", "-q")
    lines = [line for line in result.stdout.lines if line.startswith("smoltrace/")]
    assert lines and all("::code::" in line for line in lines)
    monkeypatch.setenv("SMOLTRACE_MODEL", "openai/from-env")
    pytester.makeini("[pytest]\nsmoltrace_api_base = http://127.0.0.1:9/v1\n")
    result = pytester.runpytest("--co")
    result.stdout.fnmatch_lines(["smoltrace: run * · model openai/from-env (litellm at http://127.0.0.1:9/v1)"])


def test_bad_option_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nsmoltrace_max_steps = zero\n")
    result = pytester.runpytest("--smoltrace-model", "openai/x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--smoltrace-max-steps / ini smoltrace_max_steps*invalid literal*"])


def test_public_options_never_carry_credentials() -> None:
    from pytest_smoltrace.settings import redact_url

    assert redact_url("https://user:s3cret@api.example.com/v1?key=abc") == "https://api.example.com/v1"
    assert redact_url("docs=http://tok:en@127.0.0.1:8000/mcp?token=x") == "docs=http://127.0.0.1:8000/mcp"
    assert redact_url("not a url") == "not a url"


def test_explicit_test_paths_do_not_pull_in_the_bundled_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_agents="def test_ok():\n    pass\n")
    args = ("--smoltrace-model", "openai/x", "--smoltrace-api-base", "http://127.0.0.1:9/v1", "--co", "-q")
    explicit = pytester.runpytest(*args, "test_agents.py")
    assert [line for line in explicit.stdout.lines if "::" in line] == ["test_agents.py::test_ok"]
    asked = pytester.runpytest(*args, "test_agents.py", "--smoltrace-dataset", "default")
    assert any(line.startswith("smoltrace/default::") for line in asked.stdout.lines)
    bare = pytester.runpytest(*args)
    assert any(line.startswith("smoltrace/default::") for line in bare.stdout.lines)
