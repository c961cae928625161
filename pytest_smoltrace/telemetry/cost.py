"""Token prices and cost in USD — from litellm's bundled price map (offline) or from custom prices.

API::

    price = price_for("openai/gpt-4o-mini")                     # Price(source="litellm") or None
    price = price_for("openai/my-model", price_input_per_m=0.5, price_output_per_m=1.5)  # Price(source="custom")
    cost_usd(price, prompt_tokens, completion_tokens)           # float, or None when anything is unknown

Rules:

- Custom prices (USD per 1M tokens, ``--smoltrace-price-input`` / ``--smoltrace-price-output``) override the
  map; give both or neither (one alone raises :class:`ValueError`).
- Otherwise ``litellm.get_model_info(model_id)`` prices the model. It resolves provider prefixes
  (``openai/gpt-4o-mini`` → ``gpt-4o-mini``). litellm is imported lazily with ``LITELLM_LOCAL_MODEL_COST_MAP=True``
  set first, so the price map is the bundled one and no network is touched.
- Unknown model → ``None`` and the cost is ``None`` — never 0. An entry whose input *and* output prices are both 0
  is treated as unknown (litellm lists some hosted models that way), except for local runtimes
  (``ollama/``, ``ollama_chat/``, ``lm_studio/``, ``llamafile/``) where 0 USD is the real API price.
- Lookups are cached per model id, so a session pays litellm's lookup once.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["LOCAL_PREFIXES", "Price", "PriceSource", "cost_usd", "price_for"]

log = logging.getLogger(__name__)

PriceSource = Literal["litellm", "custom"]

#: Provider prefixes whose models run locally: a 0 USD price in litellm's map is real for them.
LOCAL_PREFIXES = ("ollama/", "ollama_chat/", "lm_studio/", "llamafile/")

_PER_M = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per token for prompt (input) and completion (output) tokens, and where the numbers came from."""

    input_per_token: float
    output_per_token: float
    source: PriceSource
    #: The price-map key that matched (``gpt-4o-mini`` for ``openai/gpt-4o-mini``) or the model id for custom prices.
    model: str

    @property
    def input_per_m(self) -> float:
        """USD per 1M prompt tokens."""
        return self.input_per_token * _PER_M

    @property
    def output_per_m(self) -> float:
        """USD per 1M completion tokens."""
        return self.output_per_token * _PER_M

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Price:
        source: PriceSource = "custom" if data.get("source") == "custom" else "litellm"
        return cls(float(data["input_per_token"]), float(data["output_per_token"]), source, str(data.get("model", "")))


def price_for(
    model_id: str, *, price_input_per_m: float | None = None, price_output_per_m: float | None = None
) -> Price | None:
    """The price of ``model_id``: custom prices when given, else litellm's bundled map, else ``None``."""
    if (price_input_per_m is None) != (price_output_per_m is None):
        raise ValueError(
            "give both --smoltrace-price-input and --smoltrace-price-output (USD per 1M tokens), or neither"
        )
    if price_input_per_m is not None and price_output_per_m is not None:
        if price_input_per_m < 0 or price_output_per_m < 0:
            raise ValueError("prices must be >= 0 USD per 1M tokens")
        return Price(price_input_per_m / _PER_M, price_output_per_m / _PER_M, "custom", model_id)
    return _litellm_price(model_id)


def cost_usd(price: Price | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """``prompt × input price + completion × output price``; ``None`` when the price or a token count is unknown."""
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return prompt_tokens * price.input_per_token + completion_tokens * price.output_per_token


@functools.lru_cache(maxsize=256)
def _litellm_price(model_id: str) -> Price | None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:  # pragma: no cover - litellm is a dependency
        log.debug("litellm is not installed: no price for %s", model_id)
        return None
    litellm.suppress_debug_info = True
    try:
        info = litellm.get_model_info(model_id)
    except Exception:  # litellm raises its own "not mapped" errors for unknown models
        log.debug("litellm has no price for %s", model_id)
        return None
    prompt = info.get("input_cost_per_token")
    completion = info.get("output_cost_per_token")
    if prompt is None or completion is None:
        return None
    if prompt == 0 and completion == 0 and not model_id.startswith(LOCAL_PREFIXES):
        log.debug("litellm lists %s at 0 USD: treated as unknown", model_id)
        return None
    return Price(float(prompt), float(completion), "litellm", str(info.get("key") or model_id))
