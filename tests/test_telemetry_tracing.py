"""Tracing with real smolagents agents over real HTTP: span trees, parentage, tokens, verdict events, OTLP export.

The global tracer provider can be set once per process: the first test to need it calls ``tracing.install()`` and
every test reuses it; each item is its own trace (bucketed by trace id). Agents run in a worker thread exactly
like ``runner.py`` does, joined to the item's trace with ``ItemTrace.run_in_context``.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agent_helpers import AddTool
from helpers import decode_spans, otlp_receiver
from smolagents import CodeAgent, LiteLLMModel, ToolCallingAgent
from smolagents.utils import AgentGenerationError

from pytest_smoltrace.records import Check, Verdict
from pytest_smoltrace.telemetry import tracing
from pytest_smoltrace.telemetry.spans import (
    FILE_DEFAULTS,
    FILE_DUPLICATES,
    REDACTED,
    SPAN_DEFAULTS,
    SpanOptions,
    read_span,
)
from pytest_smoltrace.testing import ScriptedModelServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:pydantic.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
]

MODEL = "openai/scripted"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    import litellm

    litellm.suppress_debug_info = True
    tracing.install()


@pytest.fixture
def srv() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


def model(srv: ScriptedModelServer, model_id: str = MODEL, **kwargs: Any) -> LiteLLMModel:
    return LiteLLMModel(model_id=model_id, api_base=srv.base_url, api_key="sk-test", retry=False, **kwargs)


def add_call(a: int, b: int) -> dict[str, Any]:
    return {"name": "add", "arguments": {"a": a, "b": b}}


def run_item(
    agent: Any,
    prompt: str,
    *,
    task_id: str = "t1",
    agent_type: str = "tool",
    verdict: Verdict | None = None,
    join_s: float = 30.0,
    propagate: str = "run_in_context",
) -> tuple[tracing.ItemTrace, dict[str, Any]]:
    """Run ``agent`` like runner.py: root span in this thread, ``agent.run`` in a worker thread.

    ``propagate``: ``run_in_context`` (the ItemTrace helper) or ``copy_context`` (the thread runs in a copy of
    the caller's contextvars, which carries the current span without the runner knowing about tracing).
    """
    attrs = tracing.item_attributes(
        nodeid=f"smoltrace/test::{agent_type}::{task_id}",
        task_id=task_id,
        agent_type=agent_type,
        model=MODEL,
        provider="litellm",
        run_id="run-1",
        task={"id": task_id, "prompt": prompt, "expected_tool": "add", "expected_keywords": ["5", "15"]},
    )
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = agent.run(prompt, return_full_result=True)
        except BaseException as exc:
            outcome["error"] = exc

    with tracing.item_trace(task_id, attrs) as tr:
        if propagate == "run_in_context":
            thread = threading.Thread(target=tr.run_in_context, args=(target,), daemon=True)
        else:
            thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True)
        thread.start()
        thread.join(join_s)
        outcome["thread"] = thread
        if verdict is not None:
            tr.add_verdict(verdict)
    return tr, outcome


def tree(doc: dict[str, Any]) -> dict[str | None, list[str]]:
    """parent name → child names (in start order)."""
    names = {s["span_id"]: s["name"] for s in doc["spans"]}
    children: dict[str | None, list[str]] = {}
    for s in doc["spans"]:
        children.setdefault(names.get(s.get("parent_span_id")), []).append(s["name"])
    return children


def by_name(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in doc["spans"] if s["name"] == name]


def children_of(doc: dict[str, Any], span: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in doc["spans"] if s.get("parent_span_id") == span["span_id"]]


def assert_tokens_exact(tr: tracing.ItemTrace, srv: ScriptedModelServer, key: str) -> dict[str, int]:
    expected = srv.usage_for(key)
    assert expected["requests"] > 0
    assert tr.llm_usage() == (expected["prompt_tokens"], expected["completion_tokens"])
    in_docs = [
        (s["attributes"].get("gen_ai.usage.input_tokens"), s["attributes"].get("gen_ai.usage.output_tokens"))
        for s in tr.llm_spans
    ]
    assert sum(p or 0 for p, _ in in_docs) == expected["prompt_tokens"]
    assert sum(c or 0 for _, c in in_docs) == expected["completion_tokens"]
    # no other span carries gen_ai.usage.*: summing a whole trace counts every call once
    others = [s for s in tr.document()["spans"] if s["category"] != "llm"]
    assert not [s for s in others if any(k.startswith("gen_ai.usage") for k in s.get("attributes", {}))]
    return expected


def assert_lean(doc: dict[str, Any]) -> None:
    """The traces.json format: no field at its default, no null/empty value, no duration_ms, compact evaluations."""
    for span in doc["spans"]:
        assert "duration_ms" not in span, span["name"]
        assert not {k for k, v in SPAN_DEFAULTS.items() if k in span and span[k] == v}, span
        assert all(v is not None and v != {} and v != [] for v in span.values()), span
        assert isinstance(span["start_time"], int) and span["end_time"] >= span["start_time"] > 10**18  # Unix ns
        assert set(span.get("attributes", {})).isdisjoint(FILE_DUPLICATES), span["name"]
        assert not [k for k, v in span.get("attributes", {}).items() if FILE_DEFAULTS.get(k) == v], span["name"]
        assert all(e["name"] != tracing.EVALUATION_EVENT and e.get("attributes") != {} for e in span.get("events", []))
        for evaluation in span.get("evaluations", []):
            assert not any(k.startswith("gen_ai.") for k in evaluation) and "score.value" not in evaluation
    (root,) = [s for s in doc["spans"] if "parent_span_id" not in s]
    # the document states the item's run, node, task and agent type once; the root span does not repeat them
    assert root["span_id"] == doc["root_span_id"]
    assert set(root.get("attributes", {})).isdisjoint(tracing.DOCUMENT_FIELDS)


# ------------------------------------------------------------------------------------------------ span trees


def test_tool_calling_agent_tree_names_and_attributes(srv: ScriptedModelServer) -> None:
    srv.add_script("sum please", [{"tool_calls": [add_call(2, 3), add_call(10, 5)]}, {"final_answer": "5 and 15"}])
    agent = ToolCallingAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1, max_steps=4)
    verdict = Verdict(
        (Check("final_answer", True, True, True), Check("expected_keywords", False, ["5", "16"], "5 and 15"))
    )
    tr, outcome = run_item(agent, "sum please", verdict=verdict)
    assert outcome["result"].output == "5 and 15"
    doc = tr.document()
    json.dumps(doc, allow_nan=False)  # plain JSON

    assert doc["trace_id"] == tr.trace_id and len(tr.trace_id) == 32
    assert doc["root_span_id"] == tr.span_id and len(tr.span_id) == 16
    assert (doc["run_id"], doc["task_id"], doc["agent_type"]) == ("run-1", "t1", "tool")
    assert doc["span_count"] == len(doc["spans"])
    assert {s["span_id"] for s in doc["spans"]} >= {s.get("parent_span_id") for s in doc["spans"]} - {None}
    assert_lean(doc)

    assert tree(doc) == {
        None: ["t1"],
        "t1": ["invoke_agent ToolCallingAgent"],
        "invoke_agent ToolCallingAgent": ["Step 1", "Step 2"],
        "Step 1": ["chat openai/scripted", "execute_tool add", "execute_tool add"],
        "Step 2": ["chat openai/scripted", "execute_tool final_answer"],
    }
    root = doc["spans"][0]
    # the root: no parent, kind INTERNAL (the default, so not written); read_span puts the defaults back
    assert root["category"] == "item" and "parent_span_id" not in root and "kind" not in root
    assert read_span(root)["parent_span_id"] is None and read_span(root)["kind"] == "INTERNAL"
    attrs = root["attributes"]
    assert doc["nodeid"] == "smoltrace/test::tool::t1" and "test.case.name" not in attrs
    assert "smoltrace.task.id" not in attrs and "smoltrace.agent.type" not in attrs and "smoltrace.run.id" not in attrs
    assert attrs["smoltrace.model.id"] == MODEL
    assert "input.mime_type" not in attrs and "output.mime_type" not in attrs  # text/plain, the default
    assert attrs["smoltrace.task.expected_keywords"] == ["5", "15"]
    assert attrs["input.value"] == "sum please" and "smoltrace.task.prompt" not in attrs  # the prompt once
    assert attrs["test.case.result.status"] == "fail" and attrs["smoltrace.outcome"] == "failed"
    # a failed verdict is an ERROR root, described by its failing checks (a failure never looks like a pass)
    assert root["status"] == "ERROR"
    assert root["status_description"] == 'failed checks: expected_keywords (expected: ["5", "16"]; actual: 5 and 15)'

    (agent_span,) = [s for s in doc["spans"] if s["category"] == "agent"]
    # gen_ai.operation.name is the category's (invoke_agent, chat, execute_tool): the OTLP export has it, the file not
    assert "gen_ai.operation.name" not in agent_span["attributes"]
    assert agent_span["attributes"]["gen_ai.agent.name"] == "ToolCallingAgent"
    first_llm = tr.llm_spans[0]["attributes"]
    assert "gen_ai.operation.name" not in first_llm
    assert first_llm["gen_ai.request.model"] == MODEL
    assert first_llm["gen_ai.provider.name"] == "openai"
    assert first_llm["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert tr.llm_spans[1]["attributes"]["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert first_llm["gen_ai.usage.input_tokens"] == srv.requests[0].usage["prompt_tokens"] > 0  # type: ignore[index]
    # each meaning once in traces.json: OpenInference's duplicates are left to the OTLP export
    assert not {"llm.token_count.prompt", "llm.model_name", "openinference.span.kind"} & set(first_llm)
    assert not any(k.startswith(("llm.input_messages.", "llm.tools.")) for k in first_llm)  # no content capture
    assert "gen_ai.usage.cost.total" not in first_llm  # no price given
    tool_attrs = [s["attributes"] for s in tr.tool_spans]
    assert [a["gen_ai.tool.name"] for a in tool_attrs] == ["add", "add", "final_answer"]
    assert [json.loads(a["gen_ai.tool.call.arguments"]) for a in tool_attrs[:2]] == [
        {"a": 2, "b": 3},
        {"a": 10, "b": 5},
    ]
    assert all("gen_ai.operation.name" not in a and "gen_ai.tool.type" not in a for a in tool_attrs)  # function
    assert all("gen_ai.tool.call.result" not in a for a in tool_attrs)  # content capture is opt-in

    # the verdict's gen_ai.evaluation.result events, written short: no prefix, no timestamp, the label's score left out
    assert "events" not in root
    assert root["evaluations"] == [
        {"name": "final_answer", "score.label": "pass", "explanation": "expected: true; actual: true"},
        {
            "name": "expected_keywords",
            "score.label": "fail",
            "explanation": 'expected: ["5", "16"]; actual: 5 and 15',
        },
    ]
    assert_tokens_exact(tr, srv, "sum please")
    assert tracing.active_items() == 0


@pytest.mark.parametrize("propagate", ["run_in_context", "copy_context"])
def test_code_agent_tools_sit_under_their_step_from_a_worker_thread(srv: ScriptedModelServer, propagate: str) -> None:
    script = [{"code": "x = add(2, 3)\nprint(x)"}, {"code": "y = add(x, 10)\nfinal_answer(y)"}]
    srv.add_script("add in code", script)
    agent = CodeAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1, max_steps=4)
    tr, outcome = run_item(agent, "add in code", agent_type="code", propagate=propagate)
    assert outcome["result"].output == 15
    doc = tr.document()
    assert tree(doc) == {
        None: ["t1"],
        "t1": ["invoke_agent CodeAgent"],
        "invoke_agent CodeAgent": ["Step 1", "Step 2"],
        "Step 1": ["chat openai/scripted", "execute_tool add"],
        "Step 2": ["chat openai/scripted", "execute_tool add", "execute_tool final_answer"],
    }
    step1, step2 = by_name(doc, "Step 1")[0], by_name(doc, "Step 2")[0]
    (add1,) = [s for s in children_of(doc, step1) if s["category"] == "tool"]
    add2 = next(s for s in children_of(doc, step2) if s["name"] == "execute_tool add")
    # positional arguments from the interpreter are named after the tool's inputs
    assert json.loads(add1["attributes"]["gen_ai.tool.call.arguments"]) == {"a": 2, "b": 3}
    assert json.loads(add2["attributes"]["gen_ai.tool.call.arguments"]) == {"a": 5, "b": 10}
    assert [s["attributes"]["gen_ai.response.finish_reasons"] for s in tr.llm_spans] == [["stop"], ["stop"]]
    assert tr.document()["agent_type"] == "code"
    assert_tokens_exact(tr, srv, "add in code")
    assert (outcome["result"].token_usage.input_tokens, outcome["result"].token_usage.output_tokens) == tr.llm_usage()


# ------------------------------------------------------------------------------------------------ tokens


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_tokens_with_planning_steps(srv: ScriptedModelServer, agent_cls: type) -> None:
    act = {"tool_calls": [add_call(1, 1)]} if agent_cls is ToolCallingAgent else {"code": "z = add(1, 1)"}
    script = {
        "turns": [{"content": "1. add\n<end_plan>"}, act, {"content": "2. answer\n<end_plan>"}, {"final_answer": "2"}]
    }
    srv.add_script("plan it", script)
    agent = agent_cls(tools=[AddTool()], model=model(srv), verbosity_level=-1, planning_interval=1, max_steps=3)
    tr, outcome = run_item(agent, "plan it")
    result = outcome["result"]
    expected = assert_tokens_exact(tr, srv, "plan it")
    assert (result.token_usage.input_tokens, result.token_usage.output_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    )
    doc = tr.document()
    # planning calls sit directly under the agent span; the AGENT span's own totals (monitor) miss them
    (agent_span,) = [s for s in doc["spans"] if s["category"] == "agent"]
    planning = [s for s in children_of(doc, agent_span) if s["category"] == "llm"]
    assert planning, tree(doc)
    # the AGENT span's own totals (smolagents' monitor) miss the planning calls: traces.json leaves them out
    assert not any(k.startswith("llm.token_count") for k in agent_span["attributes"])


@pytest.mark.parametrize("agent_cls", [ToolCallingAgent, CodeAgent])
def test_tokens_when_max_steps_is_reached(srv: ScriptedModelServer, agent_cls: type) -> None:
    act = {"tool_calls": [add_call(1, 2)]} if agent_cls is ToolCallingAgent else {"code": "w = add(1, 2)"}
    srv.add_script("never ends", {"turns": [act, act], "summary": "gave up"})
    agent = agent_cls(tools=[AddTool()], model=model(srv), verbosity_level=-1, max_steps=2)
    tr, outcome = run_item(agent, "never ends")
    assert outcome["result"].state == "max_steps_error"
    expected = assert_tokens_exact(tr, srv, "never ends")
    assert expected["requests"] == 3 and len(tr.llm_spans) == 3  # two steps + the forced final-answer call
    usage = outcome["result"].token_usage
    assert (usage.input_tokens, usage.output_tokens) == tr.llm_usage()


def test_tokens_and_error_span_when_the_model_fails_mid_run(srv: ScriptedModelServer) -> None:
    srv.add_script("fails later", [{"tool_calls": [add_call(2, 2)]}, {"status": 500}])
    agent = ToolCallingAgent(tools=[AddTool()], model=model(srv, max_retries=0), verbosity_level=-1, max_steps=4)
    tr, outcome = run_item(agent, "fails later", verdict=Verdict((), error="AgentGenerationError: boom"))
    assert isinstance(outcome["error"], AgentGenerationError)
    assert [r.status for r in srv.requests] == [200, 500]
    assert_tokens_exact(tr, srv, "fails later")
    ok, failed = tr.llm_spans
    assert ok["status"] == "OK" and ok["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert failed["status"] == "ERROR"
    assert failed["attributes"]["gen_ai.request.model"] == MODEL  # known from the item, not from the response
    assert failed["name"] == "chat openai/scripted"
    assert failed["attributes"]["error.type"]
    assert "gen_ai.usage.input_tokens" not in failed["attributes"]
    assert [e["name"] for e in failed["events"]] == ["exception"]
    assert failed["events"][0]["attributes"]["exception.type"] and isinstance(failed["events"][0]["timestamp"], int)
    root = tr.document()["spans"][0]
    assert (root["status"], root["status_description"]) == ("ERROR", "AgentGenerationError: boom")
    assert root["attributes"]["smoltrace.outcome"] == "error" and "events" not in root and "evaluations" not in root
    assert_lean(tr.document())


# ------------------------------------------------------------------------------------------------ isolation


def test_concurrent_items_keep_their_own_spans(srv: ScriptedModelServer) -> None:
    keys = ["alpha job", "beta job", "gamma job"]
    for i, key in enumerate(keys):
        srv.add_script(key, [{"tool_calls": [add_call(i, i)]}, {"final_answer": str(2 * i)}])
    traces: dict[str, tracing.ItemTrace] = {}

    def one(key: str) -> None:
        agent = ToolCallingAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1)
        traces[key], _ = run_item(agent, key, task_id=key.split()[0])

    threads = [threading.Thread(target=one, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len({tr.trace_id for tr in traces.values()}) == 3
    for key, tr in traces.items():
        assert_tokens_exact(tr, srv, key)
        doc = tr.document()
        assert doc["task_id"] == key.split()[0] and len(doc["spans"]) == 8
        assert all(key in s["attributes"].get("input.value", key) for s in doc["spans"] if s["category"] == "agent")
    assert tracing.active_items() == 0


def test_spans_of_an_abandoned_agent_thread_are_not_kept(srv: ScriptedModelServer) -> None:
    srv.add_script("slow one", [{"tool_calls": [add_call(1, 1)]}, {"final_answer": "2", "delay": 0.6}])
    agent = ToolCallingAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1)
    tr, outcome = run_item(agent, "slow one", join_s=0.3)  # the item gives up while the agent still runs
    assert outcome["thread"].is_alive()
    assert tracing.active_items() == 0
    before = json.dumps(tr.document())
    outcome["thread"].join(10)
    assert "result" in outcome  # the agent did finish later…
    assert json.dumps(tr.document()) == before  # …but its late spans did not join the item
    assert tracing.active_items() == 0
    spans = tr.document()["spans"]
    assert "execute_tool final_answer" not in [s["name"] for s in spans]
    # what the abandoned run still had open (the agent, the step it was in, whatever ran there) was ended with the
    # item, so the item is one tree; which step that was depends on the machine's speed
    left_open = [s for s in spans if (s.get("status"), s.get("status_description")) == ("ERROR", tracing.LEFT_OPEN)]
    assert {s["category"] for s in left_open} >= {"agent", "step"}, [(s["name"], s.get("status")) for s in spans]
    ids = {s["span_id"] for s in spans}
    assert [s["name"] for s in spans if s.get("parent_span_id") not in ids] == ["t1"]


def test_item_trace_misuse_is_loud() -> None:
    tr = tracing.item_trace("x", {})
    with pytest.raises(RuntimeError):
        _ = tr.trace_id
    with tr:
        pass
    with pytest.raises(RuntimeError):
        tr.add_verdict(Verdict(()))
    with pytest.raises(RuntimeError), tr:
        pass


def test_exception_in_block_marks_the_root_and_still_collects() -> None:
    with pytest.raises(ValueError), tracing.item_trace("boom", {"test.case.name": "n"}) as tr:
        raise ValueError("bad header Bearer abc.def")
    (root,) = tr.document()["spans"]
    assert (root["status"], root["status_description"]) == ("ERROR", f"ValueError: bad header Bearer {REDACTED}")
    assert root["events"][0]["name"] == "exception"
    assert root["events"][0]["attributes"]["exception.message"] == f"bad header Bearer {REDACTED}"
    assert root["attributes"]["error.type"] == "ValueError"


# ------------------------------------------------------------------------------------------------ hygiene


def test_documents_cap_long_values_and_redact_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "supersecretvalue123")
    tracing.install(max_attribute_chars=50)
    try:
        attrs = {
            "test.case.name": "n",
            "smoltrace.task.prompt": "x" * 500,
            "http.request.header.authorization": "Bearer abc.def",
            "note": "token Bearer eyJhbGciOi.payload and sk-abcdefghijklmnop",
            "config": '{"api_key": "plain-key-value", "model": "m"}',
            "env_leak": "the key is supersecretvalue123 ok",
            "tags": ("hf_abcdefghijkl", "fine"),
        }
        with tracing.item_trace("secret", attrs) as tr:
            pass
    finally:
        tracing.install(max_attribute_chars=4096)
    shown = tr.document()["spans"][0]["attributes"]
    assert shown["smoltrace.task.prompt"] == "x" * 50 + "… [450 more chars]"
    assert shown["http.request.header.authorization"] == REDACTED
    assert shown["note"] == f"token Bearer {REDACTED} and sk-{REDACTED}"
    assert shown["config"] == f'{{"api_key": "{REDACTED}", "model": "m"}}'
    assert shown["env_leak"] == f"the key is {REDACTED} ok"
    assert shown["tags"] == [f"hf_{REDACTED}", "fine"]
    assert SpanOptions.from_env().max_attribute_chars == 4096


def test_tool_results_only_with_content_capture(srv: ScriptedModelServer) -> None:
    srv.add_script("capture me", [{"tool_calls": [add_call(20, 22)]}, {"final_answer": "42"}])
    tracing.install(capture_content=True)
    try:
        agent = ToolCallingAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1)
        tr, _ = run_item(agent, "capture me")
    finally:
        tracing.install(capture_content=False)
    results = [s["attributes"].get("gen_ai.tool.call.result") for s in tr.tool_spans]
    assert results == ["42", "42"]


# ------------------------------------------------------------------------------------------------ OTLP


def test_otlp_export_reaches_a_real_receiver(srv: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    srv.add_script("export me", [{"code": "v = add(2, 3)"}, {"code": "final_answer(v)"}])
    with otlp_receiver() as receiver:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-smoltrace-test=yes")
        try:
            tracing.install(otlp=True)
            agent = CodeAgent(tools=[AddTool()], model=model(srv), verbosity_level=-1)
            verdict = Verdict((Check("final_answer", True, True, True), Check("expected_answer", True, 5, 5)))
            tr, outcome = run_item(agent, "export me", agent_type="code", verdict=verdict)
            assert outcome["result"].output == 5
            assert tracing.flush(10)
        finally:
            assert tracing.shutdown(10)
    assert receiver.requests
    headers = receiver.requests[0][0]
    assert headers["path"] == "/v1/traces" and headers["content-type"] == "application/x-protobuf"
    assert headers["x-smoltrace-test"] == "yes"
    received = [s for s in decode_spans(receiver.bodies) if s["trace_id"] == tr.trace_id]
    doc = tr.document()
    # the same spans as traces.json: ids, parentage, names, attributes
    assert sorted((s["span_id"], s["parent_span_id"], s["name"]) for s in received) == sorted(
        (s["span_id"], s.get("parent_span_id"), s["name"]) for s in doc["spans"]
    )
    got = {s["span_id"]: s for s in received}
    for span in doc["spans"]:
        exported = got[span["span_id"]]["attributes"]
        mine = span.get("attributes", {})
        # the OTLP export has the file's attributes plus OpenInference's names of the same facts (Phoenix reads them),
        # the defaults the file leaves out, and on the root the attributes the file's document states once
        assert {k: v for k, v in exported.items() if k in mine} == mine, span["name"]
        left_out = set(exported) - set(mine) - FILE_DUPLICATES
        assert {k: exported[k] for k in left_out - set(tracing.DOCUMENT_FIELDS)} == {
            k: FILE_DEFAULTS[k] for k in left_out - set(tracing.DOCUMENT_FIELDS)
        }, span["name"]
        for attribute in left_out & set(tracing.DOCUMENT_FIELDS):
            assert span["span_id"] == doc["root_span_id"]
            assert exported[attribute] == doc[tracing.DOCUMENT_FIELDS[attribute]]
        assert "openinference.span.kind" in exported
        operation = {"agent": "invoke_agent", "llm": "chat", "tool": "execute_tool"}.get(span["category"])
        assert exported.get("gen_ai.operation.name") == operation, span["name"]
    (root,) = [s for s in received if s["parent_span_id"] is None]
    assert root["name"] == "t1" and root["attributes"]["test.case.name"] == "smoltrace/test::code::t1"
    evaluations = [e for e in root["events"] if e["name"] == "gen_ai.evaluation.result"]
    assert [
        (e["attributes"]["gen_ai.evaluation.name"], e["attributes"]["gen_ai.evaluation.score.label"])
        for e in evaluations
    ] == [
        ("final_answer", "pass"),
        ("expected_answer", "pass"),
    ]
    # the export sends the evaluations as events, in full; the file writes the same facts short
    assert all(e["attributes"]["gen_ai.evaluation.score.value"] == 1.0 for e in evaluations)
    short = [
        {
            k.removeprefix("gen_ai.evaluation."): v
            for k, v in e["attributes"].items()
            if k != "gen_ai.evaluation.score.value"
        }
        for e in evaluations
    ]
    assert doc["spans"][0]["evaluations"] == short
    assert root["resource"]["service.name"] == "pytest-smoltrace"
    tool_parents = {got[s["parent_span_id"]]["name"] for s in received if s["name"].startswith("execute_tool")}
    assert tool_parents == {"Step 1", "Step 2"}
    # export is off again: nothing is queued, flushing is immediate
    assert tracing.flush(0.01)
