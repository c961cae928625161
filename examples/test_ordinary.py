"""Ordinary tests next to the benchmark: plain unit tests, and agent tests written as test functions.

- ``test_convert_units_tool`` is a plain unit test of the custom tool (no model needed; it always runs).
- The ``smoltrace_run`` tests run a real agent on one prompt and judge it like a task; without ``--smoltrace-model``
  they are skipped with the reason.
"""

from __future__ import annotations

import pytest

from pytest_smoltrace.fixtures import SmoltraceRunner


def test_convert_units_tool(pytestconfig: pytest.Config) -> None:
    """Unit-test your tools without any model: take them from the same hook the benchmark uses."""
    tools = {tool.name: tool for returned in pytestconfig.hook.pytest_smoltrace_tools(config=pytestconfig)
             for tool in returned or ()}  # fmt: skip
    convert = tools["convert_units"]
    assert convert(value=1, from_unit="mi", to_unit="m") == pytest.approx(1609.344)
    with pytest.raises(ValueError, match="unknown unit"):
        convert(value=1, from_unit="furlong", to_unit="m")


@pytest.mark.parametrize("agent_type", ["tool", "code"])
def test_weather_in_paris(smoltrace_run: SmoltraceRunner, agent_type: str) -> None:
    run = smoltrace_run(
        "What is the weather in Paris? Use the get_weather tool.",
        agent_type=agent_type,
        expected_tool="get_weather",
        expected_keywords=["20"],
    )
    assert run.passed, run.explain()


@pytest.mark.strong_model
def test_conversion_with_the_strong_model(smoltrace_run: SmoltraceRunner) -> None:
    run = smoltrace_run(
        "Convert 10 km to miles with the convert_units tool; answer with the number, two decimals.",
        expected_tool="convert_units",
        expected_answer=6.21,
        max_steps=4,
    )
    assert run.passed, run.explain()
