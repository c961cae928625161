"""The ``smoltrace_run`` fixture: ordinary test functions run and judge agents (pytester + the scripted server)."""

from __future__ import annotations

import textwrap

import pytest
from helpers import scripted_args

from pytest_smoltrace.testing import ScriptedModelServer

WEATHER = {
    "tool": [
        {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
        {"final_answer": "It is 20°C and partly cloudy."},
    ]
}
CALC_CODE = {
    "code": [{"code": "r = calculator(expression='234*67')\nprint(r)"}, {"final_answer": 15678}],
}
NO_TOOL = {"tool": [{"final_answer": "I think it is sunny."}]}
ECHO = {"tool": [{"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]}, {"final_answer": "hi"}]}


def test_fixture_with_session_model(pytester: pytest.Pytester, server: ScriptedModelServer) -> None:
    for key, script in {"[f-weather]": WEATHER, "[f-calc]": CALC_CODE, "[f-notool]": NO_TOOL, "[f-echo]": ECHO}.items():
        server.add_script(key, script)
    pytester.makeconftest(
        """
        from pytest_smoltrace.records import Check

        def pytest_smoltrace_judge(task, record):
            if task.metadata.get("max_steps_check"):
                return Check("few_steps", record.action_steps <= 1, expected="≤ 1 step", actual=record.action_steps)
            return None
        """
    )
    pytester.makepyfile(
        test_agents=textwrap.dedent(
            """
            import pytest
            from pytest_smoltrace.tasks import TaskError

            def test_weather(smoltrace_run):
                run = smoltrace_run("Weather in Paris? [f-weather]", agent_type="tool",
                                    expected_tool="get_weather", expected_keywords=["20", "cloudy"], keyword_mode="all")
                assert run.passed, run.explain()
                assert run.tools_used == ["get_weather"] and run.answer == "It is 20°C and partly cloudy."
                assert run.record.agent_type == "tool" and run.record.stop_reason == "final_answer"
                assert run.record.model == "openai/scripted" and run.record.total_tokens > 0
                assert [c.name for c in run.verdict.checks] == [
                    "final_answer", "tool_called", "expected_tool", "expected_keywords"]
                assert run.task.id == "test_weather"

            def test_code_answer(smoltrace_run):
                run = smoltrace_run("Compute 234*67 [f-calc]", agent_type="code", expected_tool="calculator",
                                    expected_answer=15678, id="calc")
                assert run.passed, run.explain()
                assert run.task.id == "calc" and run.tools_used == ["calculator"]

            def test_expected_tool_missing(smoltrace_run):
                run = smoltrace_run("Weather? [f-notool]", expected_tool="get_weather", max_steps_check=True)
                assert not run.passed
                assert run.verdict.check("expected_tool").passed is False
                assert run.verdict.check("few_steps").passed is True  # the conftest judge hook ran
                assert "FAIL  expected_tool" in run.explain() and "FAIL" in str(run)

            def test_bad_arguments(smoltrace_run):
                with pytest.raises(ValueError, match="parametrize"):
                    smoltrace_run("x", agent_type="both")
                with pytest.raises(TaskError, match="difficulty"):
                    smoltrace_run("x", difficulty="extreme")

            def test_tool_given_per_call(smoltrace_run):
                from smolagents import Tool

                class Echo(Tool):
                    name = "echo"
                    description = "Repeat the text."
                    inputs = {"text": {"type": "string", "description": "what to repeat"}}
                    output_type = "string"

                    def forward(self, text):
                        return text

                run = smoltrace_run("Echo hi [f-echo]", tools=[Echo()], expected_tool="echo", max_steps=2, timeout=30)
                assert run.passed, run.explain()
                assert run.record.tool_calls[0].result == "hi"

            def test_failure_message(smoltrace_run):
                run = smoltrace_run("Weather? [f-notool]", expected_tool="get_weather")
                assert run.passed, run.explain()
            """
        )
    )
    result = pytester.runpytest(
        *scripted_args(server.base_url, "none"),
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=5, failed=1)
    # a failing assertion shows the table of checks and the executed calls
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: tool agent on task 'test_failure_message': FAILED",
            "*FAIL  tool_called*",
            "*FAIL  expected_tool*",
            "*executed tool calls: final_answer(*",
            "*where False = AgentRun(task='test_failure_message', agent_type='tool', outcome='failed').passed",
        ]
    )
    report = result.reprec.matchreport("test_weather")  # type: ignore[attr-defined]
    (name, data), *_ = report.user_properties
    assert name == "smoltrace_run" and data["outcome"] == "passed" and data["tools_used"] == ["get_weather"]


def test_fixture_without_session_model(pytester: pytest.Pytester, server: ScriptedModelServer) -> None:
    server.add_script("[f-weather]", WEATHER)
    pytester.makepyfile(
        test_agents=f"""
        import pytest

        def test_skipped(smoltrace_run):
            smoltrace_run("never runs")

        @pytest.mark.smoltrace_model("openai/marked-model", api_base="{server.base_url}")
        def test_marked(smoltrace_run):
            run = smoltrace_run("Weather in Paris? [f-weather]", expected_tool="get_weather")
            assert run.passed, run.explain()
            assert run.record.model == "openai/marked-model"

        @pytest.mark.smoltrace_model(model="oops")
        def test_bad_marker(smoltrace_run):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-rs")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*needs the model id*", "*SKIPPED*smoltrace_run needs a model: pass --smoltrace-model*"]
    )
    assert server.usage_for("[f-weather]")["requests"] == 2
