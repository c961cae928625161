"""Numbers that are possible (issue 11, part 3): usage a model response did not report is unknown (null, never 0),
impossible usage (negative, absurd) is a model error naming the field, and every integer the Hub sink writes fits
its column (or the error names the column and the row).

Missing and impossible usage come from :class:`UsageRewriter`, a small OpenAI-compatible proxy in front of the
scripted server that rewrites the ``usage`` object of the replies to requests carrying a key.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_export_rows import write_sample_run

from pytest_smoltrace.runner import MAX_USAGE_TOKENS, StepUsage, step_usage, usage_problem
from pytest_smoltrace.testing import ScriptedModelServer
from pytest_smoltrace.testing.hub import FakeHub
from smoltrace_export.hub import PublishError, check_columns, publish_run_dir, value_problem

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

#: A rewrite that removes the field (or, as the whole rewrite, the ``usage`` object).
DROP = object()
WEATHER_TOOL = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}


class UsageRewriter:
    """An OpenAI-compatible proxy for the scripted server: a reply to a request whose text contains a key of
    ``rewrites`` gets its ``usage`` replaced: ``DROP`` (no ``usage`` at all), ``None`` (``"usage": null``) or a dict
    of fields to set (a ``DROP`` value removes that field). Other replies and errors pass through unchanged."""

    def __init__(self, upstream: ScriptedModelServer, rewrites: Mapping[str, Any]) -> None:
        self.upstream = upstream
        self.rewrites = dict(rewrites)
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = owner._forward(self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def _forward(self, path: str, body: bytes) -> tuple[int, bytes]:
        upstream = self.upstream.base_url.removesuffix("/v1") + path
        request = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        text = body.decode("utf-8", "replace")
        key = next((k for k in self.rewrites if k in text), None)
        if key is None or status != 200:
            return status, payload
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
        data = json.loads(payload)
        rewrite = self.rewrites[key]
        if rewrite is DROP:
            data.pop("usage", None)
        elif rewrite is None:
            data["usage"] = None
        else:
            for name, value in rewrite.items():
                if value is DROP:
                    data["usage"].pop(name, None)
                else:
                    data["usage"][name] = value
        return status, json.dumps(data).encode()

    def __enter__(self) -> UsageRewriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def rewriter(server: ScriptedModelServer) -> Iterator[UsageRewriter]:
    rewrites = {
        "[u-absent]": DROP,
        "[u-null]": None,
        "[u-no-completion]": {"completion_tokens": DROP, "total_tokens": DROP},
        "[u-negative]": {"prompt_tokens": -220, "total_tokens": -215},
        "[u-huge]": {"prompt_tokens": 10**20, "total_tokens": 10**20 + 5},
    }
    with UsageRewriter(server, rewrites) as proxy:
        yield proxy


# ----------------------------------------------------------------------------------------------- the rule


def test_usage_rule_names_the_field() -> None:
    assert (
        usage_problem("prompt_tokens", 0) is None and usage_problem("completion_tokens", MAX_USAGE_TOKENS - 1) is None
    )
    assert usage_problem("prompt_tokens", -220) == (
        "model response: usage.prompt_tokens = -220 (must be a non-negative integer below 10^12)"
    )
    for bad in (10**12, 10**20, 1.5, "12", True, None):
        problem = usage_problem("completion_tokens", bad)
        assert problem is not None and problem.startswith(f"model response: usage.completion_tokens = {bad!r} ")


def _step(tokens: tuple[Any, Any] | None, content: str = "Thought: done") -> Any:
    usage = None if tokens is None else SimpleNamespace(input_tokens=tokens[0], output_tokens=tokens[1])
    message = SimpleNamespace(content=content, tool_calls=None)
    return SimpleNamespace(token_usage=usage, model_output_message=message)


def test_step_usage_unknown_is_none_never_zero() -> None:
    assert step_usage(_step((120, 30))) == StepUsage(120, 30)
    # litellm's stand-in for a response without usage is Usage(0, 0, 0): no chat request has an empty prompt
    assert step_usage(_step((0, 0))) == StepUsage(None, None, unreported=True)
    assert step_usage(_step(None)) == StepUsage(None, None, unreported=True)
    # a missing completion count is filled with 0 by litellm; a non-empty answer is at least one token
    assert step_usage(_step((120, 0))) == StepUsage(120, None, unreported=True)
    assert step_usage(_step((120, 0), content="")) == StepUsage(120, 0)
    negative = step_usage(_step((-220, 5)))
    assert negative.input_tokens is None and negative.output_tokens is None
    assert negative.problem is not None and "usage.prompt_tokens = -220" in negative.problem


# ----------------------------------------------------------------------------------------------- end to end


def test_missing_usage_is_null_and_impossible_usage_is_a_model_error(
    bench: Any, server: ScriptedModelServer, rewriter: UsageRewriter
) -> None:
    def weather(task_id: str, key: str) -> dict[str, Any]:
        return {
            "id": task_id,
            "prompt": f"Weather in Paris? {key}",
            "agent_type": "tool",
            "expected_tool": "get_weather",
        }

    keys = {"absent": "[u-absent]", "null": "[u-null]", "no_completion": "[u-no-completion]"}
    keys |= {"negative": "[u-negative]", "huge": "[u-huge]", "normal": "[u-normal]"}
    tasks = [weather(task_id, key) for task_id, key in keys.items()]
    script = {"tool": [WEATHER_TOOL, WEATHER_TOOL, {"final_answer": "20°C"}]}
    run = bench(
        tasks,
        {key: script for key in keys.values()},
        "--smoltrace-api-base",
        rewriter.base_url,
        "--smoltrace-price-input",
        "1",
        "--smoltrace-price-output",
        "2",
        "--smoltrace-concurrency",
        "2",
        subprocess=True,
    )
    run.result.assert_outcomes(passed=4, errors=2)

    normal = run.row("normal", "tool")
    assert normal["total_tokens"] == server.usage_for("[u-normal]")["total_tokens"] > 0
    assert normal["cost_usd"] is not None and normal["cost_usd"] > 0

    # no usage in the response (or usage: null): the run passed, its tokens and cost are unknown, not 0
    for task_id in ("absent", "null"):
        row = run.row(task_id, "tool")
        assert row["outcome"] == "passed", row["error"]
        assert row["prompt_tokens"] is None and row["completion_tokens"] is None, task_id
        assert row["total_tokens"] is None and row["cost_usd"] is None, task_id
        assert json.loads(row["enhanced_trace_info"])["total_tokens"] is None
    partial = run.row("no_completion", "tool")
    assert partial["prompt_tokens"] == server.usage_for("[u-no-completion]")["prompt_tokens"]
    assert partial["completion_tokens"] is None and partial["total_tokens"] is None and partial["cost_usd"] is None
    journal = [json.loads(line) for line in (run.run_dir / "journal.jsonl").read_text().splitlines() if line]
    absent_steps = next(r["record"]["steps"] for r in journal if r["record"]["task_id"] == "absent")
    assert [(s["input_tokens"], s["output_tokens"]) for s in absent_steps] == [(None, None)] * 3

    # negative or absurd usage: a model error naming the field; the agent stops at that response
    for task_id, value in (("negative", "-220"), ("huge", str(10**20))):
        row = run.row(task_id, "tool")
        assert row["outcome"] == "error" and row["stop_reason"] == "error" and row["error_type"] == "ModelResponseError"
        assert row["error"].startswith(
            f"model response: usage.prompt_tokens = {value} (must be a non-negative integer below 10^12)"
        )
        assert row["total_tokens"] is None and row["cost_usd"] is None and row["prompt_tokens"] is None
        assert row["steps"] == 1 and row["tools_used"] == ["get_weather"]
    assert rewriter.requests["[u-negative]"] == 1 and rewriter.requests["[u-huge]"] == 1
    assert "usage.prompt_tokens = -220" in run.stdout  # the error outcome's message
    assert not any(isinstance(v, int) and v < 0 for r in run.rows for v in r.values())


# ----------------------------------------------------------------------------------------------- Hub columns


def test_hub_value_rule() -> None:
    assert value_problem("int64", 2**63 - 1) is None and value_problem("int64", -(2**63)) is None
    assert value_problem("int64", None) is None and value_problem("float64", 10**20) is None
    assert value_problem("int64", 2**63) == "9223372036854775808 does not fit int64 (-2^63 … 2^63-1)"
    assert value_problem("int64", 1.5) == "1.5 is not an integer"
    assert value_problem("int64", "12") == "'12' is not an integer"
    assert value_problem("float64", 10**400) == "an integer of about 401 digits does not fit float64"
    assert value_problem("list<string>", 3) == "3 is not a list"
    with pytest.raises(ValueError, match=r"results row 2 \(x\): column 'steps' \(int64\): 'a' is not an integer"):
        check_columns({"results": [{"steps": 1}, {"test_case_uid": "x", "steps": "a"}]})


def test_publish_names_the_column_and_row_an_integer_does_not_fit(fake_hub: FakeHub, tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path)
    rows = json.loads((run_dir / "results.json").read_text())
    rows[1]["total_tokens"] = 10**20
    (run_dir / "results.json").write_text(json.dumps(rows))
    board = json.loads((run_dir / "leaderboard_row.json").read_text())
    board[0]["total_prompt_tokens"] = -(2**64)
    (run_dir / "leaderboard_row.json").write_text(json.dumps(board))

    with pytest.raises(PublishError) as caught:
        publish_run_dir(run_dir, retries=1, backoff_s=0.01)
    message = str(caught.value)
    assert "Python int too large" not in message
    uid = rows[1]["test_case_uid"]
    assert f"results row 2 ({uid}): column 'total_tokens' (int64): 100000000000000000000 does not fit int64" in message
    assert (
        "leaderboard row 1 (tool): column 'total_prompt_tokens' (int64): -18446744073709551616 does not fit" in message
    )
    assert fake_hub.repos.ids() == []  # found before anything was created on the Hub
    assert json.loads((run_dir / "results.json").read_text()) == rows  # the run directory is intact

    rows[1]["total_tokens"] = 2**63 - 1  # the largest int64 is written and read back as it is
    (run_dir / "results.json").write_text(json.dumps(rows))
    board[0]["total_prompt_tokens"] = 0
    (run_dir / "leaderboard_row.json").write_text(json.dumps(board))
    result = publish_run_dir(run_dir, retries=1, backoff_s=0.01)

    import datasets

    published = datasets.load_dataset(result.results.repo_id, split="train").to_list()
    assert published[1]["total_tokens"] == 2**63 - 1
