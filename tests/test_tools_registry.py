"""get_tools / check_tools: names and argument names (SMOLTRACE's), fresh instances, one shared context per call,
web_search merging and conflicts, extras and API keys checked before anything is built, cheap package import."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from smolagents import Tool, ToolCallingAgent

from smoltrace_tools import (
    TOOL_REGISTRY,
    ToolConfigError,
    ToolConflictError,
    ToolUnavailableError,
    UnknownToolError,
    available_tools,
    check_tools,
    close_tools,
    get_tools,
)
from smoltrace_tools.context import ToolContext

#: SMOLTRACE's tools and their argument names (smoltrace.md §4.4).
SMOLTRACE_ARGUMENTS: dict[str, list[str]] = {
    "read_file": ["file_path", "encoding"],
    "write_file": ["file_path", "content", "mode"],
    "list_directory": ["directory_path", "pattern"],
    "search_files": ["directory", "pattern", "search_type", "max_results"],
    "grep": [
        "file_path",
        "pattern",
        "case_insensitive",
        "line_numbers",
        "context_before",
        "context_after",
        "invert_match",
        "count_only",
    ],
    "sed": ["file_path", "command", "global_replace", "case_insensitive", "output_file"],
    "sort": ["file_path", "numeric", "reverse", "unique", "case_insensitive", "output_file"],
    "head_tail": ["file_path", "mode", "lines"],
    "ps": ["filter_name", "sort_by", "limit", "descending"],
    "kill": ["pid", "force"],
    "env": ["action", "name", "value", "filter_pattern"],
    "which": ["command", "all_matches"],
    "curl": ["url", "method", "headers", "body", "timeout", "follow_redirects"],
    "ping": ["host", "count", "timeout"],
}
LOCAL_TOOLS = list(SMOLTRACE_ARGUMENTS)
WEB_MODULES = ("ddgs", "markdownify", "wikipediaapi")
HAS_WEB_EXTRA = all(importlib.util.find_spec(m) is not None for m in WEB_MODULES)


@pytest.mark.parametrize("name", LOCAL_TOOLS)
def test_smoltrace_names_and_argument_names(name: str, tmp_path: Path) -> None:
    (tool,) = get_tools([name], working_dir=tmp_path)
    assert tool.name == name
    assert list(tool.inputs) == SMOLTRACE_ARGUMENTS[name]
    assert isinstance(tool, Tool) and tool.description


def test_every_registered_tool_is_listed() -> None:
    expected = {"get_weather", "calculator", "get_current_time", "google_search", "duckduckgo_search", "web_search"}
    expected |= {"visit_webpage", "python_interpreter", "wikipedia_search", "user_input", *LOCAL_TOOLS}
    assert set(available_tools()) == expected
    assert all(spec.summary for spec in TOOL_REGISTRY.values())


def test_fresh_instances_sharing_one_context_per_call(tmp_path: Path) -> None:
    first = get_tools(LOCAL_TOOLS, working_dir=tmp_path)
    second = get_tools(LOCAL_TOOLS, working_dir=tmp_path)
    assert all(a is not b for a, b in zip(first, second, strict=True))
    contexts_first = {id(t.context) for t in first}
    contexts_second = {id(t.context) for t in second}
    assert len(contexts_first) == 1 and len(contexts_second) == 1 and contexts_first != contexts_second
    context = first[0].context
    assert isinstance(context, ToolContext) and context.sandbox.root == tmp_path.resolve()


def test_settings_reach_the_context(tmp_path: Path) -> None:
    (tool,) = get_tools(["curl"], working_dir=tmp_path, timeout_s=7, allow_private_network=True)
    assert tool.context.timeout_s == 7 and tool.context.network.allow_private_network


def test_all_tools_fit_in_one_agent(tmp_path: Path) -> None:
    tools = get_tools([*LOCAL_TOOLS, "user_input", "python_interpreter"], working_dir=tmp_path)
    agent = ToolCallingAgent(tools=tools, model=None, verbosity_level=-1)  # type: ignore[arg-type]
    assert set(LOCAL_TOOLS) <= set(agent.tools)


def test_unknown_and_repeated_names() -> None:
    with pytest.raises(UnknownToolError, match=r"'nope'.*Available tools: .*read_file"):
        get_tools(["read_file", "nope"])
    with pytest.raises(UnknownToolError, match="more than once"):
        check_tools(["grep", "grep"])
    assert issubclass(UnknownToolError, ValueError) and issubclass(ToolConflictError, ToolConfigError)


def test_missing_working_dir_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ToolConfigError, match="does not exist"):
        get_tools(["read_file"], working_dir=missing)
    with pytest.raises(ToolConfigError, match="does not exist"):
        check_tools(["grep"], working_dir=missing)
    assert get_tools(["ps"], working_dir=missing)[0].name == "ps"  # no file tool, no check


def test_working_dir_defaults_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tool,) = get_tools(["read_file"])
    assert tool.context.sandbox.root == tmp_path.resolve()


# --------------------------------------------------------------------------------------------- web_search names


def _pretend_installed(monkeypatch: pytest.MonkeyPatch, *, missing: tuple[str, ...] = ()) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        if name in missing:
            return None
        if name in WEB_MODULES:
            return real("json")  # any spec: "installed"
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_google_and_duckduckgo_merge_into_one_web_search(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch)
    names = check_tools(["google_search", "duckduckgo_search", "web_search"], search_provider="duckduckgo")
    assert names == ["web_search"]


def test_two_different_web_searches_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch)
    monkeypatch.setenv("SERPER_API_KEY", "x")
    with pytest.raises(ToolConflictError, match=r"google_search \(search provider 'serper'\).*duckduckgo_search"):
        check_tools(["google_search", "duckduckgo_search"], search_provider="serper")


@pytest.mark.parametrize(
    ("provider", "variable"), [("serper", "SERPER_API_KEY"), ("serpapi", "SERPAPI_API_KEY"), ("brave", "BRAVE_API_KEY")]
)
def test_missing_search_api_key_names_the_variable(
    provider: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ToolUnavailableError, match=rf"set the environment variable {variable}"):
        check_tools(["google_search"], search_provider=provider)
    with pytest.raises(ToolUnavailableError, match=variable):
        get_tools(["web_search"], search_provider=provider)


def test_unknown_search_provider_lists_the_choices() -> None:
    with pytest.raises(ToolUnavailableError, match="brave, duckduckgo, serpapi, serper"):
        check_tools(["google_search"], search_provider="tavily")


@pytest.mark.parametrize(
    ("name", "module"),
    [("duckduckgo_search", "ddgs"), ("visit_webpage", "markdownify"), ("wikipedia_search", "wikipediaapi")],
)
def test_missing_extra_names_the_extra(name: str, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, missing=(module,))
    with pytest.raises(ToolUnavailableError, match=rf"'{module}': pip install 'pytest-smoltrace\[web\]'"):
        check_tools([name])


@pytest.mark.skipif(not HAS_WEB_EXTRA, reason="the web extra is not installed")
def test_web_tools_are_built_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "x")
    monkeypatch.setenv("BRAVE_API_KEY", "y")
    tools = get_tools(["duckduckgo_search", "visit_webpage", "wikipedia_search"])
    assert [t.name for t in tools] == ["web_search", "visit_webpage", "wikipedia_search"]
    (serper,) = get_tools(["google_search"], search_provider="serper")
    assert type(serper).__name__ == "ShieldedGoogleSearchTool" and serper.name == "web_search"
    assert not hasattr(serper, "api_key") and "filter_year" in serper.inputs  # the key stays behind the facade
    assert type(get_tools(["google_search"], search_provider="brave")[0]).__name__ == "ShieldedApiWebSearchTool"


# ------------------------------------------------------------------------------------------- user_input, python


def test_user_input_never_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_input(*args: object) -> str:
        raise AssertionError("input() must not be called")

    monkeypatch.setattr("builtins.input", no_input)
    (tool,) = get_tools(["user_input"])
    with pytest.raises(RuntimeError, match="no user is available"):
        tool(question="Which city?")
    (answering,) = get_tools(["user_input"], user_input_answer="Paris")
    assert answering(question="Which city?") == "Paris"


def test_python_interpreter_runs_code_with_additional_imports() -> None:
    (tool,) = get_tools(["python_interpreter"], additional_imports=["json"], timeout_s=5)
    out = tool(code="import json\nprint(json.dumps({'a': 1}))\n6 * 7")
    assert 'Stdout:\n{"a": 1}' in out and "Output: 42" in out
    assert "'json'" in tool.inputs["code"]["description"] and "'statistics'" in tool.inputs["code"]["description"]
    assert not hasattr(tool, "authorized_imports")  # smolagents' internals stay behind the facade


def test_close_tools_kills_processes_the_tools_started(tmp_path: Path) -> None:
    tools = get_tools(["kill", "ps"], working_dir=tmp_path)
    child = tools[0].context.processes.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    close_tools(tools)
    assert child.wait(timeout=5) is not None
    close_tools(tools)  # idempotent


def test_importing_the_package_is_cheap() -> None:
    code = (
        "import sys, smoltrace_tools, smoltrace_tools.mcp, smoltrace_tools.sandbox, smoltrace_tools.addresses\n"
        "smoltrace_tools.check_tools(['read_file', 'curl'])\n"
        "heavy = [m for m in ('smolagents', 'litellm', 'mcp', 'mcpadapt', 'ddgs', 'regex') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
