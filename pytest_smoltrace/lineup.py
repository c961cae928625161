"""The lineup: the models one session benchmarks, from repeated ``--smoltrace-model`` values and a models file.

Each model is a :class:`Contender`: its id as given, how it is reached, its generation settings, its prices and its
*label* — the node-id level of its items when the session has several models (``-k <label>`` selects them). With one
model there is no label level, so node ids stay ``<source>::<agent type>::<task id>``.

A models file (``--smoltrace-models FILE``, YAML or JSON) is a list of mappings, or ``{"models": [...]}``::

    - id: openai/gpt-4.1-nano
      label: nano
      temperature: 0
    - id: openai/my-model
      label: mine
      api_base: http://127.0.0.1:8000/v1
      price_input: 0.1          # USD per 1M tokens, for a model litellm cannot price
      price_output: 0.4

Keys: ``id`` (required), ``label``, ``provider``, ``api_base``, ``hf_inference_provider``, ``price_input``,
``price_output`` and the generation settings (``temperature``, ``top_p``, ``top_k``, ``max_tokens``, ``seed``,
``reasoning_effort``, ``enable_thinking``), each over the session's option of the same name. A bad row is a usage
error naming the file, the row and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .generation import GENERATION_FIELDS, Generation
from .options import PROVIDERS, REASONING_EFFORTS, _bool, _non_negative_float, _positive_int, _probability
from .settings import Settings

#: A label: what ``-k`` can select and a node id can hold (no ``::``, no brackets, no spaces).
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
#: Names a label may not take: they are the node-id levels next to it.
RESERVED_LABELS = frozenset({"tool", "code", "conftest"})


class LineupError(Exception):
    """The models cannot make a lineup (a bad file row, duplicate labels); the plugin turns it into a usage error."""


@dataclass(frozen=True)
class Contender:
    """One model of the session."""

    #: The model id as given (``openai/gpt-4.1-nano``, ``scripted``, ``local``, a local path for transformers).
    model: str
    provider: str
    api_base: str | None
    hf_inference_provider: str | None
    generation: Generation
    #: The node-id level of its items and the results' ``model_label``; None for a session's only, unnamed model.
    label: str | None
    price_input: float | None = None
    price_output: float | None = None
    #: Where it was given (for error messages): ``--smoltrace-model`` or ``models.yaml row 2``.
    origin: str = "--smoltrace-model"


def session_generation(settings: Settings) -> Generation:
    """The generation settings of the options (every model's, unless its file row sets its own)."""
    return Generation(**{name: getattr(settings, name) for name in GENERATION_FIELDS})


def lineup(settings: Settings) -> tuple[Contender, ...]:
    """The session's models: the ``--smoltrace-model`` values, then the models file's rows; labels made unique."""
    base = session_generation(settings)
    given: list[Contender] = [
        Contender(
            model=model,
            provider=settings.provider,
            api_base=settings.api_base,
            hf_inference_provider=settings.hf_inference_provider,
            generation=base,
            label=None,
            price_input=settings.price_input,
            price_output=settings.price_output,
        )
        for model in settings.model
    ]
    if settings.models is not None:
        given.extend(read_models_file(settings.models, settings, base))
    if not given:
        raise LineupError("no model: give --smoltrace-model ID (repeatable) or --smoltrace-models FILE")
    return _labelled(given)


def _labelled(given: list[Contender]) -> tuple[Contender, ...]:
    """Labels for a session of several models (derived from the model id where none was given), each unique."""
    seen: dict[str, str] = {}
    for c in given:
        if c.label is not None:
            if c.label in seen:
                raise LineupError(f"{c.origin}: label {c.label!r} is already used by {seen[c.label]}")
            seen[c.label] = c.origin
    if len(given) == 1:
        return tuple(given)
    out = []
    for c in given:
        if c.label is None:
            label = base = derive_label(c.model)
            n = 2
            while label in seen:
                label, n = f"{base}-{n}", n + 1
            seen[label] = c.origin
            c = replace(c, label=label)
        out.append(c)
    return tuple(out)


def derive_label(model: str) -> str:
    """A label for a model id: its last path part, with what a node id cannot hold turned into dashes
    (``openai/gpt-4.1-nano`` → ``gpt-4.1-nano``, ``local:/m/qwen.gguf`` → ``qwen.gguf``)."""
    tail = model.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or model
    label = re.sub(r"[^A-Za-z0-9._+-]+", "-", tail).strip("-.") or "model"
    if not label[0].isalnum():
        label = "m" + label
    return label if label not in RESERVED_LABELS else f"{label}-model"


_ROW_KEYS = frozenset(
    {"id", "label", "provider", "api_base", "hf_inference_provider", "price_input", "price_output", *GENERATION_FIELDS}
)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _typed(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) and parse is not _bool:
            raise ValueError(f"expected a number, got {value!r}")
        return parse(str(value).lower() if isinstance(value, bool) else str(value))

    return convert


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def _label(value: Any) -> str:
    text = _text(value)
    if not LABEL_RE.match(text) or text in RESERVED_LABELS:
        raise ValueError(
            f"expected letters, digits, '.', '_', '+' or '-' (starting with a letter or digit; not "
            f"{', '.join(sorted(RESERVED_LABELS))}), got {value!r}"
        )
    return text


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "id": _text,
    "label": _label,
    "provider": _choice(PROVIDERS),
    "api_base": _text,
    "hf_inference_provider": _text,
    "price_input": _typed(_non_negative_float),
    "price_output": _typed(_non_negative_float),
    "temperature": _typed(_non_negative_float),
    "top_p": _typed(_probability),
    "top_k": _typed(_positive_int),
    "max_tokens": _typed(_positive_int),
    "seed": _typed(int),
    "reasoning_effort": _choice(REASONING_EFFORTS),
    "enable_thinking": _typed(_bool),
}


def read_models_file(path: Path, settings: Settings, base: Generation) -> list[Contender]:
    """The contenders of a models file (YAML or JSON); :class:`LineupError` names the file, row and field."""
    where = f"--smoltrace-models {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LineupError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise LineupError(f"{where}: not valid {kind}: {exc}") from None
    if isinstance(data, Mapping) and set(data) == {"models"}:
        data = data["models"]
    if not isinstance(data, list) or not data:
        raise LineupError(
            f"{where}: expected a non-empty list of models (or {{models: [...]}}), got {type(data).__name__}"
        )
    contenders = []
    for number, row in enumerate(data, start=1):
        origin = f"{path.name} row {number}"
        if not isinstance(row, Mapping):
            raise LineupError(f"{where}: row {number}: expected a mapping with at least 'id', got {row!r}")
        unknown = sorted(set(map(str, row)) - _ROW_KEYS)
        if unknown:
            raise LineupError(
                f"{where}: row {number}: unknown field {unknown[0]!r}; expected some of {', '.join(sorted(_ROW_KEYS))}"
            )
        if "id" not in row:
            raise LineupError(f"{where}: row {number}: field 'id' is required (the model id)")
        values: dict[str, Any] = {}
        for key, value in row.items():
            if value is None:
                continue
            try:
                values[key] = _CONVERT[key](value)
            except ValueError as exc:
                raise LineupError(f"{where}: row {number}: field {key!r}: {exc}") from None
        if ("price_input" in values) != ("price_output" in values):
            raise LineupError(f"{where}: row {number}: price_input and price_output go together (USD per 1M tokens)")
        own = Generation(**{name: values[name] for name in GENERATION_FIELDS if name in values})
        contenders.append(
            Contender(
                model=values["id"],
                provider=values.get("provider", settings.provider),
                api_base=values.get("api_base", settings.api_base),
                hf_inference_provider=values.get("hf_inference_provider", settings.hf_inference_provider),
                generation=own.over(base),
                label=values.get("label"),
                price_input=values.get("price_input", settings.price_input),
                price_output=values.get("price_output", settings.price_output),
                origin=origin,
            )
        )
    return contenders
