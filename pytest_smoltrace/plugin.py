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
        from .collect import TaskFile, is_task_file

        return TaskFile.from_parent(parent, path=file_path) if is_task_file(file_path) else None

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
        """A worker died while running ``crashitem``: record it as crashed (a resume runs it again)."""
        from .collect import attach_result, crash_result

        result = crash_result(crashitem, str(report.longrepr or "worker crashed"), self.state)
        if result is not None:
            attach_result(report, result)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        from .collect import RESULT_KEY, SmoltraceRunError, TaskItem, attach_result, failure_text

        report = yield
        if not isinstance(item, TaskItem):
            return report
        result = item.stash.get(RESULT_KEY, None)
        if result is not None and (call.when == "call" or (call.when == "setup" and report.failed)):
            attach_result(report, result)
        if call.excinfo is not None and isinstance(call.excinfo.value, SmoltraceRunError):
            report.longrepr = failure_text(call.excinfo.value.result)
        return report

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
        self.state.samples.extend(getattr(node, "workeroutput", {}).get(WORKER_SAMPLES) or ())
        self.state.otlp_reports.extend(getattr(node, "workeroutput", {}).get(WORKER_OTLP) or ())

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        state.finish_process()  # cancel runs started ahead, stop sampling, flush OTLP
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_SAMPLES] = state.samples
            workeroutput[WORKER_OTLP] = state.otlp_reports
            return
        aggregator = state.aggregator
        if aggregator is None or aggregator.run_dir is None or session.config.option.collectonly:
            return
        from .aggregate import publish, write_outputs

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)
        run_dir = write_outputs(state, aggregator, interrupted=interrupted)
        if state.settings.output == "hub" and not publish(state, run_dir) and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.state.is_controller or terminalreporter.config.option.collectonly:
            return
        from .report import write_summary
        from .summary import summarize

        aggregator = self.state.aggregator
        summaries = summarize(aggregator.results.values() if aggregator else (), self.state.planned)
        if summaries:
            write_summary(terminalreporter, summaries, aggregator.run_dir if aggregator else None)
        for line in self.state.publish_lines:
            terminalreporter.write_line(line, red=line.startswith("Publishing"))
        if self.state.otlp_reports:
            from .report import write_otlp_line

            write_otlp_line(terminalreporter, self.state.otlp_reports)
