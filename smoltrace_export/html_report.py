"""``report.html``: one self-contained HTML page of a run directory, or of several side by side.

:func:`write_html_report` reads each run directory (``results.json``, else ``journal.jsonl``; ``traces.json``,
``metadata.json``, ``statistics.json``, ``comparison.json``, ``metrics.json``, each where it exists) and writes one
page: a header per run (run id, models, dataset, options, versions, when, how long, cost), the summary per (run,
model, agent type) with the success rate's Wilson interval and pass@k / pass^k, comparisons, charts (success by
category and by difficulty, cost against success, token and latency distributions), and the item table, each item
expanding to its checks, tool calls, answer, error and trace waterfall. ``smoltrace-report`` is its command line
(:mod:`smoltrace_export.report_cli`).

The page loads nothing: the styles and the script are inlined and allowed by hash in a Content-Security-Policy that
forbids every network load. The charts are SVG drawn here; the item details are drawn by the page's script from a
JSON island, so that a page of 200 items stays small. Every value is escaped: HTML-escaped in the markup, and the JSON
island cannot close its ``<script>`` element (``<``, ``>`` and ``&`` are ``\\u`` escapes); the script writes values
with ``textContent`` only.

A missing or unreadable optional file is shown as such, never raised: only a path that is not a run directory at all
raises :class:`NotARunDirectory`. Importing this module is cheap (the standard library and the records); scipy is
imported only to compare several run directories with each other.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import json_sink
from .failure_text import CheckLine, ToolCallLine, checks_table, failure_message, truncate, value_text
from .records import CANCELLED, DIFFICULTIES, UNFINISHED_ERROR_TYPES, ItemResult

__all__ = ["NotARunDirectory", "RunData", "load_run", "render_html_report", "write_html_report"]

log = logging.getLogger(__name__)

#: Files whose presence makes a directory a run directory.
_RUN_MARKERS = (json_sink.RESULTS, json_sink.JOURNAL, json_sink.METADATA, "settings.json")
STATISTICS = "statistics.json"
COMPARISON = "comparison.json"
#: Longest text kept for one value in the page (prompts, answers, tool results); the rest is cut with a marker.
TEXT_LIMIT = 4000
#: Longest text of one tool argument list or result, one check value.
SHORT_LIMIT = 2000
#: Most spans of one item drawn in its waterfall.
SPAN_LIMIT = 400
#: Most items in the item table (a page of 10,000 items with their details and waterfalls would weigh hundreds of MB
#: to write and to open). Past it the table lists the items that did not pass first, then the others, in run order,
#: up to the limit, and says so; the header, summary and charts still count every item, and results.json has all.
ITEM_LIMIT = 2000
#: Okabe-Ito: distinguishable for colour-blind readers; one per (run, model, agent type) series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D31", "#555555")
#: How the item table names an item's state, in the order the filter lists them.
STATUSES = ("passed", "failed", "error", "cancelled", "crashed")


class NotARunDirectory(ValueError):
    """The path is not a run directory (none of results.json, journal.jsonl, metadata.json, settings.json)."""


# -- reading a run directory -----------------------------------------------------------------------------------------


@dataclass
class RunData:
    """What one run directory holds, each optional part None when missing; ``files`` says why."""

    path: Path
    run_id: str
    #: Every results row (one per attempt), from results.json or rebuilt from journal.jsonl.
    rows: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    #: ``statistics.json`` rows (``StatisticsRow.to_dict`` form), or None.
    statistics: list[dict[str, Any]] | None = None
    #: ``comparison.json`` rows (``ComparisonRow.to_dict`` form), or None.
    comparison: list[dict[str, Any]] | None = None
    metrics: dict[str, Any] | None = None
    #: ``(node id, attempt)`` → its trace document.
    traces: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: File name → ``present``, ``missing`` or why it could not be used, in the order the page lists them.
    files: dict[str, str] = field(default_factory=dict)
    #: The name of this run in a page of several (its run id, made unique).
    label: str = ""


def _read(path: Path) -> tuple[Any, str]:
    """``(data, status)``: the JSON in ``path`` and ``present``, or None and ``missing`` / why it is unreadable."""
    if not path.exists():
        return None, "missing"
    try:
        return json.loads(path.read_text(encoding="utf-8")), "present"
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"


def _read_lines(path: Path) -> tuple[list[Any], int]:
    """The JSON values of a ``.jsonl`` file's lines and how many lines were not JSON (a torn last line)."""
    values: list[Any] = []
    bad = 0
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
            except (ValueError, RecursionError):
                bad += 1
    return values, bad


def _rows_from_journal(path: Path) -> tuple[list[dict[str, Any]], str]:
    from .rows import result_rows

    lines, bad = _read_lines(path)
    results: list[ItemResult] = []
    for line in lines:
        try:
            results.append(ItemResult.from_dict(line))
        except (KeyError, TypeError, ValueError, AttributeError):
            bad += 1
    status = "present" + (f" ({bad} unreadable lines skipped)" if bad else "")
    return result_rows(results), status


def _list_of_dicts(data: Any) -> list[dict[str, Any]] | None:
    if not isinstance(data, list):
        return None
    return [d for d in data if isinstance(d, dict)]


def load_run(run_dir: Path) -> RunData:
    """Read a run directory. Raises :class:`NotARunDirectory` only when ``run_dir`` is not one; any file missing or
    unreadable is recorded in :attr:`RunData.files` instead."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any((run_dir / name).exists() for name in _RUN_MARKERS):
        what = "no such directory" if not run_dir.exists() else "not a directory" if not run_dir.is_dir() else None
        why = what or f"none of {', '.join(_RUN_MARKERS)} in it"
        raise NotARunDirectory(
            f"{run_dir}: not a run directory ({why}); expected <output-dir>/<run-id>/ as pytest-smoltrace writes it"
        )
    files: dict[str, str] = {}
    data, files[json_sink.RESULTS] = _read(run_dir / json_sink.RESULTS)
    rows = _list_of_dicts(data)
    if data is not None and rows is None:
        files[json_sink.RESULTS] = f"unreadable (a JSON {type(data).__name__}, not a list of rows)"
    if rows is None:
        journal = run_dir / json_sink.JOURNAL
        if journal.exists():
            try:
                rows, files[json_sink.JOURNAL] = _rows_from_journal(journal)
            except Exception as exc:  # a journal of a future format: show what is there
                log.warning("report: %s: %s", journal, exc)
                files[json_sink.JOURNAL] = f"unreadable ({type(exc).__name__})"
        else:
            files[json_sink.JOURNAL] = "missing"
    metadata, files[json_sink.METADATA] = _read(run_dir / json_sink.METADATA)
    if metadata is not None and not isinstance(metadata, dict):
        metadata, files[json_sink.METADATA] = None, "unreadable (not a JSON object)"
    run = RunData(path=run_dir, run_id="", rows=rows or [], metadata=metadata, files=files)
    _load_traces(run)
    run.statistics = _load_rows_file(run, STATISTICS, "statistics")
    run.comparison = _load_rows_file(run, COMPARISON, "comparison")
    metrics, files[json_sink.METRICS] = _read(run_dir / json_sink.METRICS)
    run.metrics = metrics if isinstance(metrics, dict) else None
    if metrics is not None and run.metrics is None:
        files[json_sink.METRICS] = "unreadable (not a JSON object)"
    if files.get(COMPARISON) == "missing" and metadata is not None:
        options = _dict(metadata.get("options"))
        models = _list(metadata.get("models"))
        if not options.get("baseline") and len(models) <= 1:
            files[COMPARISON] = "not written (one model, no baseline)"
    run.run_id = str(
        (metadata or {}).get("run_id") or next((r.get("run_id") for r in run.rows if r.get("run_id")), run_dir.name)
    )
    return run


def _load_traces(run: RunData) -> None:
    """The trace documents of the items the table shows (all of them, up to :data:`ITEM_LIMIT` items). traces.json
    is read one line at a time when it is as the sink writes it (one document per line), so the documents of items
    the table leaves out are never held."""
    items = _items(0, run.rows)
    shown = _shown_items(items)
    wanted = {(i.nodeid, _int(i.row.get("attempt")) or 0) for i in shown} if len(shown) < len(items) else None
    path = run.path / json_sink.TRACES
    docs: Any = _read_document_lines(path, wanted) if wanted is not None else None
    status = "present" if docs is not None else ""
    if docs is None:
        docs, status = _read(path)
    if docs is None and (run.path / "traces.jsonl").exists():
        docs, bad = _read_lines(run.path / "traces.jsonl")
        status = "missing; read from traces.jsonl" + (f" ({bad} unreadable lines skipped)" if bad else "")
    run.files[json_sink.TRACES] = status
    for doc in _list_of_dicts(docs) or []:
        nodeid = doc.get("nodeid") or doc.get("test_case_uid")
        if isinstance(nodeid, str):
            key = (nodeid, _int(doc.get("attempt")) or 0)
            if wanted is None or key in wanted:
                run.traces[key] = doc


def _read_document_lines(path: Path, wanted: set[tuple[str, int]]) -> list[dict[str, Any]] | None:
    """The documents of ``wanted`` items in a traces.json written one document per line (:func:`json_sink.
    write_json_array`); None when the file is missing or not in that form (then it is read whole)."""
    docs: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.readline().strip() not in ("[", "[]"):
                return None
            for line in handle:
                text = line.strip().removesuffix(",")
                if text in ("", "]"):
                    continue
                doc = json.loads(text)
                if not isinstance(doc, dict):
                    continue
                nodeid = doc.get("nodeid") or doc.get("test_case_uid")
                if isinstance(nodeid, str) and (nodeid, _int(doc.get("attempt")) or 0) in wanted:
                    docs.append(doc)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return docs


def _load_rows_file(run: RunData, name: str, kind: str) -> list[dict[str, Any]] | None:
    """``statistics.json`` / ``comparison.json`` rows, checked by their own readers."""
    path = run.path / name
    if not path.exists():
        run.files[name] = "missing"
        return None
    try:
        if kind == "statistics":
            from .statistics import read_statistics

            rows = [r.to_dict() for r in read_statistics(path)]
        else:
            from .comparison import read_comparison

            rows = [r.to_dict() for r in read_comparison(path)]
    except Exception as exc:  # the readers name the file; a row of an odd shape may raise anything
        run.files[name] = f"unreadable ({str(exc)[:200] or type(exc).__name__})"
        return None
    run.files[name] = "present"
    return rows


# -- items -----------------------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _cut(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _status(row: Mapping[str, Any]) -> str:
    error_type = row.get("error_type")
    if error_type == CANCELLED:
        return "cancelled"
    if error_type in UNFINISHED_ERROR_TYPES:
        return "crashed"
    outcome = row.get("outcome")
    if outcome in ("passed", "failed", "error"):
        return str(outcome)
    return "passed" if row.get("success") else "failed"


@dataclass
class Item:
    """One item of one run: its final attempt's row and every attempt's."""

    run: int
    nodeid: str
    row: dict[str, Any]
    attempts: list[dict[str, Any]]
    status: str

    @property
    def counted(self) -> bool:
        return self.status not in ("cancelled", "crashed")


def _items(run_index: int, rows: Sequence[dict[str, Any]]) -> list[Item]:
    by_node: dict[str, list[dict[str, Any]]] = {}
    for number, row in enumerate(rows):
        by_node.setdefault(_str(row.get("test_case_uid")) or f"row-{number}", []).append(row)
    items = []
    for nodeid, attempts in by_node.items():
        attempts.sort(key=lambda r: _int(r.get("attempt")) or 0)
        final = next((r for r in reversed(attempts) if r.get("final_attempt") is True), None)
        if final is None:  # rows written before final_attempt: the last attempt that was not cancelled
            real = [r for r in attempts if r.get("error_type") != CANCELLED]
            final = (real or attempts)[-1]
        items.append(Item(run_index, nodeid, final, attempts, _status(final)))
    return items


def _shown_items(items: Sequence[Item], limit: int | None = None) -> list[Item]:
    """The items the item table lists: every one up to ``limit`` (:data:`ITEM_LIMIT`); past it, those that did not
    pass first, then the others, each in run order, up to the limit (in run order again)."""
    limit = ITEM_LIMIT if limit is None else limit
    if len(items) <= limit:
        return list(items)
    ranked = sorted(range(len(items)), key=lambda n: (items[n].status == "passed", n))[:limit]
    return [items[n] for n in sorted(ranked)]


def _model_name(row: Mapping[str, Any]) -> str:
    return _str(row.get("model_label") or row.get("model")) or "(unknown model)"


@dataclass
class Group:
    """A (run, model, agent type) series of the page."""

    run: int
    model: str
    agent_type: str
    label: str
    color: str
    items: list[Item] = field(default_factory=list)
    statistics: dict[str, Any] | None = None

    @property
    def counted(self) -> list[Item]:
        return [i for i in self.items if i.counted]

    @property
    def passed(self) -> int:
        return sum(1 for i in self.items if i.status == "passed")


def _agent_key(agent_type: str) -> tuple[int, str]:
    return ({"tool": 0, "code": 1}.get(agent_type, 2), agent_type)


def _groups(runs: Sequence[RunData], items: Sequence[Item]) -> list[Group]:
    keys: dict[tuple[int, str, str], list[Item]] = {}
    for item in items:
        keys.setdefault((item.run, _model_name(item.row), _str(item.row.get("agent_type"))), []).append(item)
    models: dict[int, list[str]] = {}  # per run, its models in first-seen order
    for run_index, model, _ in keys:
        if model not in models.setdefault(run_index, []):
            models[run_index].append(model)
    ordered = sorted(keys, key=lambda k: (k[0], models[k[0]].index(k[1]), _agent_key(k[2])))
    several_models = len({k[1] for k in keys}) > 1
    groups = []
    for number, key in enumerate(ordered):
        run_index, model, agent_type = key
        parts = ([runs[run_index].label] if len(runs) > 1 else []) + ([model] if several_models else []) + [agent_type]
        stats = next(
            (
                s
                for s in runs[run_index].statistics or []
                if s.get("model") == model and s.get("agent_type") == agent_type
            ),
            None,
        )
        group = Group(run_index, model, agent_type, " · ".join(parts), PALETTE[number % len(PALETTE)], keys[key])
        group.statistics = stats
        groups.append(group)
    return groups


# -- the failure text (what pytest prints for a failing item) --------------------------------------------------------


def _checks(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    checks = row.get("checks")
    return [c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []


def _verdict_error(row: Mapping[str, Any]) -> str | None:
    if row.get("outcome") != "error":
        return None
    return f"{row.get('stop_reason')}: {row.get('error') or 'no detail'}"


def checks_text(row: Mapping[str, Any], width: int = 100) -> str:
    """The table of checks of a results row, line for line as the pytest failure message prints it."""
    lines = [
        CheckLine(_str(c.get("name")), bool(c.get("passed")), c.get("expected"), c.get("actual")) for c in _checks(row)
    ]
    return checks_table(lines, _verdict_error(row), width)


def failure_text(row: Mapping[str, Any]) -> str:
    """The pytest failure message of an item that did not pass, rebuilt from its results row."""
    response = row.get("response")
    return failure_message(
        agent_type=row.get("agent_type"),
        task_id=_str(row.get("task_id")),
        outcome=_str(row.get("outcome")) or "failed",
        error=_verdict_error(row),
        stop_reason=row.get("stop_reason"),
        steps=row.get("steps"),
        tokens=row.get("total_tokens"),
        duration_ms=_num(row.get("execution_time_ms")) or 0.0,
        checks=checks_text(row),
        tool_calls=[
            ToolCallLine(_str(c.get("name")), c.get("arguments") or {}, c.get("error") is None)
            for c in _tool_calls(row)
        ],
        response=response if isinstance(response, str) else None,
    )


def _tool_calls(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    calls = row.get("tool_calls")
    return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []


# -- the item details (the page's JSON island) -----------------------------------------------------------------------


def _span_status(span: Mapping[str, Any]) -> str:
    status = span.get("status")
    if isinstance(status, dict):  # the format before compaction
        status = status.get("code")
    return status if status in ("OK", "ERROR") else ""


def _span_note(span: Mapping[str, Any], category: str) -> str:
    attrs = span.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    notes = []
    if category == "llm":
        tokens_in, tokens_out = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
        if tokens_in is not None or tokens_out is not None:
            notes.append(f"tokens in {tokens_in} · out {tokens_out}")
        if attrs.get("gen_ai.response.finish_reasons"):
            notes.append(f"finish {value_text(attrs['gen_ai.response.finish_reasons'])}")
    elif category == "tool" and attrs.get("gen_ai.tool.call.arguments") is not None:
        notes.append(f"arguments {_cut(attrs['gen_ai.tool.call.arguments'], 300)}")
    events = span.get("events")
    if isinstance(events, list):
        retries = sum(1 for e in events if isinstance(e, dict) and e.get("name") == "smoltrace.model.retry")
        if retries:
            notes.append(f"{retries} retries")
        if any(isinstance(e, dict) and e.get("name") == "exception" for e in events):
            notes.append("exception")
    if span.get("status_description"):
        notes.append(_str(_cut(span["status_description"], 300)))
    return " · ".join(notes)


def _spans(doc: Mapping[str, Any] | None) -> tuple[list[list[Any]], int]:
    """A trace document's spans as ``[depth, name, category, start ms, duration ms, status, note]`` rows (start
    relative to the earliest span), in start order, and how many were left out (past :data:`SPAN_LIMIT`)."""
    if doc is None or not isinstance(doc.get("spans"), list):
        return [], 0
    spans = [s for s in doc["spans"] if isinstance(s, dict)]
    timed = []
    for span in spans:
        start, end = _int(span.get("start_time")), _int(span.get("end_time"))
        duration = _num(span.get("duration_ms"))
        if start is None:
            continue
        if end is None:
            end = start + int((duration or 0.0) * 1e6)
        timed.append((start, end, span))
    if not timed:
        return [], 0
    timed.sort(key=lambda t: t[0])
    origin = timed[0][0]
    parents = {_str(s.get("span_id")): _str(s.get("parent_span_id")) for _, _, s in timed}
    out = []
    for start, end, span in timed[:SPAN_LIMIT]:
        depth, parent, seen = 0, parents.get(_str(span.get("span_id")), ""), 0
        while parent and parent in parents and seen < 50:
            depth, parent, seen = depth + 1, parents[parent], seen + 1
        category = _str(span.get("category")) or "other"
        out.append(
            [
                depth,
                _str(_cut(span.get("name"), 200)),
                category,
                round((start - origin) / 1e6, 3),
                round(max(end - start, 0) / 1e6, 3),
                _span_status(span),
                _span_note(span, category),
            ]
        )
    return out, max(len(timed) - SPAN_LIMIT, 0)


def _item_data(item: Item, run: RunData, key: str) -> dict[str, Any]:
    row = item.row
    data: dict[str, Any] = {
        "k": key,
        "n": item.nodeid,
        "r": item.run,
        "t": _str(row.get("task_id")),
        "a": _str(row.get("agent_type")),
        "m": _model_name(row),
        "c": _str(row.get("category")),
        "d": _str(row.get("difficulty")),
        "o": item.status,
        "rep": _int(row.get("repeat")) or 0,
        "s": _int(row.get("steps")),
        "tok": _int(row.get("total_tokens")),
        "pt": _int(row.get("prompt_tokens")),
        "ct": _int(row.get("completion_tokens")),
        "usd": _num(row.get("cost_usd")),
        "ms": _num(row.get("execution_time_ms")),
        "sr": _str(row.get("stop_reason")),
        "p": _cut(row.get("prompt")),
        "resp": _cut(row.get("response")),
        "err": _cut(row.get("error")),
        "et": _str(row.get("error_type")) or None,
        "ck": [
            [
                bool(c.get("passed")),
                _str(c.get("name")),
                _cut(value_text(c.get("expected")), SHORT_LIMIT),
                _cut(value_text(c.get("actual")), SHORT_LIMIT),
            ]
            for c in _checks(row)
        ],
        "tc": [
            [
                _str(c.get("name")),
                _cut(c.get("arguments") if c.get("arguments") is not None else {}, SHORT_LIMIT),
                _cut(c.get("result"), SHORT_LIMIT),
                _cut(c.get("error"), SHORT_LIMIT),
                _num(c.get("duration_ms")),
            ]
            for c in _tool_calls(row)
        ],
    }
    if item.status != "passed":
        data["txt"] = _cut(failure_text(row), 3 * TEXT_LIMIT)
    if len(item.attempts) > 1:
        data["att"] = [[_int(a.get("attempt")) or 0, _status(a), _cut(a.get("error"), 300)] for a in item.attempts]
    doc = run.traces.get((item.nodeid, _int(row.get("attempt")) or 0))
    spans, more = _spans(doc)
    if doc is None:
        data["sp"] = None  # no trace: shown as missing
    else:
        data["sp"] = spans
        if more:
            data["spm"] = more
    return data


def _bare_item_data(item: Item, key: str, why: str) -> dict[str, Any]:
    """The table line of an item whose details could not be read (``why``)."""
    empty = dict.fromkeys(("a", "m", "c", "d"), "") | dict.fromkeys(("s", "tok", "usd", "ms"))
    return {
        "k": key,
        "n": item.nodeid,
        "r": item.run,
        "t": item.nodeid,
        "o": item.status,
        "rep": 0,
        **empty,
        "bad": why,
    }


def _json_island(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element nor open a comment: ``<``, ``>``, ``&`` and the JS line breaks
    are ``\\u`` escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(char, escape)
    return text.replace("\u2029", "\\u2029")


# -- formatting ------------------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(_str(value), quote=True)


def _fmt_int(value: int | float | None) -> str:
    return "—" if value is None else f"{round(value):,}"


def _fmt_usd(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.3g}" if abs(value) >= 1e-4 else f"${value:.2e}"


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


def _fmt_rate(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _fmt_when(ts: Any) -> str:
    value = _num(ts)
    if value is None:
        return "—"
    try:
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "—"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# -- SVG charts ------------------------------------------------------------------------------------------------------


def _nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 … a round number ≥ ``high``, about ``count`` steps."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < high - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def _tick_text(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.0f}%"
    if unit == "ms":
        return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"
    if unit == "$":
        return f"${value:.3g}"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _svg(width: int, height: int, body: Iterable[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(label)}">' + "".join(body) + "</svg>"
    )


def _x_axis(ticks: Sequence[float], x: Callable[[float], float], top: float, bottom: float, unit: str) -> list[str]:
    out = []
    for tick in ticks:
        px = x(tick)
        out.append(f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>')
        out.append(f'<text class="tick" x="{px:.1f}" y="{bottom + 14:.1f}" text-anchor="middle">')
        out.append(f"{esc(_tick_text(tick, unit))}</text>")
    return out


def _legend(groups: Sequence[Group]) -> str:
    if len(groups) < 2:
        return ""
    entries = "".join(
        f'<span class="key"><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" '
        f'fill="{g.color}"/></svg>{esc(g.label)}</span>'
        for g in groups
    )
    return f'<div class="legend">{entries}</div>'


def bar_chart(
    title: str, keys: Sequence[str], groups: Sequence[Group], value: Callable[[Group, str], list[Item]]
) -> str:
    """Horizontal bars: per key, one bar per group with its success rate among its counted items of that key."""
    bar, gap, left, width = 14, 10, 150, 620
    right = width - 90
    bands = [(key, [(g, [i for i in value(g, key) if i.counted]) for g in groups]) for key in keys]
    bands = [(key, [(g, its) for g, its in band if its]) for key, band in bands]
    bands = [(key, band) for key, band in bands if band]
    if not bands:
        return f'<p class="missing">{esc(title)}: no finished items.</p>'
    height = 10 + sum(len(band) * bar + gap for _, band in bands) + 24

    def x(v: float) -> float:
        return left + v * (right - left)

    body = _x_axis([0, 0.25, 0.5, 0.75, 1.0], x, 4, height - 24, "%")
    y = 10.0
    for key, band in bands:
        band_height = len(band) * bar
        body.append(
            f'<text class="label" x="{left - 8}" y="{y + band_height / 2 + 4:.1f}" text-anchor="end">'
            f"{esc(truncate(key, 22))}<title>{esc(key)}</title></text>"
        )
        for group, its in band:
            passed = sum(1 for i in its if i.status == "passed")
            rate = passed / len(its)
            body.append(
                f'<rect class="mark" x="{left}" y="{y + 1:.1f}" width="{max(x(rate) - left, 1.5):.1f}" '
                f'height="{bar - 2}" fill="{group.color}"><title>{esc(group.label)} · {esc(key)}: {passed}/{len(its)}'
                f" passed</title></rect>"
            )
            body.append(
                f'<text class="value" x="{x(rate) + 4:.1f}" y="{y + bar - 3:.1f}">{rate * 100:.0f}% '
                f"({passed}/{len(its)})</text>"
            )
            y += bar
        y += gap
    return f"<figure><figcaption>{esc(title)}</figcaption>{_svg(width, int(height), body, title)}</figure>"


def _quantile(values: Sequence[float], q: float) -> float:
    position = (len(values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def distribution_chart(title: str, unit: str, groups: Sequence[Group], value: Callable[[Item], float | None]) -> str:
    """Per group, a box (quartiles, median, min–max whiskers) over the dots of its items."""
    series = []
    for group in groups:
        values = sorted(v for v in (value(i) for i in group.counted) if v is not None)
        series.append((group, values))
    series = [(g, v) for g, v in series if v]
    if not series:
        return f'<p class="missing">{esc(title)}: no values (not recorded for any finished item).</p>'
    row, left, width = 34, 150, 620
    right = width - 20
    height = 8 + row * len(series) + 24
    ticks = _nice_ticks(max(v[-1] for _, v in series))

    def x(v: float) -> float:
        return left + v / ticks[-1] * (right - left)

    body = _x_axis(ticks, x, 4, height - 24, unit)
    for number, (group, values) in enumerate(series):
        mid = 8 + row * number + row / 2
        q1, median, q3 = (_quantile(values, q) for q in (0.25, 0.5, 0.75))
        body.append(
            f'<text class="label" x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end">{esc(truncate(group.label, 22))}'
            f" (n={len(values)})<title>{esc(group.label)}</title></text>"
        )
        body.append(
            f'<line class="whisker" x1="{x(values[0]):.1f}" x2="{x(values[-1]):.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>'
        )
        body.append(
            f'<rect class="box" x="{x(q1):.1f}" y="{mid - 9:.1f}" width="{max(x(q3) - x(q1), 1):.1f}" height="18" '
            f'stroke="{group.color}"><title>{esc(group.label)}: median {esc(_tick_text(median, unit))}, '
            f"quartiles {esc(_tick_text(q1, unit))}–{esc(_tick_text(q3, unit))}, "
            f"max {esc(_tick_text(values[-1], unit))}</title></rect>"
        )
        for index, v in enumerate(values):
            jitter = ((index * 0.618034) % 1 - 0.5) * 14
            body.append(f'<circle class="mark" cx="{x(v):.1f}" cy="{mid + jitter:.1f}" r="2.2" fill="{group.color}"/>')
        body.append(
            f'<line class="median" x1="{x(median):.1f}" x2="{x(median):.1f}" y1="{mid - 9:.1f}" y2="{mid + 9:.1f}"/>'
        )
    return f"<figure><figcaption>{esc(title)}</figcaption>{_svg(width, int(height), body, title)}</figure>"


def pareto_chart(groups: Sequence[Group]) -> str:
    """Success rate against mean cost per item, one point per group, the cost-efficient ones joined (the Pareto
    front: no other point is both cheaper and better); mean tokens per item when a group's cost is unknown."""
    points = []
    costs_known = all(any(_num(i.row.get("cost_usd")) is not None for i in g.counted) for g in groups if g.counted)
    for group in groups:
        counted = group.counted
        if not counted:
            continue
        if costs_known:
            xs = [_num(i.row.get("cost_usd")) for i in counted]
        else:
            xs = [_num(i.row.get("total_tokens")) for i in counted]
        known = [v for v in xs if v is not None]
        if not known:
            continue
        rate = group.passed / len(counted)
        ci = None
        if group.statistics and isinstance(group.statistics.get("success_rate_ci95"), list):
            low, high = (group.statistics["success_rate_ci95"] + [None, None])[:2]
            if _num(low) is not None and _num(high) is not None:
                ci = (float(low), float(high))
        points.append((group, sum(known) / len(known), rate, ci))
    title = "Success against cost" if costs_known else "Success against tokens (cost unknown)"
    if not points:
        return f'<p class="missing">{esc(title)}: no finished item with a cost or a token count.</p>'
    width, height, left, bottom, top = 620, 300, 60, 250, 14
    right = width - 170
    ticks = _nice_ticks(max(p[1] for p in points) * 1.05)
    unit = "$" if costs_known else "tok"

    def x(v: float) -> float:
        return left + v / ticks[-1] * (right - left)

    def y(v: float) -> float:
        return bottom - v * (bottom - top)

    body = _x_axis(ticks, x, top, bottom, unit)
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>')
        body.append(
            f'<text class="tick" x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick * 100:.0f}%</text>'
        )
    axis = "mean cost per item (USD)" if costs_known else "mean tokens per item"
    body.append(f'<text class="axis" x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle">{axis}</text>')
    body.append(
        f'<text class="axis" x="14" y="{(top + bottom) / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">success rate</text>'
    )
    front = []
    best = -1.0
    for point in sorted(points, key=lambda p: (p[1], -p[2])):
        if point[2] > best:
            front.append(point)
            best = point[2]
    if len(front) > 1:
        path = " ".join(f"{x(p[1]):.1f},{y(p[2]):.1f}" for p in front)
        body.append(f'<polyline class="front" points="{path}"/>')
    for group, cost, rate, ci in points:
        if ci is not None:
            body.append(
                f'<line class="ci" x1="{x(cost):.1f}" x2="{x(cost):.1f}" y1="{y(ci[0]):.1f}" y2="{y(ci[1]):.1f}" '
                f'stroke="{group.color}"/>'
            )
        shown = _fmt_usd(cost) if costs_known else f"{cost:,.0f} tokens"
        body.append(
            f'<circle class="mark" cx="{x(cost):.1f}" cy="{y(rate):.1f}" r="5" fill="{group.color}">'
            f"<title>{esc(group.label)}: {rate * 100:.1f}% at {esc(shown)} per item</title></circle>"
        )
    for number, (group, *_) in enumerate(points):
        ly = top + 6 + number * 16
        on_front = " (front)" if any(p[0] is group for p in front) else ""
        body.append(f'<circle cx="{right + 16}" cy="{ly:.1f}" r="4" fill="{group.color}"/>')
        body.append(
            f'<text class="value" x="{right + 24}" y="{ly + 4:.1f}">{esc(truncate(group.label, 22))}{on_front}'
            f"<title>{esc(group.label)}</title></text>"
        )
    note = (
        "Each point is one (run, model, agent type); whiskers: the Wilson 95 % interval (statistics.json); the line "
        "joins the points no other point beats on both cost and success (the Pareto front)."
    )
    return (
        f"<figure><figcaption>{esc(title)}</figcaption>{_svg(width, height, body, title)}"
        f'<p class="note">{esc(note)}</p></figure>'
    )


def _rate_bar(rate: float | None, ci: tuple[float, float] | None, color: str) -> str:
    """A small inline bar of a rate with its interval."""
    if rate is None:
        return ""
    body = [
        '<rect class="track" x="0" y="3" width="100" height="8" rx="2"/>',
        f'<rect class="mark" x="0" y="3" width="{rate * 100:.1f}" height="8" rx="2" fill="{color}"/>',
    ]
    if ci is not None:
        body.append(f'<line class="ci" x1="{ci[0] * 100:.1f}" x2="{ci[1] * 100:.1f}" y1="7" y2="7" stroke="#222"/>')
        for end in ci:
            body.append(f'<line class="ci" x1="{end * 100:.1f}" x2="{end * 100:.1f}" y1="3" y2="11" stroke="#222"/>')
    return (
        '<svg class="rate" viewBox="0 0 100 14" width="80" height="12" aria-hidden="true">' + "".join(body) + "</svg>"
    )


# -- page sections ---------------------------------------------------------------------------------------------------


def _dl(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (term, HTML) pairs; the HTML is already escaped."""
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _figure(figure: Any) -> str:
    if not isinstance(figure, dict) or figure.get("value") is None:
        return "unavailable"
    value = _num(figure.get("value"))
    unit = _str(figure.get("unit"))
    label = _str(figure.get("label"))
    shown = _fmt_usd(value) if unit == "USD" else f"{value:.3g} {unit}" if value is not None else "—"
    return f"{shown} ({label})" if label else shown


def _option_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else value_text(value)


def _file_class(state: str) -> str:
    return "ok" if state == "present" else "dim" if state.startswith("not written") else "bad"


def _header(run: RunData, items: Sequence[Item]) -> str:
    meta = run.metadata or {}
    pairs: list[tuple[str, str]] = []
    status = _str(meta.get("run_status")) or ("unknown (no metadata.json)" if run.metadata is None else "—")
    stop = _str(meta.get("run_stop_reason"))
    pairs.append(("status", esc(status + (f" — {stop}" if stop and stop != status else ""))))
    models = _list(meta.get("models")) or None
    if models:
        shown = []
        for spec in models:
            if not isinstance(spec, dict):
                continue
            generation = _dict(spec.get("generation"))
            applied = _dict(generation.get("applied"))
            pricing = _dict(spec.get("pricing"))
            parts = [f"<b>{esc(spec.get('label') or spec.get('model'))}</b>"]
            if spec.get("label"):
                parts.append(esc(spec.get("model")))
            parts.append(
                f"({esc(spec.get('provider'))}" + (f" at {esc(spec['api_base'])})" if spec.get("api_base") else ")")
            )
            if applied:
                parts.append("· " + esc(", ".join(f"{k} {v}" for k, v in applied.items())))
            if pricing.get("input_usd_per_1m") is not None:
                parts.append(
                    f"· ${esc(pricing.get('input_usd_per_1m'))} / ${esc(pricing.get('output_usd_per_1m'))} per 1M "
                    f"tokens in / out ({esc(pricing.get('source'))})"
                )
            shown.append(" ".join(parts))
        pairs.append(("models" if len(shown) > 1 else "model", "<br>".join(shown)))
    else:
        names = list(dict.fromkeys(_model_name(i.row) for i in items))
        pairs.append(("model", esc(", ".join(names) or "—")))
    dataset = _str(meta.get("dataset")) or _str(next((i.row.get("source") for i in items), ""))
    revision = meta.get("dataset_revision")
    split = meta.get("split")
    pairs.append(
        (
            "dataset",
            esc(dataset or "—")
            + (f" @ <code>{esc(revision)}</code>" if revision else " (no pinned revision)")
            + (f" [{esc(split)}]" if split and split != "train" else ""),
        )
    )
    timings = _dict(meta.get("timings"))
    started = timings.get("started_at")
    if started is None:
        dates = sorted(_str(i.row.get("evaluation_date")) for i in items if i.row.get("evaluation_date"))
        pairs.append(("when", esc(dates[0] if dates else "—")))
    else:
        pairs.append(("when", esc(f"{_fmt_when(started)} → {_fmt_when(timings.get('finished_at'))}")))
    duration = _num(timings.get("duration_s"))
    pairs.append(("how long", esc(_fmt_ms(duration * 1000) if duration is not None else "—")))
    totals = _dict(meta.get("totals"))
    counted = [i for i in items if i.counted]
    passed = sum(1 for i in counted if i.status == "passed")
    counts = _dict(meta.get("counts"))
    planned = counts.get("planned")
    unfinished = len(items) - len(counted)
    pairs.append(
        (
            "items",
            esc(
                f"{passed}/{len(counted)} passed"
                + (f" · {unfinished} did not finish" if unfinished else "")
                + (f" · {planned} planned" if planned is not None and planned != len(items) else "")
                + (f" · {len(run.rows)} attempts" if len(run.rows) != len(items) else "")
            ),
        )
    )
    cost = _num(totals.get("cost_usd"))
    if cost is None and run.metadata is None:
        known = [_num(r.get("cost_usd")) for r in run.rows]
        cost = sum(v for v in known if v is not None) if any(v is not None for v in known) else None
    tokens = totals.get("total_tokens")
    if tokens is None:
        token_values = [_int(r.get("total_tokens")) for r in run.rows]
        tokens = sum(v for v in token_values if v is not None)
    pairs.append(
        (
            "cost",
            esc(
                (_fmt_usd(cost) if cost is not None else "unknown (no price for the model)")
                + f" · {_fmt_int(_num(tokens))} tokens"
            ),
        )
    )
    if run.metrics is not None:
        pairs.append(
            (
                "energy",
                esc(
                    f"power cost {_figure(run.metrics.get('power_cost_usd'))} · CO2 {_figure(run.metrics.get('co2_g'))}"
                ),
            )
        )
    more: list[tuple[str, str]] = []
    options = _dict(meta.get("options"))
    if options:
        main = ("agent_type", "difficulty", "max_steps", "repeats", "timeout", "tools", "record_mode", "baseline")
        shown = [f"{k} {_option_text(options[k])}" for k in main if options.get(k) not in (None, [], "")]
        rows_html = "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(_option_text(v))}</td></tr>"
            for k, v in options.items()
            if v not in (None, [], {}, "")
        )
        more.append(
            (
                "options",
                esc(" · ".join(shown))
                + f'<details><summary>every option</summary><table class="kv">{rows_html}</table></details>',
            )
        )
    versions = _dict(meta.get("versions"))
    if versions:
        more.append(("versions", esc(" · ".join(f"{k} {v}" for k, v in versions.items()))))
    hardware = _dict(meta.get("hardware"))
    if hardware:
        hw = [
            _str(hardware.get("machine")),
            f"{hardware.get('logical_cores')} cores" if hardware.get("logical_cores") else "",
        ]
        if hardware.get("memory_gb"):
            hw.append(f"{hardware['memory_gb']} GB")
        more.append(("hardware", esc(" · ".join(h for h in hw if h))))
    files = " ".join(
        f'<span class="file {_file_class(state)}" title="{esc(state)}">{esc(name)}: {esc(state)}</span>'
        for name, state in run.files.items()
    )
    more.append(("files", files))
    more.append(("directory", f"<code>{esc(run.path)}</code>"))
    return (
        f'<section class="card run"><h2>Run <code>{esc(run.run_id)}</code></h2>'
        f'<div class="columns">{_dl(pairs)}{_dl(more)}</div></section>'
    )


def _summary(groups: Sequence[Group], runs: Sequence[RunData]) -> str:
    repeats = max((_int((g.statistics or {}).get("repeats")) or 1 for g in groups), default=1)
    unfinished = any(not i.counted for g in groups for i in g.items)
    head = [
        "series",
        "items",
        "passed",
        "failed",
        "error",
        *(["unfinished"] if unfinished else []),
        "success rate [95% CI]",
    ]
    if repeats > 1:
        head += [f"pass@{repeats}", f"pass^{repeats}", "flaky tasks"]
    head += ["avg steps", "tokens (avg)", "cost (avg)", "avg duration"]
    body = []
    for group in groups:
        counted = group.counted
        stats = group.statistics
        rate = group.passed / len(counted) if counted else None
        ci: tuple[float, float] | None = None
        pass_at: dict[str, Any] = {}
        pass_hat: dict[str, Any] = {}
        flaky: list[Any] = []
        if stats is not None:
            rate = _num(stats.get("success_rate"))
            pair = stats.get("success_rate_ci95")
            if isinstance(pair, list) and len(pair) == 2 and all(_num(v) is not None for v in pair):
                ci = (float(pair[0]), float(pair[1]))
            pass_at = _dict(stats.get("pass_at_k"))
            pass_hat = _dict(stats.get("pass_hat_k"))
            flaky = _list(stats.get("flaky_tasks"))
        rate_text = _fmt_rate(rate) + (
            f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]"
            if ci
            else (" (no interval: statistics.json missing)" if runs[group.run].statistics is None else "")
        )
        steps = [v for v in (_num(i.row.get("steps")) for i in counted) if v is not None]
        attempts = [a for i in group.items for a in i.attempts]
        tokens = [v for v in (_int(a.get("total_tokens")) for a in attempts) if v is not None]
        costs = [v for v in (_num(a.get("cost_usd")) for a in attempts) if v is not None]
        durations = [v for v in (_num(i.row.get("execution_time_ms")) for i in counted) if v is not None]
        cells = [
            f'<svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" rx="2" '
            f'fill="{group.color}"/></svg> {esc(group.label)}',
            esc(len(group.items)),
            esc(group.passed),
            esc(sum(1 for i in group.items if i.status == "failed")),
            esc(sum(1 for i in group.items if i.status == "error")),
            *([esc(len(group.items) - len(counted))] if unfinished else []),
            _rate_bar(rate, ci, group.color) + " " + esc(rate_text),
        ]
        if repeats > 1:
            cells += [
                esc(_fmt_rate(_num(pass_at.get(str(repeats))))),
                esc(_fmt_rate(_num(pass_hat.get(str(repeats))))),
                f'<span title="{esc(", ".join(map(str, flaky)))}">{len(flaky)}</span>',
            ]
        cells += [
            esc(f"{_mean(steps):.2f}" if steps else "—"),
            esc(f"{_fmt_int(sum(tokens))} ({_fmt_int(_mean(tokens))})" if tokens else "unknown"),
            esc(f"{_fmt_usd(sum(costs))} ({_fmt_usd(_mean(costs))})" if costs else "unknown"),
            esc(_fmt_ms(_mean(durations))),
        ]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = (
        "An item's verdict is its final attempt's; items that did not finish (cancelled, crashed worker) are neither "
        "successes nor failures. The interval is the Wilson 95 % interval of statistics.json; pass@k / pass^k: a "
        "success in k tries / all k tries succeed (pass@1 is the success rate). Tokens and cost are summed over every "
        "attempt."
    )
    return (
        '<section class="card"><h2>Summary</h2><div class="scroll"><table class="summary"><thead><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + f'</tbody></table></div><p class="note">{esc(note)}</p></section>'
    )


def _comparison_rows(runs: Sequence[RunData]) -> list[tuple[str, dict[str, Any]]]:
    """(where from, comparison row): each run's comparison.json, then the later runs against the first."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for run in runs:
        for row in run.comparison or []:
            source = "its baseline" if row.get("kind") == "baseline" else "models of the run"
            rows.append((f"{run.label}: {source}", row))
    if len(runs) > 1:
        try:
            from .comparison import compare
            from .statistics import outcomes_from_rows

            reference = outcomes_from_rows(runs[0].rows)
            for run in runs[1:]:
                for computed in compare(outcomes_from_rows(run.rows), reference):
                    rows.append((f"{run.label} against {runs[0].label} (computed)", computed.to_dict()))
        except Exception as exc:  # the page still shows everything else
            log.warning("report: could not compare the runs: %s", exc)
    return rows


_VERDICT_CLASS = {"regressed": "bad", "improved": "ok", "no significant change": "", "insufficient data": "dim"}


def _comparison(runs: Sequence[RunData], groups: Sequence[Group]) -> str:
    rows = _comparison_rows(runs)
    parts = []
    if rows:
        head = ["comparison", "model", "vs", "agent", "paired tasks", "worse/better", "rate", "Δ [95% CI]", "p", "test"]
        body = []
        for source, row in rows:
            ci = row.get("difference_ci95")
            diff = _num(row.get("difference"))
            diff_text = "—" if diff is None else f"{diff:+.3f}"
            if isinstance(ci, list) and len(ci) == 2 and all(_num(v) is not None for v in ci):
                diff_text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
            base, rate = _num(row.get("baseline_rate")), _num(row.get("rate"))
            p = _num(row.get("p_value"))
            verdict = _str(row.get("verdict"))
            cells = [
                source,
                _str(row.get("model")),
                _str(row.get("baseline_model")) or "—",
                _str(row.get("agent_type")),
                _str(row.get("paired_tasks")),
                f"{row.get('tasks_worse', 0)}/{row.get('tasks_better', 0)}",
                f"{'—' if base is None else f'{base:.3f}'} → {'—' if rate is None else f'{rate:.3f}'}",
                diff_text,
                "—" if p is None else f"{p:.4f}",
                _str(row.get("test")),
            ]
            body.append(
                "<tr>"
                + "".join(f"<td>{esc(c)}</td>" for c in cells)
                + f'<td class="verdict {_VERDICT_CLASS.get(verdict, "")}">{esc(verdict)}</td></tr>'
            )
        parts.append(
            '<div class="scroll"><table class="cmp"><thead><tr>'
            + "".join(f"<th>{esc(h)}</th>" for h in [*head, "verdict"])
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table></div>"
        )
    if len(groups) > 1:
        several = bool(rows) or len(runs) > 1 or len({(g.run, g.model) for g in groups}) > 1
        parts.append(_task_grid(groups, opened=several))
    if not parts:
        return ""
    return '<section class="card"><h2>Comparison</h2>' + "".join(parts) + "</section>"


def _task_grid(groups: Sequence[Group], *, opened: bool) -> str:
    """Tasks × series: passed / counted attempts of each task, the tasks that several series ran first."""
    tasks: dict[str, dict[int, list[Item]]] = {}
    for number, group in enumerate(groups):
        for item in group.items:
            tasks.setdefault(_str(item.row.get("task_id")), {}).setdefault(number, []).append(item)
    shared = [t for t, cells in tasks.items() if len(cells) > 1]
    alone = [t for t, cells in tasks.items() if len(cells) == 1]
    head = "".join(
        f'<th><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" rx="2" fill="{g.color}"/>'
        f"</svg> {esc(g.label)}</th>"
        for g in groups
    )
    body = []
    for task in shared + alone:
        cells = []
        for number in range(len(groups)):
            its = tasks[task].get(number)
            if not its:
                cells.append('<td class="na">—</td>')
                continue
            counted = [i for i in its if i.counted]
            passed = sum(1 for i in counted if i.status == "passed")
            share = passed / len(counted) if counted else None
            level = (
                "na" if share is None else "p3" if share == 1 else "p0" if share == 0 else "p1" if share < 0.5 else "p2"
            )
            cells.append(f'<td class="cell {level}">{passed}/{len(counted)}</td>')
        body.append(f"<tr><th>{esc(task)}</th>{''.join(cells)}</tr>")
    note = (
        f"{len(shared)} tasks run by more than one series (listed first), {len(alone)} by one only; each cell: "
        "passed / finished items (repeats included)."
    )
    summary = f"Tasks side by side ({len(tasks)} tasks × {len(groups)} series)"
    return (
        f'<details class="tasks"{" open" if opened else ""}><summary><h3>{esc(summary)}</h3></summary>'
        '<div class="scroll"><table class="grid"><thead><tr><th>task</th>'
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + f'</tbody></table></div><p class="note">{esc(note)}</p></details>'
    )


def _difficulty_order(values: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [d for d in DIFFICULTIES if d in seen] + [d for d in seen if d not in DIFFICULTIES]


def _charts(groups: Sequence[Group]) -> str:
    items = [i for g in groups for i in g.items]
    categories = list(dict.fromkeys(_str(i.row.get("category")) or "(none)" for i in items))
    difficulties = _difficulty_order(_str(i.row.get("difficulty")) or "(none)" for i in items)

    def by(column: str) -> Callable[[Group, str], list[Item]]:
        return lambda g, key: [i for i in g.items if (_str(i.row.get(column)) or "(none)") == key]

    figures = [
        bar_chart("Success by category", categories, groups, by("category")),
        bar_chart("Success by difficulty", difficulties, groups, by("difficulty")),
        pareto_chart(groups),
        distribution_chart("Tokens per item", "tok", groups, lambda i: _num(i.row.get("total_tokens"))),
        distribution_chart("Duration per item", "ms", groups, lambda i: _num(i.row.get("execution_time_ms"))),
    ]
    return (
        '<section class="card"><h2>Charts</h2>'
        + _legend(groups)
        + '<div class="charts">'
        + "".join(figures)
        + "</div></section>"
    )


_COLUMNS = (
    ("o", "outcome"),
    ("t", "item"),
    ("a", "agent"),
    ("m", "model"),
    ("r", "run"),
    ("c", "category"),
    ("d", "difficulty"),
    ("s", "steps"),
    ("tok", "tokens"),
    ("usd", "cost"),
    ("ms", "duration"),
)


def _item_table(
    runs: Sequence[RunData], items: Sequence[Item], data: Sequence[dict[str, Any]], *, total: int | None = None
) -> str:
    several_runs = len(runs) > 1
    columns = [(k, name) for k, name in _COLUMNS if k != "r" or several_runs]
    head = "".join(
        f'<th><button type="button" class="sort" data-key="{k}">{esc(name)}</button></th>' for k, name in columns
    )
    body = []
    for index, (item, d) in enumerate(zip(items, data, strict=True)):
        task = d["t"] + (f" [repeat-{d['rep']}]" if d["rep"] else "")
        attempts = f' <span class="badge">{len(item.attempts)} attempts</span>' if len(item.attempts) > 1 else ""
        values = {
            "o": f'<span class="status {d["o"]}">{esc(d["o"])}</span>',
            "t": f'<button type="button" class="open" aria-expanded="false">▸</button> <span class="task" '
            f'title="{esc(item.nodeid)}">{esc(task)}</span>{attempts}',
            "a": esc(d["a"]),
            "m": esc(d["m"]),
            "r": esc(runs[item.run].label),
            "c": esc(d["c"] or "—"),
            "d": esc(d["d"] or "—"),
            "s": esc("—" if d["s"] is None else d["s"]),
            "tok": esc(_fmt_int(d["tok"])),
            "usd": esc(_fmt_usd(d["usd"])),
            "ms": esc(_fmt_ms(d["ms"])),
        }
        cells = "".join(f'<td class="c-{k}">{values[k]}</td>' for k, _ in columns)
        body.append(f'<tr class="item" id="item-{index}" data-i="{index}" data-key="{esc(d["k"])}">{cells}</tr>')

    def options(key: str, values: Iterable[str]) -> str:
        shown = "".join(f'<option value="{esc(v)}">{esc(v or "(none)")}</option>' for v in values)
        return f'<select data-filter="{key}" aria-label="{key}"><option value="">all</option>{shown}</select>'

    statuses = [s for s in STATUSES if any(d["o"] == s for d in data)]
    filters = [
        '<input type="search" id="q" placeholder="search task, prompt, answer…" aria-label="search">',
        "<label>outcome " + options("o", statuses) + "</label>",
        "<label>agent " + options("a", dict.fromkeys(d["a"] for d in data)) + "</label>",
        "<label>model " + options("m", dict.fromkeys(d["m"] for d in data)) + "</label>",
        "<label>difficulty " + options("d", _difficulty_order(d["d"] for d in data)) + "</label>",
        "<label>category " + options("c", dict.fromkeys(d["c"] for d in data)) + "</label>",
    ]
    if several_runs:
        filters.append(
            '<label>run <select data-filter="r" aria-label="run"><option value="">all</option>'
            + "".join(f'<option value="{n}">{esc(run.label)}</option>' for n, run in enumerate(runs))
            + "</select></label>"
        )
    capped = ""
    if total is not None and total > len(items):
        capped = (
            f'<p class="note" id="capped">This table lists {len(items):,} of the {total:,} items (at most '
            f"{ITEM_LIMIT:,} per run: those that did not pass first, then the others, in run order); the summary and "
            "the charts count every item, and results.json lists them all.</p>"
        )
    return (
        f'<section class="card"><h2>Items <span class="count" id="count">{len(items)} items</span></h2>{capped}'
        f'<div class="filters">{"".join(filters)}</div>'
        '<noscript><p class="note">Sorting, filtering and the item details need JavaScript.</p></noscript>'
        f'<div class="scroll"><table class="items"><thead><tr>{head}</tr></thead>'
        f'<tbody id="items">{"".join(body)}</tbody></table></div></section>'
    )


# -- the page --------------------------------------------------------------------------------------------------------


@cache
def _asset(name: str) -> str:
    return (resources.files("smoltrace_export") / "report_assets" / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _guarded(name: str, render: Callable[[], str]) -> str:
    """A section, or a note that it could not be drawn (a report is never lost to one odd value)."""
    try:
        return render()
    except Exception as exc:
        log.warning("report: the %s section failed: %s", name, exc, exc_info=True)
        return f'<section class="card"><p class="missing">The {esc(name)} could not be drawn: {esc(exc)}</p></section>'


def _labels(runs: Sequence[RunData]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.run_id] = seen.get(run.run_id, 0) + 1
        run.label = run.run_id if seen[run.run_id] == 1 else f"{run.run_id} ({seen[run.run_id]})"


def _header_of(number: int, run: RunData, items: Sequence[Item]) -> Callable[[], str]:
    return lambda: _header(run, [i for i in items if i.run == number])


def render_html_report(runs: Sequence[RunData]) -> str:
    """The page of ``runs`` (read by :func:`load_run`)."""
    _labels(runs)
    items = [item for number, run in enumerate(runs) for item in _items(number, run.rows)]
    groups = _groups(runs, items)
    shown = [i for number, run in enumerate(runs) for i in _shown_items([i for i in items if i.run == number])]
    data = []
    for number, item in enumerate(shown):
        key = item.nodeid if len(runs) == 1 else f"{runs[item.run].label}/{item.nodeid}"
        try:
            data.append(_item_data(item, runs[item.run], key))
        except Exception as exc:  # one odd row: its line in the table, no details
            log.warning("report: item %s: %s", item.nodeid, exc)
            data.append(_bare_item_data(item, key, f"{type(exc).__name__}: {exc}"))
        data[-1]["i"] = number
    island = {
        "runs": [{"id": run.run_id, "label": run.label, "traces": run.files.get(json_sink.TRACES)} for run in runs],
        "items": data,
    }
    title = (
        f"smoltrace report — {runs[0].run_id}"
        if len(runs) == 1
        else "smoltrace comparison — " + " vs ".join(r.label for r in runs)
    )
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    sections = [
        *(_guarded("run header", _header_of(number, run, items)) for number, run in enumerate(runs)),
        _guarded("summary", lambda: _summary(groups, runs)),
        _guarded("comparison", lambda: _comparison(runs, groups)),
        _guarded("charts", lambda: _charts(groups)),
        _guarded("item table", lambda: _item_table(runs, shown, data, total=len(items))),
    ]
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'  # hashes and keywords: nothing to escape
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style></head>"
        f'<body><header class="top"><h1>{esc(title)}</h1>'
        f'<p class="note">pytest-smoltrace report, written {esc(generated)}. Opens from disk; loads nothing.</p>'
        "</header><main>"
        + "".join(sections)
        + f'</main><script type="application/json" id="smoltrace-data">{_json_island(island)}</script>'
        f"<script>{js}</script></body></html>\n"
    )


def write_html_report(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write one self-contained HTML page of ``run_dirs`` (one run, or several side by side) to ``out`` (atomically)
    and return ``out``.

    Raises :class:`NotARunDirectory` for a path that is not a run directory and ``OSError`` when ``out`` cannot be
    written; a run directory with missing or unreadable optional files gets a page that says what is missing."""
    if not run_dirs:
        raise ValueError("write_html_report: no run directory given")
    runs = [load_run(Path(d)) for d in run_dirs]
    page = render_html_report(runs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
