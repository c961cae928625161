"""Per-session state of an active plugin: resolved settings, run id, model spec, the scripted server."""

from __future__ import annotations

import contextlib
import json
import logging
import os
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
    #: ``--smoltrace-resume-force`` over other settings: the resumed run's settings, where they were read and what
    #: differs (``{"source", "settings", "differences"}``) — for metadata.json; None when nothing differed.
    resumed_from_settings: dict[str, Any] | None = None
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


#: Written into the run directory when a run starts (before any item): the settings it runs with, so that
#: ``--smoltrace-resume`` can compare them even when metadata.json was never written (a kill -9).
SETTINGS_FILE = "settings.json"
SETTINGS_SCHEMA = 1


def _resumed(settings: Settings) -> tuple[str, list[ItemResult], dict[str, Any] | None]:
    """The run id and the finished results of ``--smoltrace-resume RUN_ID``, and (with ``--smoltrace-resume-force``
    over other settings) what the resumed run's settings were. A usage error when there is no such run, or when it
    was made with other settings and ``--smoltrace-resume-force`` is not given."""
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
    results = read_journal(run_dir)
    return run_id, finished(results), _compare_resumed(settings, run_id, run_dir, results)


def read_run_settings(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The settings a run was started (or last resumed) with, and the file they come from: ``settings.json``, else
    the ``options`` of ``metadata.json``; ``(None, None)`` when neither is readable."""
    for name, key in ((SETTINGS_FILE, "settings"), ("metadata.json", "options")):
        try:
            data = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); the resumed run's settings are taken from elsewhere", run_dir / name, exc)
            continue
        found = data.get(key) if isinstance(data, dict) else None
        if isinstance(found, dict):
            return found, name
    return None, None


def _compare_resumed(
    settings: Settings, run_id: str, run_dir: Path, results: list[ItemResult]
) -> dict[str, Any] | None:
    from .preflight import journal_differences, settings_differences

    before, source = read_run_settings(run_dir)
    if before is not None:
        differences = settings_differences(before, settings.public_dict())
    else:  # only the journal is left: its records name the model, the provider and the agent types
        differences, source = journal_differences(settings, results), "journal.jsonl"
    if not differences:
        return None
    lines = "\n".join(f"  {d}" for d in differences)
    if not settings.resume_force:
        raise pytest.UsageError(
            f"--smoltrace-resume {run_id}: the run was made with other settings (read from {source}):\n{lines}\n"
            "give the same options to resume it, or add --smoltrace-resume-force to continue it with these "
            "(both settings are then recorded)"
        )
    log.warning("--smoltrace-resume-force: run %s continues with other settings (from %s):\n%s", run_id, source, lines)
    return {"source": source, "settings": before, "differences": [d.to_dict() for d in differences]}


def write_run_settings(state: SmoltraceState) -> None:
    """Write ``settings.json`` into the run directory: at the start of a new run, and when a resumed run has none yet
    or was forced on with other settings (the replaced settings go to ``history``). A failure is a usage error naming
    ``--smoltrace-output-dir``; directories this call made are removed again."""
    from .preflight import write_problem

    run_dir = state.run_dir
    path = run_dir / SETTINGS_FILE
    current = state.settings.public_dict()
    history: list[Any] = []
    if state.settings.resume:
        existing = _read_json(path)
        if existing is not None and state.resumed_from_settings is None:
            return  # the run goes on with the settings it has
        history = list(existing.get("history") or ()) if existing else []
        if state.resumed_from_settings is not None:
            history.append(
                {
                    "settings": state.resumed_from_settings["settings"],
                    "source": state.resumed_from_settings["source"],
                    "replaced_at": time.time(),
                    "differences": state.resumed_from_settings["differences"],
                }
            )
    document = {
        "schema_version": SETTINGS_SCHEMA,
        "run_id": state.run_id,
        "written_at": time.time(),
        "settings": current,
        "history": history,
    }
    made = [p for p in (run_dir, *run_dir.parents) if not os.path.lexists(p)]
    temporary = path.with_name(f".{SETTINGS_FILE}.{os.getpid()}.tmp")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        for directory in made:  # deepest first: leave no empty run directory behind
            with contextlib.suppress(OSError):
                directory.rmdir()
        where = next((p for p in (run_dir, *run_dir.parents) if p.is_dir()), run_dir)
        raise pytest.UsageError(write_problem(state.settings.output_dir, where, exc)) from None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


WORKER_RESUME = "smoltrace_resume_counts"


class ResumeWatch:
    """``--smoltrace-resume`` of a run whose journal already holds every item collected now: pytest would end with
    exit code 5 ("no tests ran", everything deselected); the run is complete, so say so and exit 0.

    Counts the benchmark items deselected because they are finished and those deselected otherwise (``-k``, ``-m``:
    then the run is not complete), in every process that collects (xdist workers send theirs back)."""

    def __init__(self, state: SmoltraceState) -> None:
        self.state = state
        self.finished = 0
        self.others = 0
        self.remaining = 0
        self.complete = False

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        from .collect import TaskItem

        for item in items:
            if isinstance(item, TaskItem):
                if item.nodeid in self.state.done:
                    self.finished += 1
                else:
                    self.others += 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .collect import TaskItem

        self.remaining = sum(isinstance(item, TaskItem) for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        counts = getattr(node, "workeroutput", {}).get(WORKER_RESUME)
        if counts:  # every worker collects every item: the same counts, not parts of a sum
            self.finished = max(self.finished, counts[0])
            self.others = max(self.others, counts[1])
            self.remaining = max(self.remaining, counts[2])

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_RESUME] = [self.finished, self.others, self.remaining]
            return
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and self.finished and not (self.others or self.remaining):
            self.complete = True
            session.exitstatus = pytest.ExitCode.OK

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.complete:
            terminalreporter.write_line(
                f"smoltrace: run {self.state.run_id} is already complete: its journal holds all {self.finished} "
                "items, nothing left to run",
                green=True,
            )


def create_state(config: pytest.Config, settings: Settings) -> SmoltraceState:
    """The session's state: on a worker from what the controller sent, on the controller from the options.

    The controller first runs the checks before a run (:mod:`.preflight`: credentials, model server, dataset, output
    directory) and, for ``--smoltrace-resume``, compares the settings with the resumed run's; only when everything
    passed does it write ``settings.json`` into the run directory (so a usage error leaves no run directory)."""
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
        from . import preflight
        from .aggregate import Aggregator

        writes_files = settings.output in ("json", "hub")
        probe_dir = settings.output_dir / (settings.resume or settings.run_id or "")
        preflight.check(config, settings, run_dir=probe_dir if writes_files else None)
        previous: list[ItemResult] = []
        resumed_from: dict[str, Any] | None = None
        if settings.resume:
            run_id, previous, resumed_from = _resumed(settings)
        else:
            run_id = settings.run_id or new_run_id()
        state = SmoltraceState(
            settings=settings, run_id=run_id, is_controller=True, done=frozenset(r.nodeid for r in previous)
        )
        state.resumed_from_settings = resumed_from
        state.aggregator = Aggregator(state.run_dir if writes_files else None, previous, resumed=bool(settings.resume))
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
                spent = sum(r.record.cost_usd or 0.0 for r in state.aggregator.attempts) if state.aggregator else 0
                state.budget.reset(spent)
        if state.is_controller and state.aggregator is not None and state.aggregator.run_dir is not None:
            from .preflight import runs_items

            if runs_items(config):
                write_run_settings(state)  # the last check: the run directory is made only now
        if settings.resume:
            config.pluginmanager.register(ResumeWatch(state), "smoltrace-resume-watch")
    except BaseException:  # a usage error: nothing of this session may outlive it
        state.close()
        raise
    return state


def get_state(config: pytest.Config) -> SmoltraceState | None:
    return config.stash.get(STATE_KEY, None)
