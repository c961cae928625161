"""The recording proxy under real smolagents agents (a scripted in-test model stands in for the LLM)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from smolagents import (
    ChatMessage,
    ChatMessageToolCall,
    CodeAgent,
    FinalAnswerTool,
    Model,
    TokenUsage,
    Tool,
    ToolCallingAgent,
    tool,
)
from smolagents.models import ChatMessageToolCallFunction

from pytest_smoltrace.records import ToolCall
from smoltrace_tools import get_tools
from smoltrace_tools.default import WeatherTool
from smoltrace_tools.recording import ToolRecorder, bind_arguments

Reply = str | list[tuple[str, Any]]


class ScriptedModel(Model):
    """Replies from a script: a string is a text reply (CodeAgent), a list of (tool, arguments) is tool calls."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(
        self,
        messages: list[Any],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Tool] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        reply = self.replies.pop(0) if self.replies else "no more replies"
        if isinstance(reply, str):
            return ChatMessage(role="assistant", content=reply, token_usage=TokenUsage(1, 1))
        calls = [
            ChatMessageToolCall(
                id=f"call_{index}", type="function", function=ChatMessageToolCallFunction(name=name, arguments=args)
            )
            for index, (name, args) in enumerate(reply)
        ]
        return ChatMessage(role="assistant", content="", tool_calls=calls, token_usage=TokenUsage(1, 1))


def _code(body: str) -> str:
    return f"Thought: let me compute.\n<code>\n{body}\n</code>"


def _tools(recorder: ToolRecorder) -> list[Tool]:
    return [*recorder.instrument_all(get_tools()), recorder.final_answer_tool()]


def _names(calls: tuple[ToolCall, ...]) -> list[str]:
    return [c.name for c in calls]


# ------------------------------------------------------------------------------------------- ToolCallingAgent


def test_tool_calling_agent_records_executed_calls_with_arguments() -> None:
    recorder = ToolRecorder()
    model = ScriptedModel(
        [
            [("get_weather", {"location": "Paris"})],
            [("calculator", {"expression": "234*67"})],
            [("final_answer", {"answer": "20°C and 15678"})],
        ]
    )
    agent = ToolCallingAgent(_tools(recorder), model, verbosity_level=-1, max_steps=5)
    assert agent.run("weather and maths") == "20°C and 15678"

    calls = recorder.calls
    assert _names(calls) == ["get_weather", "calculator", "final_answer"]
    assert calls[0].arguments == {"location": "Paris"}
    assert calls[0].result == "Weather in Paris, France: 20°C, Partly Cloudy"
    assert calls[1].arguments == {"expression": "234*67"} and calls[1].result == "Result: 15678"
    # ToolCallingAgent calls final_answer like any tool: tool(answer=..., sanitize_inputs_outputs=True).
    assert calls[2].arguments == {"answer": "20°C and 15678"} and calls[2].ok
    assert all(c.ok and c.duration_ms >= 0 and c.started_at > 0 for c in calls)
    assert [c.started_at for c in calls] == sorted(c.started_at for c in calls)


def test_tool_calling_agent_final_answer_with_bare_argument() -> None:
    recorder = ToolRecorder()
    model = ScriptedModel([[("final_answer", "forty-two")]])
    agent = ToolCallingAgent(_tools(recorder), model, verbosity_level=-1, max_steps=2)
    assert agent.run("answer") == "forty-two"
    # A non-dict argument is passed positionally: tool("forty-two", sanitize_inputs_outputs=True).
    assert recorder.calls[0].name == "final_answer"
    assert recorder.calls[0].arguments == {"answer": "forty-two"}


def test_tool_calling_agent_parallel_calls_are_all_recorded() -> None:
    recorder = ToolRecorder()
    model = ScriptedModel(
        [
            [("get_weather", {"location": "Tokyo"}), ("get_weather", {"location": "Rome"})],
            [("final_answer", {"answer": "done"})],
        ]
    )
    agent = ToolCallingAgent(_tools(recorder), model, verbosity_level=-1, max_steps=3)
    agent.run("two cities")
    weather = [c for c in recorder.calls if c.name == "get_weather"]
    assert sorted(c.arguments["location"] for c in weather) == ["Rome", "Tokyo"]
    assert recorder.calls[-1].name == "final_answer"


def test_raising_tool_call_is_recorded_with_error_and_reraised() -> None:
    recorder = ToolRecorder()
    model = ScriptedModel(
        [
            [("get_weather", {"location": "Atlantis"})],
            [("final_answer", {"answer": "unknown"})],
        ]
    )
    agent = ToolCallingAgent(_tools(recorder), model, verbosity_level=-1, max_steps=3)
    agent.run("weather in Atlantis")

    failed = recorder.calls[0]
    assert failed.name == "get_weather" and not failed.ok
    assert failed.error is not None and failed.error.startswith("ValueError: No weather data for 'Atlantis'")
    assert failed.result is None
    # The agent saw the error (it was re-raised into smolagents, which stores it on the step).
    step_errors = [getattr(s, "error", None) for s in agent.memory.steps]
    assert any(e is not None and "No weather data" in str(e) for e in step_errors)


def test_direct_call_reraises() -> None:
    recorder = ToolRecorder()
    weather = recorder.instrument(WeatherTool())
    with pytest.raises(ValueError, match="No weather data"):
        weather("Atlantis")
    assert recorder.calls[0].error is not None


# -------------------------------------------------------------------------------------------------- CodeAgent


def test_code_agent_records_calls_that_run_not_calls_that_are_written() -> None:
    recorder = ToolRecorder()
    code = _code(
        "# calculator('3*3') is only mentioned in a comment\n"
        "if False:\n"
        "    get_weather('Tokyo')\n"
        "x = calculator('2+3')\n"
        "y = calculator(expression='10/4')\n"
        "print(x, y)\n"
        "final_answer(x + ' and ' + y)"
    )
    agent = CodeAgent(_tools(recorder), ScriptedModel([code]), verbosity_level=-1, max_steps=2)
    assert agent.run("compute") == "Result: 5 and Result: 2.5"

    calls = recorder.calls
    assert _names(calls) == ["calculator", "calculator", "final_answer"]
    assert calls[0].arguments == {"expression": "2+3"}
    assert calls[1].arguments == {"expression": "10/4"}
    # final_answer(x) inside code goes through smolagents' wrapper (raises FinalAnswerException after calling
    # the tool instance we passed), so it is recorded too.
    assert calls[2].arguments == {"answer": "Result: 5 and Result: 2.5"} and calls[2].ok


def test_code_agent_loop_and_error_in_code() -> None:
    recorder = ToolRecorder()
    first = _code("for city in ['Paris', 'London']:\n    print(get_weather(city))\nget_weather('Atlantis')")
    second = _code("final_answer('partly done')")
    agent = CodeAgent(_tools(recorder), ScriptedModel([first, second]), verbosity_level=-1, max_steps=3)
    assert agent.run("cities") == "partly done"

    calls = recorder.calls
    assert _names(calls) == ["get_weather", "get_weather", "get_weather", "final_answer"]
    assert [c.ok for c in calls] == [True, True, False, True]
    assert calls[2].error is not None and calls[2].error.startswith("ValueError: No weather data")


def test_code_agent_single_dict_argument_is_bound() -> None:
    recorder = ToolRecorder()
    code = _code("r = calculator({'expression': '6*7'})\nfinal_answer(r)")
    agent = CodeAgent(_tools(recorder), ScriptedModel([code]), verbosity_level=-1, max_steps=2)
    assert agent.run("compute") == "Result: 42"
    assert recorder.calls[0].arguments == {"expression": "6*7"}


def test_our_final_answer_tool_wins_over_smolagents_default() -> None:
    recorder = ToolRecorder()
    tools = _tools(recorder)
    agent = ToolCallingAgent(tools, ScriptedModel([]), verbosity_level=-1)
    assert agent.tools["final_answer"] is tools[-1]
    assert isinstance(agent.tools["final_answer"], FinalAnswerTool)


def test_max_steps_summary_is_not_a_recorded_final_answer() -> None:
    recorder = ToolRecorder()
    model = ScriptedModel([[("get_weather", {"location": "Paris"})], "Summary: it is 20°C in Paris."])
    agent = ToolCallingAgent(_tools(recorder), model, verbosity_level=-1, max_steps=1)
    assert agent.run("weather") == "Summary: it is 20°C in Paris."
    assert _names(recorder.calls) == ["get_weather"]


# --------------------------------------------------------------------------------------------------- isolation


def test_original_tool_instance_is_untouched_and_reusable() -> None:
    original = WeatherTool()
    before = dict(original.__dict__)
    recorder = ToolRecorder()
    copy_ = recorder.instrument(original)

    assert copy_ is not original and type(copy_) is WeatherTool
    assert original.__dict__ == before
    assert "forward" not in original.__dict__

    original("Paris")  # a call on the original is not recorded
    assert recorder.calls == ()
    copy_("Paris")
    assert len(recorder.calls) == 1

    agent = ToolCallingAgent(
        [original], ScriptedModel([[("get_weather", {"location": "Rome"})], [("final_answer", {"answer": "x"})]])
    )
    agent.verbosity_level = -1
    agent.run("reuse the original")
    assert len(recorder.calls) == 1


def test_reinstrumenting_a_copy_records_only_in_the_new_recorder() -> None:
    first, second = ToolRecorder(), ToolRecorder()
    copy_one = first.instrument(WeatherTool())
    copy_two = second.instrument(copy_one)
    copy_two("Paris")
    assert first.calls == ()
    assert _names(second.calls) == ["get_weather"]
    copy_one("Rome")
    assert len(first.calls) == 1 and len(second.calls) == 1


@tool
def shout(text: str) -> str:
    """Upper-cases a text.

    Args:
        text: The text to shout.
    """
    return text.upper()


def test_decorated_tool_is_recorded() -> None:
    recorder = ToolRecorder()
    copy_ = recorder.instrument(shout)
    assert copy_("hi") == "HI"
    assert shout("ho") == "HO"
    assert recorder.calls[0].arguments == {"text": "hi"} and recorder.calls[0].result == "HI"
    assert len(recorder.calls) == 1


def test_two_recorders_on_one_source_tool_do_not_mix_calls() -> None:
    source = WeatherTool()
    cities = {"a": ["Paris", "Rome", "Cairo"] * 20, "b": ["Tokyo", "Berlin"] * 30}
    recorders = {key: ToolRecorder() for key in cities}
    copies = {key: recorders[key].instrument(source) for key in cities}
    barrier = threading.Barrier(len(cities))
    errors: list[BaseException] = []

    def work(key: str) -> None:
        try:
            barrier.wait()
            for city in cities[key]:
                copies[key](city)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(key,)) for key in cities]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for key, expected in cities.items():
        assert [c.arguments["location"] for c in recorders[key].calls] == expected


def test_two_agents_in_threads_share_a_source_tool() -> None:
    source = WeatherTool()
    results: dict[str, tuple[ToolCall, ...]] = {}

    def run_agent(city: str) -> None:
        recorder = ToolRecorder()
        model = ScriptedModel([[("get_weather", {"location": city})]] * 3 + [[("final_answer", {"answer": city})]])
        agent = ToolCallingAgent(
            [recorder.instrument(source), recorder.final_answer_tool()], model, verbosity_level=-1, max_steps=5
        )
        agent.run(f"weather in {city}")
        results[city] = recorder.calls

    threads = [threading.Thread(target=run_agent, args=(city,)) for city in ("Paris", "Tokyo", "Cairo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for city, calls in results.items():
        assert [c.arguments.get("location", c.arguments.get("answer")) for c in calls] == [city] * 4


# ------------------------------------------------------------------------------------------------------ helpers


def test_bind_arguments() -> None:
    assert bind_arguments(["a", "b"], (1,), {"b": 2}) == {"a": 1, "b": 2}
    assert bind_arguments(["a"], (1, 2), {}) == {"a": 1, "arg1": 2}
    assert bind_arguments(["a"], (object,), {})["a"].startswith("<class")


def test_long_results_are_cut() -> None:
    recorder = ToolRecorder(result_limit=10)
    copy_ = recorder.instrument(FinalAnswerTool())
    copy_("x" * 50)
    result = recorder.calls[0].result
    assert result is not None and result.startswith("x" * 10) and "more chars" in result
