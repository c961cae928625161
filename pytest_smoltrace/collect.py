"""Collection: task sources become collectors, each (task, agent type, model, repeat) a :class:`TaskItem`.

Node ids: ``smoltrace/<source-label>::<agent_type>::<id>`` for the ``--smoltrace-dataset`` source and
conftest tasks, ``<path>::<agent_type>::<id>`` for ``smoltrace_*.json(l)`` files under the test paths; with several
models a ``<label>`` level before the agent type, with ``--smoltrace-repeats N`` > 1 ``[repeat-I]`` after the id
(the id's params, as in pytest's parametrised ids). What becomes of attempts no run reported is :mod:`.attempts`.
Modelled on pytest's non-Python collection example (``doc/en/example/nonpython``).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .concurrency import RunDeadlineExceeded, attempt_of
from .identity import IDENTITY_KEY, RunIdentity
from .records import AGENT_TYPES, AgentType, ItemResult
from .settings import Settings
from .tasks import (
    TASK_FILE_SUFFIXES,
    Task,
    TaskError,
    TaskOptions,
    load_file,
    load_source,
    select,
    source_label,
    tasks_from_objects,
)

if TYPE_CHECKING:
    from .models import ModelSpec
    from .shard import Shard

FIXED_MARKERS = {
    "smoltrace": "a pytest-smoltrace benchmark item",
    "tool": "smoltrace item run by a ToolCallingAgent",
    "code": "smoltrace item run by a CodeAgent",
    "easy": "smoltrace task of difficulty easy",
    "medium": "smoltrace task of difficulty medium",
    "hard": "smoltrace task of difficulty hard",
}

RESULT_KEY = pytest.StashKey[ItemResult]()
#: How a task item gets its result: the executor of this process (:meth:`ExecutorPlugin.run_item`) puts itself here.
ITEM_RUNNER_KEY = pytest.StashKey[Callable[["TaskItem"], ItemResult]]()


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
    """One attempt at one task by one agent type with one model (a repeat of its own with ``--smoltrace-repeats``).
    The agent runs in ``setup`` (errors there are error outcomes); ``runtest`` applies the verdict."""

    def __init__(self, *, task: Task, agent_type: AgentType, spec: ModelSpec, repeat: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.agent_type = agent_type
        #: The model this item runs (one of the session's; its label is a node-id level when there are several).
        self.spec = spec
        self.repeat = repeat
        # ``smoltrace`` and the agent type are on the parent collector (markers are inherited); here only the task's own
        if task.difficulty:
            self.add_marker(_marker(self.config, task.difficulty))
        if task.category:
            self.add_marker(
                _marker(self.config, category_marker(task.category), f"smoltrace task category {task.category!r}")
            )

    @property
    def identity(self) -> RunIdentity:
        return self.config.stash[IDENTITY_KEY]

    def setup(self) -> None:
        if RESULT_KEY in self.stash:  # an earlier attempt's (pytest-rerunfailures runs setup again)
            del self.stash[RESULT_KEY]
        attempt = attempt_of(self)
        result = self.config.stash[ITEM_RUNNER_KEY](self)
        if result.record.attempt != attempt:
            result = dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))
        self.stash[RESULT_KEY] = result
        self._properties(result)
        if result.verdict.outcome == "error":
            raise SmoltraceRunError(result)

    def _properties(self, result: ItemResult) -> None:
        """What ``--junitxml`` carries for the item (``<property>`` elements CI UIs show); this attempt's only."""
        record = result.record
        values = {
            "smoltrace.model": record.model_name,
            "smoltrace.agent_type": record.agent_type,
            "smoltrace.repeat": record.repeat,
            "smoltrace.tokens": record.total_tokens,
            "smoltrace.cost_usd": record.cost_usd,
            "smoltrace.steps": record.action_steps,
            "smoltrace.stop_reason": record.stop_reason,
            "smoltrace.trace_id": record.trace_id,
        }
        if record.replayed:
            values["smoltrace.replayed"] = True
        kept = [(k, v) for k, v in self.user_properties if not str(k).startswith("smoltrace.")]
        self.user_properties[:] = kept + [(k, v) for k, v in values.items() if v is not None]

    def runtest(self) -> None:
        result = self.stash[RESULT_KEY]
        if not result.verdict.passed:
            raise SmoltraceFailure(result)

    def teardown(self) -> None:
        """The result has gone out on the reports (and to the controller): the item, which pytest keeps to the end of
        the session, lets it go, so that memory does not grow with every item's record and trace."""
        if RESULT_KEY in self.stash:
            del self.stash[RESULT_KEY]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from .report import failure_text

        if isinstance(excinfo.value, (SmoltraceFailure, SmoltraceRunError)):
            return failure_text(excinfo.value.result)
        if is_deadline(excinfo.value):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def _repr_failure_py(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        # pytest renders a *setup* error through this method, not repr_failure: an agent error is shown as its
        # check table too, and no Python source is parsed for a traceback nobody needs (see astguard)
        from .report import failure_text

        if isinstance(excinfo.value, (SmoltraceFailure, SmoltraceRunError)):
            return failure_text(excinfo.value.result)
        if is_deadline(excinfo.value):
            return str(excinfo.value)
        return super()._repr_failure_py(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        about = f"smoltrace {self.agent_type} agent: task {self.task.id}"
        if self.spec.name:
            about += f", model {self.spec.name}"
        return self.path, None, about + (f", repeat {self.repeat}" if self.nodeid.endswith("]") else "")


def is_deadline(exc: BaseException) -> bool:
    return isinstance(exc, RunDeadlineExceeded)


class AgentTypeCollector(pytest.Collector):
    """The items of one agent type within a source (and model): node ids ``<source>::<agent_type>::<task id>``, with
    ``[repeat-I]`` after the task id when each task is repeated."""

    def __init__(self, *, pairs: list[Task], spec: ModelSpec, repeats: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks = pairs
        self.spec = spec
        self.repeats = repeats
        for name in ("smoltrace", self.name):  # inherited by every item below (``-m smoltrace``, ``-m code``)
            self.add_marker(_marker(self.config, name))
        if spec.is_local_model:  # --dist loadgroup keeps a local model on one worker
            self.add_marker(pytest.mark.xdist_group("smoltrace-local-model"))

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        agent_type: AgentType = "tool" if self.name == "tool" else "code"  # the collector is named after it
        items = []
        for task in self.tasks:
            for r in range(self.repeats):
                extra: dict[str, Any] = {}
                structured: Any = getattr(self, "id", None)  # pytest ≥ 9.2: structured node ids
                if self.repeats > 1 and hasattr(structured, "with_params"):
                    # the repeat is the id's params, as in pytest's own parametrised ids (--lf compares them)
                    extra["nodeid"] = structured.child(task.id).with_params(f"repeat-{r}")
                items.append(
                    TaskItem.from_parent(
                        self,
                        name=item_name(task.id, r, self.repeats),
                        task=task,
                        agent_type=agent_type,
                        spec=self.spec,
                        repeat=r,
                        **extra,
                    )
                )
        return items


class ModelCollector(pytest.Collector):
    """The items of one model of several, named by its label: ``<source>::<label>::<agent_type>::<task id>``
    (``-k <label>`` selects them)."""

    def __init__(self, *, spec: ModelSpec, by_agent: dict[str, list[Task]], repeats: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.by_agent = by_agent
        self.repeats = repeats

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        return _agent_collectors(self, self.by_agent, self.spec, self.repeats)


def item_name(task_id: str, repeat: int, repeats: int) -> str:
    """An item's name: the task id, and ``[repeat-I]`` when tasks are repeated (one repeat: the id alone)."""
    return task_id if repeats == 1 else f"{task_id}[repeat-{repeat}]"


def _agent_collectors(
    parent: pytest.Collector, by_agent: dict[str, list[Task]], spec: ModelSpec, repeats: int
) -> list[AgentTypeCollector]:
    return [
        AgentTypeCollector.from_parent(parent, name=agent, pairs=by_agent[agent], spec=spec, repeats=repeats)
        for agent in AGENT_TYPES
        if agent in by_agent
    ]


def make_groups(parent: pytest.Collector, tasks: Iterable[Task], identity: RunIdentity) -> list[pytest.Collector]:
    """One collector per agent type (tool first), each holding its tasks in source order; with several models one
    collector per model (in the order given) above them."""
    settings = identity.settings
    by_agent: dict[str, list[Task]] = {}
    for task, agent_type in select(tasks, difficulty=settings.difficulty, agent_type=settings.agent_type):  # type: ignore[arg-type]
        by_agent.setdefault(agent_type, []).append(task)
    if not identity.labelled:
        return list(_agent_collectors(parent, by_agent, identity.spec, settings.repeats))
    return [
        ModelCollector.from_parent(parent, name=str(spec.name), spec=spec, by_agent=by_agent, repeats=settings.repeats)
        for spec in identity.specs
    ]


class TaskSourceCollector(pytest.Collector):
    """The ``--smoltrace-dataset`` source (bundled set, file, or Hugging Face dataset)."""

    def __init__(self, *, spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        settings = self.config.stash[IDENTITY_KEY].settings
        try:
            source = load_source(
                self.spec,
                split=settings.split,
                revision=settings.revision,
                base_dir=Path(self.config.invocation_params.dir),
                options=TaskOptions.from_settings(settings),
            )
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task source: {exc}") from None
        return make_groups(self, source.tasks, self.config.stash[IDENTITY_KEY])


class ConftestTasksCollector(pytest.Collector):
    """Tasks returned by ``pytest_smoltrace_tasks`` implementations."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        objects: list[Any] = []
        for returned in self.ihook.pytest_smoltrace_tasks(config=self.config):
            objects.extend(returned or ())
        try:
            settings = self.config.stash[IDENTITY_KEY].settings
            tasks = tasks_from_objects(objects, source="conftest", options=TaskOptions.from_settings(settings))
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task source: {exc}") from None
        return make_groups(self, tasks, self.config.stash[IDENTITY_KEY])


class TaskFile(pytest.File):
    """A ``smoltrace_*.json`` / ``smoltrace_*.jsonl`` task file found under the test paths."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        settings = self.config.stash[IDENTITY_KEY].settings
        try:
            tasks = load_file(
                self.path, split=settings.split, label=self.nodeid, options=TaskOptions.from_settings(settings)
            )
        except TaskError as exc:
            raise self.CollectError(f"smoltrace task file: {exc}") from None
        return make_groups(self, tasks, self.config.stash[IDENTITY_KEY])


@dataclasses.dataclass(frozen=True)
class NodeRef:
    """What a task item's node id names."""

    source: str
    agent_type: AgentType
    task_id: str
    repeat: int = 0
    #: The model's label (a session of several models), else None.
    label: str | None = None


_REPEAT_RE = re.compile(r"^(?P<task>.+)\[repeat-(?P<repeat>\d+)\]$")


def parse_nodeid(nodeid: str, labels: Iterable[str] = ()) -> NodeRef | None:
    """What a task item's node id (``<source>[::<label>]::<agent_type>::<id>[[repeat-I]]``) names, the source without
    the ``smoltrace/`` prefix of dataset and conftest items; None for any other node id. ``labels``: the session's
    model labels (a label level is recognised only among them)."""
    parts = nodeid.split("::")
    if len(parts) < 3 or parts[-2] not in AGENT_TYPES:
        return None
    agent_type: AgentType = "tool" if parts[-2] == "tool" else "code"
    name, repeat = parts[-1], 0
    match = _REPEAT_RE.match(name)
    if match:
        name, repeat = match["task"], int(match["repeat"])
    label = None
    head = parts[:-2]
    if len(head) >= 2 and head[-1] in set(labels):
        label = head.pop()
    return NodeRef("::".join(head).removeprefix("smoltrace/"), agent_type, name, repeat, label)


def drop_other_shards(
    config: pytest.Config, items: list[pytest.Item], shard: Shard | None, labels: Iterable[str] = ()
) -> None:
    """``--smoltrace-shard``: deselect the benchmark items of the other shards (through ``pytest_deselected``), whole
    tasks — ``(source, task id)`` — at a time (:mod:`.shard`)."""
    if shard is None:
        return
    from .shard import split

    labels = tuple(labels)
    tasks = [item for item in items if isinstance(item, TaskItem)]
    refs = [parse_nodeid(item.nodeid, labels) for item in tasks]
    _, drop = split([(ref.source, ref.task_id) if ref is not None else None for ref in refs], shard)
    if drop:
        gone = {id(tasks[p]) for p in drop}
        config.hook.pytest_deselected(items=[tasks[p] for p in drop])
        items[:] = [item for item in items if id(item) not in gone]


def is_task_file(file_path: Path) -> bool:
    return file_path.name.startswith("smoltrace_") and file_path.suffix in TASK_FILE_SUFFIXES


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
    if not files or not spec.endswith(TASK_FILE_SUFFIXES):
        return False
    path = Path(config.invocation_params.dir) / spec
    try:
        return path.resolve() in files
    except (OSError, RuntimeError):
        return False


def source_collectors(session: pytest.Session, settings: Settings) -> list[pytest.Collector]:
    """Collectors for the dataset option and for conftest-defined tasks (the latter only when a hook exists)."""
    collectors: list[pytest.Collector] = []
    spec = settings.dataset
    if (
        spec
        and spec.lower() != "none"
        and not _default_dataset_unwanted(session.config)
        and not _collected_as_file(session.config, spec)
    ):
        collectors.append(
            TaskSourceCollector.from_parent(
                session, name=spec, nodeid=f"smoltrace/{source_label(spec, settings.split)}", spec=spec
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


def collect_into(session: pytest.Session, items: list[pytest.Item], identity: RunIdentity) -> None:
    """Collect the source collectors through pytest's own machinery (errors and counts are reported as usual), and
    note the collection order of the task items (before any deselection or reordering)."""
    for collector in source_collectors(session, identity.settings):
        items.extend(session.genitems(collector))
    session.config.stash[ORDER_KEY] = [i.nodeid for i in items if isinstance(i, TaskItem)]
