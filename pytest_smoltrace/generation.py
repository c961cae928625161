"""Generation settings: what is sent with every model request (temperature, top-p, top-k, max tokens, seed,
reasoning effort, thinking), from the options or per model from the models file.

:class:`Generation` is the record; how each provider receives it (or ignores a setting, and why) is
:func:`plan` — the one place that knows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

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
