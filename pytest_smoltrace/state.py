"""Per-session state of an active plugin: resolved settings, run id, model spec, the scripted server."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .models import ModelSpec
from .options import Settings

if TYPE_CHECKING:
    from .aggregate import Aggregator
    from .concurrency import RunAhead
    from .records import RunRecord
    from .runner import RunConfig
    from .testing import ScriptedModelServer

log = logging.getLogger(__name__)

#: ``--smoltrace-model scripted``: the bundled scripted server answers (a pipeline smoke test, not a model).
SCRIPTED_MODEL = "scripted"
#: Agent runs in flight per process for API models (I/O bound: the model's latency is the floor).
DEFAULT_API_CONCURRENCY = 8


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
    run_ahead: RunAhead | None = None
    _run_config: RunConfig | None = None

    @property
    def spec(self) -> ModelSpec:
        settings = self.settings
        assert settings.model is not None
        model_id, provider, api_base = settings.model, settings.provider, settings.api_base
        if settings.model == SCRIPTED_MODEL:
            assert self.scripted_server is not None
            model_id, provider, api_base = "openai/scripted", "litellm", self.scripted_server.base_url
        return ModelSpec(
            model_id,
            provider,
            api_base,
            settings.timeout,
            retries=settings.retries,
            max_rpm=settings.max_rpm,
            rate_file=str(Path(tempfile.gettempdir()) / f"smoltrace-{self.run_id}.rate"),
        )

    @property
    def run_config(self) -> RunConfig:
        if self._run_config is None:
            from .runner import RunConfig

            self._run_config = RunConfig(
                spec=self.spec, run_id=self.run_id, max_steps=self.settings.max_steps, timeout_s=self.settings.timeout
            )
        return self._run_config

    @property
    def concurrency(self) -> int:
        """Runs in flight per process: the option, else 1 for local models and 8 for API models."""
        if self.settings.concurrency is not None:
            return self.settings.concurrency
        return 1 if self.spec.is_local_model else DEFAULT_API_CONCURRENCY

    def run_item(self, item: Any) -> RunRecord:
        """The item's run record, starting upcoming items' runs ahead when concurrency allows."""
        from .concurrency import RunAhead, upcoming_items
        from .runner import run_task

        if self.run_ahead is None:
            config = self.run_config
            self.run_ahead = RunAhead(
                self.concurrency,
                lambda it, cancel: run_task(it.task, it.agent_type, config, nodeid=it.nodeid, cancel=cancel),
            )
        window = self.run_ahead.window
        upcoming = [i for i in upcoming_items(item, 2 * window) if type(i) is type(item)] if window > 1 else []
        return self.run_ahead.result_for(item, upcoming)

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
        if self.run_ahead is not None:
            self.run_ahead.cancel()
        if self.aggregator is not None:
            self.aggregator.close()
        if self.scripted_server is not None:
            self.scripted_server.stop()
            self.scripted_server = None


STATE_KEY = pytest.StashKey[SmoltraceState]()


def get_state(config: pytest.Config) -> SmoltraceState | None:
    return config.stash.get(STATE_KEY, None)
