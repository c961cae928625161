"""ToolRecorder(timeout_s=…): a stuck tool call becomes a recorded, reported tool error and the run goes on."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest
from agent_helpers import ScriptedModel
from smolagents import CodeAgent, Tool, ToolCallingAgent

from smoltrace_tools import get_tools
from smoltrace_tools.errors import ToolTimeout
from smoltrace_tools.recording import ToolRecorder, call_with_timeout

RELEASE = threading.Event()


class StuckTool(Tool):
    name = "stuck"
    description = "Hangs until the test releases it."
    inputs = {"seconds": {"type": "number", "description": "How long to hang at most."}}  # noqa: RUF012
    output_type = "string"

    def forward(self, seconds: float) -> str:
        RELEASE.wait(seconds)
        return "finally done"


def test_a_stuck_call_times_out_and_is_recorded() -> None:
    recorder = ToolRecorder(timeout_s=0.2)
    stuck = recorder.instrument(StuckTool())
    started = time.perf_counter()
    with pytest.raises(ToolTimeout, match=r"'stuck' did not finish within 0.2 s"):
        stuck(seconds=30)
    assert time.perf_counter() - started < 2
    (call,) = recorder.calls
    assert call.error is not None and call.error.startswith("ToolTimeout: the tool 'stuck' did not finish")
    assert call.result is None and call.duration_ms >= 200
    assert issubclass(ToolTimeout, TimeoutError)


def test_fast_calls_errors_and_results_pass_through() -> None:
    recorder = ToolRecorder(timeout_s=5)
    weather, calculator = recorder.instrument_all(get_tools(["get_weather", "calculator"]))
    assert weather("Paris") == "Weather in Paris, France: 20°C, Partly Cloudy"
    with pytest.raises(ValueError, match="No weather data"):
        weather("Atlantis")
    assert calculator(expression="6*7") == "Result: 42"
    assert [c.ok for c in recorder.calls] == [True, False, True]


def test_no_timeout_runs_inline() -> None:
    recorder = ToolRecorder()
    seen: list[str] = []

    class ThreadName(Tool):
        name = "thread_name"
        description = "Returns the thread it runs on."
        inputs = {}  # noqa: RUF012
        output_type = "string"

        def forward(self) -> str:
            seen.append(threading.current_thread().name)
            return "ok"

    recorder.instrument(ThreadName())()
    ToolRecorder(timeout_s=1).instrument(ThreadName())()
    assert seen[0] == threading.current_thread().name and seen[1].startswith("smoltrace-tool:thread_name")


def test_context_variables_reach_the_worker_thread() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("span", default="none")
    var.set("parent-span")
    assert call_with_timeout("probe", var.get, (), {}, 1.0) == "parent-span"


def test_invalid_timeout() -> None:
    with pytest.raises(ValueError):
        ToolRecorder(timeout_s=0)


@pytest.mark.parametrize("agent_type", ["tool", "code"])
def test_agent_sees_the_timeout_and_continues(agent_type: str) -> None:
    recorder = ToolRecorder(timeout_s=0.2)
    tools: list[Any] = [recorder.instrument(StuckTool()), recorder.final_answer_tool()]
    if agent_type == "tool":
        model = ScriptedModel([[("stuck", {"seconds": 30})], [("final_answer", {"answer": "gave up waiting"})]])
        agent: Any = ToolCallingAgent(tools, model, verbosity_level=-1, max_steps=3)
    else:
        code = "Thought: try.\n<code>\nstuck(seconds=30)\n</code>"
        model = ScriptedModel([code, "Thought: done.\n<code>\nfinal_answer('gave up waiting')\n</code>"])
        agent = CodeAgent(tools, model, verbosity_level=-1, max_steps=3)
    assert agent.run("use the stuck tool") == "gave up waiting"
    assert [c.name for c in recorder.calls] == ["stuck", "final_answer"]
    assert (recorder.calls[0].error or "").startswith("ToolTimeout:")
    errors = [str(getattr(s, "error", "")) for s in agent.memory.steps]
    assert any("did not finish within 0.2 s" in e for e in errors)
