"""The run's identity: what every process of one run agrees on (settings, run id, model spec, items done before).

Made once per process (:mod:`.roles`): on the controller from the options and the resumed run's journal, on an xdist
worker from what the controller sent (:meth:`RunIdentity.to_workerinput` / :meth:`RunIdentity.from_workerinput`).
Frozen: nothing changes it after the session started. Everything that changes during a run belongs to a role — the
controller plugin (:mod:`.controller`) or the executor plugin (:mod:`.executor`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .limits import LimitsLocation
from .lineup import Contender
from .models import ModelSpec
from .settings import Settings

if TYPE_CHECKING:
    from .telemetry.cost import Price

#: ``--smoltrace-model scripted``: the bundled scripted server answers (a pipeline smoke test, not a model).
SCRIPTED_MODEL = "scripted"
#: Agent runs in flight per process for API models (I/O bound: the model's latency is the floor).
DEFAULT_API_CONCURRENCY = 8

#: ``workerinput`` keys: what an xdist worker gets from the controller.
WORKER_RUN_ID = "smoltrace_run_id"
WORKER_DONE = "smoltrace_done"
WORKER_LOCAL = "smoltrace_local_model"  # [base URL, reported model id] of the local model's server


def new_run_id() -> str:
    """Sortable and collision-safe: ``YYYYmmdd-HHMMSS-<6 hex>``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Endpoint:
    """Where the model is reached when a server of this run serves it (scripted or local), instead of the options."""

    model_id: str
    provider: str
    api_base: str | None


def model_spec(settings: Settings, run_id: str, contender: Contender, endpoint: Endpoint | None = None) -> ModelSpec:
    """The model spec of one contender: as given, or at the endpoint of a server this run started."""
    model_id, provider, api_base = contender.model, contender.provider, contender.api_base
    if endpoint is not None:
        model_id, provider, api_base = endpoint.model_id, endpoint.provider, endpoint.api_base
    return ModelSpec(
        model_id,
        provider,
        api_base,
        settings.timeout,
        retries=settings.retries,
        max_rpm=settings.max_rpm,
        limits=LimitsLocation(settings.limits_url, run_id),
        inference_provider=contender.hf_inference_provider,
        generation=contender.generation,
        name=contender.label,
    )


@dataclass(frozen=True)
class RunIdentity:
    settings: Settings
    run_id: str
    #: The session's models (:mod:`.lineup`), and the spec each is built from, in the same order.
    contenders: tuple[Contender, ...]
    specs: tuple[ModelSpec, ...]
    #: Node ids already finished in the journal of the run being resumed (these items are deselected).
    done: frozenset[str] = frozenset()
    #: The local model's server (``--smoltrace-model local``): reached by every process of the run.
    local: Endpoint | None = None
    #: When the session started (the controller's clock; a worker's own start otherwise).
    started_at: float = 0.0

    @property
    def spec(self) -> ModelSpec:
        """The first model's spec (the only one in a session of one model)."""
        return self.specs[0]

    @property
    def labelled(self) -> bool:
        """Several models: each model's items sit under its label in the node ids."""
        return len(self.specs) > 1

    @property
    def labels(self) -> tuple[str, ...]:
        """The models' labels in a session of several models (empty for one model)."""
        return tuple(str(spec.name) for spec in self.specs) if self.labelled else ()

    def spec_for(self, label: str | None) -> ModelSpec:
        """The spec of the model with this label (None: the only model)."""
        for spec in self.specs:
            if spec.name == label:
                return spec
        return self.spec

    @property
    def run_dir(self) -> Path:
        return self.settings.output_dir / self.run_id

    @property
    def writes_files(self) -> bool:
        return self.settings.output in ("json", "hub")

    @property
    def has_local_model(self) -> bool:
        return any(spec.is_local_model for spec in self.specs)

    @property
    def concurrency(self) -> int:
        """Runs in flight per process: the option, else 1 when a model runs on this machine and 8 for API models."""
        if self.settings.concurrency is not None:
            return self.settings.concurrency
        return 1 if self.has_local_model else DEFAULT_API_CONCURRENCY

    @property
    def gpu_metrics(self) -> bool:
        """NVML sampling: the option, else on for models that run on this machine."""
        if self.settings.gpu_metrics is not None:
            return self.settings.gpu_metrics
        return self.has_local_model

    @property
    def price(self) -> Price | None:
        """The first model's price."""
        return self.price_of(self.spec)

    def price_of(self, spec: ModelSpec) -> Price | None:
        """A model's price (its own or the session's custom prices, else litellm's bundled map), or None when unknown:
        cost is then null. Resolved on first use (it imports litellm's price map), once per model."""
        cache: dict[ModelSpec, Price | None] = self.__dict__.setdefault("_prices", {})
        if spec not in cache:
            from .telemetry.cost import price_for

            contender = self.contenders[self.specs.index(spec)] if spec in self.specs else None
            p_in = contender.price_input if contender else self.settings.price_input
            p_out = contender.price_output if contender else self.settings.price_output
            cache[spec] = price_for(spec.model_id, price_input_per_m=p_in, price_output_per_m=p_out)
        return cache[spec]

    def to_workerinput(self, workerinput: dict[str, Any]) -> None:
        """What an xdist worker must agree on with the controller: the run id, the items done, the local server."""
        workerinput[WORKER_RUN_ID] = self.run_id
        workerinput[WORKER_DONE] = sorted(self.done)
        if self.local is not None and self.local.api_base:
            workerinput[WORKER_LOCAL] = [self.local.api_base, self.local.model_id]

    @staticmethod
    def worker_local(workerinput: dict[str, Any]) -> Endpoint | None:
        local = workerinput.get(WORKER_LOCAL)
        return Endpoint(local[1], "local", local[0]) if local else None


IDENTITY_KEY = pytest.StashKey[RunIdentity]()


def get_identity(config: pytest.Config) -> RunIdentity | None:
    """The run identity of an active session, else None (the plugin is inactive)."""
    return config.stash.get(IDENTITY_KEY, None)
