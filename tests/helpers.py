"""Helpers shared by the test files and the benchmark scripts, imported as ``helpers``.

pytest puts ``tests/`` on ``sys.path`` (rootdir-relative imports: the test files are not a package); the benchmark
scripts put it there themselves (``benchmarks/_common.py``). Importing this module is cheap: the standard library and
the records of a run; what needs opentelemetry or transformers imports it when called. Helpers that need smolagents
are in ``agent_helpers.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smoltrace_export.records import RunRecord

#: The model id the scripted model server answers to.
SCRIPTED_MODEL = "openai/scripted"


def scripted_args(base_url: str, dataset: str = "tasks.json", model: str = SCRIPTED_MODEL) -> list[str]:
    """The options of a session against a model server: ``--smoltrace-model``, ``--smoltrace-api-base`` (``base_url``,
    a ``ScriptedModelServer``'s ``base_url``) and ``--smoltrace-dataset``."""
    return ["--smoltrace-model", model, "--smoltrace-api-base", base_url, "--smoltrace-dataset", dataset]


def task_row(task_id: str, prompt: str, tool: str | None = None, *keywords: str, **fields: Any) -> dict[str, Any]:
    """One row of a tasks file: id, prompt, the ``expected_tool`` and ``expected_keywords`` when given, then
    ``fields`` as they are."""
    row: dict[str, Any] = {"id": task_id, "prompt": prompt}
    if tool is not None:
        row["expected_tool"] = tool
    if keywords:
        row["expected_keywords"] = list(keywords)
    return {**row, **fields}


def weather_script(answer: Any = "20°C") -> dict[str, list[dict[str, Any]]]:
    """A scripted model server's script: both agent types look up the weather in Paris (``get_weather``), then answer
    ``answer``. New dicts on every call (a test may change its copy)."""
    tool = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
    code = {"code": "w = get_weather(location='Paris, France')\nprint(w)"}
    return {"tool": [tool, {"final_answer": answer}], "code": [code, {"final_answer": answer}]}


# -- records ----------------------------------------------------------------------------------------------------------

#: What :func:`run_record` fills in: a tool run of ``openai/scripted`` that answered with ``final_answer``.
RECORD_DEFAULTS: dict[str, Any] = {
    "task_id": "t",
    "agent_type": "tool",
    "source": "tasks.json",
    "model": SCRIPTED_MODEL,
    "provider": "litellm",
    "run_id": "r",
    "final_answer_called": True,
    "stop_reason": "final_answer",
    "steps": (),
    "tool_calls": (),
    "prompt_tokens": 1,
    "completion_tokens": 1,
    "duration_ms": 1.0,
    "started_at": 1.0,
}


def run_record(response: str | None = "42", **fields: Any) -> RunRecord:
    """A :class:`RunRecord` answering ``response``: :data:`RECORD_DEFAULTS`, overridden by ``fields``."""
    return RunRecord(**{**RECORD_DEFAULTS, "response": response, **fields})


# -- rows files (statistics.json, comparison.json) -------------------------------------------------------------------


def assert_bad_rows_files_refused(
    read: Callable[[Path], Any], directory: Path, kind: str, bad_row: dict[str, Any], why: str = ""
) -> None:
    """``read`` (``read_statistics``, ``read_comparison``) refuses, with a ``ValueError`` naming the file: a file that
    is not JSON, a JSON object, and a list holding ``bad_row`` (not a ``kind`` row; the message then matches ``why``).
    """
    (directory / "text.json").write_text("not JSON")
    with pytest.raises(ValueError, match=r"text\.json: not a readable JSON file"):
        read(directory / "text.json")
    (directory / "dict.json").write_text('{"model": "m"}')
    with pytest.raises(ValueError, match=rf"dict\.json: a JSON dict, not a list of {kind} rows"):
        read(directory / "dict.json")
    (directory / "bad.json").write_text(json.dumps([bad_row]))
    with pytest.raises(ValueError, match=rf"bad\.json: not a {kind} row {why}"):
        read(directory / "bad.json")


# -- an OTLP/HTTP receiver --------------------------------------------------------------------------------------------


class OtlpReceiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace collector on 127.0.0.1. ``requests``: every POST, as (its headers, lower-cased, with
    ``path`` added; its body, gunzipped); one to another path than ``/v1/traces`` is answered 405."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _OtlpHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, body in self.requests]


class _OtlpHandler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall per request

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert isinstance(self.server, OtlpReceiver)
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()} | {"path": self.path}, body))
        if self.path != "/v1/traces":
            self.send_error(405)
            return
        payload = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An :class:`OtlpReceiver` serving in a thread until the block ends."""
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def decode_spans(bodies: Iterable[bytes]) -> list[dict[str, Any]]:
    """The spans of serialised ``ExportTraceServiceRequest`` protobufs, as dicts (ids in hex, attributes, events, the
    resource's attributes)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: _any_value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex() or None,
                            "name": span.name,
                            "attributes": {a.key: _any_value(a.value) for a in span.attributes},
                            "events": [
                                {"name": e.name, "attributes": {a.key: _any_value(a.value) for a in e.attributes}}
                                for e in span.events
                            ],
                            "resource": resource,
                        }
                    )
    return spans


# -- a tiny local model -----------------------------------------------------------------------------------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_llama(path: Path, corpus: list[str], *, max_position_embeddings: int = 2048) -> Path:
    """Save a randomly initialised one-layer Llama (seed 0) with a toy BPE tokenizer trained on ``corpus`` × 20 and
    :data:`CHAT_TEMPLATE` to ``path`` (seconds on a CPU, no download); skips the test without torch and
    transformers."""
    import pytest

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    tok.train_from_iterator(corpus * 20, trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path
