"""Tool options through the plugin: enabled tools, required_tools, the working dir, conftest tools, prompt files."""

from __future__ import annotations

import inspect
import json
import textwrap
from typing import Any

import pytest
from helpers import task_row

from pytest_smoltrace import hooks
from pytest_smoltrace.testing import ScriptedModelServer

READ_TOOL = {"tool_calls": [{"name": "read_file", "arguments": {"file_path": "notes.txt"}}]}
READ_CODE = {"code": "text = read_file(file_path='notes.txt')\nprint(text)"}


def test_enabled_tools_work_inside_the_working_dir_for_both_agents(bench: Any, pytester: pytest.Pytester) -> None:
    workspace = pytester.path / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("the secret word is pelican\n")
    tasks = [task_row("read_notes", "What is the secret word? [k-read]", "read_file", "pelican")]
    scripts = {
        "[k-read]": {"tool": [READ_TOOL, {"final_answer": "pelican"}], "code": [READ_CODE, {"final_answer": "pelican"}]}
    }
    run = bench(tasks, scripts, "--smoltrace-tools", "read_file,grep", "--smoltrace-working-dir", "ws")
    run.result.assert_outcomes(passed=2)
    for row in run.rows:
        (call,) = [c for c in row["tool_calls"] if c["name"] == "read_file"]
        assert "pelican" in call["result"] and call["error"] is None


def test_required_tools_are_enabled_per_task_and_escapes_are_refused(bench: Any, pytester: pytest.Pytester) -> None:
    (pytester.path / "outside.txt").write_text("do not read me")
    (pytester.path / "ws").mkdir()
    tasks = [
        {
            "id": "escape",
            "prompt": "Read the file outside [k-escape]",
            "agent_type": "tool",
            "required_tools": ["read_file"],
            "expected_tool": "read_file",
        }
    ]
    escape = {"tool_calls": [{"name": "read_file", "arguments": {"file_path": "../outside.txt"}}]}
    scripts = {"[k-escape]": {"tool": [escape, {"final_answer": "could not"}]}}
    run = bench(tasks, scripts, "--smoltrace-working-dir", "ws")
    run.result.assert_outcomes(failed=1)
    row = run.row("escape", "tool")
    (call,) = [c for c in row["tool_calls"] if c["name"] == "read_file"]
    assert call["error"] and "do not read me" not in json.dumps(row)
    assert next(c for c in row["checks"] if c["name"] == "expected_tool")["passed"] is False  # a refusal is no use


def documented_tools_conftest() -> str:
    """The ``conftest.py`` that the ``pytest_smoltrace_tools`` hook's documentation shows (so that it is run)."""
    doc = inspect.getdoc(hooks.pytest_smoltrace_tools) or ""
    return textwrap.dedent(doc.split(".. code-block:: python", 1)[1])


def test_conftest_tools_and_prompt_files(bench: Any, pytester: pytest.Pytester, server: ScriptedModelServer) -> None:
    pytester.makeconftest(documented_tools_conftest())  # the StockPrice tool of the hook's documentation
    (pytester.path / "prompt.yml").write_text("system_prompt: 'You are a careful analyst. Marker-4711.'\n")
    tasks = [
        {"id": "stock", "prompt": "Price of ACME? [k-stock]", "expected_tool": "stock_price", "expected_answer": 12.5}
    ]
    scripts = {
        "[k-stock]": {
            "tool": [
                {"tool_calls": [{"name": "stock_price", "arguments": {"ticker": "ACME"}}]},
                {"final_answer": "12.5"},
            ],
            "code": [{"code": "p = stock_price(ticker='ACME')\nprint(p)"}, {"final_answer": 12.5}],
        }
    }
    run = bench(tasks, scripts, "--smoltrace-prompt-yml", "prompt.yml")
    run.result.assert_outcomes(passed=2)
    systems = [m for r in server.requests for m in r.body["messages"] if m["role"] == "system"]
    assert systems and all("Marker-4711" in json.dumps(m) for m in systems)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--smoltrace-tools", "teleport"), "*--smoltrace-tools: *teleport*"),
        (("--smoltrace-prompt-yml", "missing.yml"), "*--smoltrace-prompt-yml: *missing.yml*"),
        (
            ("--smoltrace-additional-imports", "no_such_module_xyz"),
            "*--smoltrace-additional-imports: *no_such_module_xyz*",
        ),
        (("--smoltrace-mcp-server-url", "docs=http://127.0.0.1:9/mcp"), "*--smoltrace-mcp-server-url: *"),
    ],
)
def test_bad_tool_setup_is_a_usage_error_before_any_task(bench: Any, args: tuple[str, ...], message: str) -> None:
    run = bench([{"id": "x", "prompt": "p"}], None, *args)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([message])
