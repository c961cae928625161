"""Generation settings: what is sent with every model request (temperature, top-p, top-k, max tokens, seed,
reasoning effort, thinking), from the options or per model from the models file.

:class:`Generation` is the record; how each provider receives it (or ignores a setting, and why) is
:func:`plan` — the one place that knows it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from .models import ModelSpec

#: Generation fields in the order they are documented and recorded.
GENERATION_FIELDS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "reasoning_effort", "enable_thinking")


@dataclass(frozen=True)
class Generation:
    """Generation settings of one model; ``None`` = not set (the provider's default)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    seed: int | None = None
    reasoning_effort: str | None = None
    enable_thinking: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings that are set (metadata.json records them under the model)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Generation:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def over(self, base: Generation) -> Generation:
        """These settings, with ``base``'s where these are unset (a model's own settings over the session's)."""
        return replace(base, **self.to_dict())

    def __bool__(self) -> bool:
        return bool(self.to_dict())


# ----------------------------------------------------------------------------------------------- the plan

#: litellm routes that always talk to an OpenAI-compatible server (``openai/`` counts only with an api_base).
_OPENAI_COMPATIBLE_ROUTES = frozenset({"custom_openai", "hosted_vllm", "openai_like", "lm_studio", "llamafile"})
_OLLAMA_ROUTES = frozenset({"ollama", "ollama_chat"})
#: The order litellm's own checks see the standard settings in: reasoning_effort first, since whether a temperature
#: is accepted can depend on it (gpt-5 takes temperature≠1 only with reasoning_effort "none").
_LITELLM_CHECKED = ("reasoning_effort", "max_tokens", "temperature", "top_p", "seed")
#: What a provider sends when the user sets nothing (our builders' defaults, overridden by the user's settings).
PROVIDER_DEFAULTS: dict[str, Generation] = {
    # a runaway answer costs minutes on a CPU; a real step needs far less
    "local": Generation(temperature=0.0, max_tokens=1024),
    "transformers": Generation(max_tokens=256),
}


@dataclass(frozen=True)
class GenerationPlan:
    """How one model's generation settings reach its provider (:func:`plan`). Treat the dicts as read-only.

    ``kwargs`` go to the smolagents model's constructor, which merges them into every completion call;
    ``applied`` maps each setting that is sent to its value and ``sent_as`` says under what name (a dotted path into
    the request: ``extra_body.top_k``, ``options.num_predict``); ``ignored`` maps each requested setting that is not
    sent to the reason; ``defaults`` are the provider's own values we send when the user sets nothing
    (the embedded local model's ``temperature=0``), a subset of ``applied``.
    """

    route: str
    requested: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    sent_as: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"requested", "applied", "ignored", "sent_as", "defaults", "route"}`` (metadata.json, per model)."""
        return {
            "requested": dict(self.requested),
            "applied": dict(self.applied),
            "ignored": dict(self.ignored),
            "sent_as": dict(self.sent_as),
            "defaults": dict(self.defaults),
            "route": self.route,
        }

    def warnings(self) -> list[str]:
        """One line per ignored setting, for the session-start warning."""
        return [
            f"generation setting {name}={self.requested.get(name)!r} is not sent ({self.route}): {reason}"
            for name, reason in self.ignored.items()
        ]


class _Draft:
    """A plan being built: each requested setting ends up sent (somewhere in ``kwargs``) or ignored (with a reason)."""

    def __init__(self, route: str, requested: Generation, effective: Generation) -> None:
        self.route = route
        self.requested = requested.to_dict()
        self.effective = effective
        self.defaults = {k: v for k, v in effective.to_dict().items() if k not in self.requested}
        self.kwargs: dict[str, Any] = {}
        self.applied: dict[str, Any] = {}
        self.sent_as: dict[str, str] = {}
        self.ignored: dict[str, str] = {}

    def settings(self) -> dict[str, Any]:
        """The settings to place (requested ones over the provider's defaults), in the documented order."""
        return self.effective.to_dict()

    def send(self, setting: str, path: str, value: Any, *, shown: str | None = None) -> None:
        """Send ``value`` as ``kwargs[path]`` (dots nest: ``extra_body.chat_template_kwargs.enable_thinking``)."""
        *parents, leaf = path.split(".")
        target = self.kwargs
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
        self.applied[setting] = getattr(self.effective, setting)
        self.sent_as[setting] = shown or path

    def ignore(self, setting: str, reason: str) -> None:
        if setting in self.requested:
            self.ignored[setting] = reason

    def done(self) -> GenerationPlan:
        return GenerationPlan(
            route=self.route,
            requested=self.requested,
            kwargs=self.kwargs,
            applied=self.applied,
            sent_as=self.sent_as,
            ignored=self.ignored,
            defaults={k: v for k, v in self.defaults.items() if k in self.applied},
        )


def plan(generation: Generation, spec: ModelSpec) -> GenerationPlan:
    """How ``generation`` reaches the provider of ``spec`` (see docs/generation.md for the table).

    A setting that is not set is never sent (except a provider's own default, :data:`PROVIDER_DEFAULTS`, which the
    user's setting overrides). litellm is asked what it would do (its supported-parameter list and its own parameter
    checks, no request is made), so a setting that would make every request fail is ignored with litellm's reason.
    """
    effective = generation.over(PROVIDER_DEFAULTS.get(spec.provider, Generation()))
    if not effective:  # nothing to send: no need to ask litellm (its import costs seconds)
        return GenerationPlan(route=f"{spec.provider}: no generation settings (the provider's defaults)")
    planner = _PLANNERS.get(spec.provider)
    if planner is None:
        draft = _Draft(f"unknown provider {spec.provider!r}", generation, generation)
        for name in draft.settings():
            draft.ignore(name, f"unknown provider {spec.provider!r}")
        return draft.done()
    return planner(generation, effective, spec)


# ----------------------------------------------------------------------------------------------- per provider


def _plan_ollama(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    """litellm's ``ollama_chat/`` route: sampling settings go into Ollama's ``options``, thinking is ``think``."""
    draft = _Draft("Ollama (litellm ollama_chat/)", generation, effective)
    _place_ollama(draft)
    return draft.done()


def _place_ollama(draft: _Draft) -> None:
    settings = draft.settings()
    for name, option in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
        ("seed", "seed"),
        ("max_tokens", "num_predict"),
    ):
        if name in settings:
            draft.send(name, name, settings[name], shown=f"options.{option}")
    if "enable_thinking" in settings:
        draft.send("enable_thinking", "think", settings["enable_thinking"])
    if "reasoning_effort" in settings:
        if "enable_thinking" in settings:
            draft.ignore("reasoning_effort", "Ollama has one thinking switch (think), and enable_thinking sets it")
        else:
            effort = settings["reasoning_effort"]
            draft.send("reasoning_effort", "reasoning_effort", effort, shown=f"think={str(effort != 'none').lower()}")


def _plan_inference(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    """huggingface_hub's ``InferenceClient.chat_completion``: its own parameters, the rest in ``extra_body``."""
    import inspect

    from huggingface_hub import InferenceClient

    parameters = set(inspect.signature(InferenceClient.chat_completion).parameters)
    draft = _Draft("huggingface_hub InferenceClient.chat_completion", generation, effective)
    settings = draft.settings()
    extra_body = "extra_body" in parameters

    def place(name: str, path: str) -> None:
        if name not in settings:
            return
        if path.split(".")[0] in parameters:
            draft.send(name, path, settings[name])
        elif extra_body:
            draft.send(name, f"extra_body.{path}", settings[name])
        else:
            draft.ignore(name, f"this huggingface_hub's chat_completion has no {path} parameter and no extra_body")

    for name in ("temperature", "top_p", "max_tokens", "seed", "top_k", "reasoning_effort"):
        place(name, name)
    place("enable_thinking", "chat_template_kwargs.enable_thinking")
    return draft.done()


def _plan_transformers(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    """smolagents' ``TransformersModel``: ``generate()`` keyword arguments and chat-template variables."""
    draft = _Draft("transformers generate()", generation, effective)
    settings = draft.settings()
    temperature = settings.get("temperature")
    if temperature == 0:
        draft.send("temperature", "do_sample", False, shown="do_sample=False (greedy decoding)")
        for name in ("top_p", "top_k"):
            draft.ignore(name, f"temperature 0 means greedy decoding (do_sample=False), where {name} has no effect")
    else:
        if temperature is not None or "top_p" in settings or "top_k" in settings:
            draft.kwargs["do_sample"] = True  # sampling settings only count when sampling
        if temperature is not None:
            draft.send("temperature", "temperature", temperature, shown="temperature (do_sample=True)")
        for name in ("top_p", "top_k"):
            if name in settings:
                draft.send(name, name, settings[name], shown=f"{name} (do_sample=True)")
    if "max_tokens" in settings:
        draft.send("max_tokens", "max_new_tokens", settings["max_tokens"])
    draft.ignore("seed", "transformers' generate() takes no seed and smolagents' TransformersModel sets none")
    for name in ("reasoning_effort", "enable_thinking"):
        if name in settings:
            draft.send(name, f"apply_chat_template_kwargs.{name}", settings[name])
    return draft.done()


def _plan_litellm(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    return _litellm_draft(generation, effective, spec.model_id, spec.api_base)


def _plan_local(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    """The embedded llama-cpp-python server, reached through the openai SDK (the ``openai`` path)."""
    draft = _Draft("embedded llama-cpp-python server (openai SDK)", generation, effective)
    settings = draft.settings()
    for name in ("max_tokens", "temperature", "top_p", "seed"):
        if name in settings:
            draft.send(name, name, settings[name])
    if "top_k" in settings:
        draft.send("top_k", "extra_body.top_k", settings["top_k"])
    draft.ignore("reasoning_effort", "the embedded llama-cpp-python server has no reasoning_effort")
    draft.ignore(
        "enable_thinking",
        "the embedded server renders prompts with its fixed chatml chat format, which has no thinking switch",
    )
    return draft.done()


def openai_model_name(model_id: str) -> str:
    """The model name the ``openai`` provider sends: the id without litellm's ``openai/`` routing prefix, so one id
    means the same model under both providers (``openai/gpt-4o-mini`` → ``gpt-4o-mini``; a served model whose own
    name starts with ``openai/`` is written ``openai/openai/gpt-oss-20b``, as litellm wants it). Any other id is sent
    as it is (``meta-llama/Llama-3.1-8B-Instruct`` to a vLLM server)."""
    return model_id.removeprefix("openai/") or model_id


#: OpenAI's reasoning models (by name): they take ``max_completion_tokens``, no ``top_p``, no temperature but 1.
_OPENAI_REASONING = re.compile(r"^(o\d|gpt-5)")


def native_openai(api_base: str | None) -> bool:
    """The ``openai`` provider talks to OpenAI itself (no base URL, or one on ``api.openai.com``)."""
    if not api_base:
        return not os.environ.get("OPENAI_BASE_URL")
    return (urlparse(api_base).hostname or "") == "api.openai.com"


def _plan_openai(generation: Generation, effective: Generation, spec: ModelSpec) -> GenerationPlan:
    """The openai SDK's ``chat.completions.create`` (smolagents' ``OpenAIServerModel``): OpenAI's own parameters at
    the top level, the others in ``extra_body`` (which the SDK merges into the body) for an OpenAI-compatible server.

    Against OpenAI itself the rules litellm applies to the same models are kept, by name (no litellm import): the
    reasoning models (o-series, gpt-5) take ``max_completion_tokens``, no ``top_p`` and no temperature but 1, the
    others no ``reasoning_effort``; OpenAI has no ``top_k`` and no thinking switch."""
    name = openai_model_name(spec.model_id)
    if not native_openai(spec.api_base):
        draft = _Draft(f"OpenAI-compatible endpoint (openai SDK, model {name})", generation, effective)
        settings = draft.settings()
        for setting in ("reasoning_effort", "max_tokens", "temperature", "top_p", "seed"):
            if setting in settings:
                draft.send(setting, setting, settings[setting])
        if "top_k" in settings:
            # not an OpenAI parameter; vLLM, llama.cpp's and llama-cpp-python's servers read it from the body
            draft.send("top_k", "extra_body.top_k", settings["top_k"])
        if "enable_thinking" in settings:
            draft.send(
                "enable_thinking", "extra_body.chat_template_kwargs.enable_thinking", settings["enable_thinking"]
            )
        return draft.done()
    draft = _Draft(f"OpenAI (openai SDK, model {name})", generation, effective)
    settings = draft.settings()
    reasoning = bool(_OPENAI_REASONING.match(name))
    if "reasoning_effort" in settings:
        if reasoning:
            draft.send("reasoning_effort", "reasoning_effort", settings["reasoning_effort"])
        else:
            draft.ignore("reasoning_effort", f"{name} is not a reasoning model and takes no reasoning_effort")
    if "max_tokens" in settings:
        draft.send("max_tokens", "max_completion_tokens" if reasoning else "max_tokens", settings["max_tokens"])
    if "temperature" in settings:
        if reasoning and settings["temperature"] != 1:
            draft.ignore("temperature", f"{name} takes no temperature other than 1 (a reasoning model)")
        else:
            draft.send("temperature", "temperature", settings["temperature"])
    if "top_p" in settings:
        if reasoning:
            draft.ignore("top_p", f"{name} takes no top_p (a reasoning model)")
        else:
            draft.send("top_p", "top_p", settings["top_p"])
    if "seed" in settings:
        draft.send("seed", "seed", settings["seed"])
    draft.ignore("top_k", "native OpenAI has no top_k")
    draft.ignore("enable_thinking", "native OpenAI has no thinking switch (use reasoning_effort)")
    return draft.done()


def _litellm_draft(
    generation: Generation, effective: Generation, model_id: str, api_base: str | None
) -> GenerationPlan:
    from .litellm_client import prepare_litellm

    prepare_litellm()
    import litellm

    try:
        name, route = litellm.get_llm_provider(model_id)[:2]
    except Exception:  # litellm cannot place the model id; the model call will say so
        name, route = model_id, None
    if route in _OLLAMA_ROUTES:
        draft = _Draft(f"Ollama (litellm {route}/)", generation, effective)
        _place_ollama(draft)
        return draft.done()
    compatible = route in _OPENAI_COMPATIBLE_ROUTES or (api_base is not None and route in ("openai", None))
    where = f"{route}/{name}" if route else name
    label = f"OpenAI-compatible endpoint (litellm {where})" if compatible else f"litellm {where}"
    draft = _Draft(label, generation, effective)
    settings = draft.settings()
    supported: list[str] | None = None
    if route is not None:
        with contextlib.suppress(Exception):
            supported = litellm.get_supported_openai_params(model=name, custom_llm_provider=route)
    accepted: dict[str, Any] = {}
    for setting in _LITELLM_CHECKED:
        if setting not in settings:
            continue
        value = settings[setting]
        key = setting
        if setting == "max_tokens":
            mapped = _litellm_optional_params(name, route, {**accepted, "max_tokens": value})
            if mapped is not None and "max_completion_tokens" in mapped and "max_tokens" not in mapped:
                key = "max_completion_tokens"  # litellm says so (o-series, gpt-5)
        if supported is not None and setting not in supported and key not in supported:
            draft.ignore(setting, f"litellm: {where} takes no {setting}")
            continue
        refusal = _litellm_refusal(name, route, {**accepted, key: value})
        if refusal is not None:
            draft.ignore(setting, f"litellm refuses it for {where}: {refusal}")
            continue
        accepted[key] = value
        draft.send(setting, key, value)
    if "top_k" in settings:
        if compatible:
            # not an OpenAI parameter; vLLM, llama.cpp's and llama-cpp-python's servers read it from the body
            draft.send("top_k", "extra_body.top_k", settings["top_k"])
        elif route == "openai":
            draft.ignore("top_k", "native OpenAI has no top_k")
        else:
            draft.send("top_k", "top_k", settings["top_k"])  # litellm passes it on as a provider-specific parameter
    if "enable_thinking" in settings:
        if compatible:
            draft.send(
                "enable_thinking", "extra_body.chat_template_kwargs.enable_thinking", settings["enable_thinking"]
            )
        elif route == "openai":
            draft.ignore("enable_thinking", "native OpenAI has no thinking switch (use reasoning_effort)")
        elif route is None:
            draft.ignore("enable_thinking", f"litellm cannot tell which provider serves {model_id!r}")
        else:
            draft.ignore("enable_thinking", f"the native {route} API has no enable_thinking (use reasoning_effort)")
    return draft.done()


def _litellm_optional_params(name: str, route: str | None, params: dict[str, Any]) -> dict[str, Any] | None:
    """What litellm turns ``params`` into for the provider (no request is made); None when it cannot tell."""
    if route is None:
        return None
    try:
        from litellm.utils import get_optional_params

        mapped = get_optional_params(model=name, custom_llm_provider=route, **params)
    except Exception:
        return None
    return dict(mapped) if isinstance(mapped, dict) else None


def _litellm_refusal(name: str, route: str | None, params: dict[str, Any]) -> str | None:
    """litellm's reason for refusing ``params`` (it would raise UnsupportedParamsError on every request), or None."""
    if route is None:
        return None
    try:
        import litellm
        from litellm.utils import get_optional_params
    except ImportError:  # pragma: no cover - a litellm without it: nothing to check against
        return None
    try:
        get_optional_params(model=name, custom_llm_provider=route, **params)
    except litellm.UnsupportedParamsError as exc:
        message = str(getattr(exc, "message", exc)).removeprefix("litellm.UnsupportedParamsError: ")
        return message.split(" To drop", 1)[0].strip().rstrip(".") or "unsupported"
    except Exception:  # any other failure is not a verdict on the parameters
        return None
    return None


_PLANNERS: dict[str, Callable[[Generation, Generation, ModelSpec], GenerationPlan]] = {
    "litellm": _plan_litellm,
    "ollama": _plan_ollama,
    "inference": _plan_inference,
    "transformers": _plan_transformers,
    "local": _plan_local,
    "openai": _plan_openai,
}
