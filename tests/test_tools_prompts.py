"""Prompt files (pytest_smoltrace.prompts): plain text prepended, template sections merged, settings, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from smolagents import CodeAgent, ToolCallingAgent

from pytest_smoltrace.prompts import (
    AdditionalImportsError,
    PromptConfigError,
    check_additional_imports,
    load_prompt_config,
)
from smoltrace_tools import get_tools


def write(tmp_path: Path, data: Any, name: str = "prompt.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def system_prompt(agent_type: str, templates: dict[str, Any]) -> str:
    tools = get_tools(["get_weather"])
    if agent_type == "tool":
        return ToolCallingAgent(tools=tools, model=None, prompt_templates=templates).system_prompt  # type: ignore[arg-type]
    return CodeAgent(tools=tools, model=None, prompt_templates=templates).system_prompt  # type: ignore[arg-type]


@pytest.mark.parametrize("agent_type", ["tool", "code"])
def test_plain_text_file_is_prepended(tmp_path: Path, agent_type: str) -> None:
    config = load_prompt_config(write(tmp_path, "You are a careful weather assistant. Use {braces} freely {{x}}.\n"))
    prompt = system_prompt(agent_type, config.templates_for(agent_type))
    assert prompt.startswith("You are a careful weather assistant. Use {braces} freely {{x}}.\n\n")
    assert "get_weather" in prompt and "final_answer" in prompt  # smolagents' protocol and tool list are kept
    marker = "Action:" if agent_type == "tool" else "<code>"
    assert marker in prompt


def test_system_prompt_key_without_jinja_is_prepended(tmp_path: Path) -> None:
    config = load_prompt_config(write(tmp_path, {"system_prompt": "Answer in French.", "max_steps": 4}))
    assert config.system_prefix == "Answer in French." and config.system_prompt is None and config.max_steps == 4
    assert system_prompt("tool", config.templates_for("tool")).startswith("Answer in French.\n\n")


def test_template_sections_are_merged(tmp_path: Path) -> None:
    data = {
        "system_prompt": "Only tools: {%- for tool in tools.values() %} {{ tool.name }}{%- endfor %}. Be brief.",
        "planning": {"initial_plan": "Plan for {{task}} carefully."},
        "final_answer": {"post_messages": "Now answer: {{task}}"},
        "planning_interval": 2,
        "additional_authorized_imports": ["json", "collections.abc", "json"],
    }
    config = load_prompt_config(write(tmp_path, data))
    templates = config.templates_for("code")
    assert templates["planning"]["initial_plan"] == "Plan for {{task}} carefully."
    assert templates["planning"]["update_plan_pre_messages"]  # kept from smolagents' defaults
    assert templates["final_answer"] == {
        "pre_messages": templates["final_answer"]["pre_messages"],
        "post_messages": "Now answer: {{task}}",
    }
    assert templates["managed_agent"]["task"]
    assert config.planning_interval == 2 and config.additional_authorized_imports == ("json", "collections.abc")
    assert system_prompt("code", templates).startswith("Only tools: get_weather final_answer. Be brief.")


def test_nested_prompt_templates_and_prefix(tmp_path: Path) -> None:
    data = {
        "prompt_templates": {"system_prompt": "Custom {{ tools | length }} tools.", "managed_agent": {"report": "R"}}
    }
    config = load_prompt_config(write(tmp_path, data))
    templates = config.templates_for("tool")
    assert (
        templates["system_prompt"] == "Custom {{ tools | length }} tools."
        and templates["managed_agent"]["report"] == "R"
    )
    assert system_prompt("tool", templates) == "Custom 2 tools."


def test_templates_are_fresh_copies(tmp_path: Path) -> None:
    config = load_prompt_config(write(tmp_path, "Be brief."))
    first = config.templates_for("tool")
    first["planning"]["initial_plan"] = "changed"
    assert config.templates_for("tool")["planning"]["initial_plan"] != "changed"
    with pytest.raises(ValueError, match="'tool' or 'code'"):
        config.templates_for("both")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "empty"),
        ("[1, 2]", "expected a system prompt text or a mapping"),
        ({"sytem_prompt": "x"}, "unknown key.*'sytem_prompt'"),
        ({"planning": {"plan": "x"}}, "unknown key 'planning.plan'"),
        ({"planning": "x"}, "key 'planning': must be a mapping"),
        ({"final_answer": {"pre_messages": 3}}, "key 'final_answer.pre_messages': must be a string"),
        ({"system_prompt": "{{ unclosed"}, "key 'system_prompt': invalid Jinja template"),
        ({"prompt_templates": {"oops": "x"}}, "unknown key 'prompt_templates.oops'"),
        ({"prompt_templates": "x"}, "key 'prompt_templates': must be a mapping"),
        ({"max_steps": 0}, "key 'max_steps': must be an integer >= 1"),
        ({"max_steps": True}, "key 'max_steps'"),
        ({"planning_interval": "2"}, "key 'planning_interval'"),
        ({"additional_authorized_imports": "json"}, "must be a list of module names"),
        ({"additional_authorized_imports": ["no_such_module_xyz"]}, "not installed: no_such_module_xyz"),
        ("plain text with {% endraw %} inside", "may not contain"),
        ({"system_prompt": "a {% endraw %} b"}, "invalid Jinja template"),
        ("key: [unclosed", "invalid YAML"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, data: Any, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(PromptConfigError, match=message) as info:
        load_prompt_config(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PromptConfigError, match="cannot read the prompt file"):
        load_prompt_config(tmp_path / "missing.yaml")


def test_check_additional_imports() -> None:
    assert check_additional_imports(["json", "os.path", "collections.*", "*", "json"]) == [
        "json",
        "os.path",
        "collections.*",
        "*",
    ]
    with pytest.raises(AdditionalImportsError, match=r"not installed: no_such_pkg_xyz \(install them"):
        check_additional_imports(["json", "no_such_pkg_xyz.sub"])
    with pytest.raises(AdditionalImportsError, match="malformed module name"):
        check_additional_imports(["json", "bad name", ""])


def test_checked_imports_build_a_code_agent() -> None:
    imports = check_additional_imports(["json", "statistics"])
    agent = CodeAgent(tools=[], model=None, additional_authorized_imports=imports)  # type: ignore[arg-type]
    assert {"json", "statistics"} <= set(agent.authorized_imports)
