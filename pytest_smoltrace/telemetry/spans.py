"""How a finished span is presented: GenAI semantic-convention names and attributes, capping, redaction, documents.

The OpenInference smolagents instrumentor names spans after Python classes (``LiteLLMModel.generate``,
``SimpleTool``) and uses its own attribute keys (``llm.token_count.prompt``, ``tool.name``). Every span that
leaves through our sinks (``traces.json`` and ``--smoltrace-otlp``) goes through :func:`present` first, which
keeps those attributes and adds the OpenTelemetry GenAI ones:

============  ======================================  ===========================================================
category      name                                    attributes added
============  ======================================  ===========================================================
``item``      the task id (our root span)             — (see :func:`pytest_smoltrace.telemetry.tracing.item_attributes`)
``agent``     ``invoke_agent <AgentClass>``           ``gen_ai.operation.name=invoke_agent``, ``gen_ai.agent.name``
``step``      ``Step N`` (unchanged)                  —
``llm``       ``chat <model id>`` (``chat`` if none)  ``gen_ai.operation.name=chat``, ``gen_ai.request.model``,
                                                      ``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``,
                                                      ``gen_ai.usage.output_tokens``, the cache and
                                                      reasoning counts of :mod:`.usage` when reported,
                                                      ``gen_ai.response.finish_reasons``,
                                                      ``gen_ai.usage.cost.{prompt,completion,total}`` (USD) and
                                                      ``gen_ai.usage.cost.pricing_source`` when the item has a price
``tool``      ``execute_tool <tool name>``            ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``,
                                                      ``gen_ai.tool.type=function``, ``gen_ai.tool.description``,
                                                      ``gen_ai.tool.call.arguments`` (JSON), and
                                                      ``gen_ai.tool.call.result`` only when content capture is on
============  ======================================  ===========================================================

Any span with status ERROR and an ``exception`` event also gets ``error.type``.
Tokens: only ``llm`` spans carry ``gen_ai.usage.*``. The AGENT span's ``llm.token_count.*`` (smolagents' monitor,
planning excluded) is left as OpenInference wrote it and is never mapped, so summing ``gen_ai.usage.*`` over a
trace counts every call exactly once. ``gen_ai.response.finish_reasons`` is read from the provider response that
OpenInference stores in ``output.value`` (absent when outputs are hidden, e.g. ``OPENINFERENCE_HIDE_OUTPUTS``).

Lean traces: the raw OpenInference attributes are not all kept. Always dropped: the AGENT span's ``output.value``
(smolagents' ``RunResult`` repr, which repeats the system prompt; the item's root span carries the final answer)
and ``tool.description`` (kept once as ``gen_ai.tool.description``). Without content capture (the default, as the
GenAI conventions want) message content is not recorded either: ``llm.input_messages.*`` (the system prompt and
the whole growing context, every call), ``llm.output_messages.*``, ``llm.tools.*`` (tool schemas, every call),
and the static definitions every call repeats (``tool.parameters``, ``gen_ai.tool.description``,
``llm.invocation_parameters``), and ``input.value``/``output.value`` of agent, step, LLM and tool spans; tool spans
keep their arguments as ``gen_ai.tool.call.arguments`` and drop their results. With content capture
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) all of it is kept, capped.

``traces.json`` keeps each meaning once, under its GenAI name: it leaves out the OpenInference keys that repeat a
GenAI one (``llm.token_count.*``, ``llm.model_name``, ``llm.provider``, ``llm.system``, ``tool.name``, the
``llm.token_count.*_details.*`` cache/reasoning counts), ``openinference.span.kind`` and ``gen_ai.operation.name``
(the span dict's ``category`` says them: ``agent`` is ``invoke_agent``, ``llm`` is ``chat``, ``tool`` is
``execute_tool``), and the attribute values that are defaults (:data:`FILE_DEFAULTS`: ``gen_ai.tool.type`` is
``function``, an ``input``/``output`` MIME type ``text/plain``). The OTLP export keeps all of them (Phoenix reads
OpenInference's names).

Hygiene applied to every string attribute and event attribute: values longer than ``max_attribute_chars``
(default 4096) are cut with a ``… [N more chars]`` marker; secrets are redacted — values of attributes whose key
names a credential (``api_key``, ``authorization``, ``password``, ``secret``, ``*_token``), ``Bearer …`` tokens,
``sk-…``/``hf_…`` keys, ``api_key=…``-style pairs, and the literal values of environment variables whose name
contains KEY, TOKEN, SECRET or PASSWORD.

A span dict in ``traces.json`` (:func:`span_document`) leaves out every field that has its default
(:data:`SPAN_DEFAULTS`; :func:`read_span` puts them back), so it holds no ``null``, ``{}`` or ``[]``::

    {"span_id": "16 hex",
     "parent_span_id": "16 hex",                # absent on the item's root span
     "name": str, "category": "item|agent|step|llm|tool|other",
     "kind": "SERVER|CLIENT|PRODUCER|CONSUMER", # OTel SpanKind; absent when INTERNAL (every span smoltrace makes)
     "start_time": int, "end_time": int,        # Unix epoch nanoseconds (the duration is end - start)
     "status": "OK|ERROR",                      # absent when UNSET
     "status_description": str,                 # only when the status has one
     "attributes": {key: JSON value},           # absent when none
     "events": [{"name": str, "timestamp": int (ns), "attributes": {...} (absent when none)}],   # absent when none
     "evaluations": [{"name": str, "score.label": "pass|fail", "explanation": str}]}           # the item's checks

``evaluations`` (on the item's root span) are its ``gen_ai.evaluation.result`` events (:data:`EVALUATION_EVENT`, one
per check, recorded at the verdict just before the root span ends), written short: each is the event's attributes
without their ``gen_ai.evaluation.`` prefix and without its timestamp; ``score.value`` is left out when it is the
label's number (1.0 for ``pass``, 0.0 for ``fail``). The OTLP export sends them as events, in full.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from .cost import Price

__all__ = [
    "EVALUATION_EVENT",
    "FILE_DEFAULTS",
    "FILE_DUPLICATES",
    "SPAN_DEFAULTS",
    "AttrValue",
    "Category",
    "PresentedEvent",
    "PresentedSpan",
    "SpanOptions",
    "category_of",
    "clean_text",
    "env_secrets",
    "jsonable_attributes",
    "present",
    "read_span",
    "sanitize",
    "span_document",
]

#: An OpenTelemetry attribute value.
AttrValue = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
Category = Literal["item", "agent", "step", "llm", "tool", "other"]

OI_KIND = "openinference.span.kind"
#: The event name of a verdict's check (GenAI semantic conventions); ``traces.json`` writes them as ``evaluations``.
EVALUATION_EVENT = "gen_ai.evaluation.result"
_EVALUATION_PREFIX = "gen_ai.evaluation."
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
REDACTED = "[REDACTED]"

_SECRET_KEY = re.compile(
    r"(?i)(api[_-]?key|authorization|passw(or)?d|secret|(access|auth|refresh|id|bearer)[_-]?token)"
)
_SECRET_ENV = re.compile(r"(?i)(key|token|secret|password)")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_HF_KEY = re.compile(r"\bhf_[A-Za-z0-9]{8,}")
_KEY_VALUE = re.compile(
    r"(?i)([\"']?(?:api[_-]?key|authorization|password|secret)[\"']?\s*[:=]\s*[\"']?)([^\"'\s,;}&]+)"
)
_KEY_VALUE_TRIGGERS = ("api", "authorization", "password", "secret")
#: Redaction looks this far past the cap so that a secret cut by the cap is still recognised and removed.
_REDACT_MARGIN = 256
_FINISH_REASON = re.compile(r"""finish_reason['"]?\s*[=:]\s*['"]([A-Za-z_]+)['"]""")


@dataclass(frozen=True)
class SpanOptions:
    """How spans are presented. ``capture_content`` adds ``gen_ai.tool.call.result`` (semconv opt-in)."""

    capture_content: bool = False
    max_attribute_chars: int = 4096
    #: Literal secret values to redact wherever they appear (see :func:`env_secrets`).
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, *, capture_content: bool | None = None, max_attribute_chars: int = 4096) -> SpanOptions:
        """Options with content capture from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` when not given."""
        if capture_content is None:
            capture_content = os.environ.get(CAPTURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
        return cls(capture_content, max_attribute_chars, env_secrets())


@dataclass(frozen=True)
class PresentedEvent:
    name: str
    timestamp: int
    attributes: dict[str, AttrValue]


@dataclass(frozen=True)
class PresentedSpan:
    """What our sinks show of a span: its (semconv) name, category, sanitized attributes and events."""

    name: str
    category: Category
    attributes: dict[str, AttrValue]
    events: tuple[PresentedEvent, ...]


def env_secrets(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values (8+ chars) of environment variables whose name contains KEY, TOKEN, SECRET or PASSWORD."""
    from smoltrace_tools.environment import environ_items  # os.environ changes under agent threads

    items = environ_items() if environ is None else list(environ.items())
    values = {v for k, v in items if _SECRET_ENV.search(k) and len(v) >= 8 and v.lower() not in ("true", "false")}
    return tuple(sorted(values, key=len, reverse=True))


@functools.lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    # cheap substring checks first: the regexes run only on text that may hold a secret
    if "sk-" in text:
        text = _SK_KEY.sub("sk-" + REDACTED, text)
    if "hf_" in text:
        text = _HF_KEY.sub("hf_" + REDACTED, text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub("Bearer " + REDACTED, text)
    if any(trigger in lowered for trigger in _KEY_VALUE_TRIGGERS):
        text = _KEY_VALUE.sub(r"\1" + REDACTED, text)
    return text


def _clean(text: str, options: SpanOptions) -> str:
    """Redact secrets and cap at ``max_attribute_chars`` (with a ``… [N more chars]`` marker)."""
    limit = options.max_attribute_chars
    if len(text) <= limit:
        return _redact(text, options.secrets)
    window = limit + _REDACT_MARGIN
    head = _redact(text[:window], options.secrets)
    more = len(head) - limit + max(0, len(text) - window)
    return head if more <= 0 else head[:limit] + f"… [{more} more chars]"


def clean_text(text: str | None, options: SpanOptions) -> str | None:
    """:func:`sanitize` for one free-text value (status descriptions)."""
    return None if text is None else _clean(text, options)


def sanitize(attributes: Mapping[str, Any] | None, options: SpanOptions) -> dict[str, AttrValue]:
    """Cap long strings and redact secrets; values stay valid OpenTelemetry attribute values."""
    out: dict[str, AttrValue] = {}
    for key, value in (attributes or {}).items():
        if _is_secret_key(key) and not isinstance(value, (bool, int, float)):
            out[key] = REDACTED
        elif isinstance(value, str):
            out[key] = _clean(value, options)
        elif isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, Sequence):
            out[key] = tuple(_clean(v, options) if isinstance(v, str) else v for v in value)
        else:  # not a valid attribute value; keep its text
            out[key] = _clean(str(value), options)
    return out


def category_of(name: str, attributes: Mapping[str, Any], *, is_root: bool = False) -> Category:
    """``item`` for our root span; otherwise from ``openinference.span.kind``."""
    if is_root:
        return "item"
    kind = attributes.get(OI_KIND)
    if kind == "AGENT":
        return "agent"
    if kind == "LLM":
        return "llm"
    if kind == "TOOL":
        return "tool"
    if kind == "CHAIN" and name.startswith("Step "):
        return "step"
    return "other"


def _finish_reasons(output: Any) -> tuple[str, ...]:
    if not isinstance(output, str):
        return ()
    return tuple(_FINISH_REASON.findall(output))


def _tool_arguments(input_value: Any, parameters: Any) -> str | None:
    """The call's arguments as a JSON object; positional arguments are named after the tool's inputs."""
    if not isinstance(input_value, str):
        return None
    try:
        bound = json.loads(input_value)
    except ValueError:
        return input_value
    if not isinstance(bound, dict):
        return input_value
    args = bound.get("args") or []
    kwargs = bound.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not isinstance(args, list):
        return input_value
    arguments: dict[str, Any] = {}
    if args:
        try:
            names = list(json.loads(parameters)) if isinstance(parameters, str) else []
        except ValueError:
            names = []
        if len(names) >= len(args):
            arguments.update(zip(names, args, strict=False))
        else:
            arguments["args"] = args
    arguments.update(kwargs)
    return json.dumps(arguments, ensure_ascii=False, default=str)


def _semconv(
    name: str, category: Category, attrs: Mapping[str, Any], price: Price | None, options: SpanOptions
) -> tuple[str, dict[str, AttrValue]]:
    extra: dict[str, AttrValue] = {}
    if category == "agent":
        agent = name[: -len(".run")] if name.endswith(".run") else name
        extra["gen_ai.operation.name"] = "invoke_agent"
        extra["gen_ai.agent.name"] = agent
        name = f"invoke_agent {agent}"
    elif category == "llm":
        model = attrs.get("gen_ai.request.model") or attrs.get("llm.model_name")
        extra["gen_ai.operation.name"] = "chat"
        if model:
            extra["gen_ai.request.model"] = str(model)
        if attrs.get("llm.provider"):
            extra["gen_ai.provider.name"] = str(attrs["llm.provider"])
        prompt = attrs.get("llm.token_count.prompt")
        completion = attrs.get("llm.token_count.completion")
        if isinstance(prompt, int):
            extra["gen_ai.usage.input_tokens"] = prompt
        if isinstance(completion, int):
            extra["gen_ai.usage.output_tokens"] = completion
        reasons = _finish_reasons(attrs.get("output.value"))
        if reasons:
            extra["gen_ai.response.finish_reasons"] = reasons
        if price is not None and isinstance(prompt, int) and isinstance(completion, int):
            from .cost import prompt_cost_usd

            read = attrs.get("gen_ai.usage.cache_read.input_tokens")
            creation = attrs.get("gen_ai.usage.cache_creation.input_tokens")
            prompt_cost = prompt_cost_usd(
                price,
                prompt,
                cache_read=read if isinstance(read, int) else None,
                cache_creation=creation if isinstance(creation, int) else None,
            )
            completion_cost = completion * price.output_per_token
            extra["gen_ai.usage.cost.prompt"] = prompt_cost
            extra["gen_ai.usage.cost.completion"] = completion_cost
            extra["gen_ai.usage.cost.total"] = prompt_cost + completion_cost
            extra["gen_ai.usage.cost.pricing_source"] = price.source
        name = f"chat {model}" if model else "chat"
    elif category == "tool":
        tool = str(attrs.get("tool.name") or name)
        extra["gen_ai.operation.name"] = "execute_tool"
        extra["gen_ai.tool.name"] = tool
        extra["gen_ai.tool.type"] = "function"
        if attrs.get("tool.description"):
            extra["gen_ai.tool.description"] = str(attrs["tool.description"])
        arguments = _tool_arguments(attrs.get("input.value"), attrs.get("tool.parameters"))
        if arguments is not None:
            extra["gen_ai.tool.call.arguments"] = arguments
        if options.capture_content and "output.value" in attrs:
            result = attrs["output.value"]
            extra["gen_ai.tool.call.result"] = result if isinstance(result, str) else json.dumps(result, default=str)
        name = f"execute_tool {tool}"
    return name, extra


#: Attribute key prefixes that hold message content or static definitions (the system prompt, tool schemas).
_CONTENT_PREFIXES = ("llm.input_messages.", "llm.output_messages.", "llm.tools.")
#: Raw keys whose meaning a GenAI key already carries (kept once, under the GenAI name).
_DUPLICATES = ("tool.description",)
_MIME = {"input.value": "input.mime_type", "output.value": "output.mime_type"}


def _lean(category: Category, attributes: dict[str, Any], options: SpanOptions) -> dict[str, Any]:
    """Drop what a trace does not need (see "Lean traces" in the module docstring)."""
    drop: set[str] = set(_DUPLICATES)
    if category == "agent":
        drop.add("output.value")  # the RunResult repr (system prompt included); the item's root has the answer
    if not options.capture_content:
        drop.update(k for k in attributes if k.startswith(_CONTENT_PREFIXES))
        # static definitions, the same in every call: tool schemas and descriptions, the model's call parameters
        drop.update(("tool.parameters", "gen_ai.tool.description", "llm.invocation_parameters"))
        if category in ("agent", "step", "llm"):
            drop.update(("input.value", "output.value"))
        elif category == "tool":
            # the arguments stay as gen_ai.tool.call.arguments; the result is gen_ai.tool.call.result, with capture
            drop.update(("input.value", "output.value"))
    for key in list(drop):
        if key in _MIME:
            drop.add(_MIME[key])
    return {k: v for k, v in attributes.items() if k not in drop}


def present(
    span: ReadableSpan, options: SpanOptions, *, price: Price | None = None, is_root: bool = False
) -> PresentedSpan:
    """The name, category, attributes and events our sinks show for ``span`` (see the module docstring)."""
    raw: Mapping[str, Any] = span.attributes or {}
    category = category_of(span.name, raw, is_root=is_root)
    name, extra = _semconv(span.name, category, raw, price, options)
    merged: dict[str, Any] = _lean(category, {**raw, **extra}, options)
    events = tuple(
        PresentedEvent(event.name, int(event.timestamp or 0), sanitize(event.attributes, options))
        for event in span.events
    )
    if span.status.status_code.name == "ERROR" and "error.type" not in merged:
        for event in events:
            if event.name == "exception" and event.attributes.get("exception.type"):
                merged["error.type"] = event.attributes["exception.type"]
                break
    return PresentedSpan(name, category, sanitize(merged, options), events)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, Iterable):
        return [_json_value(v) for v in value]
    return str(value)


def jsonable_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values as plain JSON (sequences → lists, non-finite floats → strings)."""
    return {str(k): _json_value(v) for k, v in attributes.items()}


def _hex_span(span_id: int) -> str:
    return format(span_id, "016x")


#: OpenInference keys that ``traces.json`` leaves out because a GenAI key (or the span dict's ``category``) says the
#: same; the OTLP export keeps them, since Phoenix reads them. The AGENT span's ``llm.token_count.*`` (smolagents'
#: monitor, planning excluded) would only invite double counting. ``gen_ai.operation.name`` follows from the category.
FILE_DUPLICATES = frozenset(
    {
        OI_KIND,
        "gen_ai.operation.name",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.model_name",
        "llm.provider",
        "llm.system",
        "tool.name",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.prompt_details.cache_write",
        "llm.token_count.completion_details.reasoning",
    }
)

#: Attribute values that ``traces.json`` leaves out as defaults (the OTLP export keeps them): a tool span without
#: ``gen_ai.tool.type`` is a function tool, a value without a MIME type is plain text (OpenInference's default).
FILE_DEFAULTS: Mapping[str, AttrValue] = {
    "gen_ai.tool.type": "function",
    "input.mime_type": "text/plain",
    "output.mime_type": "text/plain",
}

#: The fields a ``traces.json`` span dict leaves out when they have these values (see the module docstring).
SPAN_DEFAULTS: Mapping[str, Any] = {
    "parent_span_id": None,
    "kind": "INTERNAL",
    "status": "UNSET",
    "status_description": None,
    "attributes": {},
    "events": [],
    "evaluations": [],
}


def _evaluation(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """One ``gen_ai.evaluation.result`` event as ``traces.json`` writes it (see the module docstring)."""
    short = {k.removeprefix(_EVALUATION_PREFIX): v for k, v in attributes.items()}
    if short.get("score.value") == {"pass": 1.0, "fail": 0.0}.get(str(short.get("score.label"))):
        short.pop("score.value", None)
    return short


def span_document(
    span: ReadableSpan, options: SpanOptions, *, price: Price | None = None, is_root: bool = False
) -> dict[str, Any]:
    """The ``traces.json`` dict for one finished span (format in the module docstring)."""
    shown = present(span, options, price=price, is_root=is_root)
    attributes = {
        k: v
        for k, v in shown.attributes.items()
        if k not in FILE_DUPLICATES and (k not in FILE_DEFAULTS or FILE_DEFAULTS[k] != v)
    }
    context = span.context
    start = int(span.start_time or 0)
    end = int(span.end_time or start)
    doc: dict[str, Any] = {"span_id": _hex_span(context.span_id) if context is not None else None}
    if span.parent is not None:
        doc["parent_span_id"] = _hex_span(span.parent.span_id)
    doc["name"] = shown.name
    doc["category"] = shown.category
    if span.kind.name != SPAN_DEFAULTS["kind"]:
        doc["kind"] = span.kind.name
    doc["start_time"] = start
    doc["end_time"] = end
    if span.status.status_code.name != SPAN_DEFAULTS["status"]:
        doc["status"] = span.status.status_code.name
    description = clean_text(span.status.description, options)
    if description:
        doc["status_description"] = description
    if attributes:
        doc["attributes"] = jsonable_attributes(attributes)
    events: list[dict[str, Any]] = []
    evaluations: list[dict[str, Any]] = []
    for event in shown.events:
        if event.name == EVALUATION_EVENT:
            evaluations.append(jsonable_attributes(_evaluation(event.attributes)))
            continue
        entry: dict[str, Any] = {"name": event.name, "timestamp": event.timestamp}
        if event.attributes:
            entry["attributes"] = jsonable_attributes(event.attributes)
        events.append(entry)
    if events:
        doc["events"] = events
    if evaluations:
        doc["evaluations"] = evaluations
    return doc


def read_span(span: Mapping[str, Any]) -> dict[str, Any]:
    """A ``traces.json`` span dict with every field it leaves out at its default (:data:`SPAN_DEFAULTS`).

    Also reads the span dicts written before the format was compacted: ``status`` as ``{"code", "description"}``,
    ``duration_ms`` (dropped: the duration is ``end_time - start_time``) and evaluations as
    ``gen_ai.evaluation.result`` events.
    """
    full: dict[str, Any] = {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in SPAN_DEFAULTS.items()}
    full.update({k: v for k, v in span.items() if v is not None})
    full.pop("duration_ms", None)
    status = full["status"]
    if isinstance(status, Mapping):
        full["status"] = str(status.get("code") or SPAN_DEFAULTS["status"])
        full["status_description"] = full["status_description"] or status.get("description") or None
    events = [{"attributes": {}, **e} for e in full["events"] if isinstance(e, Mapping)]
    full["events"] = [e for e in events if e.get("name") != EVALUATION_EVENT]
    old = [_evaluation(e["attributes"]) for e in events if e.get("name") == EVALUATION_EVENT]
    if old:
        full["evaluations"] = [*full["evaluations"], *old]
    return full
