"""A conftest.py to copy into your project: pytest-smoltrace's extension points in one place.

- ``pytest_smoltrace_tasks``: tasks written in Python (collected as ``smoltrace/conftest::<agent>::<id>``).
- ``pytest_smoltrace_tools``: a custom smolagents tool every agent gets (its executed calls are judged like any tool's).
- ``pytest_smoltrace_judge``: an extra check (here: the tool was called with the right arguments).
- ``smoltrace_run_config``: a fixture override that picks a stronger model for tests marked ``strong_model``.

Nothing heavy is imported at module level, so ``pytest`` runs without ``--smoltrace-model`` stay as fast as before.
Run: ``pytest --smoltrace-model openai/gpt-4.1-nano --smoltrace-dataset none`` (``none``: only the tasks of this
project — this hook, ``smoltrace_*.jsonl`` files and ``smoltrace_run`` tests — not the bundled default set).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from pytest_smoltrace.records import Check

#: The model that tests marked ``@pytest.mark.strong_model`` use instead of the session's ``--smoltrace-model``.
STRONG_MODEL = os.environ.get("STRONG_MODEL", "openai/gpt-4.1")

#: Kilometres per unit; the custom tool below converts between these.
KM_PER_UNIT = {"km": 1.0, "m": 0.001, "mi": 1.609344}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "strong_model: run this test's agent with STRONG_MODEL")


def pytest_smoltrace_tasks(config: pytest.Config) -> list[dict[str, Any]]:
    """Tasks defined in Python: the same schema as a row of a task file."""
    return [
        {
            "id": "marathon_km",
            "prompt": "How many kilometres is a marathon of 26.2 miles? Use the convert_units tool and answer "
            "with the number only, rounded to one decimal.",
            "agent_type": "both",
            "category": "conversion",
            "difficulty": "easy",
            "expected_tool": "convert_units",
            "expected_answer": 42.2,
        },
        {
            "id": "mile_in_metres",
            "prompt": "How many metres are in one mile? Use the convert_units tool; answer with the number only.",
            "agent_type": "tool",
            "category": "conversion",
            "expected_tool": "convert_units",
            "expected_answer": 1609.344,
        },
    ]


def pytest_smoltrace_tools(config: pytest.Config) -> list[Any]:
    """A custom tool. The class is defined here so that smolagents is imported only when a benchmark runs."""
    from smolagents import Tool

    class ConvertUnits(Tool):
        name = "convert_units"
        description = "Convert a distance between units. Known units: km, m, mi."
        inputs = {  # noqa: RUF012 - smolagents reads these class attributes
            "value": {"type": "number", "description": "the distance to convert"},
            "from_unit": {"type": "string", "description": "unit of value: km, m or mi"},
            "to_unit": {"type": "string", "description": "unit of the result: km, m or mi"},
        }
        output_type = "number"

        def forward(self, value: float, from_unit: str, to_unit: str) -> float:
            try:
                return float(value) * KM_PER_UNIT[from_unit] / KM_PER_UNIT[to_unit]
            except KeyError as exc:  # an error tells the model what went wrong; the call is recorded as failed
                raise ValueError(f"unknown unit {exc}; use one of {', '.join(KM_PER_UNIT)}") from None

    return [ConvertUnits()]


def pytest_smoltrace_judge(task: Any, record: Any) -> Check | None:
    """An argument check the built-in verdict does not have: conversions must go through the tool *from miles*."""
    if task.category != "conversion":
        return None
    calls = [c.arguments for c in record.tool_calls if c.name == "convert_units" and c.ok]
    return Check(
        "converted_from_miles",
        any(args.get("from_unit") == "mi" for args in calls),
        expected="convert_units(from_unit='mi', …)",
        actual=calls,
    )


@pytest.fixture
def smoltrace_run_config(request: pytest.FixtureRequest, smoltrace_run_config: Any) -> Any:
    """Overrides the plugin's fixture of the same name: ``strong_model`` tests get STRONG_MODEL.

    This applies to ``smoltrace_run`` tests. Collected task items (task files, the dataset, the tasks hook) all use
    the session's model: there is no per-item model seam for them yet (run a second session with another
    ``--smoltrace-model`` and ``-m`` to benchmark a subset with another model).
    """
    if request.node.get_closest_marker("strong_model") is None:
        return smoltrace_run_config
    spec = dataclasses.replace(smoltrace_run_config.spec, model_id=STRONG_MODEL)
    return dataclasses.replace(smoltrace_run_config, spec=spec)
