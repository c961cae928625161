"""Resolved option values of one session (:class:`Settings`), read from the option table in :mod:`.options`.

Imported only when the plugin is active, so an installed but unused plugin does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from .options import OPTIONS, OptionSpec, _raw_value
from .shard import Shard


@dataclass(frozen=True)
class Settings:
    """Resolved option values for one session."""

    model: tuple[str, ...]
    models: Path | None
    provider: str
    hf_inference_provider: str | None
    api_base: str | None
    agent_type: str
    dataset: str
    split: str
    revision: str | None
    difficulty: str | None
    tools: tuple[str, ...]
    search_provider: str
    working_dir: Path
    tool_timeout: float
    allow_private_network: bool
    mcp_server_url: tuple[str, ...]
    prompt_yml: Path | None
    additional_imports: tuple[str, ...]
    max_steps: int
    repeats: int
    temperature: float | None
    top_p: float | None
    top_k: int | None
    max_tokens: int | None
    seed: int | None
    reasoning_effort: str | None
    enable_thinking: bool | None
    timeout: float
    concurrency: int | None
    retries: int
    max_cost: float | None
    max_rpm: float | None
    otlp: bool
    price_input: float | None
    price_output: float | None
    gpu_metrics: bool | None
    sample_interval: float
    grid_intensity: float
    energy_price: float
    output: str
    output_dir: Path
    private: bool
    run_id: str | None
    baseline: str | None
    record_mode: str | None
    cassette_dir: Path | None
    fail_on_regression: bool
    resume: str | None
    resume_force: bool
    judge_model: str | None = None
    judge_provider: str = "litellm"
    judge_api_base: str | None = None
    task_preset: str | None = None
    field_map: tuple[tuple[str, str], ...] = ()
    #: ``--smoltrace-shard I/N`` (:mod:`.shard`), else None.
    shard: Shard | None = None
    #: ``--smoltrace-limits-url`` (:mod:`.limits`), else None (this machine's temporary directory).
    limits_url: str | None = None

    @property
    def cassettes(self) -> Path:
        """Where the cassettes are: ``--smoltrace-cassette-dir``, else ``<output-dir>/cassettes``."""
        return self.cassette_dir if self.cassette_dir is not None else self.output_dir / "cassettes"

    def public_dict(self) -> dict[str, Any]:
        """Option values safe to write into output files: paths as text, credentials in URLs removed."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str) and f.name in ("api_base", "judge_api_base", "limits_url"):
                value = redact_url(value)
            elif f.name == "mcp_server_url":
                value = [redact_url(v) for v in value]
            elif isinstance(value, Shard):
                value = value.to_dict()
            data[f.name] = value
        return data


def redact_url(text: str) -> str:
    """``NAME=https://user:secret@host/x?token=…`` → ``NAME=https://host/x`` (no userinfo, no query)."""
    from urllib.parse import urlsplit, urlunsplit

    name, sep, url = text.partition("=")
    if not sep or "/" in name or ":" in name:  # no NAME= prefix: the whole text is the URL
        name, sep, url = "", "", text
    parts = urlsplit(url)
    if not parts.scheme:
        return text
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return name + sep + urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _convert(spec: OptionSpec, raw: str, origin: str) -> Any:
    if spec.choices and raw not in spec.choices:
        raise pytest.UsageError(f"{origin}: expected one of {', '.join(spec.choices)}; got {raw!r}")
    try:
        return spec.type(raw)
    except ValueError as exc:
        raise pytest.UsageError(f"{origin}: {exc}") from None


def resolve(config: pytest.Config, overrides: dict[str, Any] | None = None) -> Settings:
    """Read every option (command line > ini > env > default) into :class:`Settings`; bad values are usage errors."""
    values: dict[str, Any] = {}
    for spec in OPTIONS:
        raw = _raw_value(config, spec)
        origin = f"{spec.flag} / ini {spec.ini}" + (f" / env {spec.env}" if spec.env else "")
        values[spec.dest[len("smoltrace_") :]] = _convert(spec, raw, origin) if raw is not None else spec.default
    values.update(overrides or {})
    if (values["price_input"] is None) != (values["price_output"] is None):
        raise pytest.UsageError("--smoltrace-price-input and --smoltrace-price-output go together (USD per 1M tokens)")
    invocation_dir = Path(config.invocation_params.dir)
    for name in ("output_dir", "working_dir", "prompt_yml", "models", "cassette_dir"):
        if values[name] is not None:
            path = Path(values[name]).expanduser()
            values[name] = path if path.is_absolute() else invocation_dir / path
    return Settings(**values)
