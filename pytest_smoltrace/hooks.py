"""Hook specifications of pytest-smoltrace; implement them in a ``conftest.py``.

Registered through ``pytest_addhooks``. Every docstring carries a paste-ready example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .records import Check, RunRecord
    from .tasks import Task

hookspec = pytest.hookspec


@hookspec
def pytest_smoltrace_tasks(config: pytest.Config) -> list[Any] | None:
    """Return extra tasks (dicts in the task schema, or :class:`~pytest_smoltrace.tasks.Task`) to benchmark.

    They are validated like any other source and collected as ``smoltrace/conftest::<agent_type>::<id>``.

    .. code-block:: python

        # conftest.py
        def pytest_smoltrace_tasks(config):
            return [
                {"id": "sum_primes", "prompt": "What is the sum of the primes below 20? Answer with the number.",
                 "agent_type": "code", "expected_answer": 77, "difficulty": "easy"},
            ]
    """


@hookspec
def pytest_smoltrace_tools(config: pytest.Config) -> list[Any] | None:
    """Return extra smolagents ``Tool`` instances to give every agent (besides the defaults and ``--smoltrace-tools``).

    Each item gets its own recorded copy, so executed calls of your tools are judged like built-in ones.

    .. code-block:: python

        # conftest.py
        from smolagents import Tool

        class StockPrice(Tool):
            name = "stock_price"
            description = "Latest closing price of a ticker symbol, in USD."
            inputs = {"ticker": {"type": "string", "description": "e.g. ACME"}}
            output_type = "number"

            def forward(self, ticker: str) -> float:
                return {"ACME": 12.5}.get(ticker.upper(), 0.0)

        def pytest_smoltrace_tools(config):
            return [StockPrice()]
    """


@hookspec
def pytest_smoltrace_judge(task: Task, record: RunRecord) -> Check | list[Check] | None:
    """Add checks to an item's verdict. Return a :class:`~pytest_smoltrace.records.Check`, a list of them, or None.

    Runs in the process that ran the item, after the built-in checks; the item passes only if every check passes.

    Called only for runs that finished: ``record.stop_reason`` is ``"final_answer"`` or ``"max_steps"``
    (``record.response`` is then the final answer, or the max-steps summary, which is no answer:
    ``record.final_answer_called`` is False). An item that errored or timed out (``"error"``/``"timeout"``; a model
    or API error, a rejected model response, the time limit) is an error outcome whatever a check would say: this
    hook is not called for it, and its verdict carries the built-in checks and ``record.error`` only
    (:func:`pytest_smoltrace.judge.user_judges_apply` says which runs are judged). ``record.action_steps`` counts
    the steps the agent took: a step whose model call failed is not one, and the max-steps summary is not one.

    .. code-block:: python

        # conftest.py
        from pytest_smoltrace.records import Check

        def pytest_smoltrace_judge(task, record):
            if task.category != "math":
                return None
            steps = record.action_steps  # the run finished here: stop_reason is final_answer or max_steps
            return Check("at_most_3_steps", steps <= 3, expected="≤ 3 steps", actual=steps)
    """
