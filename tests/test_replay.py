"""Record and replay (issue 14): a run recorded against the scripted server replays with the server gone, item for
item the same; a request without a recording is the item's error; secrets never reach a cassette."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from conftest import BenchRun

from pytest_smoltrace.cassettes import cassette_path
from pytest_smoltrace.testing import ScriptedModelServer

#: Fields that differ between any two runs (timings, ids), or that replay changes on purpose (cost, replayed).
VOLATILE = {
    "evaluation_date",
    "execution_time_ms",
    "enhanced_trace_info",
    "trace_id",
    "span_id",
    "run_id",
    "cost_usd",
    "replayed",
    "recorded_cost_usd",
}
SECRET = "sk-test-0123456789-do-not-leak"


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A results row without what differs between two runs of the same behaviour: timings, ids, and the order in
    which an agent's parallel tool calls of one step happened to start."""
    out = {k: v for k, v in row.items() if k not in VOLATILE}
    calls = [{k: v for k, v in c.items() if k not in ("duration_ms", "started_at")} for c in row["tool_calls"]]
    out["tool_calls"] = sorted(calls, key=lambda c: json.dumps(c, sort_keys=True))
    # the same order, as it shows in the tools used and in the checks that list them
    out["tools_used"] = sorted(row.get("tools_used") or [])
    out["checks"] = [
        {**c, "actual": sorted(c["actual"], key=str) if isinstance(c.get("actual"), list) else c.get("actual")}
        for c in row.get("checks") or []
    ]
    return out


def bundled_scripts() -> dict[str, Any]:
    text = resources.files("pytest_smoltrace.data").joinpath("default.script.json").read_text("utf-8")
    return dict(json.loads(text))


def test_a_recorded_run_replays_item_for_item_with_the_server_gone_under_xdist_and_repeats(
    bench: Any, server: ScriptedModelServer, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # sent to the server with every request: never in a cassette
    common = ("--smoltrace-dataset", "default", "--smoltrace-repeats", "2", "--smoltrace-cassette-dir", "cassettes")
    model = "openai/gpt-4o-mini"  # litellm has its price: the recorded run costs something
    recorded = bench(
        None, bundled_scripts(), *common, "--smoltrace-record-mode", "once", "-n", "2",
        run_id="rec", model=model, subprocess=True,
    )  # fmt: skip
    assert recorded.result.ret == pytest.ExitCode.OK, recorded.stdout
    served = len(server.requests)
    cassettes = sorted((recorded.run_dir.parents[1] / "cassettes").glob("*.json"))
    assert len(cassettes) == len(recorded.rows) == 48  # one per item: 24 tasks x 2 repeats
    assert all(SECRET not in c.read_text(encoding="utf-8") for c in cassettes)
    assert all("authorization" not in c.read_text(encoding="utf-8").lower() for c in cassettes)

    dead = server.base_url
    server.stop()  # the model is gone: a replay must not need it (no key either)
    monkeypatch.delenv("OPENAI_API_KEY")
    result = pytester.runpytest_subprocess(
        *("--smoltrace-model", model, "--smoltrace-api-base", dead, "-p", "no:randomly", "--smoltrace-run-id", "rep"),
        *common,
        *("--smoltrace-record-mode", "none", "-n", "2"),
    )
    replayed = BenchRun(result, pytester.path / "smoltrace_results" / "rep")
    assert replayed.result.ret == pytest.ExitCode.OK, replayed.stdout
    assert len(server.requests) == served
    before = {r["test_case_uid"]: r for r in recorded.rows}
    after = {r["test_case_uid"]: r for r in replayed.rows}
    assert before.keys() == after.keys()
    for nodeid, row in after.items():
        # verdict, checks, tool calls (results too: get_current_time's come from the cassette), answer, steps,
        # stop reason, tokens: all equal
        assert comparable(row) == comparable(before[nodeid]), nodeid
        assert row["replayed"] is True and row["cost_usd"] == 0.0
        assert before[nodeid]["cost_usd"] > 0 and row["recorded_cost_usd"] == pytest.approx(before[nodeid]["cost_usd"])
    # the clock's calls are among them: their results come from the cassette, not from the clock
    assert any(c["name"] == "get_current_time" for r in after.values() for c in r["tool_calls"])
    meta = replayed.read("metadata.json")
    assert (meta["record_mode"], meta["replayed_attempts"]) == ("none", 48)
    assert meta["totals"]["cost_usd"] == 0.0
    # no external effect is reported as newly executed: tool and model spans say their results were replayed
    spans = [s for doc in replayed.read("traces.json") for s in doc["spans"]]
    tool_spans = [s for s in spans if s.get("category") == "tool" and not s["name"].endswith("final_answer")]
    assert tool_spans and all(s.get("attributes", {}).get("smoltrace.replayed") is True for s in tool_spans)
    llm_spans = [s for s in spans if s.get("category") == "llm"]
    assert llm_spans and all(s.get("attributes", {}).get("smoltrace.replayed") is True for s in llm_spans)
    roots = [doc["spans"][0] for doc in replayed.read("traces.json")]
    assert all(r.get("attributes", {}).get("smoltrace.replayed") is True for r in roots)


TASKS = [
    {"id": "paris", "prompt": "[k-paris] What is the weather in Paris?", "expected_tool": "get_weather"},
    {"id": "sum", "prompt": "[k-sum] What is 2 + 3?", "expected_answer": "5", "agent_type": "tool"},
]
SCRIPTS = {
    "[k-paris]": {
        "tool": [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]}, {"final_answer": "20"}],
        "code": [{"code": "print(get_weather('Paris'))"}, {"final_answer": "20"}],
    },
    "[k-sum]": [{"final_answer": "5"}],
}


def test_a_changed_prompt_under_none_is_an_error_naming_item_cassette_and_difference(
    bench: Any, server: ScriptedModelServer, pytester: pytest.Pytester
) -> None:
    args = ("--smoltrace-cassette-dir", "cassettes")
    first = bench(TASKS, SCRIPTS, *args, "--smoltrace-record-mode", "all", run_id="rec", subprocess=True)
    first.result.assert_outcomes(passed=3)
    served = len(server.requests)
    changed = [dict(TASKS[0], prompt="[k-paris] What is the weather in Paris, France?"), TASKS[1]]
    run = bench(changed, None, *args, "--smoltrace-record-mode", "none", run_id="rep", subprocess=True)
    run.result.assert_outcomes(passed=1, errors=2)  # never a pass, and never a network call
    assert len(server.requests) == served
    row = run.row("paris", "tool")
    cassette = cassette_path(pytester.path / "cassettes", "smoltrace/tasks.json::tool::paris")
    assert cassette.exists()
    assert row["error_type"] == "CassetteMiss" and row["outcome"] == "error"
    assert row["error"].startswith(f"smoltrace/tasks.json::tool::paris: cassette {cassette}: request 1 user message")
    assert "differs: recorded 'New task:\\n[k-paris] What is the weather in Paris?'" in row["error"]
    assert "now 'New task:\\n[k-paris] What is the weather in Paris, France?'" in row["error"]
    assert "user message differs" in run.stdout  # the pytest failure text says it too
    # new_episodes records what no longer matches (the server is asked again), and replays the rest
    again = bench(changed, None, *args, "--smoltrace-record-mode", "new_episodes", run_id="new", subprocess=True)
    again.result.assert_outcomes(passed=3)
    assert len(server.requests) == served + 4  # the changed task's two agents, two model calls each
    assert {r["task_id"]: r["replayed"] for r in again.rows} == {"paris": False, "sum": True}
    # and then none replays the changed task too
    third = bench(changed, None, *args, "--smoltrace-record-mode", "none", run_id="none-again", subprocess=True)
    third.result.assert_outcomes(passed=3)
    assert all(r["replayed"] for r in third.rows) and len(server.requests) == served + 4


def test_none_without_a_cassette_is_an_error_and_once_records_only_what_is_missing(
    bench: Any, server: ScriptedModelServer
) -> None:
    args = ("--smoltrace-cassette-dir", "cassettes", "--smoltrace-agent-type", "tool")
    missing = bench(TASKS, SCRIPTS, *args, "--smoltrace-record-mode", "none", run_id="none", subprocess=True)
    missing.result.assert_outcomes(errors=2)
    assert not server.requests
    assert all("does not exist; --smoltrace-record-mode none only replays" in r["error"] for r in missing.rows)
    once = bench(TASKS, None, *args, "--smoltrace-record-mode", "once", run_id="once", subprocess=True)
    once.result.assert_outcomes(passed=2)
    served = len(server.requests)
    twice = bench(TASKS, None, *args, "--smoltrace-record-mode", "once", run_id="twice", subprocess=True)
    twice.result.assert_outcomes(passed=2)
    assert len(server.requests) == served and all(r["replayed"] for r in twice.rows)


def test_scrub_replaces_secret_environment_values_and_bearer_tokens() -> None:
    from pytest_smoltrace.cassettes import SCRUBBED, scrub

    env = {"MY_API_KEY": "abcdefgh12345", "HOME": "/root/home-dir", "GH_TOKEN": "short"}
    text = "key abcdefgh12345 at /root/home-dir, Authorization: Bearer zzzzzzzzzzzz, short"
    assert scrub(text, env) == f"key {SCRUBBED} at /root/home-dir, Authorization: Bearer {SCRUBBED}, short"


@pytest.mark.parametrize(
    ("provider", "model", "flavour"),
    [("inference", "tgi", "openai"), ("ollama", "llama3.2", "ollama"), ("litellm", "openai/scripted", "openai")],
)
def test_every_http_provider_replays_both_agent_types(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, provider: str, model: str, flavour: str
) -> None:
    (pytester.path / "tasks.json").write_text(json.dumps(TASKS), encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", SECRET)

    def run(api_base: str, mode: str, run_id: str) -> BenchRun:
        result = pytester.runpytest_subprocess(
            *("--smoltrace-model", model, "--smoltrace-provider", provider, "--smoltrace-api-base", api_base),
            *("--smoltrace-dataset", "tasks.json", "--smoltrace-record-mode", mode, "--smoltrace-run-id", run_id),
            *("-p", "no:randomly", "--smoltrace-cassette-dir", "cassettes"),
        )
        return BenchRun(result, pytester.path / "smoltrace_results" / run_id)

    with ScriptedModelServer(SCRIPTS) as srv:
        base = srv.base_url if flavour == "openai" else srv.url
        recorded = run(base, "once", "rec")
        recorded.result.assert_outcomes(passed=3)
        assert len(srv.requests) == 5  # paris: 2 calls per agent type; sum: 1
    replayed = run(base, "none", "rep")  # the server is gone
    replayed.result.assert_outcomes(passed=3)
    before = {r["test_case_uid"]: comparable(r) for r in recorded.rows}
    assert {r["test_case_uid"]: comparable(r) for r in replayed.rows} == before
    assert all(r["replayed"] for r in replayed.rows)
    assert not any(SECRET in p.read_text(encoding="utf-8") for p in (pytester.path / "cassettes").glob("*.json"))


def test_several_models_replay_each_from_its_own_cassettes(pytester: pytest.Pytester) -> None:
    (pytester.path / "tasks.json").write_text(json.dumps(TASKS[1:]), encoding="utf-8")
    with (
        ScriptedModelServer({"[k-sum]": [{"final_answer": "5"}]}) as a,
        ScriptedModelServer({"[k-sum]": [{"final_answer": "6"}]}) as b,
    ):
        (pytester.path / "models.yaml").write_text(
            f"- {{id: openai/a, label: right, api_base: '{a.base_url}'}}\n"
            f"- {{id: openai/b, label: wrong, api_base: '{b.base_url}'}}\n",
            encoding="utf-8",
        )
        args = ("--smoltrace-models", "models.yaml", "--smoltrace-dataset", "tasks.json", "-p", "no:randomly")
        args += ("--smoltrace-cassette-dir", "cassettes", "--smoltrace-repeats", "2")
        recorded = pytester.runpytest_subprocess(*args, "--smoltrace-record-mode", "once", "--smoltrace-run-id", "r")
        recorded.assert_outcomes(passed=2, failed=2)
    names = sorted(p.name for p in (pytester.path / "cassettes").iterdir())
    assert names == [
        f"cassette-tasks.json__{label}__tool__sum-repeat-{r}.json" for label in ("right", "wrong") for r in (0, 1)
    ]
    replayed = pytester.runpytest_subprocess(*args, "--smoltrace-record-mode", "none", "--smoltrace-run-id", "p")
    replayed.assert_outcomes(passed=2, failed=2)  # each model's answers, from its own cassettes, with both servers gone
    rows = json.loads((pytester.path / "smoltrace_results" / "p" / "results.json").read_text(encoding="utf-8"))
    assert {(r["model_label"], r["response"], r["replayed"]) for r in rows} == {
        ("right", "5", True),
        ("wrong", "6", True),
    }
