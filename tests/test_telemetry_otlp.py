"""OTLP export: the exporter built from the standard env vars, its failure accounting, and the plugin end to end.

The end-to-end tests run pytest in a fresh interpreter (``runpytest_subprocess``) against real receivers on
127.0.0.1: an OTLP/HTTP one (``http.server`` decoding ``ExportTraceServiceRequest`` protobufs), an OTLP/gRPC one
(``grpc.server`` with the collector's ``TraceServiceServicer``) and a dead endpoint (a bound port that does not
listen: connection refused).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import decode_spans, otlp_receiver, weather_script

from pytest_smoltrace.telemetry import otlp, tracing
from pytest_smoltrace.telemetry.otlp import ExportStats, OtlpConfigError, OtlpReport

OTEL_VARS = (
    otlp.TRACES_PROTOCOL_ENV,
    otlp.PROTOCOL_ENV,
    otlp.TRACES_ENDPOINT_ENV,
    otlp.ENDPOINT_ENV,
    otlp.TRACES_TIMEOUT_ENV,
    otlp.TIMEOUT_ENV,
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_HEADERS",
)
HTTP_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------------------------ the exporter


def test_default_is_http_protobuf_to_localhost_4318() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    target = otlp.resolve_target()
    assert target == otlp.OtlpTarget("http/protobuf", "http://localhost:4318/v1/traces", None, otlp.DEFAULT_TIMEOUT_S)
    assert otlp.describe_target() == "http/protobuf → http://localhost:4318/v1/traces"
    exporter = otlp.span_exporter()
    try:
        assert type(exporter) is OTLPSpanExporter
        assert exporter._endpoint == target.endpoint  # what we describe is where the SDK posts
        assert exporter._client._timeout == otlp.DEFAULT_TIMEOUT_S
    finally:
        exporter.shutdown()


@pytest.mark.parametrize(
    ("generic", "expected"),
    [
        ("http://127.0.0.1:6006", "http://127.0.0.1:6006/v1/traces"),
        ("http://127.0.0.1:6006/", "http://127.0.0.1:6006/v1/traces"),
        ("https://collector.example/otlp", "https://collector.example/otlp/v1/traces"),
    ],
)
def test_generic_endpoint_is_a_base_url(monkeypatch: pytest.MonkeyPatch, generic: str, expected: str) -> None:
    monkeypatch.setenv(otlp.ENDPOINT_ENV, generic)
    target = otlp.resolve_target()
    assert (target.endpoint, target.endpoint_arg) == (expected, None)  # the SDK appends /v1/traces itself
    exporter = otlp.span_exporter(target)
    try:
        assert exporter._endpoint == expected
    finally:
        exporter.shutdown()


@pytest.mark.parametrize("generic", ["http://127.0.0.1:6006/v1/traces", "http://127.0.0.1:6006/v1/traces/"])
def test_generic_endpoint_that_names_v1_traces_is_used_as_is_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, generic: str
) -> None:
    monkeypatch.setenv(otlp.ENDPOINT_ENV, generic)
    assert otlp.describe_target() == f"http/protobuf → {generic}"
    with caplog.at_level(logging.WARNING, logger=otlp.__name__):
        exporter = otlp.span_exporter()
    try:
        assert exporter._endpoint == generic  # not …/v1/traces/v1/traces (HTTP 405)
    finally:
        exporter.shutdown()
    (warning,) = [r for r in caplog.records if r.name == otlp.__name__]
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert otlp.ENDPOINT_ENV in message and "as-is" in message and otlp.TRACES_ENDPOINT_ENV in message


def test_traces_endpoint_is_used_as_is_and_wins(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = "http://127.0.0.1:3000/api/public/otel/v1/traces"
    monkeypatch.setenv(otlp.TRACES_ENDPOINT_ENV, url)
    monkeypatch.setenv(otlp.ENDPOINT_ENV, "http://127.0.0.1:9999")
    target = otlp.resolve_target()
    assert (target.endpoint, target.endpoint_arg) == (url, None)  # the SDK exporter reads the variable itself
    with caplog.at_level(logging.WARNING):
        exporter = otlp.span_exporter(target)
    try:
        assert exporter._endpoint == url
    finally:
        exporter.shutdown()
    assert not [r for r in caplog.records if r.name == otlp.__name__]
    # a signal-specific endpoint without the /v1/traces path is also taken literally (as the spec says)
    monkeypatch.setenv(otlp.TRACES_ENDPOINT_ENV, "http://127.0.0.1:4318/custom")
    assert otlp.describe_target() == "http/protobuf → http://127.0.0.1:4318/custom"


def _grpc_exporter_class() -> type:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter


@pytest.mark.parametrize(
    ("traces_protocol", "protocol", "expected"),
    [
        (None, "grpc", "grpc"),
        (None, " GRPC ", "grpc"),
        ("grpc", None, "grpc"),
        ("grpc", "http/protobuf", "grpc"),
        ("http/protobuf", "grpc", "http/protobuf"),
        (None, "http/protobuf", "http/protobuf"),
        ("", "grpc", "grpc"),
    ],
)
def test_protocol_selection(
    monkeypatch: pytest.MonkeyPatch, traces_protocol: str | None, protocol: str | None, expected: str
) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    for name, value in ((otlp.TRACES_PROTOCOL_ENV, traces_protocol), (otlp.PROTOCOL_ENV, protocol)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert otlp.resolve_target().protocol == expected
    exporter = otlp.span_exporter()
    try:
        assert type(exporter) is (_grpc_exporter_class() if expected == "grpc" else OTLPSpanExporter)
    finally:
        exporter.shutdown()


def test_grpc_endpoint_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(otlp.PROTOCOL_ENV, "grpc")
    assert otlp.describe_target() == "grpc → http://localhost:4317"
    exporter = otlp.span_exporter()
    try:
        assert (exporter._endpoint, exporter._timeout) == ("localhost:4317", otlp.DEFAULT_TIMEOUT_S)
    finally:
        exporter.shutdown()
    # a generic endpoint with a path is fine for gRPC: only host and port are used (no warning, no rewrite)
    monkeypatch.setenv(otlp.ENDPOINT_ENV, "http://127.0.0.1:4317/v1/traces")
    monkeypatch.setenv(otlp.TIMEOUT_ENV, "2.5")
    target = otlp.resolve_target()
    assert (target.endpoint, target.endpoint_arg, target.timeout_s) == ("http://127.0.0.1:4317/v1/traces", None, None)
    exporter = otlp.span_exporter(target)
    try:
        assert (exporter._endpoint, exporter._timeout) == ("127.0.0.1:4317", 2.5)
    finally:
        exporter.shutdown()
    monkeypatch.setenv(otlp.TRACES_ENDPOINT_ENV, "http://127.0.0.1:14317")
    assert otlp.describe_target() == "grpc → http://127.0.0.1:14317"


@pytest.mark.parametrize("variable", [otlp.TRACES_TIMEOUT_ENV, otlp.TIMEOUT_ENV])
def test_a_timeout_the_user_gave_is_honoured(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "12")
    assert otlp.resolve_target().timeout_s is None  # not passed: the SDK reads the variable (in seconds)
    exporter = otlp.span_exporter()
    try:
        assert exporter._client._timeout == 12.0
    finally:
        exporter.shutdown()


def test_http_json_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(otlp.PROTOCOL_ENV, "http/json")
    with pytest.raises(OtlpConfigError) as excinfo:
        otlp.span_exporter()
    message = str(excinfo.value)
    assert message.startswith("OTEL_EXPORTER_OTLP_PROTOCOL=http/json") and "not supported" in message
    assert "http/protobuf" in message and "grpc" in message


@pytest.mark.parametrize("variable", [otlp.TRACES_PROTOCOL_ENV, otlp.PROTOCOL_ENV])
def test_unknown_protocol_names_the_variable_and_the_allowed_values(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "thrift")
    for call in (otlp.resolve_target, otlp.check_config, otlp.describe_target, otlp.span_exporter):
        with pytest.raises(OtlpConfigError, match=rf"^{variable}='thrift' is not an OTLP protocol: use http/protobuf"):
            call()


@pytest.mark.parametrize("value", ["soon", "1s"])
def test_a_timeout_that_is_not_a_number_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(otlp.TIMEOUT_ENV, value)
    with pytest.raises(OtlpConfigError, match=rf"^{otlp.TIMEOUT_ENV}='{value}' is not a number"):
        otlp.check_config()


@pytest.mark.parametrize("variable", [otlp.TRACES_PROTOCOL_ENV, otlp.PROTOCOL_ENV])
def test_grpc_without_the_grpc_exporter_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "grpc")
    # as if opentelemetry-exporter-otlp-proto-grpc were not installed: importing it raises ImportError
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None)
    for call in (otlp.check_config, otlp.span_exporter):
        with pytest.raises(OtlpConfigError) as excinfo:
            call()
        message = str(excinfo.value)
        assert message.startswith(f"{variable}=grpc needs the OTLP gRPC exporter")
        assert "pytest-smoltrace[grpc]" in message and "opentelemetry-exporter-otlp-proto-grpc" in message


def test_check_config_accepts_what_it_can_build(monkeypatch: pytest.MonkeyPatch) -> None:
    assert otlp.check_config().protocol == "http/protobuf"
    monkeypatch.setenv(otlp.PROTOCOL_ENV, "grpc")
    assert otlp.check_config().protocol == "grpc"


# ------------------------------------------------------------------------------------------------ accounting


def _spans(n: int) -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    spans = []
    for i in range(n):
        span = tracer.start_span(f"s{i}")
        span.end()
        spans.append(span)
    return spans


class _FakeExporter:
    """Behaves like the SDK exporters: logs its reason and returns FAILURE (or raises when told)."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes
        self.exported: list[int] = []

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "ok":
            self.exported.append(len(spans))
            return SpanExportResult.SUCCESS
        logger = logging.getLogger(HTTP_LOGGER)
        if outcome == "refused":
            try:
                try:
                    raise ConnectionRefusedError(111, "Connection refused")
                except ConnectionRefusedError as inner:
                    raise OSError("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded") from inner
            except OSError as exc:
                logger.warning("Transient error %s encountered while exporting %s batch, retrying", exc, "spans")
            logger.error("Failed to export %s batch due to timeout, max retries or shutdown.", "spans")
        elif outcome == "405":
            logger.error("Failed to export %s batch code: %s, reason: %s", "spans", 405, "Method Not Allowed")
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _presenting(inner: Any, stats: ExportStats) -> Any:
    from pytest_smoltrace.telemetry._otel import PresentingExporter
    from pytest_smoltrace.telemetry.spans import SpanOptions

    return PresentingExporter(inner, SpanOptions, lambda model: None, stats=stats)


def test_stats_count_exported_and_failed_spans_and_keep_the_reason() -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    stats = ExportStats("http/protobuf → http://127.0.0.1:9/v1/traces")
    inner = _FakeExporter(["ok", "refused", "ok", "405"])
    exporter = _presenting(inner, stats)
    assert exporter.export(_spans(3)) is SpanExportResult.SUCCESS
    assert exporter.export(_spans(4)) is SpanExportResult.FAILURE
    assert stats.report() == OtlpReport(stats.target, 3, 4, "OSError: [Errno 111] Connection refused")
    assert exporter.export(_spans(2)) is SpanExportResult.SUCCESS
    assert exporter.export(_spans(1)) is SpanExportResult.FAILURE
    report = stats.report()
    assert report == OtlpReport(
        stats.target, 5, 5, "Failed to export spans batch code: 405, reason: Method Not Allowed"
    )
    assert inner.exported == [3, 2]
    assert OtlpReport.from_dict(report.to_dict()) == report and report.total == 10


def test_an_exception_from_export_counts_and_still_propagates() -> None:
    stats = ExportStats("grpc → http://127.0.0.1:9")
    exporter = _presenting(_FakeExporter([RuntimeError("encoder broke")]), stats)
    with pytest.raises(RuntimeError, match="encoder broke"):
        exporter.export(_spans(2))
    assert stats.report() == OtlpReport(stats.target, 0, 2, "RuntimeError: encoder broke")


def test_a_failure_that_logged_nothing_still_has_a_reason() -> None:
    stats = ExportStats("t")
    _presenting(_FakeExporter(["silent"]), stats).export(_spans(1))
    assert stats.report().error == "the exporter reported a failure (its reason was not logged)"


def test_only_the_exporting_threads_records_explain_a_failure() -> None:
    """Other threads logging OpenTelemetry errors meanwhile (another exporter, the SDK) are not the reason."""
    stats = ExportStats("t")
    started, release = threading.Event(), threading.Event()

    def noise() -> None:
        started.wait(5)
        logging.getLogger("opentelemetry.sdk").error("Queue full, dropping %s.", "span")
        release.set()

    class Slow(_FakeExporter):
        def export(self, spans: Any) -> Any:
            started.set()
            release.wait(5)
            return super().export(spans)

    thread = threading.Thread(target=noise)
    thread.start()
    _presenting(Slow(["405"]), stats).export(_spans(1))
    thread.join()
    assert stats.report().error == "Failed to export spans batch code: 405, reason: Method Not Allowed"
    assert not [f for f in logging.getLogger(HTTP_LOGGER).filters if type(f).__name__ == "_ThreadRecords"]


def test_capturing_the_reason_leaves_unconfigured_logging_as_it_was() -> None:
    """With no logging configured, the exporter's error still reaches stderr (Python's last-resort handler)."""
    import subprocess

    code = (
        "import logging\n"
        "from pytest_smoltrace.telemetry.otlp import ExportStats\n"
        "from opentelemetry.sdk.trace.export import SpanExportResult\n"
        "log = logging.getLogger('opentelemetry.exporter.otlp.proto.http.trace_exporter')  # as at its import\n"
        "def export():\n"
        "    log.error('boom %s', 42)\n"
        "    return SpanExportResult.FAILURE\n"
        "stats = ExportStats('t')\n"
        "stats.export(1, export)\n"
        "print(stats.report().error)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "boom 42"
    assert proc.stderr.strip() == "boom 42"


def test_reasons_and_targets_do_not_show_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-0123456789abcdef")
    stats = ExportStats("t")
    stats.record(1, ok=False, error="rejected sk-lf-0123456789abcdef " + "x" * 1000)
    error = stats.report().error
    assert error is not None and "0123456789abcdef" not in error and len(error) < 400
    monkeypatch.setenv(otlp.TRACES_ENDPOINT_ENV, "https://pk:secret@collector.example:4318/v1/traces")
    assert otlp.describe_target() == "http/protobuf → https://***@collector.example:4318/v1/traces"


def test_stats_are_thread_safe() -> None:
    stats = ExportStats("t")

    def work() -> None:
        for i in range(2000):
            stats.submitted()
            stats.record(1, ok=i % 2 == 0, error="e")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.report() == OtlpReport("t", 4000, 4000, "e")


def test_spans_never_handed_to_the_exporter_count_as_failed() -> None:
    """A full queue drops spans before export: after the final flush they are failed spans too."""
    stats = ExportStats("t")
    stats.submitted(10)
    stats.record(6, ok=True)
    report = stats.report()
    assert (report.exported, report.failed, report.error) == (6, 4, None)
    assert otlp.summary_line(report) == (
        "OTLP export: 4 of 10 spans not exported to t: never handed to the exporter "
        "(queue full or the final flush did not finish)"
    )


def test_merged_reports_and_the_summary_line() -> None:
    target = "http/protobuf → http://127.0.0.1:9/v1/traces"
    a = OtlpReport(target, 10, 0)
    b = OtlpReport(target, 5, 37, "ConnectionError: [Errno 111] Connection refused")
    c = OtlpReport(target, 0, 0)
    assert otlp.merge_reports([]) is None
    merged = otlp.merge_reports([a, b, c])
    assert merged == OtlpReport(target, 15, 37, b.error)
    assert otlp.summary_line(merged) == (
        f"OTLP export: 37 of 52 spans not exported to {target}: ConnectionError: [Errno 111] Connection refused"
    )
    assert otlp.summary_line(a) is None and otlp.summary_line(None) is None
    assert otlp.merge_reports([a, OtlpReport("grpc → x", 1, 1, "e")]).target == f"{target}, grpc → x"


def _dead_port() -> socket.socket:
    """A socket bound to a free 127.0.0.1 port that does not listen: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def test_a_real_exporter_on_a_dead_endpoint_is_counted_with_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    with contextlib.closing(_dead_port()) as dead:
        port = dead.getsockname()[1]
        monkeypatch.setenv(otlp.TRACES_ENDPOINT_ENV, f"http://127.0.0.1:{port}/v1/traces")
        # connection refused is retried with backoff (1 s, 2 s, …) within the timeout; each retry logs its cause
        monkeypatch.setenv(otlp.TRACES_TIMEOUT_ENV, "1.5")
        target = otlp.resolve_target()
        stats = ExportStats(target.describe())
        exporter = _presenting(otlp.span_exporter(target), stats)
        try:
            started = time.monotonic()
            exporter.export(_spans(3))
            elapsed = time.monotonic() - started
        finally:
            exporter.shutdown()
    report = stats.report()
    assert (report.exported, report.failed) == (0, 3)
    assert report.error is not None and re.fullmatch(r"ConnectionError: \[Errno \d+\] Connection refused", report.error)
    assert elapsed < 6  # bounded by the 1.5 s timeout given, far below the SDK default of 10 s


def test_tracing_reports_the_export_after_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    with contextlib.closing(_dead_port()) as dead:
        port = dead.getsockname()[1]
        monkeypatch.setenv(otlp.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
        monkeypatch.setenv(otlp.TIMEOUT_ENV, "1.5")
        tracing.install(otlp=True)
        try:
            with tracing.item_trace("otlp-report", {"test.case.name": "x::tool::otlp-report"}):
                pass
        finally:
            assert tracing.shutdown(10)
    report = tracing.otlp_report(clear=True)
    assert report is not None
    assert report.target == f"http/protobuf → http://127.0.0.1:{port}/v1/traces"
    assert (report.exported, report.failed) == (0, 1) and "Connection refused" in (report.error or "")
    assert tracing.otlp_report() is None  # cleared: a later session does not report it again


# ------------------------------------------------------------------------------------------------ receivers


@contextlib.contextmanager
def grpc_receiver() -> Iterator[tuple[int, list[bytes]]]:
    """A real OTLP/gRPC collector endpoint on 127.0.0.1: ``(port, serialized requests)``."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received: list[bytes] = []

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request.SerializeToString())
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, received
    finally:
        server.stop(grace=None).wait(5)


# ------------------------------------------------------------------------------------------------ end to end

TASKS = [{"id": "exported", "prompt": "Weather please [k-otlp]", "expected_tool": "get_weather"}]
SCRIPTS = {"[k-otlp]": weather_script()}
OTLP_LINE = re.compile(r"^OTLP export: (\d+) of (\d+) spans not exported to (.+?): (.+)$", re.MULTILINE)


def _traces(run: Any) -> list[dict[str, Any]]:
    return list(run.read("traces.json"))


def _assert_received_the_traces(run: Any, received: list[dict[str, Any]]) -> None:
    """Every span of traces.json reached the receiver (same ids, parents, names); LLM spans with their usage."""
    docs = _traces(run)
    assert len(docs) == 2
    for doc in docs:
        mine = {(s["span_id"], s["parent_span_id"], s["name"]) for s in received if s["trace_id"] == doc["trace_id"]}
        assert {(s["span_id"], s.get("parent_span_id"), s["name"]) for s in doc["spans"]} == mine
    assert not OTLP_LINE.search(run.stdout)  # nothing failed, nothing said
    llm = [s for s in received if s["name"].startswith("chat ")]
    expected_llm = [s for d in docs for s in d["spans"] if s["category"] == "llm"]
    assert len(llm) == len(expected_llm) == 4  # two model calls per item
    assert all(isinstance(s["attributes"].get("gen_ai.usage.input_tokens"), int) for s in llm)
    assert sum(s["attributes"]["gen_ai.usage.input_tokens"] for s in llm) == sum(r["prompt_tokens"] for r in run.rows)


def test_e2e_http_protobuf_receiver_gets_the_spans(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with otlp_receiver() as receiver:
        # the generic variable with the full traces URL: used as-is (it used to post to /v1/traces/v1/traces)
        monkeypatch.setenv(otlp.ENDPOINT_ENV, f"http://127.0.0.1:{receiver.port}/v1/traces")
        # what docs/telemetry-backends.md tells Phoenix users: the project name travels as a resource attribute
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "openinference.project.name=smoltrace-otlp-test")
        run = bench(TASKS, SCRIPTS, "--smoltrace-otlp", subprocess=True)
    assert run.result.ret == 0, run.stdout[-3000:]
    run.result.assert_outcomes(passed=2)
    assert receiver.requests and {headers["path"] for headers, _ in receiver.requests} == {"/v1/traces"}
    received = decode_spans(receiver.bodies)
    assert {s["resource"].get("openinference.project.name") for s in received} == {"smoltrace-otlp-test"}
    assert {s["resource"].get("service.name") for s in received} == {"pytest-smoltrace"}
    _assert_received_the_traces(run, received)


def test_e2e_grpc_receiver_gets_the_spans(bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with grpc_receiver() as (port, received):
        monkeypatch.setenv(otlp.PROTOCOL_ENV, "grpc")
        monkeypatch.setenv(otlp.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
        run = bench(TASKS, SCRIPTS, "--smoltrace-otlp", subprocess=True)
        bodies = list(received)
    assert run.result.ret == 0, run.stdout[-3000:]
    run.result.assert_outcomes(passed=2)
    assert bodies
    _assert_received_the_traces(run, decode_spans(bodies))


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "xdist-2"])
def test_e2e_dead_endpoint_keeps_the_exit_code_and_says_so_in_one_line(
    bench: Any, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    with contextlib.closing(_dead_port()) as dead:
        port = dead.getsockname()[1]
        monkeypatch.setenv(otlp.ENDPOINT_ENV, f"http://127.0.0.1:{port}")
        xdist = ("-n", str(workers)) if workers else ()
        run = bench(TASKS, SCRIPTS, "--smoltrace-otlp", *xdist, subprocess=True)
    assert run.result.ret == 0, run.stdout[-3000:]
    run.result.assert_outcomes(passed=2)
    lines = OTLP_LINE.findall(run.stdout)
    assert len(lines) == 1, run.stdout[-3000:]
    failed, total, target, error = lines[0]
    spans = sum(d["span_count"] for d in _traces(run))
    assert int(failed) == int(total) == spans > 0
    assert target == f"http/protobuf → http://127.0.0.1:{port}/v1/traces"
    assert re.fullmatch(r"ConnectionError: \[Errno \d+\] Connection refused", error)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (otlp.PROTOCOL_ENV, "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json: OTLP/JSON is not supported"),
        (otlp.TRACES_PROTOCOL_ENV, "zipkin", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='zipkin' is not an OTLP protocol"),
    ],
)
def test_a_wrong_protocol_is_a_usage_error_before_any_item(
    bench: Any, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    run = bench(TASKS, SCRIPTS, "--smoltrace-otlp")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"--smoltrace-otlp: {message}" in run.result.stderr.str()
