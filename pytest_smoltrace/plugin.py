"""pytest hook wiring only, plus the two fixtures users' tests get (their machinery is imported lazily).

Without a model (option, ini or ``SMOLTRACE_MODEL``) nothing but the options is added and nothing heavy is
imported; with one, :class:`ActivePlugin` is registered for the session."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import hooks, options

if TYPE_CHECKING:
    from .state import SmoltraceState

WORKER_SAMPLES = "smoltrace_samples"
WORKER_OTLP = "smoltrace_otlp_reports"
#: Results no report carried (runs started ahead for items the worker never ran, runs pytest stopped waiting for).
WORKER_UNREPORTED = "smoltrace_unreported"
#: The worker's collection order of the task items (results.json is written in it).
WORKER_ORDER = "smoltrace_order"
#: How long after pytest-timeout's limit its own timer (the backstop) fires when our item did not end by itself.
TIMEOUT_BACKSTOP_S = 10.0
MODEL_MARKER = "smoltrace_model"
MODEL_MARKER_LINE = (
    f"{MODEL_MARKER}(model, provider='litellm', api_base=None): the model the smoltrace_run fixture uses in this test"
)


@pytest.fixture
def smoltrace_model_server() -> Iterator[Any]:
    """A started :class:`pytest_smoltrace.testing.ScriptedModelServer` (no scripts yet: ``add_script``)."""
    from .testing import ScriptedModelServer

    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def fake_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A started local Hugging Face Hub stand-in with ``huggingface_hub``/``datasets`` pointed at it
    (see :func:`smoltrace_export.fakehub.fake_hub`)."""
    from smoltrace_export.fakehub import FakeHub, hub_environment

    with FakeHub() as hub, hub_environment(hub, home=tmp_path_factory.mktemp("hf_home")):
        yield hub


@pytest.fixture
def smoltrace_run_config(request: pytest.FixtureRequest) -> Any:
    """The RunConfig ``smoltrace_run`` uses: the session's, or the test's ``@pytest.mark.smoltrace_model(...)``.

    Override it in a conftest to pick a model per marker."""
    from .fixtures import run_config_for

    return run_config_for(request)


@pytest.fixture
def smoltrace_run(request: pytest.FixtureRequest, smoltrace_run_config: Any) -> Any:
    """Run one agent on one prompt and judge it: ``smoltrace_run(prompt, agent_type=…, **task_fields)``."""
    from .fixtures import SmoltraceRunner

    return SmoltraceRunner(request, smoltrace_run_config)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MODEL_MARKER_LINE)  # the smoltrace_run fixture's marker, active or not
    if not options.is_active(config):
        return
    from .settings import resolve

    settings = resolve(config)
    from .collect import FIXED_MARKERS
    from .state import STATE_KEY, create_state

    for name, text in FIXED_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    state = create_state(config, settings)
    config.stash[STATE_KEY] = state
    config.pluginmanager.register(ActivePlugin(state), "smoltrace-active")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.get_plugin("smoltrace-active")
    if plugin is not None:
        plugin.state.close()


class ActivePlugin:
    """Hooks that exist only while a model is configured (so the collection machinery is imported only then)."""

    def __init__(self, state: SmoltraceState) -> None:
        self.state = state

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from .report import header_lines

        return header_lines(self.state)

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        from .collect import task_file

        return task_file(parent, file_path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        from .collect import collect_into, drop_finished

        collect_into(session, items, self.state)
        drop_finished(config, items, self.state)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from .collect import TaskItem

        if self.state.is_controller:
            self.state.set_planned(i.agent_type for i in session.items if isinstance(i, TaskItem))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.state.planned:
            self.state.set_planned(
                p[-2] for p in (i.split("::") for i in ids) if len(p) >= 3 and p[-2] in ("tool", "code")
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        self.state.describe_to_worker(node.workerinput)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """Controller side (xdist): a worker died while running ``crashitem``; record it as crashed (a resume runs it
        again)."""
        import dataclasses

        from .collect import attach_result, crash_result

        result = crash_result(crashitem, str(report.longrepr or "worker crashed"), self.state)
        if result is not None:
            if self.state.aggregator is not None:  # the attempt it crashed in (a rerun's, under rerunfailures)
                attempt = self.state.aggregator.next_attempt(crashitem)
                result = dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))
            attach_result(report, result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Where the item runs (the only process, or an xdist worker): every attempt's result rides on its report."""
        from .collect import SmoltraceRunError, TaskItem, failure_text, settle_report

        report = yield
        if not isinstance(item, TaskItem):
            return report
        settle_report(item, call, report)
        if call.excinfo is not None and isinstance(call.excinfo.value, SmoltraceRunError):
            report.longrepr = failure_text(call.excinfo.value.result)
        return report

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """pytest-timeout, where the item runs: a task item's limit ends the wait for its run (the item is then a
        timeout error, and the run is recorded with its spend at the end), instead of pytest-timeout's exception in
        the middle of the wait (signal method) or ``os._exit`` of the whole process (thread method). pytest-timeout's
        own timer still backs it up, ``TIMEOUT_BACKSTOP_S`` later."""
        from .collect import TaskItem
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

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """Verbose runs show an item's model-call retries next to its outcome: ``PASSED (2 retries: HTTP 429)``."""
        data = getattr(report, "smoltrace", None)
        retries = (data or {}).get("record", {}).get("retries") or ()
        if not retries or report.when not in ("setup", "call"):
            return None
        reasons = ", ".join(sorted({r["reason"] for r in retries}))
        word = {"passed": "PASSED", "failed": "FAILED" if report.when == "call" else "ERROR"}.get(report.outcome)
        if word is None:
            return None
        letter = {"PASSED": ".", "FAILED": "F", "ERROR": "E"}[word]
        category = "error" if word == "ERROR" else report.outcome
        return category, letter, f"{word} ({len(retries)} {'retry' if len(retries) == 1 else 'retries'}: {reasons})"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "smoltrace", None)
        if data and self.state.is_controller and self.state.aggregator is not None:
            from .collect import result_from_report

            result = result_from_report(report.nodeid, data)
            if result is not None:
                self.state.aggregator.add(result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, Any]:
        if self.state.runs_items(session.config) and session.items and not session.config.option.collectonly:
            self.state.warm_up()  # build the model (imports litellm) before the items, not inside the first one
        self.state.loop_started_at = time.time()
        try:
            return (yield)
        finally:
            self.state.loop_finished_at = time.time()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.state.runs_items(session.config):
            self.state.start_sampler()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Controller side (xdist): what a worker sent back when it finished."""
        output = getattr(node, "workeroutput", None) or {}
        self.state.samples.extend(output.get(WORKER_SAMPLES) or ())
        self.state.otlp_reports.extend(output.get(WORKER_OTLP) or ())
        aggregator = self.state.aggregator
        if aggregator is None:
            return
        aggregator.set_order(output.get(WORKER_ORDER) or ())
        from .collect import result_from_report

        for data in output.get(WORKER_UNREPORTED) or ():
            result = result_from_report(None, data)
            if result is not None:
                aggregator.add(result)

    def _unreported(self, session: pytest.Session, exitstatus: int) -> list[Any]:
        """Where items ran: the results of runs no report carried, once they finished (see RunAhead.drain)."""
        run_ahead = self.state.run_ahead
        if run_ahead is None:
            return []
        from .collect import unreported_results

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        pending = run_ahead.pending()
        if pending and not interrupted and self.state.is_controller:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(
                    f"smoltrace: waiting for {pending} agent run(s) nobody waits for any more (started ahead, or "
                    "past their time limit) to finish, so that their spend is recorded; Ctrl-C cancels them"
                )
        wait_s = self.state.settings.timeout + 30.0
        return unreported_results(run_ahead.drain(wait_s, interrupted=interrupted), _stop_reason(session))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        unreported = self._unreported(session, exitstatus)
        state.finish_process()  # cancel runs started ahead, stop sampling, flush OTLP
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            from .collect import ORDER_KEY, payload

            workeroutput[WORKER_SAMPLES] = state.samples
            workeroutput[WORKER_OTLP] = state.otlp_reports
            workeroutput[WORKER_UNREPORTED] = [payload(r) for r in unreported]
            workeroutput[WORKER_ORDER] = session.config.stash.get(ORDER_KEY, [])
            return
        aggregator = state.aggregator
        if aggregator is None:
            return
        for result in unreported:
            aggregator.add(result)
        if aggregator.run_dir is None or session.config.option.collectonly:
            return
        from .aggregate import publish, write_outputs

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)
        run_dir = write_outputs(state, aggregator, interrupted=interrupted, stop_reason=_stop_reason(session))
        if state.settings.output == "hub" and not publish(state, run_dir) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.state.is_controller or terminalreporter.config.option.collectonly:
            return
        from .report import write_summary
        from .summary import summarize

        aggregator = self.state.aggregator
        summaries = summarize(aggregator.attempts if aggregator else (), self.state.planned)
        if summaries:
            write_summary(terminalreporter, summaries, aggregator.run_dir if aggregator else None)
        for line in self.state.publish_lines:
            terminalreporter.write_line(line, red=line.startswith("Publishing"))
        if self.state.otlp_reports:
            from .report import write_otlp_line

            write_otlp_line(terminalreporter, self.state.otlp_reports)


def _stop_reason(session: pytest.Session) -> str | None:
    """Why pytest stopped before the end (``-x``: "stopping after 1 failures"), or None; under xdist the controller's
    reason is its scheduler's."""
    dsession = session.config.pluginmanager.get_plugin("dsession")
    for reason in (session.shouldfail, session.shouldstop, getattr(dsession, "shouldstop", None)):
        if isinstance(reason, str) and reason:
            return reason
    return None
