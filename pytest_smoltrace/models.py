"""Provider → smolagents ``Model``. The only module that knows how a model is reached.

One model object per process (cached by :class:`ModelSpec`); agents are built fresh per item around it.
Heavy imports (smolagents, litellm, transformers) happen inside :func:`build_model`, never at import time.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .generation import Generation, plan
from .litellm_client import prepare_litellm, release_litellm_clients

__all__ = ["ModelConfigError", "ModelSpec", "build_model", "get_model", "prepare_litellm", "release_litellm_clients"]

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
    #: The file through which processes of one run share the rate limiter.
    rate_file: str | None = None
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
    from .retry import RateLimiter, RetryPolicy, install
    from .telemetry import tracing, usage

    tracing.install()

    builder = _BUILDERS.get(spec.provider)
    if builder is None:
        raise ModelConfigError(
            f"--smoltrace-provider: unknown provider {spec.provider!r}; expected one of {', '.join(_BUILDERS)}"
        )
    if spec.generation or spec.provider in ("local", "transformers"):
        log.debug("generation settings of %s: %s", spec.label, plan(spec.generation, spec).to_dict())
    limiter = RateLimiter(spec.max_rpm, Path(spec.rate_file)) if spec.max_rpm and spec.rate_file else None
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


def _local_model(spec: ModelSpec) -> Model:
    """The embedded local model (:mod:`pytest_smoltrace.localmodel`): llama-cpp-python's OpenAI-compatible server
    at ``spec.api_base`` (started by the controller, or the user's), reached through litellm like any API."""
    prepare_litellm()
    from smolagents import LiteLLMModel

    from .localmodel import litellm_model_id

    return LiteLLMModel(
        model_id=litellm_model_id(spec.model_id),
        api_base=spec.api_base,
        api_key=LOOPBACK_PLACEHOLDER_KEY,
        flatten_messages_as_text=True,  # the server rejects smolagents' list-of-parts message content
        timeout=spec.request_timeout,
        retry=False,
        num_retries=0,
        # the user's settings over this provider's defaults (temperature 0, max_tokens 1024: a runaway answer costs
        # minutes on a CPU, a real step needs far less); see generation.PROVIDER_DEFAULTS
        **plan(spec.generation, spec).kwargs,
    )


_BUILDERS = {
    "litellm": _litellm_model,
    "ollama": _ollama_model,
    "inference": _inference_model,
    "transformers": _transformers_model,
    "local": _local_model,
}
