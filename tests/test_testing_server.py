"""ScriptedModelServer driven by real smolagents agents over real HTTP (litellm's openai/ and ollama_chat/ routes)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from smolagents import CodeAgent, LiteLLMModel, Tool, ToolCallingAgent
from smolagents.memory import ActionStep, PlanningStep
from smolagents.utils import AgentGenerationError

from pytest_smoltrace.testing import (
    DEFAULT_SUMMARY,
    ScriptedModelServer,
)
from pytest_smoltrace.testing.__main__ import main

# litellm's streaming path trips pydantic deprecation warnings that are not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
]


@pytest.fixture(scope="module", autouse=True)
def _quiet_litellm() -> None:
    import litellm

    litellm.suppress_debug_info = True


class WeatherTool(Tool):
    name = "get_weather"
    description = "Returns the weather in a city."
    inputs = {"location": {"type": "string", "description": "the city"}}  # noqa: RUF012
    output_type = "string"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def forward(self, location: str) -> str:
        self.calls.append(location)
        return f"Sunny in {location}"


def weather_call(city: str) -> dict[str, Any]:
    return {"name": "get_weather", "arguments": {"location": city}}


def openai_model(srv: ScriptedModelServer, **kwargs: Any) -> LiteLLMModel:
    return LiteLLMModel(model_id="openai/scripted", api_base=srv.base_url, api_key="sk-test", retry=False, **kwargs)


def ollama_model(srv: ScriptedModelServer) -> LiteLLMModel:
    return LiteLLMModel(model_id="ollama_chat/scripted", api_base=srv.url, retry=False)


def assert_usage_matches(result: Any, srv: ScriptedModelServer, key: str) -> dict[str, int]:
    expected = srv.usage_for(key)
    assert expected["requests"] > 0
    assert result.token_usage is not None
    assert result.token_usage.input_tokens == expected["prompt_tokens"]
    assert result.token_usage.output_tokens == expected["completion_tokens"]
    assert result.token_usage.total_tokens == expected["total_tokens"]
    return expected


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "scripted", "messages": [{"role": "user", "content": text}], **extra}


# ------------------------------------------------------------------------------------------ agents end to end


def test_tool_calling_agent_uses_tool_then_answers() -> None:
    script = [{"tool_calls": [weather_call("Paris")]}, {"final_answer": "It is sunny in Paris"}]
    tool = WeatherTool()
    with ScriptedModelServer({"weather in Paris": script}) as srv:
        agent = ToolCallingAgent(tools=[tool], model=openai_model(srv), verbosity_level=-1)
        result = agent.run("What is the weather in Paris?", return_full_result=True)
        assert result.output == "It is sunny in Paris"
        assert result.state == "success"
        assert tool.calls == ["Paris"]
        steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
        assert steps[0].tool_calls is not None and steps[0].tool_calls[0].name == "get_weather"
        assert steps[0].tool_calls[0].arguments == {"location": "Paris"}
        assert steps[0].observations == "Sunny in Paris"
        log = srv.requests
        assert [(r.key, r.agent_type, r.turn_index, r.status) for r in log] == [
            ("weather in Paris", "tool", 0, 200),
            ("weather in Paris", "tool", 1, 200),
        ]
        assert all(r.path == "/v1/chat/completions" for r in log)
        assert_usage_matches(result, srv, "weather in Paris")


def test_code_agent_runs_code_then_answers() -> None:
    code = "w = get_weather(location='Rome')\nprint(w)"
    script = [{"code": code, "thought": "I call the tool."}, {"final_answer": "sunny"}]
    tool = WeatherTool()
    with ScriptedModelServer({"Rome": script}) as srv:
        agent = CodeAgent(tools=[tool], model=openai_model(srv), verbosity_level=-1)
        result = agent.run("Weather in Rome?", return_full_result=True)
        assert result.output == "sunny"
        assert tool.calls == ["Rome"]
        steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
        assert steps[0].code_action == code
        assert steps[0].observations is not None and "Sunny in Rome" in steps[0].observations
        # CodeAgent asks the server to stop at "</code>"; the server cuts there and smolagents adds it back.
        assert "</code>" in srv.requests[0].body["stop"]
        assert steps[0].model_output is not None and steps[0].model_output.endswith("</code>")
        assert steps[0].model_output.count("</code>") == 1
        assert [r.agent_type for r in srv.requests] == ["code", "code"]
        assert_usage_matches(result, srv, "Rome")


def test_parallel_tool_calls_in_one_turn() -> None:
    script = [
        {"tool_calls": [weather_call("Paris"), weather_call("Oslo")], "content": "Two lookups."},
        {"final_answer": "done"},
    ]
    tool = WeatherTool()
    with ScriptedModelServer({"two cities": script}) as srv:
        agent = ToolCallingAgent(tools=[tool], model=openai_model(srv), verbosity_level=-1)
        assert agent.run("Weather in two cities") == "done"
        assert sorted(tool.calls) == ["Oslo", "Paris"]
        step = next(s for s in agent.memory.steps if isinstance(s, ActionStep))
        assert step.tool_calls is not None and len(step.tool_calls) == 2
        assert len({c.id for c in step.tool_calls}) == 2
        assert step.observations is not None
        assert "Sunny in Paris" in step.observations and "Sunny in Oslo" in step.observations


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_token_usage_matches_server_and_override(agent_cls: type) -> None:
    first = {"tool_calls": [weather_call("Lima")]} if agent_cls is ToolCallingAgent else {"code": "get_weather('Lima')"}
    script = [
        first,
        {"final_answer": 42, "usage": {"prompt_tokens": 1000, "completion_tokens": 7}},
    ]
    with ScriptedModelServer({"Lima": script}) as srv:
        agent = agent_cls(tools=[WeatherTool()], model=openai_model(srv), verbosity_level=-1)
        result = agent.run("Weather in Lima", return_full_result=True)
        assert result.output == 42
        usage = assert_usage_matches(result, srv, "Lima")
        assert usage["requests"] == 2
        first, second = srv.requests
        assert second.usage == {"prompt_tokens": 1000, "completion_tokens": 7, "total_tokens": 1007}
        # the default usage is deterministic: len(json(messages)) // 4
        assert first.usage is not None
        assert first.usage["prompt_tokens"] == len(json.dumps(first.body["messages"])) // 4
        steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
        assert steps[-1].token_usage is not None and steps[-1].token_usage.input_tokens == 1000


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_planning_step_is_turn_zero(agent_cls: type) -> None:
    script = [{"content": "1. Answer right away.\n<end_plan>"}, {"final_answer": "planned"}]
    with ScriptedModelServer({"plan this": script}) as srv:
        agent = agent_cls(tools=[WeatherTool()], model=openai_model(srv), verbosity_level=-1, planning_interval=1)
        result = agent.run("Please plan this", return_full_result=True)
        assert result.output == "planned"
        plans = [s for s in agent.memory.steps if isinstance(s, PlanningStep)]
        assert len(plans) == 1 and "1. Answer right away." in plans[0].plan
        assert "<end_plan>" in srv.requests[0].body["stop"]
        assert [r.turn_index for r in srv.requests] == [0, 1]
        assert_usage_matches(result, srv, "plan this")  # includes the planning call


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_max_steps_gets_summary(agent_cls: type) -> None:
    turn = {"tool_calls": [weather_call("Bern")]} if agent_cls is ToolCallingAgent else {"code": "x = 1"}
    # exactly max_steps turns: the forced final-answer call is turn index max_steps, past the end of the script
    script = {"turns": [turn, turn], "summary": "I gave up."}
    with ScriptedModelServer({"Bern": script}) as srv:
        agent = agent_cls(tools=[WeatherTool()], model=openai_model(srv), verbosity_level=-1, max_steps=2)
        result = agent.run("Weather in Bern", return_full_result=True)
        assert result.output == "I gave up."
        assert result.state == "max_steps_error"
        # the forced final-answer call sends no tools and sees both earlier turns
        assert [(r.agent_type, r.turn_index) for r in srv.requests][-1] == ("code", 2)
        assert_usage_matches(result, srv, "Bern")


def test_past_the_script_answers_default_summary() -> None:
    with ScriptedModelServer({"short": [{"content": "hello"}]}) as srv:
        assert post(srv.base_url + "/chat/completions", chat("short"))[1]["choices"][0]["message"]["content"] == "hello"
        body = chat("short")
        body["messages"].append({"role": "assistant", "content": "hello"})
        assert post(srv.base_url + "/chat/completions", body)[1]["choices"][0]["message"]["content"] == DEFAULT_SUMMARY


# ------------------------------------------------------------------------------------------ errors and timing


def test_http_500_raises_agent_generation_error() -> None:
    with ScriptedModelServer({"explode": [{"status": 500}]}) as srv:
        # max_retries=0 stops the openai SDK inside litellm from retrying the 500 twice with back-off
        agent = ToolCallingAgent(tools=[], model=openai_model(srv, max_retries=0), verbosity_level=-1)
        with pytest.raises(AgentGenerationError):
            agent.run("explode now")
        assert [r.status for r in srv.requests] == [500]
        assert srv.usage_for("explode")["requests"] == 0


def test_error_times_then_and_retry_after() -> None:
    script = [{"status": 429, "times": 2, "retry_after": 3, "then": {"content": "finally"}}]
    with ScriptedModelServer({"flaky": script}) as srv:
        url = srv.base_url + "/chat/completions"
        status, body, headers = post(url, chat("flaky"))
        assert status == 429 and headers["Retry-After"] == "3"
        assert body["error"]["type"] == "rate_limit_error"
        assert post(url, chat("flaky"))[0] == 429
        status, body, _ = post(url, chat("flaky"))
        assert status == 200 and body["choices"][0]["message"]["content"] == "finally"
        assert [r.status for r in srv.requests] == [429, 429, 200]
        assert srv.usage_for("flaky")["requests"] == 1
        srv.reset_log()  # also resets the error counters
        assert post(url, chat("flaky"))[0] == 429


def test_custom_error_body() -> None:
    with ScriptedModelServer({"x": [{"status": 503, "body": {"error": {"message": "overloaded"}}}]}) as srv:
        status, body, _ = post(srv.base_url + "/chat/completions", chat("x"))
        assert (status, body) == (503, {"error": {"message": "overloaded"}})


def test_delay_and_latency_are_honoured() -> None:
    with ScriptedModelServer({"slow": [{"content": "ok", "delay": 0.3}]}, latency_s=0.1) as srv:
        start = time.perf_counter()
        status, _, _ = post(srv.base_url + "/chat/completions", chat("slow"))
        assert status == 200
        assert time.perf_counter() - start >= 0.4


def test_no_script_is_a_loud_400() -> None:
    with ScriptedModelServer({"known": [{"content": "hi"}]}) as srv:
        status, body, _ = post(srv.base_url + "/chat/completions", chat("nothing matches"))
        assert status == 400
        assert body["error"]["message"] == "no script matches this request: nothing matches"
        assert srv.requests[0].key is None and srv.requests[0].status == 400
    with ScriptedModelServer(default_reply="fallback") as srv:
        status, body, _ = post(srv.base_url + "/chat/completions", chat("anything"))
        assert status == 200 and body["choices"][0]["message"]["content"] == "fallback"


def test_stop_sequences_and_content_parts() -> None:
    with ScriptedModelServer({"cut": [{"content": "keep this STOP drop that"}]}) as srv:
        body = {
            "model": "m1",
            "stop": ["STOP", "that"],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "please cut"}]}],
        }
        status, resp, _ = post(srv.base_url + "/chat/completions", body)
        assert status == 200
        assert resp["choices"][0]["message"]["content"] == "keep this "
        assert resp["model"] == "m1" and resp["usage"]["total_tokens"] > 0
        assert resp["choices"][0]["finish_reason"] == "stop"


def test_openai_tool_call_shape_and_models_route() -> None:
    with ScriptedModelServer({"shape": [{"final_answer": {"a": 1}}]}) as srv:
        tools = [{"type": "function", "function": {"name": "final_answer", "parameters": {}}}]
        _, resp, _ = post(srv.base_url + "/chat/completions", chat("shape", tools=tools))
        choice = resp["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function" and call["id"].startswith("call_")
        assert call["function"]["name"] == "final_answer"
        assert json.loads(call["function"]["arguments"]) == {"answer": {"a": 1}}
        _, resp, _ = post(srv.base_url + "/chat/completions", chat("shape"))  # code-agent form
        assert "final_answer({'a': 1})" in resp["choices"][0]["message"]["content"]
        with urllib.request.urlopen(srv.base_url + "/models", timeout=5) as r:
            assert json.loads(r.read())["data"][0]["id"] == "scripted"


# ------------------------------------------------------------------------------------------ routes and scripts


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_ollama_route(agent_cls: type) -> None:
    first = {"tool_calls": [weather_call("Kyiv")]} if agent_cls is ToolCallingAgent else {"code": "get_weather('Kyiv')"}
    tool = WeatherTool()
    with ScriptedModelServer({"Kyiv": [first, {"final_answer": "cold"}]}) as srv:
        agent = agent_cls(tools=[tool], model=ollama_model(srv), verbosity_level=-1)
        result = agent.run("Weather in Kyiv", return_full_result=True)
        assert result.output == "cold"
        assert tool.calls == ["Kyiv"]
        assert [r.path for r in srv.requests] == ["/api/chat", "/api/chat"]
        assert_usage_matches(result, srv, "Kyiv")


def test_streaming_openai_and_ollama() -> None:
    script = [{"tool_calls": [weather_call("Lyon")]}, {"final_answer": "streamed"}]
    with ScriptedModelServer({"Lyon": script}) as srv:
        for model in (openai_model(srv), ollama_model(srv)):
            srv.reset_log()
            agent = ToolCallingAgent(tools=[WeatherTool()], model=model, verbosity_level=-1, stream_outputs=True)
            result = agent.run("Weather in Lyon", return_full_result=True)
            assert result.output == "streamed"
            assert all(r.body.get("stream") for r in srv.requests)
            assert_usage_matches(result, srv, "Lyon")


def test_two_scripts_by_key_dict_scripts_and_threads() -> None:
    scripts = {
        "alpha": {"tool": [{"final_answer": "A-tool"}], "code": [{"final_answer": "A-code"}]},
        "beta": [{"tool_calls": [weather_call("Beta")]}, {"final_answer": "B"}],
    }
    outputs: dict[str, Any] = {}
    with ScriptedModelServer(scripts) as srv:

        def run(name: str, agent: Any, task: str) -> None:
            outputs[name] = agent.run(task)

        jobs = [
            ("alpha-tool", ToolCallingAgent(tools=[], model=openai_model(srv), verbosity_level=-1), "task alpha"),
            ("alpha-code", CodeAgent(tools=[], model=openai_model(srv), verbosity_level=-1), "task alpha"),
            ("beta", ToolCallingAgent(tools=[WeatherTool()], model=openai_model(srv), verbosity_level=-1), "beta?"),
        ]
        threads = [threading.Thread(target=run, args=job) for job in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert outputs == {"alpha-tool": "A-tool", "alpha-code": "A-code", "beta": "B"}
        assert srv.usage_for("alpha")["requests"] == 2
        assert srv.usage_for("alpha", agent_type="code")["requests"] == 1
        assert srv.usage_for("beta")["requests"] == 2
        assert srv.usage_for()["requests"] == 4


def test_first_key_in_insertion_order_wins() -> None:
    with ScriptedModelServer({"weather": [{"content": "generic"}], "weather in Oslo": [{"content": "oslo"}]}) as srv:
        _, resp, _ = post(srv.base_url + "/chat/completions", chat("weather in Oslo"))
        assert resp["choices"][0]["message"]["content"] == "generic"
        srv.add_script("Bergen", [{"content": "bergen"}])
        _, resp, _ = post(srv.base_url + "/chat/completions", chat("Bergen"))
        assert resp["choices"][0]["message"]["content"] == "bergen"


@pytest.mark.parametrize(
    "script",
    [
        [{"nonsense": 1}],
        [{"status": 200}],
        [{"status": 500, "times": 1}],
        [{"final_answer": 1, "code": "x"}],
        {"tool": [], "bogus": []},
        [{"tool_calls": [{"arguments": {}}]}],
        "not a list",
    ],
)
def test_invalid_scripts_are_rejected(script: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        ScriptedModelServer({"k": script})


def test_fixture_and_lifecycle(smoltrace_model_server: ScriptedModelServer) -> None:  # the installed plugin's
    srv = smoltrace_model_server
    assert srv.running and srv.base_url == srv.url + "/v1" and srv.url.startswith("http://127.0.0.1:")
    srv.add_script("ping", [{"content": "pong"}])
    assert post(srv.base_url + "/chat/completions", chat("ping"))[1]["choices"][0]["message"]["content"] == "pong"
    stopped = ScriptedModelServer()
    with pytest.raises(RuntimeError):
        _ = stopped.base_url
    stopped.stop()  # stopping a server that never started is a no-op


def test_main_rejects_bad_scripts_file(tmp_path: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["--scripts", str(bad)]) == 2
    assert main(["--scripts", str(tmp_path / "missing.json")]) == 2
