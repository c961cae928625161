"""Provider → smolagents ``Model``. The only module that knows how a model is reached.

One model object per process (cached by :class:`ModelSpec`); agents are built fresh per item around it.
Heavy imports (smolagents, litellm, transformers) happen inside :func:`build_model`, never at import time; the
``openai`` and ``local`` providers never import litellm at all (see docs/providers.md).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .generation import Generation, openai_model_name, plan
from .limits import LimitsLocation
from .litellm_client import prepare_litellm, release_litellm_clients

__all__ = [
    "ModelConfigError",
    "ModelSpec",
    "build_model",
    "get_model",
    "openai_model_name",
    "prepare_litellm",
    "release_litellm_clients",
]

if TYPE_CHECKING:
    from smolagents import Model

log = logging.getLogger(__name__)

OLLAMA_DEFAULT_BASE = "http://localhost:11434"
#: Sent as API key to loopback servers that need none (litellm's ``openai/`` route insists on some key).
LOOPBACK_PLACEHOLDER_KEY = "sk-no-key-required"


class ModelConfigError(Exception):
    """The model options cannot work (unknown provider, missing dependency); a usage error for the user."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build the model object; hashable so it keys the per-process cache."""

    model_id: str
    provider: str
    api_base: str | None = None
    request_timeout: float = 300.0
    #: Retries of rate-limited / transient model calls (our layer; the clients' own retries are turned off).
    retries: int = 3
    #: One request budget per minute for the whole run (all threads and xdist workers), or None.
    max_rpm: float | None = None
    #: Where the processes (and hosts) of one run share the rate limiter (:mod:`.limits`).
    limits: LimitsLocation | None = None
    #: ``InferenceClientModel(provider=…)`` for the ``inference`` provider.
    inference_provider: str | None = None
    #: Sent with every model request (:func:`.generation.plan` says how, per provider).
    generation: Generation = field(default_factory=Generation)
    #: The model's name in a session of several models (node ids, results' ``model_label``); None for a lone model.
    name: str | None = None

    @property
    def label(self) -> str:
        """The model id as reported in results."""
        return self.model_id

    @property
    def reported_name(self) -> str:
        """What results group this model's items by (``RunRecord.model_name``): its label, else its model id."""
        return self.name or self.label

    @property
    def is_local_model(self) -> bool:
        """The model runs on this machine's hardware (GPU metrics on, one item at a time, one xdist group)."""
        return self.provider in ("transformers", "ollama", "local")


def is_loopback(url: str | None) -> bool:
    """True for http(s) URLs whose host is ``localhost`` or a loopback address."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_cache: dict[ModelSpec, Model] = {}
_cache_lock = threading.Lock()


def get_model(spec: ModelSpec) -> Model:
    """The process-wide model object for ``spec`` (built on first use)."""
    with _cache_lock:
        model = _cache.get(spec)
        if model is None:
            model = build_model(spec)
            _cache[spec] = model
        return model


def _api_key_for(spec: ModelSpec, env_names: tuple[str, ...]) -> str | None:
    for name in env_names:
        value = os.environ.get(name)
        if value:
            return value
    return LOOPBACK_PLACEHOLDER_KEY if is_loopback(spec.api_base) else None


def build_model(spec: ModelSpec) -> Model:
    """Build the smolagents model for ``spec``; raises :class:`ModelConfigError` for unusable settings.

    Tracing is installed first, in every process that builds a model: OpenInference patches the model classes,
    and the retry wrapper below keeps the bound ``generate`` it finds, so a model built before the patch would
    never produce a model-call span. The usage probe reads cached and reasoning tokens from each response.
    """
    from . import outputtypes, templates
    from .retry import RATE_WINDOW_S, RateLimiter, RetryPolicy, install
    from .telemetry import tracing, usage

    tracing.install()
    outputtypes.install()  # an agent's non-string answer no longer imports torch (see pytest_smoltrace.outputtypes)
    templates.install()  # prompt templates compiled once per process, not per agent (see pytest_smoltrace.templates)

    builder = _BUILDERS.get(spec.provider)
    if builder is None:
        raise ModelConfigError(
            f"--smoltrace-provider: unknown provider {spec.provider!r}; expected one of {', '.join(_BUILDERS)}"
        )
    if spec.generation or spec.provider in ("local", "transformers"):
        log.debug("generation settings of %s: %s", spec.label, plan(spec.generation, spec).to_dict())
    limiter = None
    if spec.max_rpm and spec.limits:  # a request that never ends counts as in flight until it timed out
        limiter = RateLimiter(spec.max_rpm, spec.limits.open(), pending_s=spec.request_timeout + RATE_WINDOW_S)
    return install(usage.probe(builder(spec)), RetryPolicy(retries=spec.retries), limiter)


def _litellm_model(spec: ModelSpec) -> Model:
    prepare_litellm()
    from smolagents import LiteLLMModel

    # A loopback server needs no real key; elsewhere litellm finds the provider's key in the environment.
    api_key = _api_key_for(spec, ("LITELLM_API_KEY", "OPENAI_API_KEY")) if is_loopback(spec.api_base) else None
    return LiteLLMModel(
        model_id=spec.model_id,
        api_base=spec.api_base,
        api_key=api_key,
        timeout=spec.request_timeout,
        retry=False,  # smolagents' own rate-limit retry (60 s waits) is replaced by ours (pytest_smoltrace.retry)
        num_retries=0,  # and so are litellm's/openai's silent retries
        **plan(spec.generation, spec).kwargs,  # smolagents merges these into every completion call
    )


def _ollama_model(spec: ModelSpec) -> Model:
    prepare_litellm()
    from smolagents import LiteLLMModel

    name = spec.model_id
    for prefix in ("ollama_chat/", "ollama/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return LiteLLMModel(
        model_id=f"ollama_chat/{name}",
        api_base=spec.api_base or OLLAMA_DEFAULT_BASE,
        timeout=spec.request_timeout,
        retry=False,
        num_retries=0,
        **plan(spec.generation, spec).kwargs,
    )


def _inference_model(spec: ModelSpec) -> Model:
    from smolagents import InferenceClientModel

    token = os.environ.get("HF_TOKEN") or (LOOPBACK_PLACEHOLDER_KEY if is_loopback(spec.api_base) else None)
    generation = plan(spec.generation, spec).kwargs
    if spec.api_base:
        # huggingface_hub refuses a model id together with a base URL: the endpoint decides the model.
        return InferenceClientModel(
            model_id=None,
            base_url=spec.api_base,
            token=token,
            timeout=int(spec.request_timeout),
            retry=False,
            **generation,
        )
    return InferenceClientModel(
        model_id=spec.model_id,
        provider=spec.inference_provider,
        token=token,
        timeout=int(spec.request_timeout),
        retry=False,
        **generation,
    )


def _transformers_model(spec: ModelSpec) -> Model:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelConfigError(
            f"--smoltrace-provider transformers needs torch and transformers ({exc}); "
            "install them with: pip install 'pytest-smoltrace[transformers]'"
        ) from None
    from smolagents import TransformersModel

    # max_new_tokens is always among the kwargs: the user's max_tokens, else the provider default (256)
    return TransformersModel(model_id=spec.model_id, **plan(spec.generation, spec).kwargs)


def _openai_client_model(
    spec: ModelSpec, model_name: str, api_key: str | None, *, flatten_messages_as_text: bool = False
) -> Model:
    """smolagents' ``OpenAIServerModel`` (the openai SDK; litellm is never imported on this path)."""
    from smolagents import OpenAIServerModel

    try:
        return OpenAIServerModel(
            model_id=model_name,
            api_base=spec.api_base,
            api_key=api_key,
            # the SDK's own retries (2, silent) are replaced by ours (pytest_smoltrace.retry)
            client_kwargs={"max_retries": 0, "timeout": spec.request_timeout},
            flatten_messages_as_text=flatten_messages_as_text,
            retry=False,  # and so is smolagents' rate-limit retry (60 s waits)
            **plan(spec.generation, spec).kwargs,  # smolagents merges these into every completion call
        )
    except ImportError as exc:
        raise ModelConfigError(f"--smoltrace-provider openai needs the openai package ({exc})") from None
    except Exception as exc:  # openai.OpenAIError: no API key anywhere
        if type(exc).__name__ != "OpenAIError":
            raise
        raise ModelConfigError(
            f"--smoltrace-provider openai: {exc} (export OPENAI_API_KEY, or point --smoltrace-api-base at a "
            "loopback server, which needs no key)"
        ) from None


def _openai_model(spec: ModelSpec) -> Model:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, TGI, LM Studio…) through the openai SDK."""
    api_key = os.environ.get("OPENAI_API_KEY") or (LOOPBACK_PLACEHOLDER_KEY if is_loopback(spec.api_base) else None)
    return _openai_client_model(spec, openai_model_name(spec.model_id), api_key)


def _local_model(spec: ModelSpec) -> Model:
    """The embedded local model (:mod:`pytest_smoltrace.localmodel`): llama-cpp-python's OpenAI-compatible server
    at ``spec.api_base`` (started by the controller, or the user's), reached through the ``openai`` path (no
    litellm import). The user's generation settings go over this provider's defaults (temperature 0, max_tokens
    1024: a runaway answer costs minutes on a CPU, a real step needs far less); see generation.PROVIDER_DEFAULTS."""
    from .localmodel import served_model_name

    # the server rejects smolagents' list-of-parts message content
    return _openai_client_model(
        spec, served_model_name(spec.model_id), LOOPBACK_PLACEHOLDER_KEY, flatten_messages_as_text=True
    )


_BUILDERS = {
    "litellm": _litellm_model,
    "ollama": _ollama_model,
    "inference": _inference_model,
    "transformers": _transformers_model,
    "local": _local_model,
    "openai": _openai_model,
}
