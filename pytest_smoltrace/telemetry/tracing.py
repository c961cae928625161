"""Tracing: one tracer provider per process, one root span per item, spans kept in memory by trace id.

Usage (what the runner does for one item)::

    from pytest_smoltrace.telemetry import tracing

    tracing.install(otlp=config_otlp)                 # idempotent, once per process is enough
    attrs = tracing.item_attributes(nodeid=..., task_id=..., agent_type="code", model=..., provider=...,
                                    run_id=..., task=task_row)
    with tracing.item_trace(task_id, attrs, model=model_id, price=price) as tr:
        thread = threading.Thread(target=tr.run_in_context, args=(work,))   # the agent's spans join the item
        ...
        tr.add_verdict(verdict)                        # inside the block: the root span is still open
    record = replace(record, trace_id=tr.trace_id, span_id=tr.span_id)
    doc = tr.document()                                # one traces.json document (plain JSON)
    prompt, completion = tr.llm_usage()               # Σ over LLM spans only (cross-check)

:func:`install` (idempotent, thread-safe):

- reuses the global OpenTelemetry SDK ``TracerProvider`` when one is set (our processor is *added* to it);
  otherwise creates one (``service.name`` ``pytest-smoltrace`` unless ``OTEL_SERVICE_NAME`` is set) and sets it
  globally; if a non-SDK provider is already global, ours stays private and is used explicitly;
- instruments smolagents once with OpenInference's ``SmolagentsInstrumentor`` (which also makes the spans of tools
  called from CodeAgent code children of the right ``Step`` by propagating the context into smolagents'
  executor threads); if smolagents is already instrumented, that instrumentation is kept;
- adds a :class:`~._otel.SpanHub`: finished spans of each running item are kept per trace id and handed over
  when the item's ``with`` block ends; other spans are not kept;
- ``otlp=True`` adds a ``BatchSpanProcessor`` with the OTLP exporter :mod:`.otlp` builds from the standard
  ``OTEL_EXPORTER_OTLP_[TRACES_]*`` variables (protocol ``http/protobuf`` or ``grpc``, endpoint, headers, timeout),
  counting what it could not export (:func:`otlp_report`). Exported spans are presented as in ``traces.json``
  (:mod:`.spans`), in full: plus OpenInference's names of the same facts, which Phoenix reads, and what the file
  writes once or leaves out as a default (:data:`DOCUMENT_FIELDS`, evaluations as events). Call :func:`flush` /
  :func:`shutdown` at session end; shutdown ends the export only — in-memory tracing stays installed for the
  rest of the process. The hub is remembered on the provider and an already-wrapped smolagents is detected, so a
  re-imported module (pytester's in-process runs drop modules imported during a run) neither adds a second hub
  nor instruments smolagents twice.
- ``capture_content`` (default: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` at the first call) adds
  tool results (``gen_ai.tool.call.result``); ``max_attribute_chars`` caps every string attribute (default 4096).
  Later calls change them only when given. An item keeps the options in force when it started.

The item's root span is named ``<agent type> <task id>`` (``tool weather_paris``) by the plugin, and is an
OpenInference ``CHAIN`` (``openinference.span.kind``): a chain around the agent run and its verdict, so a backend
such as Phoenix lists it with its input and output. Root span attributes (:func:`item_attributes`):
``input.value`` (the task prompt), ``test.case.name`` (node id), ``smoltrace.task.id``,
``smoltrace.agent.type`` (``tool``/``code``), ``smoltrace.model.id``, ``smoltrace.model.provider``,
``smoltrace.run.id``, ``smoltrace.repeat`` and every other non-empty task field as ``smoltrace.task.<field>``
(lists of strings as string arrays, other structures as JSON text). :meth:`ItemTrace.set_output` adds
``output.value`` (the final answer). :meth:`ItemTrace.add_verdict` adds ``test.case.result.status`` (``pass``/``fail``),
``smoltrace.outcome`` (``passed``/``failed``/``error``) and one ``gen_ai.evaluation.result`` event per check with
``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.label`` (``pass``/``fail``), ``gen_ai.evaluation.score.value``
(1.0/0.0) and ``gen_ai.evaluation.explanation`` (expected vs actual) — in ``traces.json`` the root span's
``evaluations``, written short (:mod:`.spans`) — and sets the root's status: OK for a pass,
ERROR for an error (the error as description) and ERROR for a failed verdict, described as
``failed checks: <name> (expected: …; actual: …); …`` (:func:`failed_checks_text`), so a failure never looks like
a pass in a trace list. Spans of the item still open when it ends (OpenInference leaves the agent span open when
the run raises; a timed-out run is still inside its spans) are ended then with status ERROR (``LEFT_OPEN``), so an
item is always one tree.

The ``traces.json`` document (:meth:`ItemTrace.document`)::

    {"trace_id": "32 hex", "root_span_id": "16 hex", "run_id": str, "nodeid": str, "task_id": str,
     "agent_type": str, "span_count": int,
     "spans": [span dict, ...]}          # sorted by start time; span dict format: see pytest_smoltrace.telemetry.spans

``run_id``, ``nodeid``, ``task_id`` and ``agent_type`` are the root span's ``smoltrace.run.id``, ``test.case.name``,
``smoltrace.task.id`` and ``smoltrace.agent.type`` (:data:`DOCUMENT_FIELDS`), stated once here and left out of the
root span dict (a field whose attribute the item did not set is absent); the OTLP export keeps them on the span.
Times are Unix epoch nanoseconds (``start_time``/``end_time``; a duration is their difference). Spans that had not
ended when the item finished (an agent thread abandoned after a timeout) are absent; their finished children keep
their ``parent_span_id``. In the run directory (``traces.jsonl``, ``traces.json``) each document also has the
item's ``nodeid`` and ``attempt``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .spans import EVALUATION_EVENT, OI_KIND, AttrValue, SpanOptions, env_secrets, span_document

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Tracer

    from ..records import Verdict
    from . import otlp
    from ._otel import SpanHub
    from .cost import Price

__all__ = [
    "DOCUMENT_FIELDS",
    "EVALUATION_EVENT",
    "ItemTrace",
    "active_items",
    "flush",
    "install",
    "installed",
    "item_attributes",
    "item_trace",
    "shutdown",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: Status description of a span the item ended because its own code had not (an agent that raised, a timeout).
LEFT_OPEN = "ended by smoltrace when the item finished: the span was still open (the agent raised or timed out)"
#: OpenInference span kind of the item's root span: a chain around the agent run and the verdict.
ROOT_KIND = "CHAIN"
SERVICE_NAME = "pytest-smoltrace"
_HUB_ATTR = "_smoltrace_span_hub"
#: Root span attributes that a ``traces.json`` document states once, as its own fields (attribute → field); the
#: root span dict leaves them out, the OTLP export keeps them on the span.
DOCUMENT_FIELDS: Mapping[str, str] = {
    "smoltrace.run.id": "run_id",
    "test.case.name": "nodeid",
    "smoltrace.task.id": "task_id",
    "smoltrace.agent.type": "agent_type",
}
#: An evaluation event's explanation is capped here (the whole check is in results.json).
_EXPLANATION_CHARS = 300
_STATUS_CHARS = 1000
#: Task fields the root span does not repeat: the id and the prompt have attributes of their own.
_ROOT_SKIPPED_FIELDS = frozenset({"id", "prompt"})


@dataclass
class _State:
    provider: TracerProvider
    tracer: Tracer
    hub: SpanHub
    options: SpanOptions
    otlp: BatchSpanProcessor | None = None


_lock = threading.Lock()
_state: _State | None = None


def _version() -> str:
    from ..version import __version__

    return __version__


def _create_state() -> _State:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from ._otel import SpanHub

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
        log.debug("adding the smoltrace span processor to the existing TracerProvider")
    else:
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
        provider = TracerProvider(resource=Resource.create(attributes))
        if isinstance(current, trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        else:  # someone installed a non-SDK provider: keep ours private rather than fight it
            log.info("a non-SDK TracerProvider is global; smoltrace uses a private provider")
    # kept on the provider so that a re-imported module (pytester's in-process runs drop modules) finds it again
    hub = getattr(provider, _HUB_ATTR, None)
    if hub is None:
        hub = SpanHub()
        provider.add_span_processor(hub)
        setattr(provider, _HUB_ATTR, hub)
    _instrument_smolagents(provider)
    logging.getLogger("opentelemetry.sdk.trace").addFilter(_quiet_second_end)
    tracer = provider.get_tracer("pytest_smoltrace.telemetry", _version())
    return _State(provider=provider, tracer=tracer, hub=hub, options=SpanOptions.from_env())


def _quiet_second_end(record: logging.LogRecord) -> bool:
    """Drop the SDK's warning when an abandoned run ends a span that its item already ended (see ``LEFT_OPEN``)."""
    return record.getMessage() != "Calling end() on an ended span."


def _instrument_smolagents(provider: TracerProvider) -> None:
    import smolagents
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    instrumentor = SmolagentsInstrumentor()
    # wrapt leaves __wrapped__ on the patched method, also when the instrumentor module was imported afresh
    if instrumentor.is_instrumented_by_opentelemetry or hasattr(smolagents.MultiStepAgent.run, "__wrapped__"):
        log.info("smolagents is already instrumented; its spans reach smoltrace only through the same provider")
        return
    instrumentor.instrument(tracer_provider=provider)


#: The accounting of the latest OTLP export of this process (kept after :func:`shutdown` for :func:`otlp_report`).
_otlp_stats: otlp.ExportStats | None = None


def _otlp_processor(state: _State) -> BatchSpanProcessor:
    """The exporter the ``OTEL_EXPORTER_OTLP_*`` variables name (:mod:`.otlp`), presented and counted, batched."""
    global _otlp_stats
    from . import otlp as otlp_export
    from ._otel import PresentingExporter

    target = otlp_export.resolve_target()
    stats = otlp_export.ExportStats(target.describe())
    exporter = PresentingExporter(
        otlp_export.span_exporter(target), lambda: state.options, state.hub.prices.get, stats=stats
    )
    _otlp_stats = stats
    return otlp_export.counting_processor(exporter, stats)


def otlp_report(*, clear: bool = False) -> otlp.OtlpReport | None:
    """What became of this process's latest OTLP export (``None`` when none was on since the last ``clear``).

    Final after :func:`shutdown`; ``clear=True`` also forgets it, so that a later session in the same process
    (pytester's in-process runs) does not report it again."""
    global _otlp_stats
    with _lock:
        stats = _otlp_stats
        if clear:
            _otlp_stats = None
    return None if stats is None else stats.report()


def install(*, otlp: bool = False, capture_content: bool | None = None, max_attribute_chars: int | None = None) -> None:
    """Set up tracing for this process (idempotent; see the module docstring). ``otlp`` adds OTLP export.

    ``capture_content`` / ``max_attribute_chars`` change the presentation options when given; the first call
    reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` for an unspecified ``capture_content``.
    """
    global _state
    with _lock:
        if _state is None:
            _state = _create_state()
        options = _state.options
        _state.options = SpanOptions(
            capture_content=options.capture_content if capture_content is None else capture_content,
            max_attribute_chars=options.max_attribute_chars if max_attribute_chars is None else max_attribute_chars,
            secrets=env_secrets(),
        )
        if otlp and _state.otlp is None:
            _state.otlp = _otlp_processor(_state)
            _state.hub.add_downstream(_state.otlp)


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _state is not None


def active_items() -> int:
    """Items whose spans are being collected right now (0 between items: buckets do not leak)."""
    return _state.hub.active() if _state is not None else 0


def flush(timeout_s: float = 30.0) -> bool:
    """Push spans queued for OTLP export; ``True`` when done (or when export is off)."""
    state = _state
    if state is None or state.otlp is None:
        return True
    return state.otlp.force_flush(int(timeout_s * 1000))


def shutdown(timeout_s: float = 30.0) -> bool:
    """Flush and stop OTLP export (session end). In-memory tracing stays installed. Returns the flush result."""
    state = _state
    if state is None:
        return True
    with _lock:
        processor, state.otlp = state.otlp, None
    if processor is None:
        return True
    done = processor.force_flush(int(timeout_s * 1000))
    state.hub.remove_downstream(processor)
    processor.shutdown()
    return done


def _attribute(value: Any) -> AttrValue | None:
    if value is None:
        return None
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def item_attributes(
    *,
    nodeid: str,
    task_id: str,
    agent_type: str,
    model: str,
    provider: str,
    run_id: str,
    task: Mapping[str, Any] | None = None,
    repeat: int = 0,
) -> dict[str, AttrValue]:
    """Root span attributes for one item (names listed in the module docstring)."""
    attributes: dict[str, AttrValue] = {}
    for key, value in (task or {}).items():
        converted = _attribute(value)
        if converted is not None and converted not in ("", "{}", "[]", ()) and key not in _ROOT_SKIPPED_FIELDS:
            attributes[f"smoltrace.task.{key}"] = converted
    prompt = (task or {}).get("prompt")  # shown once, as the root's input
    if isinstance(prompt, str):
        attributes["input.value"] = prompt
        attributes["input.mime_type"] = "text/plain"
    attributes.update(
        {
            OI_KIND: ROOT_KIND,
            "test.case.name": nodeid,
            "smoltrace.task.id": task_id,
            "smoltrace.agent.type": agent_type,
            "smoltrace.model.id": model,
            "smoltrace.model.provider": provider,
            "smoltrace.run.id": run_id,
            "smoltrace.repeat": repeat,
        }
    )
    return attributes


def failed_checks_text(verdict: Verdict) -> str:
    """The root span's status description for a failed verdict: ``failed checks: name (expected …; actual …); …``."""
    failed = [f"{c.name} ({_explanation(c.expected, c.actual)})" for c in verdict.checks if not c.passed]
    text = "failed checks: " + "; ".join(failed) if failed else "failed"
    return text if len(text) <= _STATUS_CHARS else text[:_STATUS_CHARS] + "…"


def _explanation(expected: Any, actual: Any) -> str:
    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)

    explanation = f"expected: {text(expected)}; actual: {text(actual)}"
    if len(explanation) > _EXPLANATION_CHARS:
        explanation = explanation[:_EXPLANATION_CHARS] + f"… [{len(explanation) - _EXPLANATION_CHARS} more chars]"
    return explanation


class ItemTrace:
    """The root span of one item and, once its ``with`` block has ended, the item's finished spans.

    Use :func:`item_trace`. Inside the block the root span is current in the calling thread; other threads join
    the trace through :attr:`context` or :meth:`run_in_context`. ``trace_id``/``span_id`` are known from the
    start of the block; :meth:`document`, :meth:`llm_usage`, :attr:`llm_spans`, :attr:`tool_spans` after it.
    """

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttrValue] | None = None,
        *,
        model: str | None = None,
        price: Price | None = None,
    ) -> None:
        self.name = name
        self._attributes = dict(attributes or {})
        model_attr = self._attributes.get("smoltrace.model.id")
        self.model = model if model is not None else (model_attr if isinstance(model_attr, str) else None)
        self.price = price
        self._span: Span | None = None
        self._context: Context | None = None
        self._token: object | None = None
        self._spans: tuple[ReadableSpan, ...] | None = None
        self._document: dict[str, Any] | None = None
        self._options: SpanOptions | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> ItemTrace:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        if self._span is not None:
            raise RuntimeError("an ItemTrace can be entered only once")
        if _state is None:
            install()
        state = _state
        assert state is not None
        # a fresh, empty context: every item is its own trace even if some span is current here
        span = state.tracer.start_span(self.name, context=otel_context.Context(), attributes=self._attributes)
        state.hub.register(span.get_span_context().trace_id, model=self.model, price=self.price)
        self._span = span  # type: ignore[assignment]  # the SDK tracer returns an SDK span
        self._options = state.options
        self._context = trace.set_span_in_context(span)
        self._token = otel_context.attach(self._context)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        span = self._require_open()
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        state = _state
        assert state is not None
        trace_id = span.get_span_context().trace_id
        root_id = span.get_span_context().span_id
        for left in state.hub.open_spans(trace_id):
            if left.context.span_id != root_id:
                # OpenInference's run wrapper re-raises without ending its span, and an abandoned (timed-out) run
                # is still inside its spans: end them here so the item's trace stays one tree
                left.set_status(Status(StatusCode.ERROR, LEFT_OPEN))
                left.end()
        span.end()
        bucket = state.hub.pop(trace_id)
        self._spans = tuple(bucket.spans) if bucket is not None else ()

    def _require_open(self) -> Span:
        if self._span is None:
            raise RuntimeError("use the ItemTrace as a context manager first")
        if not self._span.is_recording():
            raise RuntimeError("the item's root span has already ended")
        return self._span

    # ------------------------------------------------------------------------------------- during the item

    @property
    def trace_id(self) -> str:
        """The item's trace id (32 lowercase hex)."""
        if self._span is None:
            raise RuntimeError("the ItemTrace has not started")
        return format(self._span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        """The root span's id (16 lowercase hex)."""
        if self._span is None:
            raise RuntimeError("the ItemTrace has not started")
        return format(self._span.get_span_context().span_id, "016x")

    @property
    def context(self) -> Context:
        """The OpenTelemetry context whose current span is the root span (attach it in worker threads)."""
        if self._context is None:
            raise RuntimeError("the ItemTrace has not started")
        return self._context

    def run_in_context(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` with the item's context attached in the current thread."""
        from opentelemetry import context as otel_context

        token = otel_context.attach(self.context)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    def set_attributes(self, attributes: Mapping[str, AttrValue]) -> None:
        """Add attributes to the root span (inside the block)."""
        self._require_open().set_attributes(attributes)

    def add_verdict(self, verdict: Verdict) -> None:
        """One ``gen_ai.evaluation.result`` event per check on the root span, plus the outcome attributes."""
        span = self._require_open()
        for check in verdict.checks:
            span.add_event(
                EVALUATION_EVENT,
                {
                    "gen_ai.evaluation.name": check.name,
                    "gen_ai.evaluation.score.label": "pass" if check.passed else "fail",
                    "gen_ai.evaluation.score.value": 1.0 if check.passed else 0.0,
                    "gen_ai.evaluation.explanation": _explanation(check.expected, check.actual),
                },
            )
        span.set_attributes(
            {"test.case.result.status": "pass" if verdict.passed else "fail", "smoltrace.outcome": verdict.outcome}
        )
        from opentelemetry.trace import Status, StatusCode

        if verdict.error is not None:
            span.set_status(Status(StatusCode.ERROR, verdict.error))
        elif not verdict.passed:
            span.set_status(Status(StatusCode.ERROR, failed_checks_text(verdict)))
        else:
            span.set_status(Status(StatusCode.OK))

    def set_output(self, text: str | None) -> None:
        """The item's output as a backend shows it (``output.value``: the final answer, or what stopped the run)."""
        if text is not None:
            self._require_open().set_attributes({"output.value": text, "output.mime_type": "text/plain"})

    # ------------------------------------------------------------------------------------- after the item

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        """The item's finished spans, root included (after the block)."""
        if self._spans is None:
            raise RuntimeError("the item's spans are available after its with block")
        return self._spans

    def document(self) -> dict[str, Any]:
        """The item's ``traces.json`` document (plain JSON; cached)."""
        if self._document is None:
            options = self._options or SpanOptions()
            root_id = self._span.get_span_context().span_id if self._span is not None else None
            spans = sorted(self.spans, key=lambda s: s.start_time or 0)
            docs = [
                span_document(
                    s,
                    options,
                    price=self.price,
                    is_root=s.context is not None and s.context.span_id == root_id,
                )
                for s in spans
            ]
            document: dict[str, Any] = {"trace_id": self.trace_id, "root_span_id": self.span_id}
            for attribute, field in DOCUMENT_FIELDS.items():
                value = self._attributes.get(attribute)
                if value is not None:
                    document[field] = value
            for doc in docs:
                if doc["span_id"] == self.span_id and doc.get("attributes"):
                    attributes = doc["attributes"]
                    for attribute, field in DOCUMENT_FIELDS.items():
                        if attribute in attributes and attributes[attribute] == document.get(field):
                            del attributes[attribute]
                    if not attributes:
                        del doc["attributes"]
            document["span_count"] = len(docs)
            document["spans"] = docs
            self._document = document
        return self._document

    def llm_usage(self) -> tuple[int, int]:
        """``(prompt, completion)`` tokens summed over LLM-kind spans only (never the AGENT span's totals)."""
        prompt = completion = 0
        for span in self.spans:
            attributes = span.attributes or {}
            if attributes.get(OI_KIND) != "LLM":
                continue
            p = attributes.get("llm.token_count.prompt")
            c = attributes.get("llm.token_count.completion")
            prompt += p if isinstance(p, int) else 0
            completion += c if isinstance(c, int) else 0
        return prompt, completion

    @property
    def llm_spans(self) -> list[dict[str, Any]]:
        """Span dicts (as in :meth:`document`) of the LLM calls, in start order."""
        return [s for s in self.document()["spans"] if s["category"] == "llm"]

    @property
    def tool_spans(self) -> list[dict[str, Any]]:
        """Span dicts of the executed tool calls (``final_answer`` included), in start order."""
        return [s for s in self.document()["spans"] if s["category"] == "tool"]


def item_trace(
    name: str,
    attributes: Mapping[str, AttrValue] | None = None,
    *,
    model: str | None = None,
    price: Price | None = None,
) -> ItemTrace:
    """A context manager for one item's root span named ``name`` (see :class:`ItemTrace`).

    ``model`` (default: the ``smoltrace.model.id`` attribute) names failed LLM calls; ``price`` adds
    ``gen_ai.usage.cost.*`` to the item's LLM spans (the same price as the record's ``cost_usd``).
    """
    return ItemTrace(name, attributes, model=model, price=price)
