"""The session's agent setup, checked before any task runs: tools, MCP servers, prompt file, extra imports.

Every problem here is a usage error naming the option, raised at configure time — never a failure inside an item.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .records import AGENT_TYPES
from .settings import Settings

if TYPE_CHECKING:
    from smoltrace_tools.mcp import McpConnection

log = logging.getLogger(__name__)


@dataclass
class Toolbox:
    """What every agent of the session gets besides its task's own tools; ``close()`` at the end of the process."""

    extra_tools: tuple[Any, ...] = ()
    tool_options: dict[str, Any] = field(default_factory=dict)
    prompt_templates: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    planning_interval: int | None = None
    additional_imports: tuple[str, ...] = ()
    mcp: McpConnection | None = None

    def close(self) -> None:
        if self.mcp is not None:
            self.mcp.close()
            self.mcp = None


def prepare(config: pytest.Config, settings: Settings) -> Toolbox:
    """Validate the tool/prompt options and open MCP connections; :class:`pytest.UsageError` on any problem."""
    from smoltrace_tools import DEFAULT_TOOL_NAMES, ToolConfigError, check_tools

    from .prompts import AdditionalImportsError, PromptConfigError, check_additional_imports, load_prompt_config

    box = Toolbox(
        tool_options={
            "working_dir": settings.working_dir,
            "search_provider": settings.search_provider,
            "allow_private_network": settings.allow_private_network,
        }
    )
    try:
        names = check_tools(
            (*DEFAULT_TOOL_NAMES, *settings.tools),
            search_provider=settings.search_provider,
            working_dir=settings.working_dir,
        )
    except ToolConfigError as exc:
        raise pytest.UsageError(f"--smoltrace-tools: {exc}") from None
    imports = list(settings.additional_imports)
    if settings.prompt_yml is not None:
        try:
            prompt = load_prompt_config(settings.prompt_yml)
        except PromptConfigError as exc:
            raise pytest.UsageError(f"--smoltrace-prompt-yml: {exc}") from None
        box.prompt_templates = {agent: prompt.templates_for(agent) for agent in AGENT_TYPES}
        box.max_steps, box.planning_interval = prompt.max_steps, prompt.planning_interval
        imports += [m for m in prompt.additional_authorized_imports if m not in imports]
    try:
        box.additional_imports = tuple(check_additional_imports(imports))
    except AdditionalImportsError as exc:
        raise pytest.UsageError(f"--smoltrace-additional-imports: {exc}") from None
    user_tools = [tool for returned in config.hook.pytest_smoltrace_tools(config=config) for tool in returned or ()]
    reserved = {*names, *(getattr(t, "name", "") for t in user_tools), "final_answer"}
    if settings.mcp_server_url:
        from smoltrace_tools.mcp import McpUnavailableError, open_mcp_tools

        try:
            box.mcp = open_mcp_tools(settings.mcp_server_url, timeout_s=settings.tool_timeout, reserved_names=reserved)
        except McpUnavailableError as exc:
            raise pytest.UsageError(f"--smoltrace-mcp-server-url: {exc}") from None
    box.extra_tools = (*user_tools, *(box.mcp.tools if box.mcp else ()))
    return box
