"""Telemetry: one OpenTelemetry span tree per item, exact tokens and cost, GPU/CPU sampling, energy and CO2.

Every number is counted once and every figure says how it was obtained. The package is a library; the plugin
calls it. Importing any module here is cheap: OpenTelemetry, smolagents, litellm, psutil and ``pynvml`` are
imported inside the functions that need them.

Modules (each owns one noun):

- :mod:`.tracing` — the per-process tracer provider (:func:`~.tracing.install`), the item's root span
  (:func:`~.tracing.item_trace` → :class:`~.tracing.ItemTrace`), OTLP export, verdict events.
- :mod:`._otel` — the SDK span processor (per-trace buckets) and the presenting OTLP exporter (internal).
- :mod:`.spans` — how a finished span becomes GenAI-semconv attributes and a ``traces.json`` span dict
  (names, ``gen_ai.*`` attributes, capping, secret redaction).
- :mod:`.otlp` — the OTLP exporter from the standard environment variables (http/protobuf or grpc) and the
  count of spans it could not export.
- :mod:`.usage` — cached, cache-write and reasoning tokens of each model call, read from the raw response.
- :mod:`.cost` — :class:`~.cost.Price` from litellm's bundled price map or custom prices; cost in USD or ``None``.
- :mod:`.samples` — the plain-JSON records a sampler produces (:class:`~.samples.Samples`).
- :mod:`.nvml` — the NVML seam: the real ``pynvml`` (nvidia-ml-py) or :class:`~.nvml.ScriptedNVML` for tests.
- :mod:`.sampler` — :class:`~.sampler.Sampler`, the NVML + psutil sampling thread (NVML injectable).
- :mod:`.energy` — :class:`~.energy.Figure` (value, unit, label, scope, method); energy, CO2 and power cost.
- :mod:`.metrics` — :func:`~.metrics.build_metrics_document`, the ``metrics.json`` document.
"""
