"""OpenTelemetry SDK pieces behind :mod:`.tracing` (imported only by :func:`.tracing.install`).

- :class:`SpanHub` — the one span processor we add to the provider. It keeps the finished spans of every
  *registered* trace (one per running item) in a bucket, and forwards every span to the downstream processors
  (the OTLP ``BatchSpanProcessor`` when export is on). Spans of unregistered traces — other code's spans, or an
  abandoned agent thread that finishes after its item gave up — are forwarded but never kept, so memory does not
  grow.
- :class:`PresentingExporter` — wraps the OTLP exporter so that exported spans are the spans shown in
  ``traces.json`` (GenAI names and attributes, capped, redacted); runs in the batch processor's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from .spans import OI_KIND, SpanOptions, clean_text, present

if TYPE_CHECKING:
    from .cost import Price
    from .otlp import ExportStats


@dataclass
class Bucket:
    """The finished spans of one item's trace (appended from any thread)."""

    model: str | None
    price: Price | None
    spans: list[ReadableSpan] = field(default_factory=list)
    #: Spans of this trace that started and have not ended yet, by span id.
    open: dict[int, Span] = field(default_factory=dict)


class SpanHub(SpanProcessor):
    """Buckets finished spans by trace id for registered traces and forwards all spans downstream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[int, Bucket] = {}
        self._downstream: tuple[SpanProcessor, ...] = ()
        #: model id → price, learnt from finished LLM spans of priced items (bounded by the number of models).
        self.prices: dict[str, Price] = {}

    # -------------------------------------------------------------------------------- registration

    def register(self, trace_id: int, *, model: str | None, price: Price | None) -> None:
        with self._lock:
            self._buckets[trace_id] = Bucket(model, price)

    def pop(self, trace_id: int) -> Bucket | None:
        with self._lock:
            return self._buckets.pop(trace_id, None)

    def active(self) -> int:
        with self._lock:
            return len(self._buckets)

    def add_downstream(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._downstream = (*self._downstream, processor)

    def remove_downstream(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._downstream = tuple(p for p in self._downstream if p is not processor)

    # -------------------------------------------------------------------------------- SpanProcessor

    def open_spans(self, trace_id: int) -> list[Span]:
        """The spans of a registered trace that have started and not ended, newest first."""
        with self._lock:
            bucket = self._buckets.get(trace_id)
            spans = list(bucket.open.values()) if bucket is not None else []
        return sorted(spans, key=lambda s: s.start_time or 0, reverse=True)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        bucket = self._buckets.get(span.context.trace_id)
        if bucket is not None:
            with self._lock:
                bucket.open[span.context.span_id] = span
            attributes = span.attributes or {}
            if (
                bucket.model is not None
                and attributes.get(OI_KIND) == "LLM"
                and "gen_ai.request.model" not in attributes
            ):
                # a failed call never gets llm.model_name; the item knows its model
                span.set_attribute("gen_ai.request.model", bucket.model)
        for processor in self._downstream:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None:
            bucket = self._buckets.get(context.trace_id)
            if bucket is not None:
                with self._lock:
                    bucket.spans.append(span)
                    bucket.open.pop(context.span_id, None)
                if bucket.price is not None:
                    model = (span.attributes or {}).get("llm.model_name")
                    if isinstance(model, str) and model not in self.prices:
                        self.prices[model] = bucket.price
        for processor in self._downstream:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self._downstream:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self._downstream)


class PresentingExporter(SpanExporter):
    """Exports the spans as :func:`.spans.present` shows them (``traces.json``'s names and attributes, plus the
    OpenInference keys the file leaves out as duplicates: Phoenix reads them)."""

    def __init__(
        self,
        inner: SpanExporter,
        options: Callable[[], SpanOptions],
        prices: Callable[[str], Price | None],
        stats: ExportStats | None = None,
    ) -> None:
        self._inner = inner
        self._options = options
        self._prices = prices
        #: counts every export, its spans and the reason of a failure (see :mod:`.otlp`)
        self._stats = stats

    def _presented(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes or {}
        model = attributes.get("llm.model_name") or attributes.get("gen_ai.request.model")
        price = self._prices(model) if isinstance(model, str) else None
        is_root = span.parent is None and "test.case.name" in attributes
        options = self._options()
        shown = present(span, options, price=price, is_root=is_root)
        status = span.status
        if status.description:
            status = Status(status.status_code, clean_text(status.description, options))
        return ReadableSpan(
            name=shown.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=shown.attributes,
            events=[Event(e.name, e.attributes, e.timestamp) for e in shown.events],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        def export() -> SpanExportResult:
            return self._inner.export([self._presented(span) for span in spans])

        return export() if self._stats is None else self._stats.export(len(spans), export)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
