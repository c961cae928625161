"""The scripted server's faults, and what a run makes of them: each spoilt response is that item's error, the
session goes on, and every item has its row."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from pytest_smoltrace.testing import FAULTS, ScriptedModelServer

ANSWER = {"final_answer": "20°C"}


def post(srv: ScriptedModelServer, prompt: str) -> tuple[int, bytes]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]}).encode()
    request = urllib.request.Request(
        srv.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_spoils_the_response_as_documented(fault: str) -> None:
    turn = {"content": "hello", "fault": fault, "fault_bytes": 300_000}
    with ScriptedModelServer({"[k]": {"tool": [], "code": [turn]}}) as srv:
        if fault in ("reset", "truncated"):
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
                post(srv, "go [k]")
        else:
            status, body = post(srv, "go [k]")
            assert status == 200
            if fault == "invalid_json":
                with pytest.raises(ValueError):
                    json.loads(body)
            else:
                data = json.loads(body)
                assert ("usage" in data) == (fault != "no_usage")
                content = data["choices"][0]["message"]["content"]
                assert len(content) == (300_000 if fault == "huge_body" else 5)
        (entry,) = srv.requests
        assert entry.fault == fault and entry.status == 200
        assert (entry.usage is None) == (fault != "huge_body")  # a spoilt response bills nothing trustworthy


def test_raw_usage_and_string_arguments_are_sent_as_they_are() -> None:
    turn: dict[str, Any] = {
        "tool_calls": [{"name": "get_weather", "arguments": '{"location": "Paris'}],
        "raw_usage": {"prompt_tokens": -220, "completion_tokens": 10**20, "total_tokens": 5},
    }
    with ScriptedModelServer({"[k]": {"tool": [], "code": [turn]}}) as srv:
        status, body = post(srv, "go [k]")
    data = json.loads(body)
    assert status == 200 and data["usage"] == turn["raw_usage"]
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"location": "Paris'


def test_bad_fault_names_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="'fault' must be one of"):
        ScriptedModelServer({"[k]": {"tool": [{"content": "x", "fault": "melt"}], "code": []}})


def test_a_run_through_faults_reports_each_as_its_items_error_and_goes_on(bench: Any) -> None:
    faults = ["invalid_json", "truncated", "reset", "slow_drip"]
    tasks = [{"id": f, "prompt": f"Weather please [k-{f}]", "expected_keywords": ["20"]} for f in faults]
    tasks.append({"id": "bad_args", "prompt": "Weather please [k-bad-args]", "expected_keywords": ["20"]})
    scripts: dict[str, Any] = {f"[k-{f}]": {"tool": [{**ANSWER, "fault": f}], "code": []} for f in faults}
    scripts["[k-bad-args]"] = {
        "tool": [{"tool_calls": [{"name": "get_weather", "arguments": '{"location": "Par'}]}, ANSWER],
        "code": [],
    }
    run = bench(tasks, scripts, "--smoltrace-agent-type", "tool", "--smoltrace-retries", "0", subprocess=True)
    run.result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    rows = {r["task_id"]: r for r in run.rows}
    assert set(rows) == {*faults, "bad_args"}  # every item has its row
    for fault in ("invalid_json", "truncated", "reset"):
        assert rows[fault]["outcome"] == "error" and rows[fault]["error"], rows[fault]
    assert rows["slow_drip"]["outcome"] == "passed"  # slow is not broken
    assert rows["bad_args"]["outcome"] in ("passed", "failed")  # the agent sees the parse error and goes on
