"""JSON sink: the five files of a run directory ``<output-dir>/<run-id>/``, each written atomically (temp + rename).

Files (``journal.jsonl`` is the aggregator's, appended as items finish):

- ``results.json`` — list of results rows (``schemas.RESULTS_SCHEMA``).
- ``traces.json`` — list of trace documents, one per traced item, one document per line in compact JSON
  (:data:`COMPACT` separators; streamed from the trace journal). Always written: ``[]`` when nothing was traced.
- ``metrics.json`` — ``{schema_version, run_id, status, series, aggregates}``. Always written; when nothing was
  measured (no sampler ran) it is :func:`unavailable_metrics` (``status: "unavailable"`` with the reason, no
  figures) — an explicit statement rather than a missing file or made-up zeros.
- ``leaderboard_row.json`` — list with one leaderboard row per agent type (``schemas.LEADERBOARD_SCHEMA``).
- ``metadata.json`` — written last, so its presence means the other files are complete. Its ``counts`` get
  the real ``num_results`` (rows), ``num_traces`` (trace documents) and ``num_metrics`` (numbers in metrics.json:
  samples, aggregates and energy/CO2/cost figures that have a value), and ``files`` lists what the directory holds.

Importing this module is cheap (stdlib only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

R = TypeVar("R")

RESULTS = "results.json"
TRACES = "traces.json"
METRICS = "metrics.json"
LEADERBOARD = "leaderboard_row.json"
METADATA = "metadata.json"
JOURNAL = "journal.jsonl"
PUBLISHED = "published.json"

METRICS_SCHEMA_VERSION = 1
#: ``json.dumps`` separators of the elements of a streamed array (:func:`write_json_array`): no spaces.
COMPACT = (",", ":")


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[str]]:
    """A text handle whose content replaces ``path`` only once complete (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically: readers see the old file or the new one, never half of one."""
    with _atomic(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")
    return path


def write_json_array(path: Path, items: Iterable[Mapping[str, Any] | str]) -> int:
    """Stream a JSON array to ``path`` atomically, one element per line; returns the number of elements.

    An element is a mapping (serialised here, compactly: :data:`COMPACT`) or a string that already holds one JSON
    value (written as it is, so a JSON-lines journal can become a JSON array without being held in memory).
    """
    count = 0
    with _atomic(path) as handle:
        handle.write("[")
        for item in items:
            if isinstance(item, str):
                text = item.strip()
            else:
                text = json.dumps(item, ensure_ascii=False, default=str, separators=COMPACT)
            handle.write(("," if count else "") + "\n" + text)
            count += 1
        handle.write("\n]\n")
    return count


def write_json_rows(path: Path, rows: Iterable[Any]) -> int:
    """Stream a list to ``path`` atomically, byte for byte as :func:`write_json` writes the whole list (``indent=2``),
    one element at a time, so the list is never held in memory; returns the number of elements."""
    count = 0
    with _atomic(path) as handle:
        for row in rows:
            text = json.dumps(row, indent=2, ensure_ascii=False, default=str)
            handle.write(("," if count else "[") + "\n  " + text.replace("\n", "\n  "))
            count += 1
        handle.write("\n]\n" if count else "[]\n")
    return count


def unavailable_metrics(run_id: str, reason: str = "nothing was measured") -> dict[str, Any]:
    """The ``metrics.json`` of a run without measurements: says so, with no figures."""
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": run_id,
        "status": "unavailable",
        "reason": reason,
        "series": [],
        "aggregates": {},
    }


def metric_figure_count(metrics: Mapping[str, Any] | None) -> int:
    """How many numbers a ``metrics.json`` document holds (samples, aggregates and figures that have a value)."""
    from .rows import metric_value_count

    return metric_value_count(metrics)


def write_run_outputs(
    run_dir: Path,
    *,
    results: Iterable[Mapping[str, Any]],
    leaderboard: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, Any],
    traces: Iterable[Mapping[str, Any] | str] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the five JSON files of a run directory; ``metadata.json`` last, with real counts.

    ``traces`` is streamed (:func:`write_json_array`: documents, or their JSON text) and so are ``results``
    (:func:`write_json_rows`: an iterator of rows is consumed one row at a time), so a large run's traces and results
    are never held in memory; ``None`` writes ``[]``. ``metrics=None`` writes :func:`unavailable_metrics`.
    Returns name → path.
    """
    run_id = str(metadata.get("run_id") or run_dir.name)
    num_traces = write_json_array(run_dir / TRACES, traces or ())
    metrics_doc = dict(metrics) if metrics is not None else unavailable_metrics(run_id)
    written = {TRACES: run_dir / TRACES, METRICS: write_json(run_dir / METRICS, metrics_doc)}
    num_results = write_json_rows(run_dir / RESULTS, results)
    written[RESULTS] = run_dir / RESULTS
    counts = {
        **dict(metadata.get("counts") or {}),
        "num_results": num_results,
        "num_traces": num_traces,
        "num_metrics": metric_figure_count(metrics_doc),
    }
    meta = {
        **dict(metadata),
        "counts": counts,
        "files": [RESULTS, TRACES, METRICS, LEADERBOARD, METADATA],
        "traces_status": "recorded" if num_traces else "none",
        "metrics_status": str(metrics_doc.get("status") or ("recorded" if counts["num_metrics"] else "none")),
    }
    written[LEADERBOARD] = write_json(run_dir / LEADERBOARD, list(leaderboard))
    written[METADATA] = write_json(run_dir / METADATA, meta)
    return written


def plain(value: Any) -> Any:
    """``value`` as its JSON document holds it: an object with ``to_dict`` → its dict, a tuple or list → a list, a
    mapping → a dict (their elements likewise); anything else as it is."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def fields_dict(obj: Any) -> dict[str, Any]:
    """A dataclass instance's ``to_dict``: its fields in their order, each as a :func:`plain` value."""
    return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_json_list(path: Path, kind: str, *, error: type[ValueError] = ValueError, expected: str = "") -> list[Any]:
    """The JSON list in ``path``; raises ``error`` naming the file when it cannot be read, is not JSON, or holds
    something else than a list (``kind``: what the list should hold, for the message; ``expected``: appended to the
    message of a file that cannot be read)."""
    try:
        data = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(f"{path}: not a readable JSON file ({exc}){expected}") from None
    if not isinstance(data, list):
        raise error(f"{path}: a JSON {type(data).__name__}, not a list of {kind}")
    return data


def read_rows(
    path: Path | str,
    from_dict: Callable[[Any], R],
    kind: str,
    errors: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError),
) -> list[R]:
    """Read a JSON list of ``kind`` rows (``statistics.json``, ``comparison.json``), each through ``from_dict``;
    raises ``ValueError`` naming the file when it is not such a list (``errors``: what ``from_dict`` raises on a bad
    row)."""
    path = Path(path)
    data = read_json_list(path, f"{kind} rows")
    try:
        return [from_dict(row) for row in data]
    except errors as exc:
        raise ValueError(f"{path}: not a {kind} row ({type(exc).__name__}: {exc})") from None
