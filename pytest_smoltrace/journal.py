"""``journal.jsonl``: one flushed line per finished item, the run's source of truth while it is running.

Appended by the controller as each result arrives (so Ctrl-C, a killed worker or a killed controller loses
nothing that finished), read back by ``--smoltrace-resume`` and by the Hub publisher. A last line cut short by
a kill is ignored, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .records import ItemResult

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
#: The items' trace documents, one line each, appended as results arrive (gathered into traces.json at the end).
TRACE_JOURNAL = "traces.jsonl"
#: Error types of results that did not really finish: a resumed run runs these items again.
UNFINISHED_ERROR_TYPES = frozenset({"WorkerCrashed", "Cancelled"})


class Journal:
    """Append-only writer; each line is flushed to the OS before :meth:`append` returns.

    A flushed line survives Ctrl-C and ``kill -9`` of any process of the run (the kernel holds it); only a machine
    crash could lose the last lines, which is not worth an fsync (≈2 ms) per item.
    """

    def __init__(self, run_dir: Path, name: str = JOURNAL) -> None:
        self.path = run_dir / name
        self._handle: IO[str] | None = None

    def append(self, result: ItemResult) -> None:
        self.append_json(result.to_dict())

    def append_json(self, data: dict[str, Any]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the whole run
        self._handle.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The complete JSON objects of a JSON-lines file; a line cut short by a kill is skipped with a warning."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                log.warning("%s: line %d is incomplete (%s); ignored", path, number, exc)
                continue
            if isinstance(data, dict):
                yield data


def read_journal(run_dir: Path) -> list[ItemResult]:
    """Every complete line of ``run_dir/journal.jsonl`` (later lines for the same node win)."""
    results: dict[str, ItemResult] = {}
    for data in read_jsonl(run_dir / JOURNAL):
        try:
            result = ItemResult.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: a journal line is not a result (%s); ignored", run_dir / JOURNAL, exc)
            continue
        results[result.nodeid] = result
    return list(results.values())


def finished(results: list[ItemResult]) -> list[ItemResult]:
    """Results of items that really finished (a crash or a cancellation is not a finish)."""
    return [r for r in results if r.record.error_type not in UNFINISHED_ERROR_TYPES]
