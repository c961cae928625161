"""``pytest_smoltrace.api.run``: the Python API runs the same machinery as the command line and returns records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_smoltrace import api, cli
from pytest_smoltrace.journal import read_journal
from pytest_smoltrace.records import ItemResult
from pytest_smoltrace.summary import AgentSummary
from pytest_smoltrace.testing import ScriptedModelServer

WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
WEATHER_CODE = {"code": "w = get_weather(location='Paris, France')\nprint(w)"}
SCRIPTS = {
    "[a-ok]": {
        "tool": [WEATHER_TOOL, {"final_answer": "20°C, cloudy"}],
        "code": [WEATHER_CODE, {"final_answer": "20°C"}],
    },
    "[a-wrong]": {"tool": [{"final_answer": "5"}], "code": [{"final_answer": 4}]},
    "[a-broken]": {"tool": [{"status": 400, "body": {"error": {"message": "bad request"}}}]},
}
TASKS = [
    {"id": "ok", "prompt": "Weather in Paris? [a-ok]", "expected_tool": "get_weather", "expected_keywords": ["20"]},
    {"id": "wrong", "prompt": "What is 2+2? [a-wrong]", "expected_answer": 4},
    {"id": "broken", "prompt": "Anything [a-broken]", "agent_type": "tool"},
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ScriptedModelServer) -> Path:
    for key, script in SCRIPTS.items():
        server.add_script(key, script)
    (tmp_path / "tasks.json").write_text(json.dumps(TASKS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_returns_the_same_verdicts_as_the_command_line(workdir: Path, server: ScriptedModelServer) -> None:
    common = ["--model", "openai/scripted", "--api-base", server.base_url, "--dataset-name", "tasks.json"]
    assert cli.main([*common, "--run-id", "via-cli", "--retries", "0", "--quiet"]) == 1
    cli_results = read_journal(workdir / "smoltrace_results" / "via-cli")

    summary = api.run(
        model="openai/scripted",
        api_base=server.base_url,
        dataset="tasks.json",
        run_id="via-api",
        retries=0,
        pytest_args=["-q"],
    )
    assert summary.exit_code == 1 and not summary.ok
    assert summary.run_id == "via-api" and summary.run_dir == workdir / "smoltrace_results" / "via-api"
    assert all(isinstance(r, ItemResult) for r in summary.results)
    expected = {
        "smoltrace/tasks.json::tool::ok": "passed",
        "smoltrace/tasks.json::code::ok": "passed",
        "smoltrace/tasks.json::tool::wrong": "failed",
        "smoltrace/tasks.json::code::wrong": "passed",
        "smoltrace/tasks.json::tool::broken": "error",
    }
    assert summary.verdicts() == expected
    assert {r.nodeid: r.verdict.outcome for r in cli_results} == expected
    # the same checks, item by item (only timings, tokens, trace ids and the run id may differ)
    by_node = {r.nodeid: r for r in cli_results}
    for result in summary.results:
        assert result.verdict.checks == by_node[result.nodeid].verdict.checks
        assert result.record.executed_tools == by_node[result.nodeid].record.executed_tools
        assert result.record.run_id == "via-api"
    tool, code = summary.agent("tool"), summary.agent("code")
    assert isinstance(tool, AgentSummary) and isinstance(code, AgentSummary)
    assert (tool.total, tool.passed, tool.failed, tool.errored) == (3, 1, 1, 1)
    assert (code.total, code.passed, code.failed, code.errored) == (2, 2, 0, 0)
    leaderboard = json.loads((workdir / "smoltrace_results" / "via-cli" / "leaderboard_row.json").read_text())
    assert {row["agent_type"]: row["successful_tests"] for row in leaderboard} == {"tool": 1, "code": 2}
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.exit_code = 0  # type: ignore[misc]


class ExtraTasks:
    """Hook implementations passed with ``plugins=`` (the current directory's conftest is not loaded)."""

    def pytest_smoltrace_tasks(self, config: pytest.Config) -> list[dict[str, object]]:
        return [
            {"id": "extra", "prompt": "Weather in Paris? [a-ok]", "agent_type": "tool", "expected_tool": "get_weather"}
        ]


def test_run_with_plugins_and_no_output_dir(workdir: Path, server: ScriptedModelServer) -> None:
    summary = api.run(
        "openai/scripted",
        api_base=server.base_url,
        dataset="none",
        output="none",
        gpu_metrics=False,
        plugins=[ExtraTasks()],
        pytest_args=["-q"],
    )
    assert summary.exit_code == 0 and summary.ok
    assert summary.run_dir is None and summary.run_id  # nothing written, results kept in memory
    assert summary.verdicts() == {"smoltrace/conftest::tool::extra": "passed"}
    assert summary.results[0].record.executed_tools == ["get_weather"]
    assert not (workdir / "smoltrace_results").exists()


def test_option_args() -> None:
    assert api.option_args(
        {
            "model": "m",
            "agent_type": "tool",
            "max_steps": 3,
            "timeout": 1.5,
            "tools": ["read_file", "grep"],
            "mcp_server_url": "a=http://x/sse",
            "output_dir": Path("out"),
            "otlp": True,
            "private": False,
            "gpu_metrics": False,
            "run_id": None,
        }
    ) == [
        "--smoltrace-model", "m", "--smoltrace-agent-type", "tool", "--smoltrace-max-steps", "3",
        "--smoltrace-timeout", "1.5", "--smoltrace-tools", "read_file", "--smoltrace-tools", "grep",
        "--smoltrace-mcp-server-url", "a=http://x/sse", "--smoltrace-output-dir", "out", "--smoltrace-otlp",
        "--smoltrace-no-gpu-metrics",
    ]  # fmt: skip


def test_unknown_keyword_lists_the_valid_ones() -> None:
    with pytest.raises(TypeError) as excinfo:
        api.run("m", agent="tool")
    message = str(excinfo.value)
    expected = "run() got an unexpected keyword argument 'agent'; valid keywords: model, models, provider, "
    assert message.startswith(expected)
    assert "api_base, agent_type" in message and message.endswith("pytest_args, plugins")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"agent_type": "all"}, "agent_type='all': expected one of tool, code, both"),
        ({"max_steps": 0}, "max_steps='0': must be ≥ 1"),
        ({"otlp": "yes"}, "otlp='yes': expected True or False"),
        ({"dataset": ["a", "b"]}, "expected a single value"),
    ],
)
def test_bad_values_raise_before_pytest_starts(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        api.run("m", **options)
