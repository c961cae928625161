"""The executor plugin: registered where items are collected and run (the only process, or each xdist worker).

It owns what running items needs: the run configuration, the runs started ahead (:class:`RunAhead`), the budget, the
sampler, and the tools' resources; each attempt's result rides on its report, and what no report carried goes to the
controller once, when the process ends (:class:`~.transport.ProcessReport`). Like pytest-xdist's
``WorkerInteractor``, it never aggregates or writes the run directory — that is the controller's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .attempts import settle_report
from .collect import (
    ITEM_RUNNER_KEY,
    ORDER_KEY,
    SmoltraceRunError,
    TaskItem,
    collect_into,
    drop_other_shards,
    task_file,
)
from .identity import RunIdentity
from .transport import ProcessReport, payload, report_payload

if TYPE_CHECKING:
    from .budget import Budget
    from .concurrency import RunAhead
    from .handoff import HandoffWriter
    from .records import ItemResult
    from .runner import RunConfig
    from .telemetry.sampler import Sampler
    from .toolbox import Toolbox

log = logging.getLogger(__name__)

#: How long after pytest-timeout's limit its own timer (the backstop) fires when our item did not end by itself.
TIMEOUT_BACKSTOP_S = 10.0


def run_config(identity: RunIdentity, box: Toolbox | None) -> RunConfig:
    """The run configuration of the session's agents: the options, with the toolbox's tools, prompts and limits."""
    from .cassettes import CassetteShelf
    from .runner import RunConfig

    settings = identity.settings
    return RunConfig(
        spec=identity.spec,
        run_id=identity.run_id,
        max_steps=box.max_steps if box and box.max_steps else settings.max_steps,
        timeout_s=settings.timeout,
        extra_tools=box.extra_tools if box else (),
        tool_names=settings.tools,
        tool_options=box.tool_options if box else {},
        tool_timeout_s=settings.tool_timeout,
        prompt_templates=box.prompt_templates if box else {},
        planning_interval=box.planning_interval if box else None,
        additional_imports=box.additional_imports if box else (),
        cassettes=CassetteShelf(settings.cassettes, settings.record_mode) if settings.record_mode else None,
    )


class ExecutorPlugin:
    """Runs the items of this process; ``deliver`` receives the process's report at its end, ``recorded`` says whether
    the controller holds a result already (where it is in this process)."""

    def __init__(
        self,
        identity: RunIdentity,
        *,
        toolbox: Toolbox | None,
        budget: Budget | None,
        deliver: Callable[[ProcessReport], None],
        recorded: Callable[[ItemResult], bool] | None = None,
        handoff: HandoffWriter | None = None,
    ) -> None:
        self.identity = identity
        self.budget = budget
        self.run_config = run_config(identity, toolbox)
        from .rubric import Grader

        #: ``--smoltrace-judge-model``: the rubric judge of this process's items (None without one).
        self.grader = Grader.from_settings(identity.settings)
        self.run_ahead: RunAhead | None = None
        self.sampler: Sampler | None = None
        self._deliver = deliver
        #: Whether the controller already holds a result (in a single process); under xdist, whether the handoff
        #: keeps it (then the controller files it if its report never arrived).
        self._recorded = recorded if recorded is not None or handoff is None else handoff.holds
        #: Under xdist, every result this worker hands over is also kept here until the controller holds it.
        self._handoff = handoff

    # -- running one item ------------------------------------------------------------------------------------------

    def run_item(self, item: TaskItem) -> ItemResult:
        """The item's result, starting upcoming items' runs ahead when concurrency allows."""
        from .concurrency import RunAhead, upcoming_items

        budget = self.budget
        if self.run_ahead is None:
            self.run_ahead = RunAhead(
                self.identity.concurrency,
                self._execute,
                may_start=(lambda: not budget.exhausted()) if budget else (lambda: True),
            )
        if budget is not None and not self.run_ahead.started(item) and budget.exhausted():
            pytest.skip(budget.reason())
        window = self.run_ahead.window
        upcoming = [i for i in upcoming_items(item, 2 * window) if isinstance(i, TaskItem)] if window > 1 else []
        return self.run_ahead.result_for(item, upcoming)

    def _execute(self, item: TaskItem, cancel: threading.Event | None) -> ItemResult:
        """Run and judge one item (in a run-ahead thread)."""
        from .execution import run_and_judge

        identity = self.identity
        cfg = (
            self.run_config
            if item.spec == self.run_config.spec
            else dataclasses.replace(self.run_config, spec=item.spec)
        )
        return run_and_judge(
            item.task,
            item.agent_type,
            cfg,
            nodeid=item.nodeid,
            price=identity.price_of(item.spec),
            judges=item.ihook.pytest_smoltrace_judge,
            otlp=identity.settings.otlp,
            budget=self.budget,
            cancel=cancel,
            repeat=item.repeat,
            grader=self.grader,
        )

    def warm_up(self) -> None:
        """Build this process's model objects now; a failure is left for the items to report as their error."""
        from .models import get_model

        for spec in self.identity.specs:
            try:
                get_model(spec)
            except Exception:  # each item reports the same error as its own error outcome
                log.debug("building the model %s failed; its items will report it", spec.label, exc_info=True)

    # -- collection --------------------------------------------------------------------------------------------------

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        return task_file(parent, file_path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        from .resume import drop_finished

        collect_into(session, items, self.identity)
        # the split is made over every collected item, before anything else is deselected, so every shard agrees
        drop_other_shards(config, items, self.identity.settings.shard, self.identity.labels)
        drop_finished(config, items, self.identity.done)

    # -- the run loop ------------------------------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from .preflight import runs_items

        if runs_items(session.config):
            from .telemetry.sampler import Sampler

            self.sampler = Sampler(interval_s=self.identity.settings.sample_interval, gpu=self.identity.gpu_metrics)
            self.sampler.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, Any]:
        if session.items and not session.config.option.collectonly:
            self.warm_up()  # build the model (imports litellm) before the items, not inside the first one
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Every attempt's result rides on its report."""
        from .report import failure_text

        report = yield
        if not isinstance(item, TaskItem):
            return report
        settle_report(item, call, report, self.run_ahead)
        if self._handoff is not None:
            data = report_payload(report)
            if data is not None:
                self._handoff.write(data)
        if call.excinfo is not None and isinstance(call.excinfo.value, SmoltraceRunError):
            report.longrepr = failure_text(call.excinfo.value.result)
        return report

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """pytest-timeout: a task item's limit ends the wait for its run (the item is then a timeout error, and the
        run is recorded with its spend at the end), instead of pytest-timeout's exception in the middle of the wait
        (signal method) or ``os._exit`` of the whole process (thread method). pytest-timeout's own timer still backs
        it up, ``TIMEOUT_BACKSTOP_S`` later."""
        from .concurrency import DEADLINE_KEY

        timeout = getattr(settings, "timeout", None)
        if not isinstance(item, TaskItem) or getattr(settings, "func_only", False) or not timeout:
            return None  # func_only: the limit covers the call phase, which only applies the verdict
        message = f"Timeout (>{timeout:g}s) from pytest-timeout"
        item.stash[DEADLINE_KEY] = (time.monotonic() + float(timeout), message)
        try:
            import pytest_timeout

            pytest_timeout.pytest_timeout_set_timer(item, settings._replace(timeout=timeout + TIMEOUT_BACKSTOP_S))
        except (ImportError, AttributeError, TypeError):  # another pytest-timeout: our deadline alone
            pass
        return True

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_cancel_timer(self, item: pytest.Item) -> None:
        from .concurrency import DEADLINE_KEY

        if DEADLINE_KEY in item.stash:
            del item.stash[DEADLINE_KEY]
        # None: pytest-timeout's own implementation cancels its (backstop) timer

    # -- the end of the process ------------------------------------------------------------------------------------

    def _unreported(self, session: pytest.Session, exitstatus: int) -> list[ItemResult]:
        """The results of runs no report carried, once they finished (see RunAhead.drain)."""
        run_ahead = self.run_ahead
        if run_ahead is None:
            return []
        from .attempts import unreported_results
        from .report import stop_reason

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        pending = run_ahead.pending()
        if pending and not interrupted and not hasattr(session.config, "workerinput"):
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            try:
                if reporter is not None:
                    reporter.write_line(
                        f"smoltrace: waiting for {pending} agent run(s) nobody waits for any more (started ahead, or "
                        "past their time limit) to finish, so that their spend is recorded; Ctrl-C cancels them"
                    )
            except KeyboardInterrupt:  # Ctrl-C as the wait is announced: as during it, the runs stop at their step
                run_ahead.cancel()
        wait_s = self.identity.settings.timeout + 30.0
        entries = run_ahead.drain(wait_s, interrupted=interrupted)
        # a result pytest had been handed at Ctrl-C is kept once: where it is recorded (or, in a worker, kept) already
        return unreported_results(entries, stop_reason(session), recorded=self._recorded)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Before the controller writes anything: finish this process's part and hand it over."""
        unreported = self._unreported(session, exitstatus)
        if self.run_ahead is not None:
            self.run_ahead.cancel()  # runs started ahead for items that will not run (-x, Ctrl-C)
        samples = self.sampler.stop().to_dict() if self.sampler is not None else None
        self.sampler = None
        order: list[str] = session.config.stash.get(ORDER_KEY, [])
        otlp: list[dict[str, Any]] = []
        if self.identity.settings.otlp:
            from .telemetry import tracing

            tracing.shutdown()
            report = tracing.otlp_report(clear=True)  # read after the final flush
            if report is not None:
                otlp.append(report.to_dict())
        if self._handoff is not None:
            for result in unreported:
                self._handoff.write(payload(result))
            self._handoff.done()
        self._deliver(
            ProcessReport(
                samples=(samples,) if samples is not None else (),
                otlp_reports=tuple(otlp),
                unreported=tuple(unreported),
                order=tuple(order),
            )
        )

    def close(self) -> None:
        if self.run_ahead is not None:
            self.run_ahead.cancel()


def install_item_runner(config: pytest.Config, executor: ExecutorPlugin) -> None:
    """Task items run through this executor (collect.py knows only the key, not the executor)."""
    config.stash[ITEM_RUNNER_KEY] = executor.run_item
