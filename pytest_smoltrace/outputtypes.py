"""smolagents' output-type lookup without a torch import.

smolagents' ``handle_agent_output_types`` (``smolagents.agent_types``) wraps an agent's final answer and a tool's
result: a string becomes ``AgentText``, a PIL image ``AgentImage``, and anything else is checked against
``torch.Tensor`` — by running ``import torch`` first. So the first agent that answers a number (or a tool that returns
one, under a ToolCallingAgent) imports torch (seconds, hundreds of MB), even with an API model, and with
``--smoltrace-concurrency`` every item of the first wave waits on that import.

:func:`install` replaces the function in the two smolagents modules that call it (``smolagents.agents``,
``smolagents.tools``) with :func:`handle_agent_output_types`, which returns the value unchanged when torch has not been
imported: no object can be a ``torch.Tensor`` while the ``torch`` module is not loaded, so the answer is exactly
smolagents' own. When torch is loaded (the ``transformers`` provider, a user's tool), smolagents' function runs as is.
Installed once per process by :func:`pytest_smoltrace.models.build_model`; tests/test_openai_provider.py checks that
torch stays unimported after both agent types answered non-string values.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["handle_agent_output_types", "install", "installed"]

#: The modules that call smolagents' function by its module-global name.
PATCHED_MODULES = ("smolagents.agents", "smolagents.tools")

_original: Callable[..., Any] | None = None
_lock = threading.Lock()


def handle_agent_output_types(output: Any, output_type: str | None = None) -> Any:
    """smolagents' ``handle_agent_output_types``, without importing torch to learn that ``output`` is no tensor."""
    original = _original
    assert original is not None, "install() first"
    if "torch" in sys.modules or isinstance(output, str):
        return original(output, output_type)
    from smolagents.agent_types import _AGENT_TYPE_MAPPING

    if output_type in _AGENT_TYPE_MAPPING:
        return original(output, output_type)
    import PIL.Image  # already imported by smolagents.agent_types

    if isinstance(output, PIL.Image.Image):
        return original(output, output_type)
    return output  # what smolagents returns for a value that is not a tensor


def installed() -> bool:
    return _original is not None


def install() -> None:
    """Replace smolagents' function in :data:`PATCHED_MODULES` (idempotent)."""
    global _original
    with _lock:
        if _original is not None:
            return
        import importlib

        from smolagents import agent_types

        _original = agent_types.handle_agent_output_types
        for name in PATCHED_MODULES:
            module = importlib.import_module(name)
            if getattr(module, "handle_agent_output_types", None) is _original:
                module.handle_agent_output_types = handle_agent_output_types  # type: ignore[attr-defined]
