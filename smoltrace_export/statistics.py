"""The statistics of a benchmark run: success rate with its Wilson interval, pass@k and pass^k, flaky tasks.

The unit is an *item outcome* (:class:`Outcome`): one item is one (model, agent type, task id, repeat), identified by
its node id. An item's verdict is its final attempt's (:attr:`smoltrace_export.summary.ItemAttempts.final`, the rule
of ``summary.py``: a rerun by pytest-rerunfailures is an attempt of the same item, not an outcome of its own). Items
that did not finish are left out: cancelled items and items whose final attempt's ``error_type`` is in
:data:`~smoltrace_export.records.UNFINISHED_ERROR_TYPES` (a crashed worker); they are neither successes nor failures.
Every other final attempt counts, and it is a success iff its verdict passed (an error or a timeout is not a pass).
Results are grouped by model name (:attr:`~smoltrace_export.records.RunRecord.model_name`: the label, else the id).

Outcomes come from records (:func:`outcomes_from_results`), from ``results.json`` rows (:func:`outcomes_from_rows`;
both give the same outcomes for the same attempts), or from a run directory or a Hub results dataset
(:func:`load_outcomes`). :func:`statistics` turns them into one :class:`StatisticsRow` per (model, agent type);
``statistics.json`` is :func:`statistics_document` of those rows and :func:`read_statistics` reads it back.

The figures need only the standard library (the Wilson interval's closed form with ``statistics.NormalDist``,
``math.comb`` in exact fractions): scipy (≈ 1 s to import) is left to the comparisons (:mod:`.comparison`), which a
one-model run does not compute. tests/test_statistics.py holds the interval to ``scipy.stats.binomtest``'s. See
docs/statistics.md for the formulas.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import json_sink
from .http_errors import describe
from .records import AGENT_TYPES, CANCELLED, UNFINISHED_ERROR_TYPES
from .summary import Attempt, group_attempts

__all__ = [
    "DECIMALS",
    "LoadError",
    "Outcome",
    "StatisticsRow",
    "TaskTally",
    "agent_order",
    "group_outcomes",
    "load_outcomes",
    "outcomes_from_results",
    "outcomes_from_rows",
    "parse_hub_ref",
    "read_statistics",
    "statistics",
    "statistics_document",
    "statistics_table",
    "text_table",
    "write_statistics",
]

log = logging.getLogger(__name__)

#: Decimals the rates, intervals and pass@k figures are rounded to.
DECIMALS = 6
#: The ``results.json`` columns an item outcome is read from.
_REQUIRED_COLUMNS = ("test_case_uid", "task_id", "agent_type", "model")
_HF_PREFIX = "hf://datasets/"
_REPO_RX = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<rev>[^\s@]+))?")


class LoadError(ValueError):
    """A run reference (run directory or Hub results dataset) could not be read; the message names it."""


@dataclass(frozen=True)
class Outcome:
    """The counted outcome of one item: its final attempt passed or not."""

    model: str
    agent_type: str
    task_id: str
    repeat: int
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return json_sink.fields_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(
            model=str(data["model"]),
            agent_type=str(data["agent_type"]),
            task_id=str(data["task_id"]),
            repeat=int(data.get("repeat") or 0),
            passed=bool(data["passed"]),
        )


# -- outcomes: from records, from results rows, from a run directory or the Hub --------------------------------------


def outcomes_from_results(results: Iterable[Attempt]) -> list[Outcome]:
    """The item outcomes of ``results`` (attempts or their digests, in any order), items in first-seen order."""
    outcomes = []
    for item in group_attempts(results):
        if item.cancelled:
            continue
        final = item.final
        record = final.record
        if record.error_type in UNFINISHED_ERROR_TYPES:
            continue
        outcomes.append(
            Outcome(record.model_name, record.agent_type, record.task_id, record.repeat, final.verdict.passed)
        )
    return outcomes


def _final_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The row whose verdict is the item's: the one marked ``final_attempt``, else (rows written without that column)
    the highest attempt that was not cancelled, else the highest attempt (the rule of ``ItemAttempts.final``)."""
    marked = [r for r in rows if r.get("final_attempt") is True]
    if marked:
        return marked[-1]
    ordered = sorted(rows, key=lambda r: int(r.get("attempt") or 0))
    real = [r for r in ordered if r.get("error_type") != CANCELLED]
    return (real or ordered)[-1]


def _row_passed(row: Mapping[str, Any]) -> bool:
    success = row.get("success")
    if success is None:
        return row.get("outcome") == "passed"
    return bool(success)


def outcomes_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Outcome]:
    """The item outcomes of ``results.json`` rows (or the Hub's results rows), items in first-seen order.

    Rows are grouped by ``test_case_uid`` (the node id); an item's outcome is its final row's ``success``; items whose
    final row's ``error_type`` is in ``UNFINISHED_ERROR_TYPES`` are left out; the model is ``model_label`` or
    ``model``. Raises ``ValueError`` naming the row when a row is not an object or lacks an identifying column."""
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {number} is a {type(row).__name__}, not an object")
        missing = [c for c in _REQUIRED_COLUMNS if row.get(c) in (None, "")]
        if missing:
            raise ValueError(f"row {number} has no {', '.join(missing)}")
        try:
            int(row.get("attempt") or 0)
            int(row.get("repeat") or 0)
        except (TypeError, ValueError):
            raise ValueError(
                f"row {number}: attempt/repeat must be integers, not {row.get('attempt')!r}/{row.get('repeat')!r}"
            ) from None
        by_node.setdefault(str(row["test_case_uid"]), []).append(row)
    outcomes = []
    for item_rows in by_node.values():
        row = _final_row(item_rows)
        if row.get("error_type") in UNFINISHED_ERROR_TYPES:
            continue
        model = row.get("model_label") or row["model"]
        outcomes.append(
            Outcome(
                str(model), str(row["agent_type"]), str(row["task_id"]), int(row.get("repeat") or 0), _row_passed(row)
            )
        )
    return outcomes


def parse_hub_ref(ref: str) -> tuple[str, str | None] | None:
    """``(repo_id, revision)`` of ``hf://datasets/USER/NAME[@REVISION]`` or ``USER/NAME[@REVISION]``; None otherwise."""
    text = ref[len(_HF_PREFIX) :] if ref.startswith(_HF_PREFIX) else ref
    m = _REPO_RX.fullmatch(text.rstrip("/"))
    if m is None:
        return None
    return m["repo"], m["rev"]


_EXPECTED = "a pytest-smoltrace run directory (holding results.json) or a Hub results dataset (USER/NAME[@REVISION])"


def load_outcomes(ref: str | Path) -> list[Outcome]:
    """The item outcomes of a run: a run directory (its ``results.json``; a ``results.json`` file itself is accepted
    too) or a Hub results dataset, ``hf://datasets/USER/NAME[@REVISION]`` or ``USER/NAME[@REVISION]`` (downloaded
    with ``huggingface_hub``, which follows ``HF_ENDPOINT`` and the token in ``HF_TOKEN`` or the stored login).

    A ``USER/NAME`` that exists as a local path is read as the path. Raises :class:`LoadError` naming the reference
    and what was expected."""
    text = str(ref)
    path = Path(ref)
    if not text.startswith(_HF_PREFIX) and (path.exists() or isinstance(ref, Path) or parse_hub_ref(text) is None):
        return _outcomes_from_path(path)
    hub = parse_hub_ref(text)
    if hub is None:
        raise LoadError(f"{text}: not a Hub dataset reference; expected {_EXPECTED}")
    return _outcomes_from_hub(text, *hub, local_too=not text.startswith(_HF_PREFIX))


def _outcomes_from_path(path: Path) -> list[Outcome]:
    if path.is_dir():
        results = path / json_sink.RESULTS
        if not results.is_file():
            raise LoadError(f"{path}: no {json_sink.RESULTS} in this directory; expected {_EXPECTED}")
    elif path.is_file():
        results = path
    else:
        raise LoadError(f"{path}: no such file or directory; expected {_EXPECTED}")
    rows = json_sink.read_json_list(
        results, "results rows", error=LoadError, expected="; expected a results.json list of rows"
    )
    try:
        return outcomes_from_rows(rows)
    except ValueError as exc:
        raise LoadError(f"{results}: {exc}; expected results rows as pytest-smoltrace writes them") from None


def _outcomes_from_hub(ref: str, repo_id: str, revision: str | None, *, local_too: bool = False) -> list[Outcome]:
    """``local_too``: ``ref`` could have been a local path (``USER/NAME`` form), and none exists."""
    from huggingface_hub import constants, snapshot_download

    where = f"{repo_id}@{revision}" if revision else repo_id
    log.info("downloading the results dataset %s from %s", where, constants.ENDPOINT)
    try:
        local = Path(
            snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=["*.parquet", "*.jsonl"])
        )
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "RevisionNotFoundError" in names:
            why = f"it has no revision {revision!r}"
        elif "RepositoryNotFoundError" in names:
            why = "no such dataset (or it is private and the token does not give access to it)"
        elif "LocalEntryNotFoundError" in names:  # no answer, and nothing in the cache
            why = f"the Hub could not be reached ({describe(exc.__cause__ or exc).removeprefix('Got: ')})"
        else:
            why = describe(exc)
        prefix = "no such run directory here, and " if local_too else ""
        raise LoadError(
            f"{ref}: {prefix}could not download the Hub dataset {where} from {constants.ENDPOINT}: {why}; "
            f"expected {_EXPECTED}"
        ) from None
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.suffix in (".parquet", ".jsonl"))
    if not files:
        raise LoadError(f"{ref}: the Hub dataset {where} has no parquet or jsonl data files; expected {_EXPECTED}")
    rows: list[Any] = []
    for file in files:
        try:
            rows += _read_data_file(file)
        except Exception as exc:
            name = file.relative_to(local)
            raise LoadError(f"{ref}: {name} of the Hub dataset {where} cannot be read ({exc})") from None
    try:
        return outcomes_from_rows(rows)
    except ValueError as exc:
        raise LoadError(f"{ref}: the Hub dataset {where}: {exc}; expected a pytest-smoltrace results dataset") from None


def _read_data_file(path: Path) -> list[Any]:
    if path.suffix == ".jsonl":
        import json

        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    import pyarrow.parquet as pq

    return list(pq.read_table(path).to_pylist())


# -- statistics ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskTally:
    """One task's counted attempts (item outcomes over its repeats) and successes."""

    task_id: str
    attempts: int
    successes: int

    def to_dict(self) -> dict[str, Any]:
        return json_sink.fields_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskTally:
        return cls(str(data["task_id"]), int(data["attempts"]), int(data["successes"]))


@dataclass(frozen=True)
class StatisticsRow:
    """The statistics of one (model, agent type) of a run (docs/statistics.md has the formulas).

    ``pass_at_k`` / ``pass_hat_k`` are keyed by k as a string, ``"1"`` … ``str(repeats)``; a k that no task reaches is
    left out."""

    model: str
    agent_type: str
    tasks: int
    #: The largest number of counted attempts of any task (``--smoltrace-repeats`` when nothing was lost).
    repeats: int
    attempts: int
    successes: int
    #: successes / attempts (0..1).
    success_rate: float
    #: The Wilson score interval of ``success_rate`` (95 %), ``(low, high)``.
    success_rate_ci95: tuple[float, float]
    pass_at_k: dict[str, float]
    pass_hat_k: dict[str, float]
    #: Per task, in first-seen order.
    per_task: tuple[TaskTally, ...]
    #: Tasks that passed some attempts and failed others.
    flaky_tasks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return json_sink.fields_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StatisticsRow:
        low, high = data["success_rate_ci95"]
        return cls(
            model=str(data["model"]),
            agent_type=str(data["agent_type"]),
            tasks=int(data["tasks"]),
            repeats=int(data["repeats"]),
            attempts=int(data["attempts"]),
            successes=int(data["successes"]),
            success_rate=float(data["success_rate"]),
            success_rate_ci95=(float(low), float(high)),
            pass_at_k={str(k): float(v) for k, v in (data.get("pass_at_k") or {}).items()},
            pass_hat_k={str(k): float(v) for k, v in (data.get("pass_hat_k") or {}).items()},
            per_task=tuple(TaskTally.from_dict(t) for t in data.get("per_task") or ()),
            flaky_tasks=tuple(str(t) for t in data.get("flaky_tasks") or ()),
        )


def _round(value: float | Fraction) -> float:
    return round(float(value), DECIMALS)


def agent_order(agent_types: Iterable[str]) -> list[str]:
    """The distinct agent types of ``agent_types``: tool, then code, then any other in first-seen order."""
    seen = list(dict.fromkeys(agent_types))
    return [a for a in AGENT_TYPES if a in seen] + [a for a in seen if a not in AGENT_TYPES]


def group_outcomes(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], dict[str, list[bool]]]:
    """``(model, agent type) → task id → the passed flags of its outcomes``: models in first-seen order, agent types
    tool then code, tasks in first-seen order."""
    outcomes = list(outcomes)
    models = list(dict.fromkeys(o.model for o in outcomes))
    grouped: dict[tuple[str, str], dict[str, list[bool]]] = {}
    for model in models:
        mine = [o for o in outcomes if o.model == model]
        for agent_type in agent_order(o.agent_type for o in mine):
            tasks: dict[str, list[bool]] = {}
            for o in mine:
                if o.agent_type == agent_type:
                    tasks.setdefault(o.task_id, []).append(o.passed)
            grouped[(model, agent_type)] = tasks
    return grouped


def _pass_k(tallies: Sequence[TaskTally], k: int) -> tuple[float, float] | None:
    """(pass@k, pass^k) averaged over the tasks with at least k attempts; None when no task has k."""
    from math import comb

    reached = [t for t in tallies if t.attempts >= k]
    if not reached:
        return None
    at: list[Fraction] = []
    hat: list[Fraction] = []
    for t in reached:
        n, c = t.attempts, t.successes
        total = comb(n, k)
        at.append(1 - Fraction(comb(n - c, k), total))
        hat.append(Fraction(comb(c, k), total))
    return _round(sum(at, Fraction(0)) / len(at)), _round(sum(hat, Fraction(0)) / len(hat))


def wilson_interval(successes: int, attempts: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / attempts`` (no continuity correction), clipped to [0, 1] as
    ``scipy.stats.binomtest(...).proportion_ci(method="wilson")`` is."""
    import math
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p, n = successes / attempts, attempts
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def _row(model: str, agent_type: str, tasks: Mapping[str, Sequence[bool]]) -> StatisticsRow:
    tallies = tuple(TaskTally(task_id, len(flags), sum(flags)) for task_id, flags in tasks.items())
    attempts = sum(t.attempts for t in tallies)
    successes = sum(t.successes for t in tallies)
    low, high = wilson_interval(successes, attempts)
    repeats = max(t.attempts for t in tallies)
    pass_at: dict[str, float] = {}
    pass_hat: dict[str, float] = {}
    for k in range(1, repeats + 1):
        figures = _pass_k(tallies, k)
        if figures is not None:
            pass_at[str(k)], pass_hat[str(k)] = figures
    return StatisticsRow(
        model=model,
        agent_type=agent_type,
        tasks=len(tallies),
        repeats=repeats,
        attempts=attempts,
        successes=successes,
        success_rate=_round(successes / attempts),
        success_rate_ci95=(_round(low), _round(high)),
        pass_at_k=pass_at,
        pass_hat_k=pass_hat,
        per_task=tallies,
        flaky_tasks=tuple(t.task_id for t in tallies if 0 < t.successes < t.attempts),
    )


def statistics(outcomes: Iterable[Outcome]) -> list[StatisticsRow]:
    """One row per (model, agent type) that has outcomes: models in first-seen order, agent types tool then code."""
    return [_row(model, agent_type, tasks) for (model, agent_type), tasks in group_outcomes(outcomes).items()]


def statistics_document(rows: Iterable[StatisticsRow]) -> list[dict[str, Any]]:
    """The ``statistics.json`` document: a JSON list of rows."""
    return [row.to_dict() for row in rows]


def write_statistics(path: Path, rows: Iterable[StatisticsRow]) -> Path:
    """Write ``statistics.json`` atomically."""
    return json_sink.write_json(Path(path), statistics_document(rows))


def read_statistics(path: Path | str) -> list[StatisticsRow]:
    """Read ``statistics.json``; raises ``ValueError`` naming the file when it is not a list of rows."""
    return json_sink.read_rows(path, StatisticsRow.from_dict, "statistics")


# -- terminal tables -------------------------------------------------------------------------------------------------


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Iterable[int] = ()) -> list[str]:
    """Fixed-width lines: the header, then the rows; columns two spaces apart, ``right`` ones right-aligned."""
    aligned = set(right)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in aligned else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _flaky(tasks: Sequence[str], shown: int = 3) -> str:
    """``0``, or the count and the first ``shown`` task ids."""
    if not tasks:
        return "0"
    more = "…" if len(tasks) > shown else ""
    return f"{len(tasks)} ({', '.join(tasks[:shown])}{more})"


def statistics_table(rows: Sequence[StatisticsRow]) -> list[str]:
    """Fixed-width lines for a terminal: per (model, agent type) the tasks × repeats, successes / attempts, the success
    rate with its Wilson 95 % interval, pass@1, pass@N and pass^N (N = repeats) and the flaky tasks."""
    header = ["model", "agent", "tasks×repeats", "passed", "rate [95% CI]", "pass@1", "pass@N", "pass^N", "flaky"]
    body = []
    for row in rows:
        n = str(row.repeats)
        low, high = row.success_rate_ci95
        body.append(
            [
                row.model,
                row.agent_type,
                f"{row.tasks}×{row.repeats}",
                f"{row.successes}/{row.attempts}",
                f"{_fmt(row.success_rate)} [{_fmt(low)}, {_fmt(high)}]",
                _fmt(row.pass_at_k.get("1")),
                _fmt(row.pass_at_k.get(n)),
                _fmt(row.pass_hat_k.get(n)),
                _flaky(row.flaky_tasks),
            ]
        )
    return text_table(header, body)
