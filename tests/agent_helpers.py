"""Helpers that need smolagents, shared by the test files and the benchmark scripts (imported as ``agent_helpers``;
see ``helpers.py`` for how ``tests/`` gets on ``sys.path``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smolagents import ChatMessage, ChatMessageToolCall, Model, TokenUsage, Tool
from smolagents.models import ChatMessageToolCallFunction


class ScriptedModel(Model):
    """Replies from a list: a string is text (CodeAgent), a list of (tool, arguments) is tool calls."""

    def __init__(self, replies: Sequence[str | list[tuple[str, Any]]]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        reply = self.replies.pop(0) if self.replies else "no more replies"
        if isinstance(reply, str):
            return ChatMessage(role="assistant", content=reply, token_usage=TokenUsage(1, 1))
        calls = [
            ChatMessageToolCall(id=f"c{i}", type="function", function=ChatMessageToolCallFunction(name=n, arguments=a))
            for i, (n, a) in enumerate(reply)
        ]
        return ChatMessage(role="assistant", content="", tool_calls=calls, token_usage=TokenUsage(1, 1))


class AddTool(Tool):
    name = "add"
    description = "Adds two integers."
    inputs = {  # noqa: RUF012
        "a": {"type": "integer", "description": "first"},
        "b": {"type": "integer", "description": "second"},
    }
    output_type = "integer"

    def forward(self, a: int, b: int) -> int:
        return a + b
