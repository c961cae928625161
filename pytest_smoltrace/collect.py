"""Collection: task sources become collectors, each (task, agent type) a :class:`TaskItem`.

Node ids: ``smoltrace/<source-label>::<agent_type>::<id>`` for the ``--smoltrace-dataset`` source and
conftest tasks, ``<path>::<agent_type>::<id>`` for ``smoltrace_*.json(l)`` files under the test paths.
Modelled on pytest's non-Python collection example (``doc/en/example/nonpython``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from .concurrency import Fate, RunDeadlineExceeded, Unreported, attempt_of
from .records import AgentType, Check, ItemResult, RunRecord, StopReason
from .state import STATE_KEY, SmoltraceState
from .tasks import Task, TaskError, load_file, load_source, select, tasks_from_objects

FIXED_MARKERS = {
    "smoltrace": "a pytest-smoltrace benchmark item",
    "tool": "smoltrace item run by a ToolCallingAgent",
    "code": "smoltrace item run by a CodeAgent",
    "easy": "smoltrace task of difficulty easy",
    "medium": "smoltrace task of difficulty medium",
    "hard": "smoltrace task of difficulty hard",
}

RESULT_KEY = pytest.StashKey[ItemResult]()


class SmoltraceFailure(Exception):
    """The agent ran but a check failed: the item fails with the table of checks."""

    def __init__(self, result: ItemResult) -> None:
        self.result = result
        super().__init__(result.nodeid)


class SmoltraceRunError(Exception):
    """The agent could not finish (model/API error, timeout): the item is an error outcome."""

    def __init__(self, result: ItemResult) -> None:
        self.result = result
        super().__init__(result.nodeid)


_MARKERS = pytest.StashKey[dict[str, Any]]()


def _marker(config: pytest.Config, name: str, description: str | None = None) -> Any:
    """The mark decorator for ``name``, made (and, for new names, registered for --strict-markers) once per session."""
    cache = config.stash.setdefault(_MARKERS, {})
    mark = cache.get(name)
    if mark is None:
        if description is not None:
            config.addinivalue_line("markers", f"{name}: {description}")
        mark = cache[name] = getattr(pytest.mark, name)
    return mark


@functools.lru_cache(maxsize=1024)
def category_marker(category: str) -> str:
    """A marker name for a category (``multi-tool`` → ``multi_tool``), usable in ``-m`` expressions."""
    name = re.sub(r"\W+", "_", category.strip()).strip("_").lower()
    return name if name and not name[0].isdigit() else f"category_{name}"


class TaskItem(pytest.Item):
    """One task run by one agent type. The agent runs in ``setup`` (errors there are error outcomes);
    ``runtest`` applies the verdict."""

    def __init__(self, *, task: Task, agent_type: AgentType, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.agent_type = agent_type
        # ``smoltrace`` and the agent type are on the parent collector (markers are inherited); here only the task's own
        if task.difficulty:
            self.add_marker(_marker(self.config, task.difficulty))
        if task.category:
            self.add_marker(
                _marker(self.config, category_marker(task.category), f"smoltrace task category {task.category!r}")
            )

    @property
    def state(self) -> SmoltraceState:
        return self.config.stash[STATE_KEY]

    def setup(self) -> None:
        if RESULT_KEY in self.stash:  # an earlier attempt's (pytest-rerunfailures runs setup again)
            del self.stash[RESULT_KEY]
        attempt = attempt_of(self)
        result = self.state.run_item(self)
        if result.record.attempt != attempt:
            result = dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))
        self.stash[RESULT_KEY] = result
        if result.verdict.outcome == "error":
            raise SmoltraceRunError(result)

    def execute(self, cancel: threading.Event | None = None) -> ItemResult:
        """Run, judge and trace this item (in a run-ahead thread); the root span covers the run and the verdict."""
        from .judge import judge, user_judges_apply
        from .runner import run_task
        from .telemetry import cost, tracing

        state = self.state
        spec = state.spec
        tracing.install(otlp=state.settings.otlp)
        attributes = tracing.item_attributes(
            nodeid=self.nodeid,
            task_id=self.task.id,
            agent_type=self.agent_type,
            model=spec.model_id,
            provider=spec.provider,
            run_id=state.run_id,
            task=self.task.to_dict(),
        )
        name = f"{self.agent_type} {self.task.id}"
        with tracing.item_trace(name, attributes, model=spec.model_id, price=state.price) as trace:
            record = run_task(self.task, self.agent_type, state.run_config, nodeid=self.nodeid, cancel=cancel)
            trace.set_output(record.response if record.response is not None else record.error)
            record = dataclasses.replace(
                record,
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                cost_usd=cost.record_cost_usd(state.price, record),
            )
            extra = self._user_checks(record) if user_judges_apply(record) else ()
            verdict = judge(self.task, record, extra_checks=extra)
            trace.add_verdict(verdict)
        if state.budget is not None:
            state.budget.add(record.cost_usd)
        return ItemResult(
            nodeid=self.nodeid, record=record, verdict=verdict, task=self.task.to_dict(), trace=trace.document()
        )

    def _user_checks(self, record: RunRecord) -> list[Check]:
        checks: list[Check] = []
        for returned in self.ihook.pytest_smoltrace_judge(task=self.task, record=record):
            items = returned if isinstance(returned, (list, tuple)) and not _is_check_tuple(returned) else [returned]
            for check in items:
                checks.append(_as_check(check))
        return checks

    def runtest(self) -> None:
        result = self.stash[RESULT_KEY]
        if not result.verdict.passed:
            raise SmoltraceFailure(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, (SmoltraceFailure, SmoltraceRunError)):
            return failure_text(excinfo.value.result)
        if _is_deadline(excinfo.value):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        # pytest renders a *setup* error through this method, not repr_failure: an agent error is shown as its
        # check table too, and no Python source is parsed for a traceback nobody needs (see astguard)
        if isinstance(excinfo.value, (SmoltraceFailure, SmoltraceRunError)):
            return failure_text(excinfo.value.result)
        if _is_deadline(excinfo.value):
            return str(excinfo.value)
        return super()._repr_failure_py(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"smoltrace {self.agent_type} agent: task {self.task.id}"


def _is_deadline(exc: BaseException) -> bool:
    return isinstance(exc, RunDeadlineExceeded)


def _is_check_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], str) and isinstance(value[1], bool)


def _as_check(value: Any) -> Check:
    if isinstance(value, Check):
        return value
    if _is_check_tuple(value):
        return Check(*value)
    raise TypeError(
        f"pytest_smoltrace_judge must return Check objects or (name, passed, expected, actual); got {value!r}"
    )


def failure_text(result: ItemResult) -> str:
    from .judge import format_checks

    record = result.record
    lines = [f"{record.agent_type} agent on task {record.task_id!r}: {result.verdict.outcome.upper()}"]
    if result.verdict.error:
        lines.append(result.verdict.error)
    lines.append(
        f"stop reason: {record.stop_reason} · steps: {record.action_steps} · tokens: {record.total_tokens}"
        f" · {record.duration_ms:.0f} ms"
    )
    lines.append(format_checks(result.verdict))
    executed = [
        f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})" + ("" if c.ok else " ✗")
        for c in record.tool_calls
    ]
    lines.append("executed tool calls: " + (", ".join(executed) if executed else "none"))
    if record.response is not None:
        lines.append(f"final answer: {record.response[:500]!r}")
    return "\n".join(lines)


class AgentTypeCollector(pytest.Collector):
    """The items of one agent type within a source: node ids ``<source>::<agent_type>::<task id>``."""

    def __init__(self, *, pairs: list[Task], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks = pairs
        for name in ("smoltrace", self.name):  # inherited by every item below (``-m smoltrace``, ``-m code``)
            self.add_marker(_marker(self.config, name))
        if self.config.stash[STATE_KEY].spec.is_local_model:  # --dist loadgroup keeps a local model on one worker
            self.add_marker(pytest.mark.xdist_group("smoltrace-local-model"))

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        agent_type: AgentType = "tool" if self.name == "tool" else "code"
        return [TaskItem.from_parent(self, name=task.id, task=task, agent_type=agent_type) for task in self.tasks]


def make_groups(parent: pytest.Collector, tasks: Iterable[Task], state: SmoltraceState) -> list[AgentTypeCollector]:
    """One collector per agent type (tool first), each holding its tasks in source order."""
    settings = state.settings
    by_agent: dict[str, list[Task]] = {}
    for task, agent_type in select(tasks, difficulty=settings.difficulty, agent_type=settings.agent_type):  # type: ignore[arg-type]
        by_agent.setdefault(agent_type, []).append(task)
    return [
        AgentTypeCollector.from_parent(parent, name=agent, pairs=by_agent[agent])
        for agent in ("tool", "code")
        if agent in by_agent
    ]


class TaskSourceCollector(pytest.Collector):
    """The ``--smoltrace-dataset`` source (bundled set, file, or Hugging Face dataset)."""

    def __init__(self, *, spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        state = self.config.stash[STATE_KEY]
        settings = state.settings
        try:
            source = load_source(
                self.spec,
                split=settings.split,
                revision=settings.revision,
                base_dir=Path(self.config.invocation_params.dir),
            )
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task source: {exc}") from None
        return list(make_groups(self, source.tasks, state))


class ConftestTasksCollector(pytest.Collector):
    """Tasks returned by ``pytest_smoltrace_tasks`` implementations."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        state = self.config.stash[STATE_KEY]
        objects: list[Any] = []
        for returned in self.ihook.pytest_smoltrace_tasks(config=self.config):
            objects.extend(returned or ())
        try:
            tasks = tasks_from_objects(objects, source="conftest")
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task source: {exc}") from None
        return list(make_groups(self, tasks, state))


class TaskFile(pytest.File):
    """A ``smoltrace_*.json`` / ``smoltrace_*.jsonl`` task file found under the test paths."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        state = self.config.stash[STATE_KEY]
        try:
            tasks = load_file(self.path, split=state.settings.split, label=self.nodeid)
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task file: {exc}") from None
        return list(make_groups(self, tasks, state))


def is_task_file(file_path: Path) -> bool:
    return file_path.name.startswith("smoltrace_") and file_path.suffix in (".json", ".jsonl")


#: Task files pytest collected under the test paths (resolved): the dataset option does not collect them again.
_TASK_FILES = pytest.StashKey[set[Path]]()
#: Node ids of every collected item in collection order (before deselection; results.json is written in it).
ORDER_KEY = pytest.StashKey[list[str]]()


def task_file(parent: pytest.Collector, file_path: Path) -> TaskFile | None:
    """``pytest_collect_file``: a collector for a task file (noted, so that the dataset option skips it)."""
    if not is_task_file(file_path):
        return None
    parent.config.stash.setdefault(_TASK_FILES, set()).add(file_path.resolve())
    return TaskFile.from_parent(parent, path=file_path)


def _collected_as_file(config: pytest.Config, spec: str) -> bool:
    """The dataset option names a task file pytest already collects under the test paths (collect it once)."""
    files = config.stash.get(_TASK_FILES, None)
    if not files or not spec.endswith((".json", ".jsonl")):
        return False
    path = Path(config.invocation_params.dir) / spec
    try:
        return path.resolve() in files
    except (OSError, RuntimeError):
        return False


def source_collectors(session: pytest.Session, state: SmoltraceState) -> list[pytest.Collector]:
    """Collectors for the dataset option and for conftest-defined tasks (the latter only when a hook exists)."""
    collectors: list[pytest.Collector] = []
    spec = state.settings.dataset
    if (
        spec
        and spec.lower() != "none"
        and not _default_dataset_unwanted(session.config)
        and not _collected_as_file(session.config, spec)
    ):
        collectors.append(
            TaskSourceCollector.from_parent(
                session, name=spec, nodeid=f"smoltrace/{source_label(spec, state)}", spec=spec
            )
        )
    if session.config.pluginmanager.hook.pytest_smoltrace_tasks.get_hookimpls():
        collectors.append(ConftestTasksCollector.from_parent(session, name="conftest", nodeid="smoltrace/conftest"))
    return collectors


def _default_dataset_unwanted(config: pytest.Config) -> bool:
    """``pytest --smoltrace-model X tests/test_agents.py``: explicit paths and no dataset option → no bundled set."""
    from .options import OPTIONS_BY_NAME, _raw_value

    explicit_paths = config.args_source == pytest.Config.ArgsSource.ARGS
    return explicit_paths and _raw_value(config, OPTIONS_BY_NAME["dataset"]) is None


def source_label(spec: str, state: SmoltraceState) -> str:
    split = state.settings.split
    if spec.endswith((".json", ".jsonl")) or split == "train":
        return spec
    return f"{spec}:{split}"


def collect_into(session: pytest.Session, items: list[pytest.Item], state: SmoltraceState) -> None:
    """Collect the source collectors through pytest's own machinery (errors and counts are reported as usual), and
    note the collection order of the task items (before any deselection or reordering)."""
    for collector in source_collectors(session, state):
        items.extend(session.genitems(collector))
    order = [i.nodeid for i in items if isinstance(i, TaskItem)]
    session.config.stash[ORDER_KEY] = order
    if state.aggregator is not None:
        state.aggregator.set_order(order)


def drop_finished(config: pytest.Config, items: list[pytest.Item], state: SmoltraceState) -> None:
    """``--smoltrace-resume``: deselect the items the resumed run's journal already holds."""
    if not state.done:
        return
    keep: list[pytest.Item] = []
    finished: list[pytest.Item] = []
    for item in items:
        (finished if isinstance(item, TaskItem) and item.nodeid in state.done else keep).append(item)
    if finished:
        config.hook.pytest_deselected(items=finished)
        items[:] = keep


def _unrun_result(
    nodeid: str,
    state: SmoltraceState,
    *,
    detail: str,
    error_type: str,
    spent: int | None,
    timed_out: bool = False,
    actual: str = "no run",
) -> ItemResult | None:
    """A result for an item whose agent run produced none (``spent``: its tokens, 0 or unknown)."""
    import time

    from .records import Verdict

    parts = nodeid.split("::")
    if len(parts) < 3 or parts[-2] not in ("tool", "code"):
        return None
    agent_type: AgentType = "tool" if parts[-2] == "tool" else "code"
    spec = state.spec
    record = RunRecord(
        task_id=parts[-1],
        agent_type=agent_type,
        source="::".join(parts[:-2]).removeprefix("smoltrace/"),
        model=spec.label,
        provider=spec.provider,
        run_id=state.run_id,
        response=None,
        final_answer_called=False,
        stop_reason="timeout" if timed_out else "error",
        steps=(),
        tool_calls=(),
        prompt_tokens=spent,
        completion_tokens=spent,
        duration_ms=0.0,
        started_at=time.time(),
        error=detail,
        error_type=error_type,
        nodeid=nodeid,
    )
    verdict = Verdict(
        checks=(Check("final_answer", False, "called", actual),), error=f"{record.stop_reason}: {record.error}"
    )
    return ItemResult(nodeid=nodeid, record=record, verdict=verdict)


def crash_result(nodeid: str, detail: str, state: SmoltraceState) -> ItemResult | None:
    """The result of an item whose xdist worker died while running it (recorded, never silently dropped)."""
    return _unrun_result(
        nodeid,
        state,
        detail=f"the worker process crashed while running this item: {detail[:500]}",
        error_type="WorkerCrashed",
        spent=None,
        actual="worker crashed",
    )


# -- results of attempts no agent run reported: failed from outside, timed out, cancelled -----------------------------


def _outside_reason(call: pytest.CallInfo[None], report: pytest.TestReport) -> tuple[str, str]:
    """What failed the item from outside the agent run, and its type name (from the exception, else the report)."""
    if call.excinfo is not None:
        return call.excinfo.exconly()[:1000], call.excinfo.typename
    text = (report.longreprtext or "").strip().splitlines()
    return (text[-1] if text else f"{report.when} {report.outcome}")[:1000], "ExternalFailure"


def _is_pytest_timeout(reason: str) -> bool:
    return "Timeout" in reason and "pytest-timeout" in reason


def settle_report(item: TaskItem, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """``pytest_runtest_makereport`` (where the item runs): put this attempt's result on its report, whatever failed.

    - setup failed with our own error: the run's result; with pytest-timeout's deadline (:class:`RunDeadlineExceeded`)
      or anything else from outside while the run was in flight: nothing now, the run is kept and recorded at the end
      of the session with its spend (:func:`unreported_results`); before any run started: a result with no spend;
    - setup skipped (another plugin) after a run was started ahead for the item: that run is recorded as cancelled;
    - call: the run's result; when something other than the verdict failed the call, the result gains a failed
      ``pytest_outcome`` check naming it (pytest's ``F`` and the row agree).
    """
    result = item.stash.get(RESULT_KEY, None)
    if result is not None and result.record.attempt != attempt_of(item):
        result = None  # an earlier attempt's: this attempt failed before the item's setup ran
    exc = call.excinfo.value if call.excinfo is not None else None
    ours = isinstance(exc, (SmoltraceFailure, SmoltraceRunError))
    run_ahead = item.state.run_ahead
    if call.when == "setup":
        if ours and result is not None:
            attach_result(report, result)
            return
        if report.skipped:
            if run_ahead is not None:
                run_ahead.abandon(item, "cancelled", f"skipped: {_outside_reason(call, report)[0]}")
            return
        if not report.failed:
            return
        reason, type_name = _outside_reason(call, report)
        if exc is not None and _is_deadline(exc):
            disarm = getattr(item, "cancel_timeout", None)  # pytest-timeout's backstop fires once, as its own timer
            if callable(disarm):
                disarm()
        fate: Fate = "timeout" if (exc is not None and _is_deadline(exc)) or _is_pytest_timeout(reason) else "error"
        if result is not None:  # the run had finished: failed from outside after it (a plugin's later setup hook)
            record = result.record
            stop: StopReason = "timeout" if fate == "timeout" else "error"
            detail = f"failed from outside the agent run: {reason}"
            record = dataclasses.replace(record, stop_reason=stop, error=detail, error_type=type_name)
            verdict = dataclasses.replace(result.verdict, error=f"{stop}: {detail}")
            attach_result(report, dataclasses.replace(result, record=record, verdict=verdict))
            return
        if run_ahead is not None and run_ahead.abandon(item, fate, reason, type_name):
            return  # recorded at the end of the session, with the run's spend
        unrun = _unrun_result(
            item.nodeid,
            item.state,
            detail=f"failed before its agent run started: {reason}",
            error_type="Timeout" if fate == "timeout" else type_name,
            spent=0,
            timed_out=fate == "timeout",
        )
        if unrun is not None:
            attach_result(report, _with_attempt(unrun, attempt_of(item)))
    elif call.when == "call" and result is not None:
        if report.failed and not ours:
            reason, _ = _outside_reason(call, report)
            checks = (*result.verdict.checks, Check("pytest_outcome", False, "passed", reason))
            result = dataclasses.replace(result, verdict=dataclasses.replace(result.verdict, checks=checks))
        attach_result(report, result)


def _with_attempt(result: ItemResult, attempt: int) -> ItemResult:
    return dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))


def unreported_results(entries: Iterable[Unreported], stop_reason: str | None) -> list[ItemResult]:
    """Results for the runs no report carried (:meth:`RunAhead.drain`), each with its spend and what became of it.

    A run started ahead for an item pytest never ran is ``Cancelled`` (not completed; a resume runs it again); a run
    pytest stopped waiting for is the item's timeout or error, as pytest reported it."""
    from .records import Verdict

    out = []
    for entry in entries:
        result, record = entry.result, entry.result.record
        stop: StopReason
        if entry.fate == "cancelled":
            why = entry.reason or stop_reason or "the session ended first"
            ran = f"; the run itself ended with {record.stop_reason}" + (f": {record.error}" if record.error else "")
            detail = (
                f"cancelled: its run had started ahead (--smoltrace-concurrency) but pytest never ran the item "
                f"({why}); its spend is recorded, and --smoltrace-resume runs the item again{ran}"
            )
            stop, error_type = "error", "Cancelled"
        elif entry.fate == "timeout":
            detail = f"{entry.reason}: pytest stopped waiting; the run went on, and its spend is recorded"
            stop, error_type = "timeout", "Timeout"
        else:
            detail = f"failed from outside the agent run: {entry.reason or 'no detail'}"
            stop, error_type = "error", entry.error_type or "ExternalFailure"
        record = dataclasses.replace(
            record, stop_reason=stop, error=detail, error_type=error_type, attempt=entry.attempt
        )
        verdict = Verdict(checks=result.verdict.checks, error=f"{stop}: {detail}")
        out.append(dataclasses.replace(result, record=record, verdict=verdict))
    return out


#: Largest result payload a worker sends to the controller; bigger ones lose their bulkiest parts first.
MAX_PAYLOAD_BYTES = 4 * 2**20


def _shrink(data: dict[str, Any]) -> dict[str, Any]:
    record = data["record"]
    if data.get("trace"):
        data["trace"] = {"truncated": True, "trace_id": data["trace"].get("trace_id")}
    for step in record.get("steps", ()):
        if step.get("code") and len(step["code"]) > 2000:
            step["code"] = step["code"][:2000] + "… [truncated]"
    for call in record.get("tool_calls", ()):
        call["arguments"] = {k: (v[:500] if isinstance(v, str) else v) for k, v in call["arguments"].items()}
    data["truncated"] = True
    return data


def payload(result: ItemResult) -> dict[str, Any]:
    """The result as plain JSON (execnet refuses anything else), size-capped: what travels to the controller."""
    import json

    text = json.dumps(result.to_dict(), default=str)
    data: dict[str, Any] = json.loads(text)
    if len(text) > MAX_PAYLOAD_BYTES:
        data = _shrink(data)
    return data


def attach_result(report: pytest.TestReport, result: ItemResult) -> None:
    """Put the result on the report (xdist ships ``report.__dict__`` to the controller)."""
    report.__dict__["smoltrace"] = payload(result)


def result_from_report(nodeid: str | None, data: Any) -> ItemResult | None:
    """Validate a payload that arrived on a report; a malformed one is logged and dropped, never fatal."""
    import logging

    try:
        result = ItemResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        logging.getLogger(__name__).warning("%s: ignoring a malformed smoltrace result payload (%s)", nodeid, exc)
        return None
    if nodeid is not None and result.nodeid != nodeid:
        logging.getLogger(__name__).warning(
            "%s: result payload names another item (%s); ignored", nodeid, result.nodeid
        )
        return None
    return result
