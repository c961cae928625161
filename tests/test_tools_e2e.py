"""End to end per tool family: real ToolCallingAgent and CodeAgent, real litellm, real HTTP to the scripted model
server, tools from get_tools() instrumented by ToolRecorder. Refusals are recorded and the run goes on."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from smolagents import CodeAgent, LiteLLMModel, ToolCallingAgent

from pytest_smoltrace.records import ToolCall
from pytest_smoltrace.testing import ScriptedModelServer
from smoltrace_tools import close_tools, get_tools
from smoltrace_tools.recording import ToolRecorder

AGENT_TYPES = ["tool", "code"]


@pytest.fixture
def srv() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "outside.txt").write_text("not yours\n", encoding="utf-8")
    return work


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def code(body: str) -> dict[str, Any]:
    return {"code": body, "thought": "Let me use the tools."}


def add_scripts(
    srv: ScriptedModelServer,
    agent_type: str,
    key: str,
    tool_turns: list[dict[str, Any]],
    code_turns: list[dict[str, Any]],
    recoveries: Sequence[tuple[str, int, list[dict[str, Any]]]] = (),
) -> None:
    """Add the script for ``agent_type``.

    A ToolCallingAgent step whose tool call raised leaves no assistant message in the history, only smolagents'
    error text; the scripted server counts that as a turn, so each ``(error text, turn index, turns)`` recovery
    simply continues the script after the refused call (the error text documents what the model sees).
    """
    if agent_type == "tool":
        recovery_turns = [turn for _, _, turns in recoveries for turn in turns]
        srv.add_script(key, {"tool": [*tool_turns, *recovery_turns]})
    else:
        srv.add_script(key, {"code": code_turns})


def run_agent(
    agent_type: str, srv: ScriptedModelServer, tools: list[Any], task: str
) -> tuple[Any, tuple[ToolCall, ...], Any]:
    recorder = ToolRecorder(timeout_s=20)
    instrumented = [*recorder.instrument_all(tools), recorder.final_answer_tool()]
    model = LiteLLMModel(model_id="openai/scripted", api_base=srv.base_url, api_key="sk-test", retry=False)
    agent_class = ToolCallingAgent if agent_type == "tool" else CodeAgent
    agent = agent_class(tools=instrumented, model=model, max_steps=8, verbosity_level=-1)
    try:
        answer = agent.run(task)
    finally:
        close_tools(tools)
    return answer, recorder.calls, agent


def names(calls: tuple[ToolCall, ...]) -> list[str]:
    return [c.name for c in calls]


def last_request_text(srv: ScriptedModelServer) -> str:
    return str(srv.requests[-1].body["messages"])


# ------------------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("agent_type", AGENT_TYPES)
def test_file_tools_end_to_end(agent_type: str, srv: ScriptedModelServer, workspace: Path) -> None:
    add_scripts(
        srv,
        agent_type,
        "[e2e-files]",
        tool_turns=[
            {"tool_calls": [call("write_file", file_path="notes/todo.txt", content="buy milk\ncall mom\n")]},
            {
                "tool_calls": [
                    call("write_file", file_path="notes/todo.txt", content="water plants\n", mode="append"),
                    call("list_directory", directory_path="notes"),
                ]
            },
            {"tool_calls": [call("search_files", pattern="milk", search_type="content")]},
            {"tool_calls": [call("read_file", file_path="../outside.txt")]},
        ],
        recoveries=[
            (
                "is outside the working directory",
                3,
                [{"tool_calls": [call("read_file", file_path="notes/todo.txt")]}, {"final_answer": "3 things to do"}],
            )
        ],
        code_turns=[
            code(
                "write_file(file_path='notes/todo.txt', content='buy milk\\ncall mom\\n')\n"
                "write_file(file_path='notes/todo.txt', content='water plants\\n', mode='append')\n"
                "print(list_directory(directory_path='notes'))\n"
                "print(search_files(pattern='milk', search_type='content'))"
            ),
            code("print(read_file(file_path='../outside.txt'))"),
            code("text = read_file(file_path='notes/todo.txt')\nfinal_answer('3 things to do')"),
        ],
    )
    tools = get_tools(["read_file", "write_file", "list_directory", "search_files"], working_dir=workspace)
    answer, calls, _ = run_agent(agent_type, srv, tools, "Keep my to-do list. [e2e-files]")

    assert answer == "3 things to do"
    assert (workspace / "notes" / "todo.txt").read_text(encoding="utf-8") == "buy milk\ncall mom\nwater plants\n"
    assert (workspace.parent / "outside.txt").read_text(encoding="utf-8") == "not yours\n"
    assert sorted(names(calls)) == sorted(
        ["write_file", "write_file", "list_directory", "search_files", "read_file", "read_file", "final_answer"]
    )
    by_name = {c.name: c for c in calls if c.ok}
    assert "[FILE] todo.txt" in (by_name["list_directory"].result or "")
    assert "notes/todo.txt:1: buy milk" in (by_name["search_files"].result or "")
    refused = [c for c in calls if not c.ok]
    assert len(refused) == 1 and refused[0].arguments == {"file_path": "../outside.txt"}
    assert (refused[0].error or "").startswith("SandboxViolation: the file '../outside.txt' is outside")
    assert "outside the working directory" in last_request_text(srv)  # the model was told


# ------------------------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("agent_type", AGENT_TYPES)
def test_text_tools_end_to_end(agent_type: str, srv: ScriptedModelServer, workspace: Path) -> None:
    (workspace / "app.log").write_text("INFO a\nERROR disk\nINFO b\nERROR net\n", encoding="utf-8")
    (workspace / "names.txt").write_text("bob\nalice\nbob\ncarol\n", encoding="utf-8")
    add_scripts(
        srv,
        agent_type,
        "[e2e-text]",
        tool_turns=[
            {
                "tool_calls": [
                    call("grep", file_path="app.log", pattern="^ERROR", count_only=True),
                    call("sort", file_path="names.txt", unique=True, output_file="sorted.txt"),
                ]
            },
            {"tool_calls": [call("sed", file_path="app.log", command="s/ERROR/E/g", output_file="clean.log")]},
            {"tool_calls": [call("head_tail", file_path="clean.log", mode="tail", lines=1)]},
            {"tool_calls": [call("grep", file_path="app.log", pattern="(unclosed")]},
        ],
        recoveries=[("invalid regular expression", 3, [{"final_answer": "2 errors, last: E net"}])],
        code_turns=[
            code(
                "n = grep(file_path='app.log', pattern='^ERROR', count_only=True)\n"
                "sort(file_path='names.txt', unique=True, output_file='sorted.txt')\n"
                "sed(file_path='app.log', command='s/ERROR/E/g', output_file='clean.log')\n"
                "last = head_tail(file_path='clean.log', mode='tail', lines=1)\n"
                "print(n, last)"
            ),
            code("grep(file_path='app.log', pattern='(unclosed')"),
            code("final_answer('2 errors, last: E net')"),
        ],
    )
    tools = get_tools(["grep", "sed", "sort", "head_tail"], working_dir=workspace)
    answer, calls, _ = run_agent(agent_type, srv, tools, "Summarise the log. [e2e-text]")

    assert answer == "2 errors, last: E net"
    assert (workspace / "sorted.txt").read_text(encoding="utf-8") == "alice\nbob\ncarol\n"
    assert (workspace / "clean.log").read_text(encoding="utf-8") == "INFO a\nE disk\nINFO b\nE net\n"
    results = {c.name: c.result for c in calls if c.ok}
    assert results["head_tail"] == "E net"
    assert [c.result for c in calls if c.name == "grep" and c.ok] == ["2"]
    bad = [c for c in calls if not c.ok]
    assert len(bad) == 1 and (bad[0].error or "").startswith("PatternRefused: invalid regular expression")


# ---------------------------------------------------------------------------------------------- process/system


@pytest.mark.parametrize("agent_type", AGENT_TYPES)
def test_process_and_system_tools_end_to_end(
    agent_type: str, srv: ScriptedModelServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMOLTRACE_E2E_API_KEY", "sk-should-never-be-seen-1234567890")
    tools = get_tools(["ps", "kill", "env", "which", "curl", "ping"], working_dir=workspace)
    child = tools[0].context.processes.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    model_url = srv.base_url + "/models"
    add_scripts(
        srv,
        agent_type,
        "[e2e-system]",
        tool_turns=[
            {
                "tool_calls": [
                    call("ps", filter_name="python", limit=5),
                    call("env", action="set", name="GREETING", value="hello"),
                    call("which", command="python3"),
                ]
            },
            {
                "tool_calls": [
                    call("env", action="get", name="GREETING"),
                    call("env", action="get", name="SMOLTRACE_E2E_API_KEY"),
                ]
            },
            {"tool_calls": [call("kill", pid=child.pid)]},
            {"tool_calls": [call("kill", pid=os.getpid(), force=True)]},
        ],
        recoveries=[
            ("refusing to signal", 3, [{"tool_calls": [call("curl", url=model_url)]}]),
            ("is a loopback address", 3, [{"tool_calls": [call("ping", host="localhost", count=1)]}]),
            ("is the local machine", 3, [{"final_answer": "done"}]),
        ],
        code_turns=[
            code(
                "print(ps(filter_name='python', limit=5))\n"
                "env(action='set', name='GREETING', value='hello')\n"
                "print(which(command='python3'))\n"
                "print(env(action='get', name='GREETING'), env(action='get', name='SMOLTRACE_E2E_API_KEY'))\n"
                f"print(kill(pid={child.pid}))"
            ),
            code(f"kill(pid={os.getpid()}, force=True)"),
            code(f"curl(url='{model_url}')"),
            code("ping(host='localhost', count=1)"),
            code("final_answer('done')"),
        ],
    )
    requests_before = len(srv.requests)
    answer, calls, _ = run_agent(agent_type, srv, tools, "Inspect the machine. [e2e-system]")

    assert answer == "done"
    assert child.poll() == -15  # the run's own child was stopped; the evaluator obviously still runs
    ok = {c.name: c for c in calls if c.ok and c.name != "env"}
    env_results = [c.result for c in calls if c.name == "env" and c.ok]
    assert "PID" in (ok["ps"].result or "") and "python3" in (ok["which"].result or "")
    assert "GREETING=hello" in env_results
    assert "SMOLTRACE_E2E_API_KEY=<hidden: the name looks like a secret>" in env_results
    assert "GREETING" not in os.environ
    assert (ok["kill"].result or "").startswith(f"Sent SIGTERM to process {child.pid}")
    refused = {c.name: c.error or "" for c in calls if not c.ok}
    assert refused["kill"].startswith("ProcessPolicyViolation: refusing to signal")
    assert refused["curl"].startswith("NetworkPolicyViolation: 127.0.0.1 is a loopback address")
    assert refused["ping"].startswith("NetworkPolicyViolation: 'localhost' is the local machine")
    paths = [r.path for r in srv.requests[requests_before:]]
    assert all(p.endswith("/chat/completions") for p in paths)  # curl never reached the server
    assert "sk-should-never-be-seen" not in str([r.body for r in srv.requests])
