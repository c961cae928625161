"""The ``openai`` provider: any OpenAI-compatible endpoint through smolagents' ``OpenAIServerModel``, never litellm.

Every end-to-end test runs pytest in a fresh interpreter against the scripted server over real HTTP, with a conftest
that writes which heavy modules that process had imported by the end of its session (``heavy.json``): litellm must
never be among them, and every feature must work as it does on litellm — both agent types, ``chat`` spans with their
usage under steps, cached and reasoning tokens, cost, retries, the error of an item, cassettes, generation settings.
Prices come from litellm's bundled price file read without importing litellm; they are checked here against litellm's
own lookup for every chat model of the map.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.generation import Generation, plan
from pytest_smoltrace.models import ModelSpec, openai_model_name
from pytest_smoltrace.retry import RETRY_EVENT
from pytest_smoltrace.telemetry import cost
from pytest_smoltrace.testing import ScriptedModelServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: Written by the child's conftest at the end of its session: the heavy modules it had imported.
HEAVY_CONFTEST = """
import json, sys

HEAVY = ("litellm", "torch", "datasets", "transformers", "pandas", "pyarrow")


def pytest_sessionfinish(session):
    heavy = sorted(name for name in HEAVY if name in sys.modules)
    (session.config.rootpath / "heavy.json").write_text(json.dumps(heavy))
"""

OPENAI = ("--smoltrace-provider", "openai")
TASKS = [
    {
        "id": "weather",
        "prompt": "Weather please [o-weather]",
        "expected_tool": "get_weather",
        "expected_keywords": ["20"],
    },
    {"id": "answer", "prompt": "Answer please [o-answer]", "expected_answer": 42},
]
SCRIPTS = {
    "[o-weather]": {
        "tool": [
            {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
            {"final_answer": "20°C"},
        ],
        "code": [{"code": "w = get_weather(location='Paris, France')\nprint(w)"}, {"final_answer": "20°C"}],
    },
    # a number, not a string: smolagents' output-type lookup would import torch for it
    "[o-answer]": {"tool": [{"final_answer": 42}], "code": [{"code": "final_answer(6 * 7)"}]},
}
NODEIDS = {f"smoltrace/tasks.json::{agent}::{task['id']}" for agent in ("tool", "code") for task in TASKS}


def heavy(pytester: pytest.Pytester) -> list[str]:
    return list(json.loads((pytester.path / "heavy.json").read_text()))


@pytest.fixture
def openai_bench(pytester: pytest.Pytester, bench: Any) -> Any:
    """``bench`` in a fresh interpreter on the openai provider; the run, and the heavy modules it imported."""
    pytester.makeconftest(HEAVY_CONFTEST)

    def run(tasks: Any, scripts: Any, *args: str, **kwargs: Any) -> tuple[Any, list[str]]:
        result = bench(tasks, scripts, *OPENAI, *args, subprocess=True, **kwargs)
        return result, heavy(pytester)

    return run


def spans_by_nodeid(run: Any) -> dict[str, dict[str, Any]]:
    return {d["nodeid"]: d for d in run.read("traces.json")}


def llm_spans(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in doc["spans"] if s["category"] == "llm"]


# ── end to end ─────────────────────────────────────────────────────────────────────────────────────────────────────


def test_both_agent_types_run_traced_and_priced_without_litellm(openai_bench: Any, server: ScriptedModelServer) -> None:
    server.usage_details = {"cached_tokens": 40, "reasoning_tokens": 3, "cache_creation_tokens": 7}
    run, imported = openai_bench(TASKS, SCRIPTS, model="openai/gpt-4o-mini")
    run.result.assert_outcomes(passed=4)
    assert "litellm" not in imported and "torch" not in imported and "datasets" not in imported, imported
    # the openai/ routing prefix is not sent: the server was asked for the model by its own name
    assert {r.body["model"] for r in server.requests} == {"gpt-4o-mini"}
    rows = {r["test_case_uid"]: r for r in run.rows}
    assert set(rows) == NODEIDS
    assert {r["provider"] for r in rows.values()} == {"openai"}
    assert {r["model"] for r in rows.values()} == {"openai/gpt-4o-mini"}
    # usage details, exactly what the server reported
    sent = server.usage_for()
    assert sum(r["cached_input_tokens"] for r in rows.values()) == sent["cached_tokens"] == 40 * sent["requests"]
    assert sum(r["cache_creation_input_tokens"] for r in rows.values()) == sent["cache_creation_tokens"]
    assert sum(r["reasoning_tokens"] for r in rows.values()) == sent["reasoning_tokens"]
    assert sum(r["total_tokens"] for r in rows.values()) == sent["total_tokens"]
    # priced as litellm prices gpt-4o-mini (its own lookup, in this process)
    import litellm

    info = litellm.get_model_info("gpt-4o-mini")
    write = info.get("cache_creation_input_token_cost") or info["input_cost_per_token"]
    for row in rows.values():
        fresh = row["prompt_tokens"] - row["cached_input_tokens"] - row["cache_creation_input_tokens"]
        expected = (
            fresh * info["input_cost_per_token"]
            + row["cached_input_tokens"] * info["cache_read_input_token_cost"]
            + row["cache_creation_input_tokens"] * write
            + row["completion_tokens"] * info["output_cost_per_token"]
        )
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-9) and row["cost_usd"] > 0
    # one `chat <model>` span per model call (named after the model as reported, as on litellm), under its step,
    # carrying the call's usage; Σ = the row's tokens
    for nodeid, doc in spans_by_nodeid(run).items():
        spans = {s["span_id"]: s for s in doc["spans"]}
        llm = llm_spans(doc)
        assert llm and all(s["name"] == "chat openai/gpt-4o-mini" for s in llm), [s["name"] for s in doc["spans"]]
        assert all(spans[s["parent_span_id"]]["category"] == "step" for s in llm)
        assert all(s["attributes"]["gen_ai.provider.name"] == "openai" for s in llm)
        assert all(s["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 40 for s in llm)
        row = rows[nodeid]
        assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == row["prompt_tokens"] > 0
        assert sum(s["attributes"]["gen_ai.usage.output_tokens"] for s in llm) == row["completion_tokens"] > 0
        assert sum(s["attributes"]["gen_ai.usage.reasoning.output_tokens"] for s in llm) == row["reasoning_tokens"]
        assert sum(s["attributes"]["gen_ai.usage.cost.total"] for s in llm) == pytest.approx(row["cost_usd"])
    # the non-string answers were read as the numbers they are
    assert {rows[f"smoltrace/tasks.json::{a}::answer"]["response"] for a in ("tool", "code")} == {"42"}


@pytest.mark.parametrize("provider", ["openai", "litellm"])
def test_non_string_answers_import_neither_torch_nor_datasets(
    pytester: pytest.Pytester, bench: Any, provider: str
) -> None:
    """smolagents' output-type lookup imports torch for an answer that is not a string; not in our runs."""
    pytester.makeconftest(HEAVY_CONFTEST)
    tasks = [{"id": "answer", "prompt": "Answer please [o-answer]", "expected_answer": 42}]
    run = bench(tasks, SCRIPTS, "--smoltrace-provider", provider, subprocess=True)
    run.result.assert_outcomes(passed=2)
    imported = heavy(pytester)
    assert "torch" not in imported and "datasets" not in imported, imported
    assert ("litellm" in imported) == (provider == "litellm")


def test_the_bundled_scripted_model_takes_the_openai_path(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HEAVY_CONFTEST)
    result = pytester.runpytest_subprocess(
        "--smoltrace-model", "scripted", "--smoltrace-run-id", "bundled", "-p", "no:randomly"
    )
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert heavy(pytester) == []
    rows = json.loads((pytester.path / "smoltrace_results" / "bundled" / "results.json").read_text())
    assert rows and {r["provider"] for r in rows} == {"openai"} and {r["model"] for r in rows} == {"openai/scripted"}


def test_retries_and_a_bad_request_are_classified_as_on_litellm(openai_bench: Any) -> None:
    tasks = [
        {"id": "flaky", "prompt": "Weather please [o-flaky]", "expected_keywords": ["20"]},
        {"id": "broken", "prompt": "Break please [o-broken]"},
    ]
    answer = {"final_answer": "20°C"}
    flaky = {"status": 429, "times": 1, "retry_after": 0, "then": {"status": 503, "times": 1, "then": answer}}
    scripts = {
        "[o-flaky]": {"tool": [flaky], "code": []},
        "[o-broken]": {"tool": [{"status": 400, "body": {"error": {"message": "bad request"}}}], "code": []},
    }
    run, imported = openai_bench(tasks, scripts, "--smoltrace-agent-type", "tool")
    run.result.assert_outcomes(passed=1, errors=1)
    assert "litellm" not in imported
    journal = {
        e["record"]["task_id"]: e["record"]
        for e in map(json.loads, (run.run_dir / "journal.jsonl").read_text().splitlines())
    }
    assert [r["reason"] for r in journal["flaky"]["retries"]] == ["HTTP 429", "HTTP 503"]
    broken = journal["broken"]
    assert broken["retries"] == []  # a 400 is permanent: not retried
    assert broken["error_type"] == "AgentGenerationError" and broken["stop_reason"] == "error"
    assert "Error code: 400" in broken["error"]
    flaky = spans_by_nodeid(run)["smoltrace/tasks.json::tool::flaky"]
    assert [s["status"] for s in llm_spans(flaky)] == ["ERROR", "ERROR", "OK"]
    step = next(s for s in flaky["spans"] if s["span_id"] == llm_spans(flaky)[0]["parent_span_id"])
    assert [e["attributes"]["error.type"] for e in step["events"] if e["name"] == RETRY_EVENT] == [
        "HTTP 429",
        "HTTP 503",
    ]


def test_cassettes_record_and_replay_openai_responses(
    openai_bench: Any, pytester: pytest.Pytester, server: ScriptedModelServer
) -> None:
    args = ("--smoltrace-cassette-dir", "cassettes")
    first, _ = openai_bench(TASKS, SCRIPTS, *args, "--smoltrace-record-mode", "all", run_id="rec")
    first.result.assert_outcomes(passed=4)
    cassette = json.loads(
        next((pytester.path / "cassettes").glob("cassette-tasks.json__tool__weather.json")).read_text()
    )
    assert cassette["interactions"][0]["response"]["type"] == "openai.types.chat.chat_completion:ChatCompletion"
    made = len(server.requests)
    again, imported = openai_bench(TASKS, None, *args, "--smoltrace-record-mode", "none", run_id="rep")
    again.result.assert_outcomes(passed=4)
    assert len(server.requests) == made, "a replay made requests"
    assert "litellm" not in imported
    assert all(r["replayed"] for r in again.rows)
    recorded = {r["test_case_uid"]: r for r in first.rows}
    for row in again.rows:  # the same conversation, the same tokens and answer
        before = recorded[row["test_case_uid"]]
        assert (row["response"], row["prompt_tokens"], row["completion_tokens"]) == (
            before["response"],
            before["prompt_tokens"],
            before["completion_tokens"],
        )
    for doc in spans_by_nodeid(again).values():
        assert all(s["attributes"].get("smoltrace.replayed") is True for s in llm_spans(doc))


def test_generation_settings_reach_an_openai_compatible_server(openai_bench: Any, server: ScriptedModelServer) -> None:
    settings = ("--smoltrace-temperature", "0.3", "--smoltrace-top-p", "0.9", "--smoltrace-top-k", "40")
    settings += ("--smoltrace-max-tokens", "77", "--smoltrace-seed", "7", "--smoltrace-reasoning-effort", "low")
    run, imported = openai_bench(TASKS[:1], SCRIPTS, *settings, "--smoltrace-agent-type", "tool")
    run.result.assert_outcomes(passed=1)
    assert "litellm" not in imported
    for request in server.requests:
        body = request.body
        assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"], body["seed"]) == (
            0.3,
            0.9,
            40,
            77,
            7,
        )
        assert body["reasoning_effort"] == "low"
    assert "OpenAI-compatible endpoint (openai SDK, model scripted)" in json.dumps(run.read("metadata.json"))


def test_missing_key_for_a_remote_endpoint_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HEAVY_CONFTEST)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    (pytester.path / "tasks.json").write_text(json.dumps(TASKS), encoding="utf-8")
    argv = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", *OPENAI]
    argv += ["--smoltrace-model", "gpt-4.1-nano", "--smoltrace-dataset", "tasks.json"]
    proc = subprocess.run(argv, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "OPENAI_API_KEY is not set (the openai SDK reads the API key from it)" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# ── the plan and the model name ───────────────────────────────────────────────────────────────────────────────────


def test_the_openai_prefix_is_litellms_routing_prefix() -> None:
    assert openai_model_name("openai/gpt-4o-mini") == "gpt-4o-mini"
    assert openai_model_name("gpt-4o-mini") == "gpt-4o-mini"
    assert openai_model_name("openai/openai/gpt-oss-20b") == "openai/gpt-oss-20b"
    assert openai_model_name("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"


def test_native_openai_plan_follows_litellms_rules_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    everything = Generation(temperature=0.3, top_p=0.9, top_k=40, max_tokens=77, seed=7, reasoning_effort="low")
    gpt41 = plan(everything, ModelSpec("openai/gpt-4.1-nano", "openai"))
    assert gpt41.kwargs == {"max_tokens": 77, "temperature": 0.3, "top_p": 0.9, "seed": 7}
    assert set(gpt41.ignored) == {"reasoning_effort", "top_k"}
    gpt5 = plan(everything, ModelSpec("gpt-5", "openai", api_base="https://api.openai.com/v1"))
    assert gpt5.kwargs == {"reasoning_effort": "low", "max_completion_tokens": 77, "seed": 7}
    assert set(gpt5.ignored) == {"temperature", "top_p", "top_k"}
    # litellm's own plan for the same models agrees on what is sent
    for model_id, ours in (("openai/gpt-4.1-nano", gpt41), ("openai/gpt-5", gpt5)):
        theirs = plan(everything, ModelSpec(model_id, "litellm"))
        assert theirs.kwargs == ours.kwargs and set(theirs.ignored) == set(ours.ignored), (model_id, theirs)


def test_compatible_server_plan_sends_everything() -> None:
    spec = ModelSpec("served-model", "openai", api_base="http://127.0.0.1:8000/v1")
    p = plan(Generation(top_k=40, enable_thinking=False, temperature=0.2), spec)
    assert p.kwargs == {
        "temperature": 0.2,
        "extra_body": {"top_k": 40, "chat_template_kwargs": {"enable_thinking": False}},
    }
    assert p.ignored == {}


# ── prices without litellm ───────────────────────────────────────────────────────────────────────────────────────


def _litellm_prices(model_id: str) -> tuple[Any, ...] | None:
    """litellm's own price of ``model_id``, under the plugin's "unknown is null" rule."""
    info = cost._litellm_model_info(model_id)
    return None if info is None else _fields(cost._price(model_id, info))


def _fields(price: cost.Price | None) -> tuple[Any, ...] | None:
    if price is None:
        return None
    return (price.input_per_token, price.output_per_token, price.cache_read_per_token, price.cache_creation_per_token)


def _chat_model_ids() -> list[str]:
    prices = cost.price_map()
    assert prices is not None
    ids = []
    for key, entry in prices.entries.items():
        if entry.get("mode") != "chat":
            continue
        provider = entry.get("litellm_provider")
        ids.append(key)
        if provider and not key.startswith(f"{provider}/"):
            ids.append(f"{provider}/{key}")
    return ids


def test_prices_equal_litellms_for_every_chat_model_of_the_map() -> None:
    ids = _chat_model_ids()
    ids += ["openai/scripted", "scripted", "no-such-provider/model", "ollama/llama3.2", "hosted_vllm/served"]
    assert len(ids) > 2000
    cost._litellm_price.cache_clear()
    different = [(m, _fields(cost.price_for(m)), _litellm_prices(m)) for m in ids]
    different = [d for d in different if d[1] != d[2]]
    assert different == []
    some = {
        m: cost.price_for(m)
        for m in ("gpt-4o-mini", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "mistral/codestral-latest")
    }
    assert all(p is not None and p.input_per_token > 0 for p in some.values()), some


def test_pricing_imports_no_litellm() -> None:
    code = (
        "import sys; from pytest_smoltrace.telemetry.cost import price_for\n"
        "p = price_for('openai/gpt-4o-mini'); q = price_for('openai/scripted')\n"
        "print(p.input_per_token, p.output_per_token, q, 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    import litellm

    info = litellm.get_model_info("gpt-4o-mini")
    assert out == [repr(info["input_cost_per_token"]), repr(info["output_cost_per_token"]), "None", "False"]


def test_price_map_missing_means_unknown(tmp_path: Path) -> None:
    assert cost.PriceMap({}).lookup("gpt-4o-mini") is None
    prices = cost.PriceMap({"m": {"litellm_provider": "groq", "input_cost_per_token": 1e-6}})
    assert prices.lookup("groq/m") is not None and prices.lookup("openai/m") is None


# ── smolagents' hot paths, pre-empted (both providers) ──────────────────────────────────────────────────────────────


def test_output_types_match_smolagents_without_importing_torch() -> None:
    """The replacement returns what smolagents' own function returns; torch is imported by neither here (the child
    checks it in a fresh interpreter) because no tensor can exist while torch is not loaded."""
    from smolagents import agent_types

    from pytest_smoltrace import outputtypes

    outputtypes.install()
    import smolagents.agents
    import smolagents.tools

    assert smolagents.agents.handle_agent_output_types is outputtypes.handle_agent_output_types
    assert smolagents.tools.handle_agent_output_types is outputtypes.handle_agent_output_types
    original = outputtypes._original
    assert original is agent_types.handle_agent_output_types
    for value, output_type in ((42, None), (4.5, "number"), ({"a": 1}, "object"), ([1], None), ("text", None)):
        ours = outputtypes.handle_agent_output_types(value, output_type)
        assert type(ours) is type(original(value, output_type)) and ours == value
    assert isinstance(outputtypes.handle_agent_output_types("x"), agent_types.AgentText)


def test_templates_are_compiled_once_and_render_as_smolagents_does() -> None:
    from smolagents import agents

    from pytest_smoltrace import templates

    original = agents.populate_template if not templates.installed() else None
    templates.install()
    assert agents.populate_template is templates.populate_template
    source = "Hello {{ name }}{% for t in tools %} {{ t }}{% endfor %}"
    before = templates.compiled.cache_info().misses
    for _ in range(3):
        assert templates.populate_template(source, {"name": "you", "tools": ["a", "b"]}) == "Hello you a b"
    assert templates.compiled.cache_info().misses == before + 1
    with pytest.raises(Exception, match="Error during jinja template rendering: UndefinedError"):
        templates.populate_template(source, {"tools": []})
    if original is not None:  # smolagents' own function renders the same text
        assert original(source, {"name": "you", "tools": ["a", "b"]}) == "Hello you a b"
