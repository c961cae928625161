"""Start an active session by role, as pytest-xdist does: the controller plugin only where
``not hasattr(config, "workerinput")``, the executor plugin only where items run (not on an xdist controller).

=====================  ====================  ==================
process                controller plugin     executor plugin
=====================  ====================  ==================
plain ``pytest``       yes                   yes (hands over to the controller directly)
xdist controller       yes                   no (``dsession`` dispatches the items)
xdist worker           no                    yes (hands over through ``workeroutput``)
=====================  ====================  ==================

On the controller the checks before a run come first (:mod:`.preflight`: credentials, model server, dataset, output
directory) and, for ``--smoltrace-resume``, the comparison with the resumed run's settings; only when everything
passed is ``settings.json`` written into the run directory (so a usage error leaves no run directory).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .controller import CONTROLLER_KEY, ControllerPlugin
from .executor import ExecutorPlugin, install_item_runner
from .identity import IDENTITY_KEY, WORKER_DONE, WORKER_RUN_ID, RunIdentity, model_spec, new_run_id
from .servers import ModelServers
from .settings import Settings
from .transport import ProcessReport

if TYPE_CHECKING:
    from .budget import Budget
    from .handoff import HandoffWriter
    from .limits import LimitsStore
    from .records import ItemResult
    from .toolbox import Toolbox

CONTROLLER_NAME = "smoltrace-controller"
EXECUTOR_NAME = "smoltrace-executor"


@dataclass
class ActiveSession:
    """What an active session holds until ``pytest_unconfigure``: its identity, its plugins, what to close."""

    identity: RunIdentity
    controller: ControllerPlugin | None = None
    executor: ExecutorPlugin | None = None
    servers: ModelServers = field(default_factory=ModelServers)
    toolbox: Toolbox | None = None

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
        if self.toolbox is not None:
            self.toolbox.close()
            self.toolbox = None
        if self.controller is not None:
            self.controller.close()
        self.servers.close()


SESSION_KEY = pytest.StashKey[ActiveSession]()


def runs_items_here(config: pytest.Config) -> bool:
    """Whether this process runs items: not an xdist controller, which only dispatches them.

    Decided from xdist's own rule (``dist`` not ``no`` with test environments, and not ``--collect-only``), because
    its ``dsession`` plugin may be registered after this plugin's ``pytest_configure`` (both are trylast)."""
    if hasattr(config, "workerinput") or config.option.collectonly:
        return True
    if config.pluginmanager.has_plugin("dsession"):
        return False
    return not (config.getoption("dist", "no") != "no" and config.getoption("tx", None))


def items_run_elsewhere(config: pytest.Config) -> bool:
    """Whether every item runs on another machine: an xdist controller whose ``--tx`` gateways are all remote
    (``ssh=``, ``socket=``), none ``popen``. Such workers do not inherit the controller's environment or network, so
    the controller does not check the model's credentials and server (:mod:`.preflight`): the workers need them."""
    if runs_items_here(config):
        return False
    specs = [str(s) for s in config.getoption("tx", None) or ()]
    if not specs:
        return False
    from execnet import XSpec  # xdist's own dependency: present whenever --tx is an option

    return not any(XSpec(re.sub(r"^\d+\*", "", spec)).popen for spec in specs)


def start(config: pytest.Config, settings: Settings) -> ActiveSession:
    """Make the run identity, start the model servers and register the plugins of this process's role(s)."""
    from .lineup import LineupError, lineup

    try:
        contenders = lineup(settings)
    except LineupError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    previous: list[ItemResult] = []
    resumed_from: dict[str, Any] | None = None
    if workerinput is not None:
        run_id = workerinput[WORKER_RUN_ID]
        done = frozenset(workerinput.get(WORKER_DONE, ()))
        local = RunIdentity.worker_local(workerinput)
    else:
        from . import preflight
        from .resume import resumed_run

        probe_dir = settings.output_dir / (settings.resume or settings.run_id or "")
        preflight.check(
            config,
            settings,
            contenders,
            run_dir=probe_dir if settings.output in ("json", "hub") else None,
            model_checks=not items_run_elsewhere(config),
        )
        if settings.resume:
            run_id, previous, resumed_from = resumed_run(settings)
        else:
            run_id = settings.run_id or new_run_id()
        done, local = frozenset(r.nodeid for r in previous), None
    servers = ModelServers()
    active: ActiveSession | None = None
    try:
        endpoints = [servers.start(config, c, local) for c in contenders]  # before anything asks for a model spec
        identity = RunIdentity(
            settings=settings,
            run_id=run_id,
            contenders=contenders,
            specs=tuple(model_spec(settings, run_id, c, e) for c, e in zip(contenders, endpoints, strict=True)),
            done=done,
            local=next((e for e in endpoints if e is not None and e.provider == "local"), None),
            started_at=time.time(),
        )
        active = ActiveSession(identity, servers=servers)
        _start_roles(config, active, previous, resumed_from)
    except BaseException:  # a usage error: nothing of this session may outlive it
        (active.close if active is not None else servers.close)()
        raise
    config.stash[IDENTITY_KEY] = identity
    config.stash[SESSION_KEY] = active
    return active


def _start_roles(
    config: pytest.Config, active: ActiveSession, previous: list[ItemResult], resumed_from: dict[str, Any] | None
) -> None:
    from .toolbox import prepare

    identity, settings = active.identity, active.identity.settings
    is_controller = not hasattr(config, "workerinput")
    active.toolbox = prepare(config, settings)  # every process: a bad tool option is a usage error before any item
    if settings.otlp:  # a wrong OTEL_EXPORTER_OTLP_* setting is a usage error, not an error in every item
        from .telemetry.otlp import OtlpConfigError, check_config

        try:
            check_config()
        except OtlpConfigError as exc:
            raise pytest.UsageError(f"--smoltrace-otlp: {exc}") from None
    budget = _budget(identity, _limits_store(identity))
    if is_controller:
        from .aggregate import Aggregator
        from .gate import load_baseline
        from .preflight import runs_items

        # read before the run directory is made: a baseline that cannot be read is a usage error that leaves none
        baseline = load_baseline(settings) if runs_items(config) else None

        aggregator = Aggregator(
            identity.run_dir if identity.writes_files else None, previous, resumed=bool(settings.resume)
        )
        active.controller = ControllerPlugin(
            identity, aggregator, resumed_from_settings=resumed_from, baseline=baseline
        )
        # a new run starts from zero, a resumed one from what it had already spent; a shared limits store keeps the
        # total of another session of this run (another host)
        if budget is not None:
            budget.start(sum(r.record.cost_usd or 0.0 for r in aggregator.digests))
        if aggregator.run_dir is not None:
            from .resume import write_run_settings

            if runs_items(config):
                write_run_settings(identity, resumed_from)  # the last check: the run directory is made only now
        config.pluginmanager.register(active.controller, CONTROLLER_NAME)
        config.stash[CONTROLLER_KEY] = active.controller
    if runs_items_here(config):
        controller = active.controller
        active.executor = ExecutorPlugin(
            identity,
            toolbox=active.toolbox,
            budget=budget,
            deliver=controller.receive if controller is not None else _to_workeroutput(config),
            recorded=controller.recorded if controller is not None else None,
            handoff=_handoff(config),
        )
        install_item_runner(config, active.executor)
        config.pluginmanager.register(active.executor, EXECUTOR_NAME)
    if settings.resume:
        from .resume import ResumeWatch

        config.pluginmanager.register(ResumeWatch(identity), "smoltrace-resume-watch")


def _handoff(config: pytest.Config) -> HandoffWriter | None:
    """An xdist worker's handoff file, where the controller asked for one (it writes a run directory)."""
    from .handoff import WORKER_HANDOFF, HandoffWriter

    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if not workerinput or not workerinput.get(WORKER_HANDOFF):
        return None
    return HandoffWriter(Path(workerinput[WORKER_HANDOFF]), str(workerinput.get("workerid", "worker")))


def _limits_store(identity: RunIdentity) -> LimitsStore:
    """The run's limits store (``--smoltrace-limits-url``), reached now when a run-wide limit uses it: an unsupported
    URL or an unreachable server is a usage error before any item runs, naming the URL without its password."""
    from .limits import FLAG, LimitsLocation, LimitsStoreError

    settings = identity.settings
    try:
        store = LimitsLocation(settings.limits_url, identity.run_id).open()
        if settings.max_rpm is not None or settings.max_cost is not None:
            store.check()
    except LimitsStoreError as exc:
        raise pytest.UsageError(f"{FLAG}: {exc}") from None
    return store


def _budget(identity: RunIdentity, store: LimitsStore) -> Budget | None:
    """``--smoltrace-max-cost``: the run's budget, shared by every process (and host) through the limits store (a
    usage error when the model has no price)."""
    max_cost = identity.settings.max_cost
    if max_cost is None:
        return None
    from .budget import Budget

    for spec in identity.specs:
        if identity.price_of(spec) is None:
            raise pytest.UsageError(
                f"--smoltrace-max-cost: litellm has no price for {spec.model_id}; give its prices with "
                "--smoltrace-price-input and --smoltrace-price-output (USD per 1M tokens; price_input and "
                "price_output per model in --smoltrace-models)"
            )
    return Budget(max_cost, store)


def _to_workeroutput(config: pytest.Config) -> Any:
    def deliver(report: ProcessReport) -> None:
        report.to_workeroutput(config.workeroutput)  # type: ignore[attr-defined]

    return deliver


def get_session(config: pytest.Config) -> ActiveSession | None:
    return config.stash.get(SESSION_KEY, None)
