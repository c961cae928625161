"""Per-session state of an active plugin: resolved settings, run id, model spec, the scripted server."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest

from .models import ModelSpec
from .options import Settings

if TYPE_CHECKING:
    from .aggregate import Aggregator
    from .runner import RunConfig
    from .testing import ScriptedModelServer

log = logging.getLogger(__name__)

#: ``--smoltrace-model scripted``: the bundled scripted server answers (a pipeline smoke test, not a model).
SCRIPTED_MODEL = "scripted"


def new_run_id() -> str:
    """Sortable and collision-safe: ``YYYYmmdd-HHMMSS-<6 hex>``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass
class SmoltraceState:
    settings: Settings
    run_id: str
    is_controller: bool
    started_at: float = field(default_factory=time.time)
    scripted_server: ScriptedModelServer | None = None
    aggregator: Aggregator | None = None
    planned: dict[str, int] = field(default_factory=dict)
    _run_config: RunConfig | None = None

    @property
    def spec(self) -> ModelSpec:
        settings = self.settings
        assert settings.model is not None
        if settings.model == SCRIPTED_MODEL:
            assert self.scripted_server is not None
            return ModelSpec("openai/scripted", "litellm", self.scripted_server.base_url, settings.timeout)
        return ModelSpec(settings.model, settings.provider, settings.api_base, settings.timeout)

    @property
    def run_config(self) -> RunConfig:
        if self._run_config is None:
            from .runner import RunConfig

            self._run_config = RunConfig(
                spec=self.spec, run_id=self.run_id, max_steps=self.settings.max_steps, timeout_s=self.settings.timeout
            )
        return self._run_config

    @property
    def run_dir(self) -> Any:
        return self.settings.output_dir / self.run_id

    def start_scripted_server(self) -> None:
        """Start the bundled scripted model server when ``--smoltrace-model scripted`` is used."""
        if self.settings.model != SCRIPTED_MODEL or self.scripted_server is not None:
            return
        from .testing import ScriptedModelServer

        scripts = json.loads(
            resources.files("pytest_smoltrace.data").joinpath("default.script.json").read_text("utf-8")
        )
        self.scripted_server = ScriptedModelServer(scripts)
        self.scripted_server.start()
        log.info("scripted model server on %s", self.scripted_server.base_url)

    def close(self) -> None:
        if self.aggregator is not None:
            self.aggregator.close()
        if self.scripted_server is not None:
            self.scripted_server.stop()
            self.scripted_server = None


STATE_KEY = pytest.StashKey[SmoltraceState]()


def get_state(config: pytest.Config) -> SmoltraceState | None:
    return config.stash.get(STATE_KEY, None)
