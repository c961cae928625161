"""Usage details of one model call: cached prompt tokens, cache writes and reasoning tokens, read from the raw response.

smolagents keeps only ``input_tokens``/``output_tokens`` of a call (``ChatMessage.token_usage``); the provider's
response says more, and the extra numbers change the price: cached prompt tokens are billed at a fraction of the
input price, and reasoning tokens are output tokens the answer does not show.

Conventions (OpenAI's, which litellm follows for every provider):

- ``cache_read`` (OpenAI ``prompt_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``) and
  ``cache_creation`` (Anthropic ``cache_creation_input_tokens``) are **part of** the prompt tokens;
- ``reasoning`` (``completion_tokens_details.reasoning_tokens``) is **part of** the completion tokens.

So totals are never increased by these numbers; they only split prompt and completion tokens for pricing.
A field the provider did not report is ``None`` (unknown), never 0.

How they are read: :func:`probe` replaces an API model's ``retryer`` (every smolagents API model — LiteLLM,
OpenAI-compatible, HF inference — sends its request through ``self.retryer(fn, **kwargs)``, inside the LLM span
OpenInference opened for the call). The probe reads the raw response there, sets the numbers on that still-open
span (OpenTelemetry GenAI names ``gen_ai.usage.cache_read.input_tokens``, ``gen_ai.usage.cache_creation.input_tokens``,
``gen_ai.usage.reasoning.output_tokens`` and OpenInference's ``llm.token_count.prompt_details.cache_read``,
``….cache_write``, ``llm.token_count.completion_details.reasoning``, which Phoenix shows) and appends them to the
running item's :class:`UsageLog` (a context variable the runner sets in the agent thread).

With ``--smoltrace-record-mode`` the probe is also where the item's cassette (:mod:`pytest_smoltrace.cassettes`)
replays or records the call: the response object is the provider's either way, so everything above sees no difference.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CURRENT_USAGE",
    "SPAN_ATTRIBUTES",
    "UsageDetails",
    "UsageLog",
    "extract",
    "probe",
    "span_attributes",
]

log = logging.getLogger(__name__)

#: field → (GenAI semconv attribute, OpenInference attribute)
SPAN_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "cache_read": ("gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read"),
    "cache_creation": ("gen_ai.usage.cache_creation.input_tokens", "llm.token_count.prompt_details.cache_write"),
    "reasoning": ("gen_ai.usage.reasoning.output_tokens", "llm.token_count.completion_details.reasoning"),
}


@dataclass(frozen=True)
class UsageDetails:
    """The detail counts of one call (``None``: the provider did not report it)."""

    cache_read: int | None = None
    cache_creation: int | None = None
    reasoning: int | None = None

    @property
    def empty(self) -> bool:
        return self.cache_read is None and self.cache_creation is None and self.reasoning is None


@dataclass
class UsageLog:
    """The usage details of one item's successful model calls, in call order."""

    calls: list[UsageDetails] = field(default_factory=list)

    def total(self, name: str) -> int | None:
        """Σ of one field over the calls; ``None`` when no call reported it."""
        values = [getattr(c, name) for c in self.calls if getattr(c, name) is not None]
        return sum(values) if values else None


CURRENT_USAGE: contextvars.ContextVar[UsageLog | None] = contextvars.ContextVar("smoltrace_usage_log", default=None)


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    value = getattr(obj, name, None)  # huggingface_hub's types are dicts that keep extra fields as attributes only
    if value is None and isinstance(obj, Mapping):
        value = obj.get(name)
    return value


def _count(value: Any) -> int | None:
    # bool is an int; a count is not
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def extract(response: Any) -> UsageDetails:
    """The usage details in a raw chat-completion response (OpenAI/litellm object or dict; Anthropic fields)."""
    usage = _get(response, "usage")
    if usage is None:
        return UsageDetails()
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    cache_read = _first(_count(_get(prompt_details, "cached_tokens")), _count(_get(usage, "cache_read_input_tokens")))
    cache_creation = _first(
        _count(_get(usage, "cache_creation_input_tokens")), _count(_get(prompt_details, "cache_creation_tokens"))
    )
    reasoning = _count(_get(completion_details, "reasoning_tokens"))
    return UsageDetails(cache_read=cache_read, cache_creation=cache_creation, reasoning=reasoning)


def span_attributes(details: UsageDetails) -> dict[str, int]:
    """The span attributes for ``details`` (both naming schemes; absent fields left out)."""
    out: dict[str, int] = {}
    for name, keys in SPAN_ATTRIBUTES.items():
        value = getattr(details, name)
        if value is not None:
            for key in keys:
                out[key] = value
    return out


def _record(response: Any) -> None:
    details = extract(response)
    usage_log = CURRENT_USAGE.get()
    if usage_log is not None:
        usage_log.calls.append(details)
    if details.empty:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording() and (getattr(span, "attributes", None) or {}).get("openinference.span.kind") == "LLM":
        span.set_attributes(span_attributes(details))


class _Probe:
    """Stands in for a model's ``retryer``: calls through, then reads the response's usage details."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from ..cassettes import CURRENT_CASSETTE

        cassette = CURRENT_CASSETTE.get()
        if cassette is None:
            response = self.inner(fn, *args, **kwargs)
        else:  # --smoltrace-record-mode: replayed from the item's cassette, or made and recorded
            before = cassette.replayed_calls
            response = cassette.model_call(lambda: self.inner(fn, *args, **kwargs), kwargs)
            if cassette.replayed_calls > before:
                _mark_replayed()
        if _is_stream(response):
            return response  # streamed chunks: usage arrives in the last chunk; smolagents sums it itself
        try:
            _record(response)
        except Exception:  # a usage detail must never break a model call
            log.debug("could not read usage details from the response", exc_info=True)
        return response


def _mark_replayed() -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("smoltrace.replayed", True)


def _is_stream(response: Any) -> bool:
    return (
        isinstance(response, Iterable)
        and not isinstance(response, (Mapping, str, bytes))
        and not hasattr(response, "usage")
    )


def probe(model: Any) -> Any:
    """Install the usage probe on an API model (one with a ``retryer``); other models are returned unchanged."""
    retryer = getattr(model, "retryer", None)
    if callable(retryer) and not isinstance(retryer, _Probe):
        model.retryer = _Probe(retryer)
    return model
