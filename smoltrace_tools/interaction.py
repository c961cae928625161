"""smolagents' interactive/code tools by SMOLTRACE's names: ``python_interpreter`` and ``user_input``.

``user_input`` never blocks a benchmark on ``input()``: it returns the configured answer
(``get_tools(..., user_input_answer=…)``) or raises a clear error telling the model that no user is there.
``python_interpreter`` is smolagents' ``PythonInterpreterTool`` (its ``LocalPythonExecutor`` restricts imports
and dunder access but is not an OS sandbox) with SMOLTRACE's authorized imports plus the run's additional ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import ContextTool

if TYPE_CHECKING:
    from smolagents import Tool

__all__ = ["INTERPRETER_IMPORTS", "NonInteractiveUserInputTool", "build_python_interpreter"]

#: SMOLTRACE's authorized imports for ``python_interpreter`` (modules that are not installed fail at import time).
INTERPRETER_IMPORTS: tuple[str, ...] = ("numpy", "sympy", "math", "statistics", "datetime")


def build_python_interpreter(additional_imports: Sequence[str], timeout_s: float) -> Tool:
    from smolagents import PythonInterpreterTool

    imports = list(dict.fromkeys([*INTERPRETER_IMPORTS, *additional_imports]))
    return PythonInterpreterTool(authorized_imports=imports, timeout_seconds=max(1, int(timeout_s)))


class NonInteractiveUserInputTool(ContextTool):
    """``user_input`` for unattended runs: a configured answer, or an error saying that nobody will answer."""

    name = "user_input"
    description = "Asks for user's input on a specific question"
    inputs = {"question": {"type": "string", "description": "The question to ask the user"}}  # noqa: RUF012
    output_type = "string"

    def forward(self, question: str) -> str:
        answer = self.context.user_input_answer
        if answer is None:
            raise RuntimeError(
                "no user is available in this non-interactive benchmark run; do not ask, decide with the "
                "information you have and continue the task"
            )
        return answer
