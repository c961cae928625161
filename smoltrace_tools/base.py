"""What every context-bound tool shares: the :class:`ContextTool` base and argument/output helpers.

Tools get arguments from a model: nullable arguments may arrive as None (meaning "the default"), integers may
arrive as floats or numeric strings from a CodeAgent. The helpers normalise them or raise ``ValueError`` with a
message the model can act on.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from smolagents import Tool

if TYPE_CHECKING:
    from .context import ToolContext

__all__ = ["MAX_OUTPUT_CHARS", "ContextTool", "ShieldedTool", "as_bool", "as_int", "as_str", "clip", "shield"]

#: Longest text a file/text tool returns to the model (longer outputs are cut with a note).
MAX_OUTPUT_CHARS = 100_000


_CONTEXT_KEY = "__smoltrace_context__"
_INNER_KEY = "__smoltrace_inner__"


class ContextTool(Tool):
    """A smolagents Tool bound to one run's :class:`~smoltrace_tools.context.ToolContext`.

    The context is kept under a dunder key of the instance ``__dict__`` and read through a class property:
    CodeAgent's interpreter wraps each tool with ``functools.wraps``, which copies the instance ``__dict__`` onto
    the wrapper, and it refuses dunder attribute access — so agent code cannot reach ``read_file.context`` (and
    from there the sandbox root, the process registry or the network policy).
    """

    def __init__(self, context: ToolContext) -> None:
        self.__dict__[_CONTEXT_KEY] = context
        super().__init__()

    @property
    def context(self) -> ToolContext:
        context: ToolContext = self.__dict__[_CONTEXT_KEY]
        return context

    def __call__(self, *args: Any, sanitize_inputs_outputs: bool = False, **kwargs: Any) -> Any:
        # openinference's smolagents instrumentation wraps Tool.__call__ with ``_get_input_value(method, *args,
        # **kwargs)``: a tool argument named ``method`` (curl's) collides with that parameter (TypeError). Passing
        # the arguments as one dict, which Tool.__call__ expands into keyword arguments, avoids the collision.
        if "method" in kwargs:
            packed = dict(zip(self.inputs, args, strict=False))
            packed.update(kwargs)
            return super().__call__(packed, sanitize_inputs_outputs=sanitize_inputs_outputs)
        return super().__call__(*args, sanitize_inputs_outputs=sanitize_inputs_outputs, **kwargs)


class ShieldedTool(ContextTool):
    """A third-party tool (smolagents' search, Wikipedia, interpreter) behind an attribute-free facade.

    smolagents' tools keep state in instance attributes (``GoogleSearchTool.api_key``, ``PythonInterpreterTool.
    authorized_imports``…) that CodeAgent code could read or mutate through the wrapper described above. The facade
    has only class attributes (name, description, inputs, output type) and holds the real tool under a dunder key.
    """

    skip_forward_signature_validation = True

    def __init__(self, inner: Tool, context: ToolContext) -> None:
        self.__dict__[_INNER_KEY] = inner
        super().__init__(context)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        inner: Tool = self.__dict__[_INNER_KEY]
        return inner(*args, **kwargs)


def shield(inner: Tool, context: ToolContext) -> Tool:
    """``inner`` behind a :class:`ShieldedTool` facade with the same name, description, inputs and output type."""
    attributes: dict[str, Any] = {
        "name": inner.name,
        "description": inner.description,
        "inputs": copy.deepcopy(inner.inputs),
        "output_type": inner.output_type,
        "__module__": __name__,
    }
    if getattr(inner, "output_schema", None) is not None:
        attributes["output_schema"] = copy.deepcopy(inner.output_schema)
    facade_class = type(f"Shielded{type(inner).__name__}", (ShieldedTool,), attributes)
    facade: Tool = facade_class(inner, context)
    return facade


def as_bool(value: object, default: bool, name: str) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValueError(f"{name} must be true or false, got {value!r}")


def as_int(value: object, default: int, name: str, *, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {number}")
    return number


def as_str(value: object, default: str, name: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    return value


def clip(text: str, limit: int = MAX_OUTPUT_CHARS, hint: str = "") -> str:
    """``text`` cut to ``limit`` characters with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n… [output cut: {len(text) - limit} more characters{'; ' + hint if hint else ''}]"
    return text[:limit] + note
