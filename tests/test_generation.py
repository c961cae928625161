"""Generation settings reach every provider: :func:`pytest_smoltrace.generation.plan` and the real request bodies.

The request tests build the model exactly as a run does (``build_model`` from a ``ModelSpec``), run a real
``ToolCallingAgent`` through real litellm / huggingface_hub clients against the scripted OpenAI- and Ollama-compatible
server, and read what arrived in ``server.requests[i].body``. The transformers provider runs a tiny random model built
in the test (no download), when torch and transformers are installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from helpers import tiny_llama
from smolagents import ToolCallingAgent

from pytest_smoltrace.generation import GENERATION_FIELDS, PROVIDER_DEFAULTS, Generation, GenerationPlan, plan
from pytest_smoltrace.models import ModelSpec, build_model
from pytest_smoltrace.testing import ScriptedModelServer

# litellm's and pydantic's deprecation warnings are not ours
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

EVERYTHING = Generation(
    temperature=0.3, top_p=0.9, top_k=40, max_tokens=77, seed=7, reasoning_effort="low", enable_thinking=False
)
KEY = "[gen]"
#: Every name a generation setting can have in a request body, any provider.
SETTING_NAMES = {
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "reasoning_effort",
    "chat_template_kwargs",
    "enable_thinking",
    "think",
    "extra_body",
    "num_predict",
}


def one_request(server: ScriptedModelServer, spec: ModelSpec) -> dict[str, Any]:
    """Run a real ToolCallingAgent (one step: the final answer) on ``spec``'s model; the request body it sent."""
    server.add_script(KEY, [{"final_answer": "done"}])
    before = len(server.requests)
    agent = ToolCallingAgent(tools=[], model=build_model(spec), max_steps=2, verbosity_level=-1)
    assert agent.run(f"Say done {KEY}") == "done"
    requests = server.requests[before:]
    assert len(requests) == 1 and requests[0].status == 200, requests
    return requests[0].body


def options(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama's ``options`` without the agent's stop sequences (litellm puts ``stop`` there too)."""
    return {k: v for k, v in (body.get("options") or {}).items() if k != "stop"}


def sent(body: dict[str, Any]) -> set[str]:
    """The generation-setting names present in a request body (top level and Ollama's ``options``)."""
    return (set(body) | set(body.get("options") or {})) & SETTING_NAMES


# ----------------------------------------------------------------------------------------------- litellm


def test_openai_compatible_endpoint_gets_every_setting(server: ScriptedModelServer) -> None:
    spec = ModelSpec("openai/scripted", "litellm", api_base=server.base_url, generation=EVERYTHING)
    body = one_request(server, spec)
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["seed"] == 7
    assert body["max_tokens"] == 77 and body["reasoning_effort"] == "low"
    # not OpenAI parameters: the server (vLLM, llama.cpp) reads them from the body, where extra_body puts them
    assert body["top_k"] == 40 and body["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent(body) == {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "seed",
        "reasoning_effort",
        "chat_template_kwargs",
    }
    p = plan(EVERYTHING, spec)
    assert p.ignored == {} and p.applied == EVERYTHING.to_dict()
    assert p.sent_as["top_k"] == "extra_body.top_k"
    assert p.sent_as["enable_thinking"] == "extra_body.chat_template_kwargs.enable_thinking"


@pytest.mark.parametrize(
    "generation",
    [Generation(), Generation(temperature=0.0), Generation(top_k=3), Generation(enable_thinking=True)],
    ids=["nothing", "temperature", "top_k", "thinking"],
)
def test_unset_settings_are_never_sent(server: ScriptedModelServer, generation: Generation) -> None:
    body = one_request(server, ModelSpec("openai/scripted", "litellm", api_base=server.base_url, generation=generation))
    expected = {"enable_thinking": "chat_template_kwargs"}
    assert sent(body) == {expected.get(name, name) for name in generation.to_dict()}
    if generation.temperature is not None:
        assert body["temperature"] == 0.0  # a zero is a setting, not "unset"


def test_litellm_passes_non_openai_params_to_a_compatible_endpoint(server: ScriptedModelServer) -> None:
    """Measured: on ``openai/<name>`` with an api_base litellm raises no UnsupportedParamsError for top_k, seed or
    reasoning_effort and sends them (and extra_body's keys) at the top level of the body, as they are."""
    import litellm

    server.add_script(KEY, [{"content": "hi"}] * 3)
    common: dict[str, Any] = {
        "model": "openai/scripted",
        "api_base": server.base_url,
        "api_key": "sk-test",
        "num_retries": 0,
        "messages": [{"role": "user", "content": f"hi {KEY}"}],
    }
    litellm.completion(**common, top_k=5, seed=3, reasoning_effort="none")
    litellm.completion(**common, extra_body={"top_k": 5, "chat_template_kwargs": {"enable_thinking": True}})
    first, second = (r.body for r in server.requests)
    assert (first["top_k"], first["seed"], first["reasoning_effort"]) == (5, 3, "none")
    assert second["top_k"] == 5 and second["chat_template_kwargs"] == {"enable_thinking": True}
    assert "extra_body" not in second


def test_settings_litellm_refuses_are_ignored_not_fatal(server: ScriptedModelServer) -> None:
    """litellm refuses top_p (and a temperature ≠ 1) for gpt-5 on every request; the plan leaves them out with
    litellm's reason, and max_tokens goes as max_completion_tokens, as litellm says for that model."""
    import litellm

    with pytest.raises(litellm.UnsupportedParamsError):  # what would happen on every request without the plan
        litellm.completion(
            model="openai/gpt-5",
            api_base=server.base_url,
            api_key="sk-test",
            messages=[{"role": "user", "content": "hi"}],
            top_p=0.5,
        )
    generation = Generation(temperature=0.0, top_p=0.5, max_tokens=64, seed=1)
    spec = ModelSpec("openai/gpt-5", "litellm", api_base=server.base_url, generation=generation)
    body = one_request(server, spec)
    assert sent(body) == {"max_completion_tokens", "seed"} and body["max_completion_tokens"] == 64
    p = plan(generation, spec)
    assert set(p.ignored) == {"temperature", "top_p"}
    assert "temperature=0.0" in p.ignored["temperature"] and "top_p" in p.ignored["top_p"]
    assert p.sent_as["max_tokens"] == "max_completion_tokens"


def test_native_openai_has_no_top_k() -> None:
    """No api_base: the real OpenAI API (nothing is sent; litellm is only asked what it supports)."""
    spec = ModelSpec("openai/gpt-4.1-nano", "litellm")
    p = plan(EVERYTHING, spec)
    assert p.ignored["top_k"] == "native OpenAI has no top_k"
    assert "thinking" in p.ignored["enable_thinking"]
    assert "reasoning_effort" in p.ignored["reasoning_effort"]  # litellm: gpt-4.1-nano takes none
    assert p.kwargs == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 77, "seed": 7}
    assert "extra_body" not in p.kwargs
    # a reasoning model takes reasoning_effort, and max_tokens under its newer name
    p5 = plan(Generation(reasoning_effort="high", max_tokens=10, top_k=3), ModelSpec("openai/gpt-5", "litellm"))
    assert p5.kwargs == {"reasoning_effort": "high", "max_completion_tokens": 10}
    assert p5.ignored == {"top_k": "native OpenAI has no top_k"}


def test_other_native_providers_follow_litellm() -> None:
    anthropic = plan(EVERYTHING, ModelSpec("anthropic/claude-sonnet-4-5", "litellm"))
    assert anthropic.kwargs["top_k"] == 40  # Anthropic's own parameter; litellm passes it on
    assert "seed" in anthropic.ignored and "enable_thinking" in anthropic.ignored
    groq = plan(EVERYTHING, ModelSpec("groq/llama-3.1-8b-instant", "litellm"))
    assert "reasoning_effort" in groq.ignored and groq.kwargs["seed"] == 7


def test_plan_record() -> None:
    p = plan(Generation(top_k=3, temperature=0.5), ModelSpec("openai/gpt-4.1-nano", "litellm"))
    assert isinstance(p, GenerationPlan)
    record = p.to_dict()
    assert record["requested"] == {"temperature": 0.5, "top_k": 3}
    assert record["applied"] == {"temperature": 0.5}
    assert record["ignored"] == {"top_k": "native OpenAI has no top_k"}
    assert record["sent_as"] == {"temperature": "temperature"} and record["defaults"] == {}
    assert record["route"] == "litellm openai/gpt-4.1-nano"
    assert p.warnings() == [
        "generation setting top_k=3 is not sent (litellm openai/gpt-4.1-nano): native OpenAI has no top_k"
    ]
    with pytest.raises(AttributeError):
        p.kwargs = {}  # type: ignore[misc]
    assert plan(Generation(), ModelSpec("openai/gpt-4.1-nano", "litellm")).to_dict()["applied"] == {}


@pytest.mark.parametrize("provider", ["litellm", "ollama", "inference", "transformers", "local"])
def test_every_requested_setting_is_applied_or_ignored(provider: str) -> None:
    spec = ModelSpec("openai/gpt-4.1-nano" if provider == "litellm" else "m", provider, api_base=None)
    p = plan(EVERYTHING, spec)
    assert set(p.applied) | set(p.ignored) >= set(GENERATION_FIELDS)
    assert not set(p.ignored) & set(p.applied)
    assert all(reason for reason in p.ignored.values())


def test_unknown_provider_ignores_everything() -> None:
    p = plan(Generation(seed=1), ModelSpec("m", "nope"))
    assert p.kwargs == {} and p.ignored == {"seed": "unknown provider 'nope'"}


# ----------------------------------------------------------------------------------------------- ollama


def test_ollama_gets_options_and_think(server: ScriptedModelServer) -> None:
    generation = Generation(temperature=0.2, top_p=0.8, top_k=20, max_tokens=50, seed=5, enable_thinking=False)
    body = one_request(server, ModelSpec("scripted", "ollama", api_base=server.url, generation=generation))
    assert options(body) == {"temperature": 0.2, "top_p": 0.8, "top_k": 20, "seed": 5, "num_predict": 50}
    assert body["think"] is False
    assert sent(body) == {"temperature", "top_p", "top_k", "seed", "num_predict", "think"}


@pytest.mark.parametrize(("effort", "think"), [("low", True), ("high", True), ("none", False)])
def test_ollama_reasoning_effort_becomes_think(server: ScriptedModelServer, effort: str, think: bool) -> None:
    spec = ModelSpec("scripted", "ollama", api_base=server.url, generation=Generation(reasoning_effort=effort))
    body = one_request(server, spec)
    assert body["think"] is think and sent(body) == {"think"} and options(body) == {}
    assert plan(spec.generation, spec).sent_as["reasoning_effort"] == f"think={str(think).lower()}"


def test_ollama_one_thinking_switch(server: ScriptedModelServer) -> None:
    generation = Generation(reasoning_effort="high", enable_thinking=False)
    spec = ModelSpec("scripted", "ollama", api_base=server.url, generation=generation)
    assert one_request(server, spec)["think"] is False
    assert "enable_thinking sets it" in plan(generation, spec).ignored["reasoning_effort"]


def test_ollama_model_through_the_litellm_provider() -> None:
    via_litellm = plan(EVERYTHING, ModelSpec("ollama_chat/qwen3", "litellm"))
    direct = plan(EVERYTHING, ModelSpec("qwen3", "ollama"))
    assert via_litellm.kwargs == direct.kwargs and via_litellm.ignored == direct.ignored
    assert direct.sent_as["max_tokens"] == "options.num_predict"


# ----------------------------------------------------------------------------------------------- inference


def test_inference_client_gets_parameters_and_extra_body(server: ScriptedModelServer) -> None:
    spec = ModelSpec("scripted", "inference", api_base=server.base_url, generation=EVERYTHING)
    body = one_request(server, spec)
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.9, 77, 7)
    assert body["top_k"] == 40 and body["reasoning_effort"] == "low"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert "extra_body" not in body
    p = plan(EVERYTHING, spec)
    assert p.ignored == {} and p.sent_as["temperature"] == "temperature" and p.sent_as["top_k"] == "extra_body.top_k"


def test_inference_client_sends_nothing_unset(server: ScriptedModelServer) -> None:
    spec = ModelSpec("scripted", "inference", api_base=server.base_url, generation=Generation(seed=11))
    body = one_request(server, spec)
    assert sent(body) == {"seed"} and body["seed"] == 11


def test_inference_without_extra_body_ignores_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older huggingface_hub whose chat_completion has no extra_body: what it lacks is ignored, with the reason."""
    from huggingface_hub import InferenceClient

    def chat_completion(
        self: Any,
        messages: Any,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
    ) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(InferenceClient, "chat_completion", chat_completion)
    p = plan(EVERYTHING, ModelSpec("m", "inference"))
    assert p.kwargs == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 77, "seed": 7}
    assert set(p.ignored) == {"top_k", "reasoning_effort", "enable_thinking"}
    assert "no extra_body" in p.ignored["top_k"]


# ----------------------------------------------------------------------------------------------- local


def test_local_model_defaults_and_overrides(server: ScriptedModelServer) -> None:
    """The embedded server's own defaults (temperature 0, max_tokens 1024) unless the user sets them."""
    default = one_request(server, ModelSpec("local", "local", api_base=server.base_url))
    assert sent(default) == {"temperature", "max_tokens"}
    assert (default["temperature"], default["max_tokens"]) == (0.0, 1024)
    generation = Generation(temperature=0.6, top_k=20, seed=3, top_p=0.95, reasoning_effort="low", enable_thinking=True)
    spec = ModelSpec("local", "local", api_base=server.base_url, generation=generation)
    body = one_request(server, spec)
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (0.6, 0.95, 20, 3)
    assert body["max_tokens"] == 1024  # the default stays where the user set nothing
    assert sent(body) == {"temperature", "top_p", "top_k", "seed", "max_tokens"}
    p = plan(generation, spec)
    assert set(p.ignored) == {"reasoning_effort", "enable_thinking"}
    assert p.defaults == {"max_tokens": 1024} and p.applied["max_tokens"] == 1024
    assert p.to_dict()["requested"] == generation.to_dict()
    assert PROVIDER_DEFAULTS["local"] == Generation(temperature=0.0, max_tokens=1024)


# ----------------------------------------------------------------------------------------------- transformers


def test_transformers_plan() -> None:
    spec = ModelSpec("some/model", "transformers")
    sampling = plan(EVERYTHING, spec)
    assert plan(Generation(temperature=0.0), spec).kwargs == {"do_sample": False, "max_new_tokens": 256}
    assert sampling.kwargs == {
        "do_sample": True,
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "max_new_tokens": 77,
        "apply_chat_template_kwargs": {"reasoning_effort": "low", "enable_thinking": False},
    }
    assert set(sampling.ignored) == {"seed"}
    zero = plan(Generation(temperature=0.0, top_p=0.5, top_k=5), spec)
    assert zero.kwargs == {"do_sample": False, "max_new_tokens": 256}
    assert set(zero.ignored) == {"top_p", "top_k"} and zero.sent_as["temperature"].startswith("do_sample=False")
    assert plan(Generation(top_p=0.5), spec).kwargs == {"do_sample": True, "top_p": 0.5, "max_new_tokens": 256}
    untouched = plan(Generation(), spec)
    assert untouched.kwargs == {"max_new_tokens": 256} and untouched.defaults == {"max_tokens": 256}


def tiny_model(path: Path) -> Path:
    """A randomly initialised one-layer Llama with a trained toy tokenizer (seconds on a CPU, no download)."""
    return tiny_llama(path, ["Thought: I will answer.", "final_answer(42)", "The weather is sunny."])


def test_transformers_generate_gets_the_settings(tmp_path: Path) -> None:
    from smolagents.models import ChatMessage, MessageRole

    path = tiny_model(tmp_path / "tiny-lm")
    generation = Generation(temperature=0.7, top_k=5, max_tokens=4, seed=1, enable_thinking=False)
    model: Any = build_model(ModelSpec(str(path), "transformers", generation=generation))
    assert model.apply_chat_template_kwargs == {"enable_thinking": False}
    answer = model.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "6*7?"}])])
    kwargs = answer.raw["completion_kwargs"]  # what smolagents passed to transformers' generate()
    assert (kwargs["do_sample"], kwargs["temperature"], kwargs["top_k"], kwargs["max_new_tokens"]) == (
        True,
        0.7,
        5,
        4,
    )
    assert "seed" not in kwargs and "top_p" not in kwargs
    assert answer.token_usage.output_tokens <= 4
    greedy: Any = build_model(ModelSpec(str(path), "transformers", generation=Generation(temperature=0.0)))
    kwargs = greedy.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "hi"}])]).raw[
        "completion_kwargs"
    ]
    assert kwargs["do_sample"] is False and "temperature" not in kwargs and kwargs["max_new_tokens"] == 256
