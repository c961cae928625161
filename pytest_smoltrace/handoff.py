"""The handoff: under xdist, every result a worker hands to pytest is also kept on disk until the controller holds it.

A worker's reports travel to the controller through execnet and wait in the controller's queue. When Ctrl-C reaches
the controller, pytest-xdist stops reading that queue at once: the reports still in it — runs that finished, with
their spend — would never be filed. So each worker also appends every result it hands over (and, at its end, the
results no report carried) to its own file, ``<run dir>/.handoff/<session>/<worker id>.jsonl``, and writes
``<worker id>.done`` when it has nothing more to hand. When the session was cut short, the controller waits for those
markers (briefly), files every result it does not hold yet — a run is its node id and its start time, so nothing is
counted twice — and removes the directory once the run directory is written.

A remote worker (``--tx ssh=…``) that does not share the controller's file system writes its own copy, which the
controller never sees: it is left out, as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import ItemResult

log = logging.getLogger(__name__)

#: ``workerinput`` key: the directory a worker writes its handoff file in.
WORKER_HANDOFF = "smoltrace_handoff"
#: Where the handoff directories of a run live, inside its run directory.
HANDOFF_DIR = ".handoff"
#: How long the controller of an interrupted session waits for its workers' ``.done`` markers, beyond the time
#: a worker waits for its cancelled runs (:func:`.concurrency.interrupt_wait_s`).
WAIT_MARGIN_S = 3.0


def session_dir(run_dir: Path) -> Path:
    """A new handoff directory for this session (a resumed run's earlier sessions keep theirs apart)."""
    return run_dir.resolve() / HANDOFF_DIR / uuid.uuid4().hex[:12]


class HandoffWriter:
    """One worker's handoff file: a JSON line per result payload, flushed at once (the process may be interrupted
    right after handing the report over). Thread-safe; a write that fails is logged once and the file given up — the
    handoff is a safety net, never a cause of a failed item."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        self.directory = directory
        self.worker_id = worker_id
        self._lock = threading.Lock()
        self._file: Any = None
        self._kept: set[tuple[str, float]] = set()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._file = (directory / f"{worker_id}.jsonl").open("a", encoding="utf-8")
        except OSError as exc:
            log.warning("smoltrace: worker %s cannot keep its handoff file in %s (%s)", worker_id, directory, exc)

    def write(self, data: dict[str, Any]) -> None:
        """Keep one result payload (``transport.payload``)."""
        line = json.dumps(data, default=str, separators=(",", ":")) + "\n"
        record = data.get("record") or {}
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line)
                self._file.flush()
                self._kept.add((str(data.get("nodeid")), float(record.get("started_at") or 0.0)))
            except (OSError, ValueError) as exc:
                log.warning("smoltrace: worker %s stops its handoff file (%s)", self.worker_id, exc)
                self._close()

    def holds(self, result: ItemResult) -> bool:
        """Whether this run's result is kept already (its report was made): the worker's ``recorded``."""
        with self._lock:
            return (result.nodeid, result.record.started_at) in self._kept

    def done(self) -> None:
        """Nothing more to hand over: close the file and leave the marker the controller waits for."""
        with self._lock:
            self._close()
        try:
            (self.directory / f"{self.worker_id}.done").touch()
        except OSError:
            log.debug("smoltrace: no handoff marker for %s", self.worker_id, exc_info=True)

    def _close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def wait_for(directory: Path, workers: Iterable[str]) -> list[str]:
    """Wait until every worker left its marker, at most as long as a worker waits for its cancelled runs, and a
    little more (a second Ctrl-C ends the wait); the workers still missing."""
    from .concurrency import interrupt_wait_s

    deadline = time.monotonic() + interrupt_wait_s() + WAIT_MARGIN_S
    missing = [w for w in workers if not (directory / f"{w}.done").exists()]
    try:
        while missing and time.monotonic() < deadline:
            time.sleep(0.05)
            missing = [w for w in missing if not (directory / f"{w}.done").exists()]
    except KeyboardInterrupt:
        log.warning("smoltrace: stopped waiting for the workers' handed-over results")
    return missing


def payloads(directory: Path) -> Iterator[dict[str, Any]]:
    """Every payload the workers kept, file by file; a torn last line (a worker killed mid-write) is skipped."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            log.warning("smoltrace: cannot read the handoff file %s (%s)", path, exc)
            continue
        for number, line in enumerate(lines, 1):
            try:
                data = json.loads(line)
            except ValueError:
                log.warning("smoltrace: %s line %d is torn; skipped", path, number)
                continue
            if isinstance(data, dict):
                yield data


def remove(directory: Path) -> None:
    """The handoff directory, once the run directory holds everything (and the ``.handoff`` folder when empty)."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):  # other sessions' directories, or already gone
        os.rmdir(directory.parent)
