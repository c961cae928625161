"""The controller plugin: registered only where ``not hasattr(config, "workerinput")`` (the xdist controller, or the
only process), like pytest-xdist's ``DSession``.

It owns the run's results: the aggregator (journal as each report arrives, every attempt), what each process that
ran items reported at its end, the run directory written at the end, Hub publishing, and the terminal summary.
It never runs an item — that is the executor's (:mod:`.executor`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .attempts import crash_result
from .collect import TaskItem, parse_nodeid
from .gate import Baseline, Standing
from .identity import RunIdentity
from .report import PROGRESS_SHOWN, Progress
from .transport import ProcessReport, attach_result, release_payload, report_payload, result_from_payload

if TYPE_CHECKING:
    from .aggregate import Aggregator
    from .records import ItemResult

log = logging.getLogger(__name__)


class ControllerPlugin:
    """The controller's part of the run; ``receive`` takes each process's report (this one's, or a worker's)."""

    def __init__(
        self,
        identity: RunIdentity,
        aggregator: Aggregator,
        *,
        resumed_from_settings: dict[str, Any] | None = None,
        baseline: Baseline | None = None,
    ) -> None:
        self.identity = identity
        self.aggregator = aggregator
        #: ``--smoltrace-baseline``'s outcomes (read at the start), compared with this run's at the end.
        self.baseline = baseline
        #: The run's statistics and comparisons, computed once at the end of the session.
        self.standing: Standing | None = None
        #: The run so far, shown on each item's line in verbose runs.
        self.progress = Progress()
        #: ``--smoltrace-resume-force`` over other settings: the resumed run's settings, where they were read and what
        #: differs (``{"source", "settings", "differences"}``) — for metadata.json; None when nothing differed.
        self.resumed_from_settings = resumed_from_settings
        #: Items planned per (model name, agent type): those selected now plus those finished before a resume.
        self.planned: dict[tuple[str, str], int] = {}
        #: Samples of every process of the run that ran items.
        self.samples: list[dict[str, Any]] = []
        #: OTLP export reports (``OtlpReport.to_dict()``) of every process that exported.
        self.otlp_reports: list[dict[str, Any]] = []
        #: Lines for the terminal summary: Hub publishing, statistics not written, results filed from the handoff.
        self.publish_lines: list[str] = []
        #: When pytest's run loop (the items) started and ended: the session time minus start-up and output files.
        self.loop_started_at: float | None = None
        self.loop_finished_at: float | None = None
        #: Under xdist, where each worker also keeps the results it hands over (:mod:`.handoff`); the workers started
        #: and those whose end this process received.
        self.handoff_dir: Path | None = None
        self.workers: list[str] = []
        self.workers_down: set[str] = set()

    def receive(self, report: ProcessReport) -> None:
        """What a process that ran items handed over at its end."""
        self.samples.extend(report.samples)
        self.otlp_reports.extend(report.otlp_reports)
        self.aggregator.set_order(report.order)
        for result in report.unreported:
            self.aggregator.add(result)

    def recorded(self, result: ItemResult) -> bool:
        """Whether this run's result is recorded already (a run is its node id and its own start time)."""
        return any(
            r.nodeid == result.nodeid and r.record.started_at == result.record.started_at
            for r in self.aggregator.digests
        )

    def set_planned(self, groups: Iterable[tuple[str, str]]) -> None:
        """Items planned per (model name, agent type): those collected, and those a resumed run had finished."""
        counts = Counter(groups)
        done = self.identity.done
        counts.update(
            (r.record.model_name, r.record.agent_type) for r in self.aggregator.results.values() if r.nodeid in done
        )
        self.planned = dict(counts)

    # -- collection and the xdist controller's hooks -----------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from .report import header_lines

        return header_lines(self.identity)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The only process collected the items itself (an xdist controller collects none)."""
        self.set_planned((i.spec.reported_name, i.agent_type) for i in session.items if isinstance(i, TaskItem))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.planned:  # every worker collects every item: the first one's ids are the plan
            refs = [parse_nodeid(i, self.identity.labels) for i in ids]
            self.set_planned(
                (self.identity.spec_for(r.label).reported_name, r.agent_type) for r in refs if r is not None
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        self.identity.to_workerinput(node.workerinput)
        if self.aggregator.run_dir is not None:
            from .handoff import WORKER_HANDOFF, session_dir

            if self.handoff_dir is None:
                self.handoff_dir = session_dir(self.aggregator.run_dir)
            node.workerinput[WORKER_HANDOFF] = str(self.handoff_dir)
            self.workers.append(str(node.workerinput.get("workerid", node.gateway.id)))

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: Any) -> None:
        """A worker died while running ``crashitem``: record it as crashed (a resume runs it again), in the attempt it
        crashed in (a rerun's, under rerunfailures)."""
        result = crash_result(crashitem, str(report.longrepr or "worker crashed"), self.identity)
        if result is not None:
            attempt = self.aggregator.next_attempt(crashitem)
            result = dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))
            attach_result(report, result)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """What a worker sent back when it finished."""
        self.workers_down.add(str(getattr(node, "workerinput", {}).get("workerid", "")))
        self.receive(ProcessReport.from_workeroutput(getattr(node, "workeroutput", None) or {}))

    def take_handoff(self) -> int:
        """Under xdist, file what the workers handed over that never reached this process (Ctrl-C here stops xdist
        reading its queue): needed only when some worker's end was not received. The number of results filed."""
        directory = self.handoff_dir
        if directory is None:
            return 0
        from .handoff import payloads, remove, wait_for

        filed = 0
        if set(self.workers) - self.workers_down:
            missing = wait_for(directory, [w for w in self.workers if w not in self.workers_down])
            if missing:
                log.warning("smoltrace: workers %s did not finish handing over their results", ", ".join(missing))
            held = {(r.nodeid, r.record.started_at) for r in self.aggregator.digests}
            for data in payloads(directory):
                result = result_from_payload(None, data)
                if result is not None and (result.nodeid, result.record.started_at) not in held:
                    held.add((result.nodeid, result.record.started_at))
                    self.aggregator.add(result)
                    filed += 1
            if filed:
                self.publish_lines.append(
                    f"smoltrace: {filed} result(s) the controller had not read when the session stopped were filed "
                    "from the workers' handoff"
                )
        remove(directory)
        return filed

    # -- reports -----------------------------------------------------------------------------------------------------

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """Verbose runs show an item's model-call retries next to its outcome (``PASSED (2 retries: HTTP 429)``), and
        the run so far on the item's own line: ``PASSED · 12 done · 92% passed · 31,554 tokens · $0.0123``."""
        data = report_payload(report)
        if not data or report.when not in ("setup", "call"):
            return None
        word = {"passed": "PASSED", "failed": "FAILED" if report.when == "call" else "ERROR"}.get(report.outcome)
        if word is None:
            return None
        retries = data.get("record", {}).get("retries") or ()
        text = word
        if retries:
            reasons = ", ".join(sorted({r["reason"] for r in retries}))
            text += f" ({len(retries)} {'retry' if len(retries) == 1 else 'retries'}: {reasons})"
        if config.option.verbose > 0:
            self.progress.add(report.nodeid, data, passed=report.outcome == "passed")
            if not report.__dict__.get(PROGRESS_SHOWN):  # on the item's live line; not again in the short summary
                report.__dict__[PROGRESS_SHOWN] = True
                text += f" · {self.progress.line()}"
        if text == word:
            return None
        letter = {"PASSED": ".", "FAILED": "F", "ERROR": "E"}[word]
        category = "error" if word == "ERROR" else report.outcome
        return category, letter, text

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = report_payload(report)
        if data and not data.get("released"):
            result = result_from_payload(report.nodeid, data)
            if result is not None:
                self.aggregator.add(result)
            release_payload(report)  # filed: the report keeps only what its status line reads

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, Any]:
        self.loop_started_at = time.time()
        try:
            return (yield)
        finally:
            self.loop_finished_at = time.time()

    # -- the end of the run ------------------------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """After every executor handed its part over (theirs run first): write the run directory, publish."""
        aggregator = self.aggregator
        if session.config.option.collectonly:
            return
        self.take_handoff()  # before anything reads the results
        from .gate import gated_exit_status, standing

        try:
            self.standing = standing(aggregator.digests, self.baseline, models=len(self.identity.specs))
        except Exception as exc:  # statistics must never cost the run its outputs
            log.error("smoltrace: the statistics could not be computed (%s); the other outputs are written", exc)
            log.debug("statistics failed", exc_info=True)
            self.publish_lines.append(f"smoltrace: statistics.json and comparison.json not written: {exc}")
        if self.standing is not None:
            session.exitstatus = gated_exit_status(int(session.exitstatus), self.standing, self.identity.settings)
        if aggregator.run_dir is None:
            return
        from .aggregate import publish, write_outputs
        from .report import stop_reason

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)
        loop_s = (
            round(self.loop_finished_at - self.loop_started_at, 3)
            if self.loop_started_at and self.loop_finished_at
            else None
        )
        run_dir = write_outputs(
            self.identity,
            aggregator,
            planned=self.planned,
            samples=self.samples,
            resumed_from_settings=self.resumed_from_settings,
            loop_s=loop_s,
            interrupted=interrupted,
            stop_reason=stop_reason(session),
            standing=self.standing,
        )
        if self.identity.settings.output == "hub":
            published, lines = publish(run_dir, private=self.identity.settings.private)
            self.publish_lines.extend(lines)
            if not published and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if terminalreporter.config.option.collectonly:
            return
        from .report import write_otlp_line, write_summary
        from .summary import summarize

        summaries = summarize(self.aggregator.digests, self.planned)
        statistics: Sequence[tuple[str, bool]] = ()
        if self.standing is not None:
            from .gate import summary_lines

            settings = self.identity.settings
            statistics = summary_lines(
                self.standing,
                repeats=settings.repeats,
                gate=settings.fail_on_regression,
                baseline=settings.baseline,
                models=len(self.identity.specs),
            )
        if summaries:
            write_summary(terminalreporter, summaries, self.aggregator.run_dir, statistics)
        for line in self.publish_lines:
            terminalreporter.write_line(line, red=line.startswith(("Publishing", "smoltrace: statistics")))
        if self.otlp_reports:
            write_otlp_line(terminalreporter, self.otlp_reports)

    def close(self) -> None:
        self.aggregator.close()


CONTROLLER_KEY = pytest.StashKey[ControllerPlugin]()


def get_controller(config: pytest.Config) -> ControllerPlugin | None:
    """The controller plugin of an active session in the controller process, else None."""
    return config.stash.get(CONTROLLER_KEY, None)
