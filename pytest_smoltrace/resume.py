"""``--smoltrace-resume``: the resumed run's finished items and settings, ``settings.json``, a complete resume.

Controller side: the resumed run's journal gives the items already finished (deselected now, re-read into the
aggregator) and its ``settings.json`` (else metadata.json, else the journal's records) the settings to compare with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .identity import RunIdentity
from .settings import Settings

if TYPE_CHECKING:
    from .records import ItemResult

log = logging.getLogger(__name__)


#: Written into the run directory when a run starts (before any item): the settings it runs with, so that
#: ``--smoltrace-resume`` can compare them even when metadata.json was never written (a kill -9).
SETTINGS_FILE = "settings.json"
SETTINGS_SCHEMA = 1


def resumed_run(settings: Settings) -> tuple[str, list[ItemResult], dict[str, Any] | None]:
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
        from .lineup import lineup

        differences, source = journal_differences(settings, lineup(settings), results), "journal.jsonl"
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


def write_run_settings(identity: RunIdentity, resumed_from_settings: dict[str, Any] | None) -> None:
    """Write ``settings.json`` into the run directory: at the start of a new run, and when a resumed run has none yet
    or was forced on with other settings (the replaced settings go to ``history``). A failure is a usage error naming
    ``--smoltrace-output-dir``; directories this call made are removed again."""
    from .preflight import write_problem

    run_dir = identity.run_dir
    path = run_dir / SETTINGS_FILE
    current = identity.settings.public_dict()
    history: list[Any] = []
    if identity.settings.resume:
        existing = _read_json(path)
        if existing is not None and resumed_from_settings is None:
            return  # the run goes on with the settings it has
        history = list(existing.get("history") or ()) if existing else []
        if resumed_from_settings is not None:
            history.append(
                {
                    "settings": resumed_from_settings["settings"],
                    "source": resumed_from_settings["source"],
                    "replaced_at": time.time(),
                    "differences": resumed_from_settings["differences"],
                }
            )
    document = {
        "schema_version": SETTINGS_SCHEMA,
        "run_id": identity.run_id,
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
        raise pytest.UsageError(write_problem(identity.settings.output_dir, where, exc)) from None


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

    def __init__(self, identity: RunIdentity) -> None:
        self.identity = identity
        self.finished = 0
        self.others = 0
        self.remaining = 0
        self.complete = False

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        from .collect import TaskItem

        for item in items:
            if isinstance(item, TaskItem):
                if item.nodeid in self.identity.done:
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
                f"smoltrace: run {self.identity.run_id} is already complete: its journal holds all {self.finished} "
                "items, nothing left to run",
                green=True,
            )


def drop_finished(config: pytest.Config, items: list[pytest.Item], done: frozenset[str]) -> None:
    """Deselect the items the resumed run's journal already holds."""
    from .collect import TaskItem

    if not done:
        return
    keep: list[pytest.Item] = []
    finished: list[pytest.Item] = []
    for item in items:
        (finished if isinstance(item, TaskItem) and item.nodeid in done else keep).append(item)
    if finished:
        config.hook.pytest_deselected(items=finished)
        items[:] = keep
