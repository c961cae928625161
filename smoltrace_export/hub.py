"""Publish a run directory to the Hugging Face Hub.

For a run ``ts`` (see :mod:`smoltrace_export.naming`) and the token's user, :func:`publish_run_dir` creates
``{user}/smoltrace-results-{ts}`` (always), ``-traces-{ts}`` and ``-metrics-{ts}`` (only when the run directory
has traces / metric figures), each in ONE commit holding its parquet file and its card, and adds the run to
``{user}/smoltrace-leaderboard`` as ONE new file ``runs/<run id>.parquet`` plus the (unchanging) card, in one
commit: no read-modify-write of the whole leaderboard, so concurrent publishes cannot lose each other's rows, and
republishing a run id overwrites its file instead of adding rows. ``private`` applies to all four datasets; an
existing public leaderboard is made private when a private run is added to it (never the other way round).

All repositories are created before any data is pushed, so a publish that stops half way leaves empty
datasets that ``smoltrace-cleanup --incomplete-only`` finds. Transient failures are retried with exponential
backoff; 401/403 are not. On failure :class:`PublishError` names the run directory (left intact) and the command
to try again, ``smoltrace-publish <run-dir>``. ``<run-dir>/published.json`` records what was published; a second
publish of a completely published run returns that record without touching the network (``force=True`` pushes
again, which changes nothing on the Hub when the run is unchanged).

``huggingface_hub`` and ``datasets`` are imported when publishing, not when this module is imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import json_sink
from .cards import leaderboard_card, run_dataset_card
from .http_errors import describe, http_status
from .naming import KINDS, Kind, dataset_name, leaderboard_name, run_timestamp
from .retry import with_retries
from .rows import metric_rows, trace_rows
from .schemas import SCHEMAS, ColumnType, Schema

if TYPE_CHECKING:
    from datasets import Features
    from huggingface_hub import HfApi

log = logging.getLogger(__name__)
T = TypeVar("T")

PUBLISH_COMMAND = "smoltrace-publish"
LEADERBOARD_DIR = "runs"
DATA_FILE = "data/train-00000-of-00001.parquet"
LIBRARY_NAME = "pytest-smoltrace"


class PublishError(RuntimeError):
    """Publishing failed; the run directory is intact and ``smoltrace-publish <run-dir>`` can try again."""

    def __init__(self, run_dir: Path, reason: str, *, status: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.reason = reason
        self.status = status
        self.retry_command = f"{PUBLISH_COMMAND} {self.run_dir}"
        super().__init__(
            f"Publishing the run directory {self.run_dir} to the Hugging Face Hub failed: {reason}. "
            f"The run's files are intact in {self.run_dir}; publish them later with: {self.retry_command}"
        )


@dataclass(frozen=True)
class DatasetRef:
    """One Hub dataset a publish wrote to."""

    repo_id: str
    url: str
    commit: str | None = None
    #: The file written (the leaderboard's run file); None for a run dataset (its data file and card).
    path_in_repo: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetRef:
        return cls(
            repo_id=str(data["repo_id"]),
            url=str(data["url"]),
            commit=data.get("commit"),
            path_in_repo=data.get("path_in_repo"),
        )


@dataclass(frozen=True)
class PublishResult:
    """What a publish created: dataset repo ids and URLs (``traces``/``metrics`` None when the run had none)."""

    run_id: str
    user: str
    timestamp: str
    private: bool
    endpoint: str
    results: DatasetRef
    leaderboard: DatasetRef
    traces: DatasetRef | None = None
    metrics: DatasetRef | None = None
    #: True when nothing was pushed because ``published.json`` already recorded this publish.
    already_published: bool = field(default=False, compare=False)

    @property
    def datasets(self) -> tuple[DatasetRef, ...]:
        return tuple(d for d in (self.results, self.traces, self.metrics, self.leaderboard) if d is not None)

    @property
    def repo_ids(self) -> tuple[str, ...]:
        return tuple(d.repo_id for d in self.datasets)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(d.url for d in self.datasets)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["already_published"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, already_published: bool = False) -> PublishResult:
        def ref(key: str) -> DatasetRef | None:
            value = data.get(key)
            return DatasetRef.from_dict(value) if value else None

        results, leaderboard = ref("results"), ref("leaderboard")
        if results is None or leaderboard is None:
            raise ValueError("a publish record needs results and leaderboard")
        return cls(
            run_id=str(data["run_id"]),
            user=str(data["user"]),
            timestamp=str(data["timestamp"]),
            private=bool(data["private"]),
            endpoint=str(data["endpoint"]),
            results=results,
            leaderboard=leaderboard,
            traces=ref("traces"),
            metrics=ref("metrics"),
            already_published=already_published,
        )


@dataclass(frozen=True)
class RunFiles:
    """The parts of a run directory that get published."""

    run_dir: Path
    run_id: str
    started_at: float
    results: list[dict[str, Any]]
    leaderboard: list[dict[str, Any]]
    traces: list[dict[str, Any]]
    metrics: dict[str, Any] | None
    metadata: dict[str, Any]


def _parse_iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def read_run_dir(run_dir: Path) -> RunFiles:
    """Read a run directory; raises ``ValueError`` when it is not one (no results.json / leaderboard_row.json)."""
    run_dir = Path(run_dir)
    for name in (json_sink.RESULTS, json_sink.LEADERBOARD):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir} is not a run directory: {name} is missing")
    try:
        results = json_sink.read_json(run_dir / json_sink.RESULTS)
        leaderboard = json_sink.read_json(run_dir / json_sink.LEADERBOARD)
        metadata = _read_optional(run_dir / json_sink.METADATA) or {}
        traces = _read_optional(run_dir / json_sink.TRACES) or []
        metrics = _read_optional(run_dir / json_sink.METRICS)
    except ValueError as exc:
        raise ValueError(f"{run_dir}: a file is not valid JSON ({exc})") from exc
    if isinstance(leaderboard, dict):  # tolerate a single row
        leaderboard = [leaderboard]
    if not isinstance(results, list) or not isinstance(leaderboard, list) or not isinstance(traces, list):
        raise ValueError(f"{run_dir}: results.json, leaderboard_row.json and traces.json must be lists")
    run_id = str(
        metadata.get("run_id")
        or next((r.get("run_id") for r in leaderboard if r.get("run_id")), None)
        or next((r.get("run_id") for r in results if r.get("run_id")), None)
        or run_dir.name
    )
    timings = metadata.get("timings")
    started_at = (timings.get("started_at") if isinstance(timings, dict) else None) or metadata.get("started_at")
    if not isinstance(started_at, (int, float)):
        candidates = [_parse_iso(r.get("timestamp")) for r in leaderboard]
        candidates += [_parse_iso(r.get("evaluation_date")) for r in results]
        known = [c for c in candidates if c is not None]
        started_at = min(known) if known else (run_dir / json_sink.RESULTS).stat().st_mtime
    return RunFiles(
        run_dir=run_dir,
        run_id=run_id,
        started_at=float(started_at),
        results=results,
        leaderboard=leaderboard,
        traces=traces,
        metrics=metrics if isinstance(metrics, dict) else None,
        metadata=metadata,
    )


def _read_optional(path: Path) -> Any:
    return json_sink.read_json(path) if path.is_file() else None


def resolve_token(token: str | None) -> str | None:
    """The ``token`` argument, else ``HF_TOKEN``, else the token stored by ``hf auth login``."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def leaderboard_file(run_id: str) -> str:
    """The leaderboard file of a run id: readable, path-safe, and distinct for distinct run ids."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._")[:80] or "run"
    return f"{LEADERBOARD_DIR}/{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}.parquet"


# -- Hub encoding: rows of a schema → a parquet file --------------------------------------------------------------


def hub_row(row: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``row`` conformed to ``schema`` for a Hub push: columns in order, missing ones null, unknown ones dropped,
    ``json`` columns JSON-encoded, integers of ``float64`` columns as floats."""
    out: dict[str, Any] = {}
    for name, (kind, _) in schema.items():
        value = row.get(name)
        if value is None:
            out[name] = None
        elif kind == "json":
            out[name] = json.dumps(value, ensure_ascii=False, default=str)
        elif kind == "float64":
            out[name] = float(value)
        elif kind == "int64":
            out[name] = int(value)
        elif kind == "bool":
            out[name] = bool(value)
        elif kind == "string":
            out[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        else:
            out[name] = [str(v) for v in value]
    return out


def features_for(schema: Schema) -> Features:
    """Explicit ``datasets.Features`` for Hub rows of ``schema`` (``json`` columns are strings, as :func:`hub_row`
    encodes them)."""
    import datasets

    list_type = getattr(datasets, "List", None) or datasets.Sequence
    mapping: dict[str, Any] = {}
    for name, (kind, _) in schema.items():
        if kind == "list<string>":
            mapping[name] = list_type(datasets.Value("string"))
        else:
            mapping[name] = datasets.Value({"json": "string"}.get(kind, kind))
    return datasets.Features(mapping)


#: The range of the Hub's ``int64`` columns (parquet INT64; pyarrow refuses anything outside it).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Problems listed in one error before "and N more".
_SHOWN_PROBLEMS = 3


def _shown(value: Any) -> str:
    """``repr(value)``, except that a huge integer is described, not printed (nor run into the int-string limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def value_problem(kind: ColumnType, value: Any) -> str | None:
    """Why ``value`` cannot be written to a Hub column of type ``kind``, or None when it can (None always can)."""
    if value is None:
        return None
    if kind == "int64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{_shown(value)} is not an integer"
        if isinstance(value, float) and not value.is_integer():
            return f"{_shown(value)} is not an integer"
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{_shown(value)} does not fit int64 (-2^63 … 2^63-1)"
    elif kind == "float64":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{_shown(value)} is not a number"
        if isinstance(value, int) and value.bit_length() > 1023:  # float() of it raises OverflowError
            return f"{_shown(value)} does not fit float64"
    elif kind == "list<string>" and not isinstance(value, (list, tuple)):
        return f"{_shown(value)} is not a list"
    return None


def _row_label(row: Mapping[str, Any]) -> str:
    for key in ("test_case_uid", "agent_type", "name", "trace_id"):
        value = row.get(key)
        if isinstance(value, str) and value:
            return f" ({value})"
    return ""


def column_problems(rows: Sequence[Mapping[str, Any]], kind: str) -> list[str]:
    """Every value of ``rows`` that its column of ``SCHEMAS[kind]`` cannot hold, as ``<kind> row N (id): column
    'name' (type): why``; empty when all of them fit."""
    schema = SCHEMAS[kind]
    problems = []
    for number, row in enumerate(rows, start=1):
        for name, (column_type, _) in schema.items():
            problem = value_problem(column_type, row.get(name))
            if problem is not None:
                problems.append(f"{kind} row {number}{_row_label(row)}: column {name!r} ({column_type}): {problem}")
    return problems


def check_columns(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Raise ``ValueError`` naming the kind, row and column of each value that its Hub column cannot hold."""
    problems = [problem for kind, rows in tables.items() for problem in column_problems(rows, kind)]
    if problems:
        more = len(problems) - _SHOWN_PROBLEMS
        shown = "; ".join(problems[:_SHOWN_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise ValueError(f"{len(problems)} value(s) do not fit their Hub column: {shown}")


def _tables(run: RunFiles) -> dict[Kind, list[dict[str, Any]]]:
    """The rows to publish per kind (leaderboard rows apart: they get dataset names once the user is known)."""
    tables: dict[Kind, list[dict[str, Any]]] = {"results": run.results}
    trace_table = trace_rows(run.traces, run.run_id)
    metric_table = metric_rows(run.metrics, run.run_id)
    if trace_table:
        tables["traces"] = trace_table
    if metric_table:
        tables["metrics"] = metric_table
    return tables


def _parquet(rows: Sequence[Mapping[str, Any]], kind: str) -> bytes:
    import datasets

    schema = SCHEMAS[kind]
    check_columns({kind: rows})
    table = [hub_row(row, schema) for row in rows]
    ds = datasets.Dataset.from_list(table, features=features_for(schema))
    buf = io.BytesIO()
    ds.to_parquet(buf)
    return buf.getvalue()


def _dataset_url(endpoint: str, repo_id: str) -> str:
    return f"{endpoint.rstrip('/')}/datasets/{repo_id}"


class _Publisher:
    def __init__(self, run: RunFiles, api: HfApi, *, private: bool, token: str, retries: int, backoff_s: float) -> None:
        self.run = run
        self.api = api
        self.private = private
        self.token = token
        self.retries = retries
        self.backoff_s = backoff_s
        self.record: dict[str, Any] = {}

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return with_retries(what, fn, retries=self.retries, backoff_s=self.backoff_s)

    def _save(self, status: str) -> None:
        self.record["status"] = status
        self.record["updated_at"] = datetime.now(tz=UTC).isoformat(timespec="seconds")
        json_sink.write_json(self.run.run_dir / json_sink.PUBLISHED, self.record)

    def _ensure_repo(self, repo_id: str) -> None:
        from huggingface_hub.errors import RepositoryNotFoundError

        self._call(
            f"creating {repo_id}",
            lambda: self.api.create_repo(repo_id, repo_type="dataset", private=self.private, exist_ok=True),
        )
        if not self.private:
            return
        try:
            info = self._call(f"reading {repo_id}", lambda: self.api.dataset_info(repo_id))
        except RepositoryNotFoundError:
            return
        if info.private is False:
            log.warning("%s is public: making it private, since this run is published privately", repo_id)
            self._call(
                f"making {repo_id} private",
                lambda: self.api.update_repo_settings(repo_id, repo_type="dataset", private=True),
            )

    def _commit(self, repo_id: str, files: dict[str, bytes], message: str) -> str | None:
        from huggingface_hub import CommitOperationAdd

        def commit() -> Any:
            ops = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=data) for path, data in files.items()]
            return self.api.create_commit(repo_id, ops, repo_type="dataset", commit_message=message)

        info = self._call(f"committing to {repo_id}", commit)
        return getattr(info, "oid", None)

    def publish(self) -> PublishResult:
        run = self.run
        whoami = self._call("resolving the Hub user (whoami)", lambda: self.api.whoami(token=self.token))
        user = str(whoami["name"])
        ts = run_timestamp(run.started_at, run.run_id)
        endpoint = self.api.endpoint
        tables = _tables(run)
        names = {kind: dataset_name(user, kind, ts) for kind in tables}
        lb_repo = leaderboard_name(user)
        self.record = {
            "run_id": run.run_id,
            "user": user,
            "timestamp": ts,
            "private": self.private,
            "endpoint": endpoint,
            "planned": {**{k: names.get(k) for k in KINDS}, "leaderboard": lb_repo},
        }
        self._save("partial")

        for repo_id in [*names.values(), lb_repo]:
            self._ensure_repo(repo_id)

        related = {f"{k} dataset": names.get(k) for k in KINDS}
        for kind, table in tables.items():
            repo_id = names[kind]
            card = run_dataset_card(
                kind,
                repo_id,
                run_id=run.run_id,
                ts=ts,
                leaderboard_rows=run.leaderboard,
                num_rows=len(table),
                related=related,
            )
            log.info("publishing %d %s rows to %s", len(table), kind, repo_id)
            sha = self._commit(
                repo_id,
                {DATA_FILE: _parquet(table, kind), "README.md": card.encode()},
                f"smoltrace {kind} of run {run.run_id}",
            )
            self.record[kind] = asdict(DatasetRef(repo_id, _dataset_url(endpoint, repo_id), sha))
            self._save("partial")

        lb_rows = []
        for row in run.leaderboard:
            lb_rows.append(
                {
                    **row,
                    "submitted_by": row.get("submitted_by") or user,
                    "results_dataset": names["results"],
                    "traces_dataset": names.get("traces"),
                    "metrics_dataset": names.get("metrics"),
                }
            )
        path = leaderboard_file(run.run_id)
        log.info("adding %d leaderboard rows to %s as %s", len(lb_rows), lb_repo, path)
        sha = self._commit(
            lb_repo,
            {
                path: _parquet(lb_rows, "leaderboard"),
                "README.md": leaderboard_card(lb_repo, f"{LEADERBOARD_DIR}/*.parquet").encode(),
            },
            f"smoltrace leaderboard: run {run.run_id}",
        )
        self.record["leaderboard"] = asdict(DatasetRef(lb_repo, _dataset_url(endpoint, lb_repo), sha, path))
        result = PublishResult.from_dict(self.record)
        self.record.update(result.to_dict())
        self._save("complete")
        return result


def read_published(run_dir: Path) -> dict[str, Any] | None:
    """The ``published.json`` record of a run directory, if any."""
    path = Path(run_dir) / json_sink.PUBLISHED
    try:
        data = json_sink.read_json(path)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def publish_run_dir(
    run_dir: Path,
    *,
    private: bool = False,
    token: str | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
    force: bool = False,
    endpoint: str | None = None,
) -> PublishResult:
    """Publish ``run_dir`` (results, traces and metrics datasets when present, and the leaderboard).

    ``token``: else ``HF_TOKEN``, else the stored login. ``endpoint``: the Hub URL (default: ``HF_ENDPOINT`` or
    https://huggingface.co). Raises :class:`PublishError` (after ``retries`` retries of transient failures).
    """
    run_dir = Path(run_dir)
    try:
        run = read_run_dir(run_dir)
        # before any network call: a value its column cannot hold is named here, not deep inside pyarrow
        publishable: dict[str, Sequence[Mapping[str, Any]]] = dict(_tables(run).items())
        publishable["leaderboard"] = run.leaderboard
        check_columns(publishable)
    except (OSError, ValueError) as exc:
        raise PublishError(run_dir, str(exc)) from exc

    from huggingface_hub import HfApi, constants

    hub_endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    previous = read_published(run_dir)
    if (
        not force
        and previous is not None
        and previous.get("status") == "complete"
        and previous.get("run_id") == run.run_id
        and previous.get("private") == private
        and previous.get("endpoint") == hub_endpoint
    ):
        try:
            result = PublishResult.from_dict(previous, already_published=True)
        except (KeyError, ValueError):
            pass
        else:
            log.info("%s was already published (%s); pass force=True to push again", run_dir, result.results.repo_id)
            return result

    resolved = resolve_token(token)
    if not resolved:
        raise PublishError(
            run_dir, "no Hugging Face token (pass --token, set HF_TOKEN, or log in with `hf auth login`)"
        )
    api = HfApi(endpoint=hub_endpoint, token=resolved, library_name=LIBRARY_NAME)
    publisher = _Publisher(run, api, private=private, token=resolved, retries=retries, backoff_s=backoff_s)
    started = time.monotonic()
    try:
        result = publisher.publish()
    except Exception as exc:
        status = http_status(exc)
        reason = describe(exc)
        if status in (401, 403):
            reason += " (check the token: --token, HF_TOKEN or `hf auth login`; it needs write access)"
        log.error("publishing %s failed: %s", run_dir, reason)
        raise PublishError(run_dir, reason, status=status) from exc
    log.info("published %s in %.1f s: %s", run_dir, time.monotonic() - started, ", ".join(result.repo_ids))
    return result
