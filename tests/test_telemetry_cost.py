"""Prices from litellm's bundled map (offline) or custom prices; cost = tokens × price, or None when unknown."""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from smolagents import LiteLLMModel, ToolCallingAgent

from pytest_smoltrace.telemetry import tracing
from pytest_smoltrace.telemetry.cost import Price, cost_usd, price_for
from pytest_smoltrace.testing import ScriptedModelServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
]


def test_litellm_price_with_provider_prefix() -> None:
    entry = litellm.model_cost["gpt-4o-mini"]
    for model_id in ("gpt-4o-mini", "openai/gpt-4o-mini"):
        price = price_for(model_id)
        assert price is not None
        assert price == Price(
            entry["input_cost_per_token"],
            entry["output_cost_per_token"],
            "litellm",
            "gpt-4o-mini",
            entry["cache_read_input_token_cost"],
            entry.get("cache_creation_input_token_cost"),
        )
        assert price.cache_read_per_token is not None and price.cache_read_per_token < price.input_per_token
    assert price_for("openai/gpt-4o-mini") is price_for("openai/gpt-4o-mini")  # cached


def test_unknown_model_costs_none_not_zero() -> None:
    assert price_for("openai/scripted") is None
    assert price_for("no-such-provider/model") is None
    assert cost_usd(None, 100, 10) is None
    # litellm lists some hosted models at 0/0: that is "unknown", except for local runtimes where 0 is real
    assert price_for("huggingface/meta-llama/Llama-3.1-8B-Instruct") is None
    local = price_for("ollama/llama3.2")
    assert local is not None and (local.input_per_token, local.output_per_token) == (0.0, 0.0)
    assert cost_usd(local, 1000, 100) == 0.0


def test_custom_prices_override_and_must_come_in_pairs() -> None:
    price = price_for("openai/scripted", price_input_per_m=0.5, price_output_per_m=1.5)
    assert price == Price(0.5e-6, 1.5e-6, "custom", "openai/scripted")
    assert price.input_per_m == pytest.approx(0.5) and price.output_per_m == pytest.approx(1.5)
    assert cost_usd(price, 2_000_000, 1_000_000) == pytest.approx(2.5)
    overridden = price_for("openai/gpt-4o-mini", price_input_per_m=1.0, price_output_per_m=2.0)
    assert overridden is not None and overridden.source == "custom"
    with pytest.raises(ValueError, match="both"):
        price_for("openai/scripted", price_input_per_m=1.0)
    with pytest.raises(ValueError):
        price_for("openai/scripted", price_input_per_m=-1.0, price_output_per_m=1.0)
    assert cost_usd(price, None, 5) is None
    assert Price.from_dict(price.to_dict()) == price


def test_cost_of_a_real_run_equals_tokens_times_price() -> None:
    litellm.suppress_debug_info = True
    tracing.install()
    price = price_for("openai/gpt-4o-mini")
    assert price is not None
    script = [
        {
            "tool_calls": [{"name": "final_answer", "arguments": {"answer": "4"}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 30},
        }
    ]
    with ScriptedModelServer({"two plus two": script}) as srv:
        model = LiteLLMModel(model_id="openai/gpt-4o-mini", api_base=srv.base_url, api_key="sk-test", retry=False)
        agent = ToolCallingAgent(tools=[], model=model, verbosity_level=-1)
        out: dict[str, Any] = {}
        with tracing.item_trace("t", {"test.case.name": "n"}, price=price) as tr:
            worker = threading.Thread(
                target=tr.run_in_context,
                args=(lambda: out.update(r=agent.run("two plus two", return_full_result=True)),),
            )
            worker.start()
            worker.join(30)
        usage = srv.usage_for("two plus two")
    result = out["r"]
    assert (result.token_usage.input_tokens, result.token_usage.output_tokens) == (1200, 30) == tr.llm_usage()
    cost = cost_usd(price, result.token_usage.input_tokens, result.token_usage.output_tokens)
    assert (
        cost
        == 1200 * litellm.model_cost["gpt-4o-mini"]["input_cost_per_token"]
        + 30 * litellm.model_cost["gpt-4o-mini"]["output_cost_per_token"]
    )
    assert usage["prompt_tokens"] == 1200
    # litellm's own per-call figure agrees
    raw = [s.model_output_message.raw for s in agent.memory.steps if getattr(s, "model_output_message", None)]
    assert sum(r._hidden_params["response_cost"] for r in raw) == pytest.approx(cost, rel=1e-12)
    # the LLM spans carry the same cost, once per call
    (llm,) = tr.llm_spans
    assert llm["attributes"]["gen_ai.usage.cost.total"] == pytest.approx(cost, rel=1e-12)
    assert llm["attributes"]["gen_ai.usage.cost.pricing_source"] == "litellm"


def test_genai_otel_price_table_agrees_with_litellm() -> None:
    """genai-otel-instrument's independent price table is a cross-check of the litellm map we use."""
    with warnings.catch_warnings():  # importing genai_otel adds process-wide warning filters; keep them local
        calculator_module = pytest.importorskip("genai_otel.cost_calculator")
    price = price_for("openai/gpt-4o-mini")
    ours = cost_usd(price, 1000, 100)
    theirs = calculator_module.CostCalculator().calculate_cost(
        "gpt-4o-mini", {"prompt_tokens": 1000, "completion_tokens": 100}, "chat"
    )
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_cached_prompt_tokens_are_priced_apart_and_reasoning_tokens_once() -> None:
    """1000 prompt tokens of which 600 cache reads and 100 cache writes, 50 completion tokens of which 20 reasoning."""
    price = Price(2e-6, 8e-6, "custom", "m", cache_read_per_token=0.5e-6, cache_creation_per_token=2.5e-6)
    cost = cost_usd(price, 1000, 50, cache_read=600, cache_creation=100)
    assert cost == pytest.approx(300 * 2e-6 + 600 * 0.5e-6 + 100 * 2.5e-6 + 50 * 8e-6)
    # reasoning tokens are part of the completion: no argument, never added again
    assert cost_usd(price, 1000, 50) == pytest.approx(1000 * 2e-6 + 50 * 8e-6)
    # a price without cache prices prices cached tokens as input; counts beyond the prompt are clamped
    plain = Price(2e-6, 8e-6, "custom", "m")
    assert cost_usd(plain, 1000, 50, cache_read=600) == pytest.approx(1000 * 2e-6 + 50 * 8e-6)
    assert cost_usd(price, 100, 0, cache_read=500) == pytest.approx(100 * 0.5e-6)
