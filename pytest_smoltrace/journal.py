"""``journal.jsonl``: one flushed line per finished item, the run's source of truth while it is running.

Appended by the controller as each result arrives (so Ctrl-C, a killed worker or a killed controller loses
nothing that finished), read back by ``--smoltrace-resume`` and by the Hub publisher. A last line cut short by
a kill is ignored by the readers, never fatal, and repaired (removed) before anything is appended after it, so the
next line starts on a line of its own. Every line is standard JSON: NaN, Infinity and integers too long to print
are written as ``null`` (with a warning naming the field), never as bare ``NaN``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .records import UNFINISHED_ERROR_TYPES, ItemResult  # UNFINISHED_ERROR_TYPES: a resumed run reruns them

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"
#: The items' trace documents, one line each, appended as results arrive (gathered into traces.json at the end).
TRACE_JOURNAL = "traces.jsonl"


class Journal:
    """Append-only writer; each line is flushed to the OS before :meth:`append` returns.

    A flushed line survives Ctrl-C and ``kill -9`` of any process of the run (the kernel holds it); only a machine
    crash could lose the last lines, which is not worth an fsync (≈2 ms) per item. A kill in the middle of a write
    can leave a torn last line: the first append of a later run (a resume) repairs it first (:func:`repair_torn_tail`).
    """

    def __init__(self, run_dir: Path, name: str = JOURNAL) -> None:
        self.path = run_dir / name
        self._handle: IO[bytes] | None = None
        #: Where the next line starts (bytes from the start of the file).
        self._offset = 0

    def append(self, result: ItemResult) -> int:
        """Append one result; returns the byte offset its line starts at (:func:`read_result_at` reads it back)."""
        return self.append_json(result.to_dict())

    def append_json(self, data: dict[str, Any]) -> int:
        """Append one JSON object as a line; returns the byte offset the line starts at."""
        # encoded before opening: a value that cannot be written leaves the file as it is
        line = dumps_line(data, self.path).encode("utf-8")
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repair_torn_tail(self.path)
            self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open for the whole run
            self._offset = self._handle.seek(0, os.SEEK_END)
        offset = self._offset
        self._handle.write(line)
        self._handle.flush()
        self._offset += len(line)
        return offset

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


#: Containers nested deeper than this are written as ``null`` (far below Python's recursion limit).
_MAX_DEPTH = 200
_LOG2_10 = math.log2(10)


def dumps_line(data: dict[str, Any], path: Path | str = "journal") -> str:
    """One journal line: standard JSON (``allow_nan=False``) and a newline.

    Values that JSON cannot hold — NaN, ±Infinity, integers longer than Python prints, reference cycles, nesting
    deeper than 200 levels — are written as ``null`` with one warning naming ``path`` and the fields; objects of other
    types are written as their ``str()``.
    """
    try:
        return json.dumps(data, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    except (ValueError, RecursionError):
        pass
    replaced: list[str] = []
    safe = _standard_json(data, "", replaced, set(), 0)
    shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
    log.warning("%s: %s cannot be written as standard JSON (NaN, Infinity or the like); written as null", path, shown)
    return json.dumps(safe, ensure_ascii=False, default=str, allow_nan=False) + "\n"


def _standard_json(value: Any, where: str, replaced: list[str], active: set[int], depth: int) -> Any:
    """A copy of ``value`` in which what standard JSON cannot hold is ``None``; each replacement's path is recorded."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        replaced.append(f"{where or 'the value'} ({value!r})")
        return None
    if isinstance(value, int):
        limit = sys.get_int_max_str_digits()
        if limit and value.bit_length() > limit * _LOG2_10:
            replaced.append(f"{where or 'the value'} (an integer of more than {limit} digits)")
            return None
        return value
    if isinstance(value, (dict, list, tuple)):
        if id(value) in active or depth >= _MAX_DEPTH:
            reason = "a reference cycle" if id(value) in active else f"nested more than {_MAX_DEPTH} levels"
            replaced.append(f"{where or 'the value'} ({reason})")
            return None
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {
                    str(key): _standard_json(item, f"{where}.{key}" if where else str(key), replaced, active, depth + 1)
                    for key, item in value.items()
                }
            return [
                _standard_json(item, f"{where}[{index}]", replaced, active, depth + 1)
                for index, item in enumerate(value)
            ]
        finally:
            active.discard(id(value))
    return value  # anything else: json.dumps writes its str()


def _last_line_start(handle: IO[bytes], size: int) -> int:
    """The byte offset just after the last newline before ``size`` (0 when there is none)."""
    position = size
    while position > 0:
        step = min(1 << 16, position)
        position -= step
        handle.seek(position)
        newline = handle.read(step).rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    return 0


def repair_torn_tail(path: Path) -> None:
    """Make ``path`` end with a newline before a line is appended to it.

    A JSON-lines file whose last byte is not a newline was cut in the middle of a write (``kill -9``, a full disk):
    appending straight after it would glue the next line onto the fragment and lose both. A fragment that is a
    complete JSON object (only the newline was lost) is kept and terminated; anything else is removed. Either way a
    warning names the file and the byte offset.
    """
    try:
        handle = open(path, "rb+")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        start = _last_line_start(handle, size)
        handle.seek(start)
        fragment = handle.read(size - start)
        try:
            complete = isinstance(json.loads(fragment), dict)
        except ValueError:
            complete = False
        if complete:
            handle.seek(size)
            handle.write(b"\n")
            log.warning(
                "%s: the last line (from byte offset %d) had no newline; kept it and ended it before appending",
                path,
                start,
            )
        else:
            handle.truncate(start)
            log.warning(
                "%s: the last line was cut short (a kill or a full disk during a write): removed its %d bytes "
                "from byte offset %d before appending",
                path,
                size - start,
                start,
            )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The complete JSON objects of a JSON-lines file; a line cut short by a kill is skipped with a warning."""
    if not path.exists():
        return
    # errors="replace": a line torn inside a multi-byte character must not stop the reading of the lines before it
    with open(path, encoding="utf-8", errors="replace") as handle:
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


def read_results(run_dir: Path) -> Iterator[ItemResult]:
    """Every result line of ``run_dir/journal.jsonl`` in journal order (a line that is not a result is skipped with
    a warning, as a line cut short is by :func:`read_jsonl`)."""
    for _, result in read_result_entries(run_dir):
        yield result


def read_result_entries(run_dir: Path) -> Iterator[tuple[int, ItemResult]]:
    """:func:`read_results` with the byte offset each line starts at (for :func:`read_result_at`)."""
    path = run_dir / JOURNAL
    if not path.exists():
        return
    with open(path, "rb") as handle:
        offset = 0
        for number, raw in enumerate(handle, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            # errors="replace": a line torn inside a multi-byte character must not stop the reading of the others
            try:
                data = json.loads(raw.decode("utf-8", errors="replace"))
            except ValueError as exc:
                log.warning("%s: line %d is incomplete (%s); ignored", path, number, exc)
                continue
            if not isinstance(data, dict):
                continue
            try:
                yield start, ItemResult.from_dict(data)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s: a journal line is not a result (%s); ignored", path, exc)


def read_result_at(handle: IO[bytes], offset: int) -> ItemResult:
    """The result whose journal line starts at ``offset`` of the open (binary) journal ``handle``."""
    handle.seek(offset)
    return ItemResult.from_dict(json.loads(handle.readline().decode("utf-8", errors="replace")))


def read_journal(run_dir: Path) -> list[ItemResult]:
    """Each item's latest attempt in ``run_dir/journal.jsonl`` (one line per attempt).

    A later line for the same node wins, unless it is an earlier attempt: a run harvested at session end (started
    ahead, or past a pytest-timeout limit) may be journaled after the item's rerun, and the rerun is the item's
    verdict. (:func:`pytest_smoltrace.aggregate.journal_attempts` gives every attempt.)"""
    results: dict[str, ItemResult] = {}
    for result in read_results(run_dir):
        held = results.get(result.nodeid)
        if held is None or result.record.attempt >= held.record.attempt:
            results[result.nodeid] = result
    return list(results.values())


def finished(results: list[ItemResult]) -> list[ItemResult]:
    """Results of items that really finished (a crash or a cancellation is not a finish)."""
    return [r for r in results if r.record.error_type not in UNFINISHED_ERROR_TYPES]
