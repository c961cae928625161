"""Per-session state of an active plugin: resolved settings, run id, model spec, the scripted server."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .models import ModelSpec
from .settings import Settings

if TYPE_CHECKING:
    from .aggregate import Aggregator
    from .budget import Budget
    from .concurrency import RunAhead
    from .localmodel import LocalServer
    from .records import ItemResult
    from .runner import RunConfig
    from .telemetry.cost import Price
    from .telemetry.sampler import Sampler
    from .testing import ScriptedModelServer
    from .toolbox import Toolbox

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
    #: When pytest's run loop (the items) started and ended: the session time minus start-up and the output files.
    loop_started_at: float | None = None
    loop_finished_at: float | None = None
    scripted_server: ScriptedModelServer | None = None
    #: ``--smoltrace-model local``: the server this process started (controller only) …
    local_server: LocalServer | None = None
    #: … and what every process reaches it by (workers get both from the controller).
    local_api_base: str | None = None
    local_label: str | None = None
    aggregator: Aggregator | None = None
    planned: dict[str, int] = field(default_factory=dict)
    run_ahead: RunAhead | None = None
    #: Node ids already finished in the journal of the run being resumed (these items are deselected).
    done: frozenset[str] = frozenset()
    sampler: Sampler | None = None
    toolbox: Toolbox | None = None
    budget: Budget | None = None
    #: Samples of every process of the run (the controller's own and those xdist workers sent back).
    samples: list[dict[str, Any]] = field(default_factory=list)
    #: Lines for the terminal summary about Hub publishing.
    publish_lines: list[str] = field(default_factory=list)
    #: OTLP export reports (``OtlpReport.to_dict()``) of every process that exported (this one's, xdist workers').
    otlp_reports: list[dict[str, Any]] = field(default_factory=list)
    _spec: ModelSpec | None = None
    _price: Price | None = None
    _price_resolved: bool = False
    _run_config: RunConfig | None = None

    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            self._spec = self._make_spec()
        return self._spec

    def _make_spec(self) -> ModelSpec:
        settings = self.settings
        assert settings.model is not None
        model_id, provider, api_base = settings.model, settings.provider, settings.api_base
        if settings.model == SCRIPTED_MODEL:
            assert self.scripted_server is not None
            model_id, provider, api_base = "openai/scripted", "litellm", self.scripted_server.base_url
        elif _is_local(settings.model):
            model_id, provider, api_base = self.local_label or settings.model, "local", self.local_api_base
        return ModelSpec(
            model_id,
            provider,
            api_base,
            settings.timeout,
            retries=settings.retries,
            max_rpm=settings.max_rpm,
            rate_file=str(Path(tempfile.gettempdir()) / f"smoltrace-{self.run_id}.rate"),
            inference_provider=settings.hf_inference_provider,
        )

    @property
    def run_config(self) -> RunConfig:
        if self._run_config is None:
            from .runner import RunConfig

            box, settings = self.toolbox, self.settings
            self._run_config = RunConfig(
                spec=self.spec,
                run_id=self.run_id,
                max_steps=box.max_steps if box and box.max_steps else settings.max_steps,
                timeout_s=settings.timeout,
                extra_tools=box.extra_tools if box else (),
                tool_names=settings.tools,
                tool_options=box.tool_options if box else {},
                tool_timeout_s=settings.tool_timeout,
                prompt_templates=box.prompt_templates if box else {},
                planning_interval=box.planning_interval if box else None,
                additional_imports=box.additional_imports if box else (),
            )
        return self._run_config

    def set_planned(self, agent_types: Iterable[str]) -> None:
        """Items planned per agent type: those selected now plus those finished before a resume."""
        counts = Counter(agent_types)
        if self.aggregator is not None:
            counts.update(r.record.agent_type for r in self.aggregator.results.values() if r.nodeid in self.done)
        self.planned = dict(counts)

    def describe_to_worker(self, workerinput: dict[str, Any]) -> None:
        """What an xdist worker must agree on with the controller: the run id and the items already done."""
        workerinput[WORKER_RUN_ID] = self.run_id
        workerinput[WORKER_DONE] = sorted(self.done)
        if self.local_api_base:
            workerinput[WORKER_LOCAL] = [self.local_api_base, self.local_label]

    @property
    def concurrency(self) -> int:
        """Runs in flight per process: the option, else 1 for local models and 8 for API models."""
        if self.settings.concurrency is not None:
            return self.settings.concurrency
        return 1 if self.spec.is_local_model else DEFAULT_API_CONCURRENCY

    @property
    def price(self) -> Price | None:
        """The model's price (custom, else litellm's bundled map), or None when unknown: cost is then null."""
        if not self._price_resolved:
            from .telemetry.cost import price_for

            s = self.settings
            self._price = price_for(
                self.spec.model_id, price_input_per_m=s.price_input, price_output_per_m=s.price_output
            )
            self._price_resolved = True
        return self._price

    @property
    def gpu_metrics(self) -> bool:
        """NVML sampling: the option, else on for models that run on this machine."""
        if self.settings.gpu_metrics is not None:
            return self.settings.gpu_metrics
        return self.spec.is_local_model

    def runs_items(self, config: pytest.Config) -> bool:
        """Whether this process runs items (an xdist controller only dispatches them)."""
        return not (self.is_controller and config.pluginmanager.has_plugin("dsession"))

    def finish_process(self) -> None:
        """End this process's part of the run: cancel runs started ahead, keep its samples, flush OTLP export."""
        if self.run_ahead is not None:
            self.run_ahead.cancel()  # runs started ahead for items that will not run (-x, Ctrl-C)
        samples = self.stop_sampler()
        if samples is not None:
            self.samples.append(samples)
        if self.settings.otlp:
            from .telemetry import tracing

            tracing.shutdown()
            report = tracing.otlp_report(clear=True)  # read after the final flush
            if report is not None:
                self.otlp_reports.append(report.to_dict())
        if self.toolbox is not None:
            self.toolbox.close()

    def warm_up(self) -> None:
        """Build this process's model object now; a failure is left for the items to report as their error."""
        from .models import get_model

        try:
            get_model(self.spec)
        except Exception:  # each item reports the same error as its own error outcome
            log.debug("building the model failed; items will report it", exc_info=True)

    def start_sampler(self) -> None:
        from .telemetry.sampler import Sampler

        self.sampler = Sampler(interval_s=self.settings.sample_interval, gpu=self.gpu_metrics)
        self.sampler.start()

    def stop_sampler(self) -> dict[str, Any] | None:
        """This process's samples as plain JSON (they travel from xdist workers to the controller)."""
        if self.sampler is None:
            return None
        samples = self.sampler.stop().to_dict()
        self.sampler = None
        return samples

    def run_item(self, item: Any) -> ItemResult:
        """The item's result, starting upcoming items' runs ahead when concurrency allows."""
        from .concurrency import RunAhead, upcoming_items

        if self.run_ahead is None:
            budget = self.budget
            self.run_ahead = RunAhead(
                self.concurrency,
                lambda it, cancel: it.execute(cancel),
                may_start=(lambda: not budget.exhausted()) if budget else (lambda: True),
            )
        if self.budget is not None and not self.run_ahead.started(item) and self.budget.exhausted():
            pytest.skip(self.budget.reason())
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

    def start_local_model(self, config: pytest.Config) -> None:
        """``--smoltrace-model local``: start the local model's server once per run (the controller's), or reuse
        the one at ``--smoltrace-api-base``. Not for ``--collect-only``. A failure is a usage error."""
        settings = self.settings
        if not _is_local(settings.model) or self.local_api_base or config.option.collectonly:
            return
        from .localmodel import LocalModelError, start_local_server

        assert settings.model is not None
        try:
            server = start_local_server(settings.model, api_base=settings.api_base)
        except LocalModelError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.local_server, self.local_api_base, self.local_label = server, server.base_url, server.label
        self._spec = self._run_config = None  # the spec now names the server

    def close(self) -> None:
        if self.run_ahead is not None:
            self.run_ahead.cancel()
        if self.aggregator is not None:
            self.aggregator.close()
        if self.scripted_server is not None:
            self.scripted_server.stop()
            self.scripted_server = None
        if self.local_server is not None:
            self.local_server.stop()
            self.local_server = None


STATE_KEY = pytest.StashKey[SmoltraceState]()
WORKER_RUN_ID = "smoltrace_run_id"
WORKER_DONE = "smoltrace_done"
WORKER_LOCAL = "smoltrace_local_model"  # [base URL, reported model id] of the local model's server


def _is_local(model: str | None) -> bool:
    from .localmodel import is_local

    return is_local(model)


def _resumed(settings: Settings) -> tuple[str, list[ItemResult]]:
    """The run id and the finished results of ``--smoltrace-resume RUN_ID``; a usage error when there is none."""
    from .journal import JOURNAL, finished, read_journal

    run_id = settings.resume
    assert run_id is not None
    if settings.run_id and settings.run_id != run_id:
        raise pytest.UsageError(f"--smoltrace-resume {run_id} and --smoltrace-run-id {settings.run_id} disagree")
    run_dir = settings.output_dir / run_id
    if not (run_dir / JOURNAL).is_file():
        raise pytest.UsageError(
            f"--smoltrace-resume {run_id}: no {JOURNAL} in {run_dir} (check --smoltrace-output-dir and the run id)"
        )
    return run_id, finished(read_journal(run_dir))


def create_state(config: pytest.Config, settings: Settings) -> SmoltraceState:
    """The session's state: on a worker from what the controller sent, on the controller from the options."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        state = SmoltraceState(
            settings=settings,
            run_id=workerinput[WORKER_RUN_ID],
            is_controller=False,
            done=frozenset(workerinput.get(WORKER_DONE, ())),
        )
        state.local_api_base, state.local_label = workerinput.get(WORKER_LOCAL) or (None, None)
    else:
        from .aggregate import Aggregator

        previous: list[ItemResult] = []
        if settings.resume:
            run_id, previous = _resumed(settings)
        else:
            run_id = settings.run_id or new_run_id()
        state = SmoltraceState(
            settings=settings, run_id=run_id, is_controller=True, done=frozenset(r.nodeid for r in previous)
        )
        state.aggregator = Aggregator(state.run_dir if settings.output in ("json", "hub") else None, previous)
    from .toolbox import prepare

    try:
        state.start_scripted_server()  # before anything asks for the model spec
        state.start_local_model(config)  # likewise
        state.toolbox = prepare(config, settings)
        if settings.otlp:  # a wrong OTEL_EXPORTER_OTLP_* setting is a usage error, not an error in every item
            from .telemetry.otlp import OtlpConfigError, check_config

            try:
                check_config()
            except OtlpConfigError as exc:
                raise pytest.UsageError(f"--smoltrace-otlp: {exc}") from None
        if settings.max_cost is not None:
            from .budget import Budget

            if state.price is None:
                raise pytest.UsageError(
                    f"--smoltrace-max-cost: litellm has no price for {state.spec.model_id}; give its prices with "
                    "--smoltrace-price-input and --smoltrace-price-output (USD per 1M tokens)"
                )
            state.budget = Budget(settings.max_cost, Path(tempfile.gettempdir()) / f"smoltrace-{state.run_id}.cost")
            if state.is_controller:  # a new run starts from zero; a resumed one from what it had already spent
                spent = (
                    sum(r.record.cost_usd or 0.0 for r in state.aggregator.results.values()) if state.aggregator else 0
                )
                state.budget.reset(spent)
    except BaseException:  # a usage error: nothing of this session may outlive it
        state.close()
        raise
    return state


def get_state(config: pytest.Config) -> SmoltraceState | None:
    return config.stash.get(STATE_KEY, None)
