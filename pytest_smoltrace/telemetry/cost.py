"""Token prices and cost in USD — from litellm's bundled price map (offline) or from custom prices.

API::

    price = price_for("openai/gpt-4o-mini")                     # Price(source="litellm") or None
    price = price_for("openai/my-model", price_input_per_m=0.5, price_output_per_m=1.5)  # Price(source="custom")
    cost_usd(price, prompt_tokens, completion_tokens)           # float, or None when anything is unknown
    cost_usd(price, prompt_tokens, completion_tokens, cache_read=800, cache_creation=0)   # cached tokens priced apart

Rules:

- Custom prices (USD per 1M tokens, ``--smoltrace-price-input`` / ``--smoltrace-price-output``) override the
  map; give both or neither (one alone raises :class:`ValueError`).
- Otherwise litellm's bundled price map prices the model — the file itself
  (``model_prices_and_context_window_backup.json`` in the installed litellm package, found with
  ``importlib.util.find_spec``), read without importing litellm (:class:`PriceMap`), so the ``openai`` provider's runs
  never pay litellm's import. A model id is looked up as litellm does for every provider but the few below: the id
  itself (case-insensitively), else without its provider prefix when the entry belongs to that provider
  (``openai/gpt-4o-mini`` → ``gpt-4o-mini``, ``groq/llama3-8b-8192`` as it is). The numbers equal
  ``litellm.get_model_info``'s for every chat model of the map (tests/test_openai_provider.py checks it).
  Ids of the providers whose lookup litellm does with its own routing code (:data:`LITELLM_RESOLVED`: Bedrock's
  regions and ARNs, Vertex AI, Azure, SageMaker, Databricks, AI21) are priced by ``litellm.get_model_info`` itself,
  imported lazily with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first; only litellm reaches those models anyway.
- Unknown model → ``None`` and the cost is ``None`` — never 0. An entry whose input *and* output prices are both 0
  is treated as unknown (litellm lists some hosted models that way), except for local runtimes
  (``ollama/``, ``ollama_chat/``, ``lm_studio/``, ``llamafile/``) where 0 USD is the real API price.
- Lookups are cached per model id, so a session pays litellm's lookup once.
- Prompt caching: cache reads and cache writes are *part of* the prompt tokens (OpenAI's convention, which litellm
  follows for every provider). They are priced at litellm's ``cache_read_input_token_cost`` /
  ``cache_creation_input_token_cost`` when the map has them, else at the input price; the rest of the prompt at the
  input price. Reasoning tokens are completion tokens and are priced as such, once. Custom prices have no cache
  price: cached tokens are priced as input.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["LOCAL_PREFIXES", "Price", "PriceSource", "cost_usd", "price_for", "prompt_cost_usd", "record_cost_usd"]

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
    #: USD per prompt token read from the provider's cache / written to it (``None``: priced as input).
    cache_read_per_token: float | None = None
    cache_creation_per_token: float | None = None

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
        read, creation = data.get("cache_read_per_token"), data.get("cache_creation_per_token")
        return cls(
            float(data["input_per_token"]),
            float(data["output_per_token"]),
            source,
            str(data.get("model", "")),
            None if read is None else float(read),
            None if creation is None else float(creation),
        )


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


def prompt_cost_usd(
    price: Price, prompt_tokens: int, *, cache_read: int | None = None, cache_creation: int | None = None
) -> float:
    """The prompt's cost: fresh tokens at the input price, cache reads and writes at theirs (see the rules above)."""
    read = min(max(cache_read or 0, 0), prompt_tokens)
    creation = min(max(cache_creation or 0, 0), prompt_tokens - read)
    fresh = prompt_tokens - read - creation
    read_price = price.input_per_token if price.cache_read_per_token is None else price.cache_read_per_token
    creation_price = price.input_per_token if price.cache_creation_per_token is None else price.cache_creation_per_token
    return fresh * price.input_per_token + read * read_price + creation * creation_price


def cost_usd(
    price: Price | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    *,
    cache_read: int | None = None,
    cache_creation: int | None = None,
) -> float | None:
    """Prompt cost (:func:`prompt_cost_usd`) + ``completion × output price``; ``None`` when anything is unknown."""
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    prompt = prompt_cost_usd(price, prompt_tokens, cache_read=cache_read, cache_creation=cache_creation)
    return prompt + completion_tokens * price.output_per_token


#: Providers (an id's prefix, or the matching entry's ``litellm_provider``) whose prices litellm resolves with its own
#: routing code (regions, ARNs, deployments, provider configs): asked of ``litellm.get_model_info`` itself.
LITELLM_RESOLVED = ("bedrock", "vertex_ai", "azure", "sagemaker", "databricks", "ai21")
_OLLAMA_PREFIXES = ("ollama", "ollama_chat")
#: litellm's bundled price map, inside the installed litellm package.
PRICE_FILE = "model_prices_and_context_window_backup.json"


class PriceMap:
    """litellm's bundled price map, read from its file (never by importing litellm)."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries
        self._lower = {key.lower(): key for key in entries}
        self.providers = frozenset(str(e["litellm_provider"]) for e in entries.values() if e.get("litellm_provider"))

    @classmethod
    def load(cls) -> PriceMap | None:
        """The installed litellm's map; None when litellm is not installed or its file cannot be read."""
        import importlib.util
        import json

        try:
            spec = importlib.util.find_spec("litellm")
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        for location in locations:
            path = os.path.join(location, PRICE_FILE)
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                log.debug("litellm's price map %s cannot be read", path, exc_info=True)
                continue
            if isinstance(data, dict):
                return cls({k: v for k, v in data.items() if isinstance(v, dict) and k != "sample_spec"})
        return None

    def lookup(self, model_id: str) -> tuple[str, dict[str, Any]] | None:
        """(key, entry) for ``model_id``: the id itself, else the id without a provider prefix whose entry is that
        provider's (an entry that names no provider matches any)."""
        key = self._lower.get(model_id.lower())
        if key is not None:
            return key, self.entries[key]
        prefix, sep, rest = model_id.partition("/")
        if sep and prefix in self.providers:
            key = self._lower.get(rest.lower())
            if key is not None and self.entries[key].get("litellm_provider") in (None, prefix):
                return key, self.entries[key]
        return None


_price_map: list[PriceMap | None] = []
_price_map_lock = threading.Lock()


def price_map() -> PriceMap | None:
    """The process's price map, read once (≈ 50 ms of CPU) however many agent threads ask for it at once."""
    with _price_map_lock:
        if not _price_map:
            _price_map.append(PriceMap.load())
        return _price_map[0]


def _resolved_by_litellm(model_id: str, entry: dict[str, Any] | None) -> bool:
    provider = str((entry or {}).get("litellm_provider") or "")
    return model_id.startswith(LITELLM_RESOLVED) or provider.startswith(LITELLM_RESOLVED)


@functools.lru_cache(maxsize=256)
def _litellm_price(model_id: str) -> Price | None:
    prices = price_map()
    found = prices.lookup(model_id) if prices is not None else None
    if prices is not None and not _resolved_by_litellm(model_id, found[1] if found else None):
        if found is None:
            prefix, sep, name = model_id.partition("/")
            if sep and prefix in _OLLAMA_PREFIXES:  # litellm's Ollama config: any Ollama model is free
                return Price(0.0, 0.0, "litellm", name)
            log.debug("litellm's price map has no %s", model_id)
            return None
        key, entry = found
        # litellm's own default for a price the entry leaves out: 0 (then "both 0" below makes it unknown)
        costs = {name: entry.get(name) or 0 for name in ("input_cost_per_token", "output_cost_per_token")}
        return _price(model_id, {**entry, **costs, "key": key})
    info = _litellm_model_info(model_id)
    return None if info is None else _price(model_id, info)


def _litellm_model_info(model_id: str) -> Any:
    """``litellm.get_model_info(model_id)`` (imports litellm, offline); None when litellm cannot price it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:  # pragma: no cover - litellm is a dependency
        log.debug("litellm is not installed: no price for %s", model_id)
        return None
    litellm.suppress_debug_info = True
    try:
        return litellm.get_model_info(model_id)
    except Exception:  # litellm raises its own "not mapped" errors for unknown models
        log.debug("litellm has no price for %s", model_id)
        return None


def _price(model_id: str, info: Any) -> Price | None:
    """The price in a map entry (the same "null when unknown" rule whoever read it)."""
    prompt = info.get("input_cost_per_token")
    completion = info.get("output_cost_per_token")
    if prompt is None or completion is None:
        return None
    if prompt == 0 and completion == 0 and not model_id.startswith(LOCAL_PREFIXES):
        log.debug("litellm lists %s at 0 USD: treated as unknown", model_id)
        return None
    read = info.get("cache_read_input_token_cost")
    creation = info.get("cache_creation_input_token_cost")
    return Price(
        float(prompt),
        float(completion),
        "litellm",
        str(info.get("key") or model_id),
        None if read is None else float(read),
        None if creation is None else float(creation),
    )


def record_cost_usd(price: Price | None, record: Any) -> float | None:
    """:func:`cost_usd` of a :class:`~pytest_smoltrace.records.RunRecord` (its cache reads and writes included)."""
    return cost_usd(
        price,
        record.prompt_tokens,
        record.completion_tokens,
        cache_read=record.cached_input_tokens,
        cache_creation=record.cache_creation_input_tokens,
    )
