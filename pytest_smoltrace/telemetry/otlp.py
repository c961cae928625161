"""OTLP export: the span exporter built from the standard ``OTEL_EXPORTER_OTLP_*`` variables, and its accounting.

:func:`span_exporter` picks the protocol from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else
``OTEL_EXPORTER_OTLP_PROTOCOL``:

- ``http/protobuf`` (default): ``opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter``;
- ``grpc``: ``opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter`` (the ``[grpc]`` extra,
  imported only then);
- ``http/json`` and anything else: :class:`OtlpConfigError` naming the variable and the allowed values.

Endpoint: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as-is (both SDK exporters read it themselves). The generic
``OTEL_EXPORTER_OTLP_ENDPOINT`` is a *base* URL to which the http exporter appends ``/v1/traces``; one that already
ends in ``/v1/traces`` (a common mistake that posts to ``/v1/traces/v1/traces``) is used as the traces endpoint
as-is, with a warning. gRPC uses only the host and port of either variable (default ``localhost:4317``).

Timeout: ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` when set (the Python SDK reads
them in seconds); otherwise :data:`DEFAULT_TIMEOUT_S` instead of the SDK's 10 s. The timeout bounds one batch's
export *including* the http exporter's retries with backoff, and the batch processor's final flush at session end
waits for every queued batch, so against a dead endpoint each batch costs up to that long (measured: ≈ 7 s a batch
with 10 s, ≈ 3 s with 5 s, on connection refused).

Accounting: :class:`ExportStats` counts the spans handed to the batch processor, the spans exported and those
whose export failed, and keeps the last error: the OTLP exporters do not raise, they log the reason through
``logging`` and return ``FAILURE``, so the records logged by the exporting thread during each export are
captured. :meth:`ExportStats.report` gives the plain :class:`OtlpReport` that crosses process boundaries
(xdist workers → controller) and feeds the one line of the terminal summary (:func:`summary_line`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .spans import SpanOptions, clean_text, env_secrets

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ExportStats",
    "OtlpConfigError",
    "OtlpReport",
    "OtlpTarget",
    "check_config",
    "counting_processor",
    "describe_target",
    "merge_reports",
    "resolve_target",
    "span_exporter",
    "summary_line",
]

log = logging.getLogger(__name__)

TRACES_PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_TIMEOUT_ENV = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
TIMEOUT_ENV = "OTEL_EXPORTER_OTLP_TIMEOUT"

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
HTTP_JSON = "http/json"
PROTOCOLS = (HTTP_PROTOBUF, GRPC)
TRACES_PATH = "/v1/traces"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
#: Seconds one batch's export may take, retries included, when no ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`` is set.
DEFAULT_TIMEOUT_S = 5.0
GRPC_EXTRA = "pip install 'pytest-smoltrace[grpc]'  (opentelemetry-exporter-otlp-proto-grpc)"
#: Records of the loggers under this name logged by the exporting thread during an export explain a failure.
_EXPORTER_LOGGERS = "opentelemetry.exporter"
#: The loggers the OTLP span exporters log their failures through (made to exist before an export, so that the
#: capture filter is on them even when the exporter module has not created its logger yet).
_KNOWN_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
_ERROR_CHARS = 300


class OtlpConfigError(ValueError):
    """The ``OTEL_EXPORTER_OTLP_*`` variables ask for something this exporter cannot do (the message says what)."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _protocol() -> str:
    for name in (TRACES_PROTOCOL_ENV, PROTOCOL_ENV):
        raw = _env(name)
        if raw is None:
            continue
        value = raw.lower()
        if value in PROTOCOLS:
            return value
        allowed = f"use {HTTP_PROTOBUF} (the default) or {GRPC}"
        if value == HTTP_JSON:
            raise OtlpConfigError(f"{name}={raw}: OTLP/JSON is not supported for trace export here; {allowed}")
        raise OtlpConfigError(f"{name}={raw!r} is not an OTLP protocol: {allowed}")
    return HTTP_PROTOBUF


def _is_traces_url(url: str) -> bool:
    return url.rstrip("/").endswith(TRACES_PATH)


@dataclass(frozen=True)
class OtlpTarget:
    """Where spans go: the protocol, the endpoint the exporter posts to, and what is passed to its constructor."""

    protocol: str
    #: The URL (http) or address (gRPC: its host and port are used) the exporter sends to.
    endpoint: str
    #: Passed as ``endpoint=`` (only for a generic endpoint that already names ``/v1/traces``); else the SDK reads
    #: the environment itself.
    endpoint_arg: str | None = None
    #: Passed as ``timeout=`` when the user set no timeout variable; ``None``: the SDK reads the variables.
    timeout_s: float | None = DEFAULT_TIMEOUT_S

    def describe(self) -> str:
        """``http/protobuf → http://127.0.0.1:6006/v1/traces`` (for messages; credentials in the URL are hidden)."""
        return f"{self.protocol} → {_without_userinfo(self.endpoint)}"


def _without_userinfo(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def resolve_target() -> OtlpTarget:
    """The target the ``OTEL_EXPORTER_OTLP_*`` variables describe (an :class:`OtlpConfigError` when they are wrong)."""
    protocol = _protocol()
    traces_endpoint, generic = _env(TRACES_ENDPOINT_ENV), _env(ENDPOINT_ENV)
    endpoint_arg: str | None = None
    if protocol == GRPC:
        endpoint = traces_endpoint or generic or DEFAULT_GRPC_ENDPOINT
    elif traces_endpoint is not None:
        endpoint = traces_endpoint
    elif generic is not None and _is_traces_url(generic):
        endpoint = endpoint_arg = generic
    else:  # the SDK's rule: the base URL without one trailing slash, then /v1/traces
        endpoint = (generic or DEFAULT_HTTP_ENDPOINT).removesuffix("/") + TRACES_PATH
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    for name in (TRACES_TIMEOUT_ENV, TIMEOUT_ENV):
        raw = _env(name)
        if raw is None:
            continue
        try:
            float(raw)
        except ValueError:
            raise OtlpConfigError(f"{name}={raw!r} is not a number (seconds)") from None
        timeout_s = None
        break
    return OtlpTarget(protocol, endpoint, endpoint_arg, timeout_s)


def describe_target() -> str:
    """``<protocol> → <endpoint>`` of the current configuration, e.g. ``http/protobuf → http://127.0.0.1:6006/v1/traces``."""
    return resolve_target().describe()


def _grpc_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc.trace_exporter") is not None
    except ImportError:  # the parent package is missing
        return False


def _grpc_missing(target: OtlpTarget) -> OtlpConfigError:
    name = TRACES_PROTOCOL_ENV if _env(TRACES_PROTOCOL_ENV) else PROTOCOL_ENV
    return OtlpConfigError(
        f"{name}={target.protocol} needs the OTLP gRPC exporter, which is not installed: {GRPC_EXTRA}"
    )


def check_config() -> OtlpTarget:
    """Validate the configuration without building an exporter (session start): the target, or OtlpConfigError."""
    target = resolve_target()
    if target.protocol == GRPC and not _grpc_installed():
        raise _grpc_missing(target)
    return target


def span_exporter(target: OtlpTarget | None = None) -> SpanExporter:
    """The SDK OTLP span exporter for ``target`` (default: :func:`resolve_target`)."""
    target = target or resolve_target()
    kwargs: dict[str, Any] = {}
    if target.timeout_s is not None:
        kwargs["timeout"] = target.timeout_s
    if target.protocol == GRPC:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
        except ImportError:
            raise _grpc_missing(target) from None
        return GrpcExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if target.endpoint_arg is not None:
        log.warning(
            "%s=%s already ends in %s: using it as the traces endpoint as-is (the variable is a base URL to which "
            "%s is appended; %s is the one for a full traces URL)",
            ENDPOINT_ENV,
            target.endpoint_arg,
            TRACES_PATH,
            TRACES_PATH,
            TRACES_ENDPOINT_ENV,
        )
        kwargs["endpoint"] = target.endpoint_arg
    return OTLPSpanExporter(**kwargs)


# ------------------------------------------------------------------------------------------------ accounting


@dataclass(frozen=True)
class OtlpReport:
    """What became of one process's (or, merged, the run's) exported spans."""

    target: str
    exported: int
    failed: int
    error: str | None = None

    @property
    def total(self) -> int:
        return self.exported + self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "exported": self.exported, "failed": self.failed, "error": self.error}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OtlpReport:
        error = data.get("error")
        return cls(
            target=str(data["target"]),
            exported=int(data.get("exported") or 0),
            failed=int(data.get("failed") or 0),
            error=None if error is None else str(error),
        )


def merge_reports(reports: Iterable[OtlpReport]) -> OtlpReport | None:
    """One report for several processes (xdist workers): counts summed, distinct targets joined, the last error."""
    reports = list(reports)
    if not reports:
        return None
    targets = list(dict.fromkeys(r.target for r in reports))
    errors = [r.error for r in reports if r.error]
    return OtlpReport(
        target=", ".join(targets),
        exported=sum(r.exported for r in reports),
        failed=sum(r.failed for r in reports),
        error=errors[-1] if errors else None,
    )


def summary_line(report: OtlpReport | None) -> str | None:
    """The terminal summary's line when spans could not be exported (``None`` when every span was)."""
    if report is None or report.failed <= 0:
        return None
    reason = report.error or "never handed to the exporter (queue full or the final flush did not finish)"
    return f"OTLP export: {report.failed} of {report.total} spans not exported to {report.target}: {reason}"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def _exception_text(exc: BaseException) -> str:
    """``ConnectionError: [Errno 111] Connection refused``: the outer type and the innermost cause's message."""
    inner, seen = exc, {id(exc)}
    while True:
        reason = getattr(inner, "reason", None)  # urllib3's MaxRetryError keeps the cause here
        first = inner.args[0] if inner.args else None
        nxt = next(
            (e for e in (inner.__cause__, reason, first, inner.__context__) if isinstance(e, BaseException)), None
        )
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        inner = nxt
    message = str(inner) or str(exc) or type(inner).__name__
    return _one_line(f"{type(exc).__name__}: {message}")


def _error_text(records: Sequence[logging.LogRecord]) -> str:
    """The reason a failed export logged: an exception it mentions, else its last error, else its last warning."""
    for record in reversed(records):
        if record.exc_info and record.exc_info[1] is not None:
            return _exception_text(record.exc_info[1])
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException):
                return _exception_text(arg)
    for level in (logging.ERROR, logging.WARNING):
        for record in reversed(records):
            if record.levelno >= level:
                return _one_line(record.getMessage())
    return "the exporter reported a failure (its reason was not logged)"


class _ThreadRecords(logging.Filter):
    """Keeps the WARNING+ records one thread logs through the loggers it is attached to, and lets every record pass.

    A filter on each exporter logger rather than a handler on their parent: a handler would count as configured
    logging, and Python would stop printing those loggers' messages through its last-resort handler meanwhile."""

    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread == self.thread and record.levelno >= logging.WARNING:
            self.records.append(record)
        return True

    @contextlib.contextmanager
    def attached(self) -> Iterator[_ThreadRecords]:
        for name in _KNOWN_EXPORTER_LOGGERS:
            logging.getLogger(name)
        prefix = _EXPORTER_LOGGERS + "."
        loggers = [
            logger
            for name, logger in list(logging.Logger.manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and (name == _EXPORTER_LOGGERS or name.startswith(prefix))
        ]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(self)


class ExportStats:
    """Thread-safe counts of one exporter's spans (the batch processor exports from its own thread)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._submitted = 0
        self._exported = 0
        self._failed = 0
        self._error: str | None = None

    def submitted(self, count: int = 1) -> None:
        """``count`` spans were handed to the batch processor."""
        with self._lock:
            self._submitted += count

    def record(self, count: int, ok: bool, error: str | None = None) -> None:
        """One export of ``count`` spans ended: exported, or failed with ``error`` (kept redacted, capped)."""
        if error is not None:
            error = clean_text(error, SpanOptions(max_attribute_chars=_ERROR_CHARS, secrets=env_secrets()))
        with self._lock:
            if ok:
                self._exported += count
            else:
                self._failed += count
                self._error = error or self._error

    def export(self, count: int, export: Callable[[], SpanExportResult]) -> SpanExportResult:
        """Run one export of ``count`` spans and count it; the reason of a failure is read from what it logged."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        with _ThreadRecords(threading.get_ident()).attached() as capture:
            try:
                result = export()
            except Exception as exc:
                self.record(count, False, _exception_text(exc))
                raise
        ok = result is SpanExportResult.SUCCESS
        self.record(count, ok, None if ok else _error_text(capture.records))
        return result

    def report(self) -> OtlpReport:
        """The counts so far. After the final flush, spans handed over but never exported (dropped from a full
        queue, or still queued when the flush gave up) count as failed too."""
        with self._lock:
            failed = max(self._failed, self._submitted - self._exported)
            return OtlpReport(self.target, self._exported, failed, self._error)


def counting_processor(exporter: SpanExporter, stats: ExportStats) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` for ``exporter`` that counts the spans handed to it in ``stats``."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class CountingBatchSpanProcessor(BatchSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            if span.context is not None and span.context.trace_flags.sampled:
                stats.submitted()
            super().on_end(span)

    return CountingBatchSpanProcessor(exporter)
