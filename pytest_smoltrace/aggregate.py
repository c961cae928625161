"""Controller side: collect item results as reports arrive, journal each one, write the run directory at the end.

Runs only where ``not hasattr(config, "workerinput")`` (the xdist controller, or the only process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .gate import Standing
from .identity import RunIdentity
from .journal import JOURNAL, TRACE_JOURNAL, Journal, read_result_at, read_result_entries, read_results
from .lineup import Contender
from .models import ModelSpec
from .records import SCHEMA_VERSION, ItemResult
from .summary import (
    CANCELLED,
    AgentSummary,
    Attempt,
    AttemptDigest,
    group_attempts,
    known_cost,
    known_sum,
    summarize,
)

if TYPE_CHECKING:
    from .telemetry.cost import Price

log = logging.getLogger(__name__)

#: Written beside results.json at the end of the session (issue 13): the statistics per (model, agent type), and the
#: comparisons with the baseline run and between the session's models (only when there are any).
STATISTICS_FILE = "statistics.json"
COMPARISON_FILE = "comparison.json"
#: The run's page (issue 15): opens from disk, no network; ``smoltrace-report`` builds one after the fact.
REPORT_FILE = "report.html"


@dataclass(frozen=True, slots=True)
class _Filed:
    """One filed attempt: its digest, and where the full result is (its journal line, or held when none)."""

    digest: AttemptDigest
    #: Byte offset of its line in ``journal.jsonl``; None when it has none (no run directory).
    offset: int | None
    #: The full result, held only when there is no journal line to read it back from.
    result: ItemResult | None


class Aggregator:
    """Files every attempt of every item; appends each to ``journal.jsonl`` the moment it arrives.

    An attempt is keyed by ``(nodeid, attempt)``: a rerun (pytest-rerunfailures) is a new attempt, a second result for
    the same attempt replaces the first (as "later line wins" in the journal). On a resume the attempts already in the
    journal are kept, and the attempts of this session are numbered after them. Trace documents go to
    ``traces.jsonl`` instead (they are large), and are gathered into ``traces.json`` at the end.

    Memory does not grow with the size of the results (issue 17: 10,000 items): what is held per attempt is its
    :class:`~smoltrace_export.summary.AttemptDigest` (what the summaries, statistics and leaderboard rows read) and the
    byte offset of its journal line; the full results are read back from the journal one at a time
    (:meth:`iter_attempts`) to write results.json. Only without a run directory (``--smoltrace-output none``) are the
    full results held, there being nowhere else to keep them.
    """

    def __init__(
        self, run_dir: Path | None, previous: list[ItemResult] | None = None, *, resumed: bool | None = None
    ) -> None:
        self.run_dir = run_dir  # None: keep results in memory only (``--smoltrace-output none``)
        previous = list(previous or ())
        done = {r.nodeid for r in previous}
        #: Items carried over finished from the journal of the run being resumed (deselected in this session).
        self.resumed = len(done)
        if resumed is None:
            resumed = bool(previous)
        self._attempts: dict[tuple[str, int], _Filed] = {}
        if resumed and run_dir is not None:
            loaded: Iterable[tuple[int | None, ItemResult]] = read_result_entries(run_dir)
        else:
            loaded = ((None, result) for result in previous)
        for offset, result in loaded:
            # an attempt that did not finish is run again; its row stays when it recorded spend (a cancelled run),
            # the re-run replaces it when it recorded none (a crashed worker's attempt: its spend died with it)
            if result.nodeid in done or _spent(result):
                self._attempts[(result.nodeid, result.record.attempt)] = _filed(result, offset)
        #: Per item: how many attempts earlier sessions hold (this session's attempts are numbered after them).
        self._base: dict[str, int] = {}
        for nodeid, attempt in self._attempts:
            self._base[nodeid] = max(self._base.get(nodeid, 0), attempt + 1)
        #: Collection order of the node ids (results.json is written in it); unknown nodes go last, as they came.
        self._order: dict[str, int] = {}
        self._journal = Journal(run_dir) if run_dir is not None else None
        self._traces = Journal(run_dir, TRACE_JOURNAL) if run_dir is not None else None

    def add(self, result: ItemResult) -> ItemResult:
        """File one attempt; its ``record.attempt`` (counted by the process that ran it) is offset by the attempts
        earlier sessions hold. Returns the result as filed.

        Memory and journal get the attempt together: a Ctrl-C that arrives in between is held until both have it
        (:func:`_sigint_held`), so results.json never holds a row that journal.jsonl lacks, nor the reverse."""
        with _sigint_held():
            return self._add(result)

    def _add(self, result: ItemResult) -> ItemResult:
        attempt = self._base.get(result.nodeid, 0) + max(result.record.attempt, 0)
        filed = self._attempts.get((result.nodeid, attempt))
        held = filed.digest if filed is not None else None
        if held is not None and CANCELLED in (held.record.error_type, result.record.error_type):
            # not the same attempt twice: a run one xdist worker started ahead for an item another worker ran
            attempt = max(a for n, a in self._attempts if n == result.nodeid) + 1
        if attempt != result.record.attempt:
            result = dataclasses.replace(result, record=dataclasses.replace(result.record, attempt=attempt))
        if result.trace is not None:
            if self._traces is not None:
                self._traces.append_json({"nodeid": result.nodeid, "attempt": attempt, **result.trace})
            result = dataclasses.replace(result, trace=None)
        offset = self._journal.append(result) if self._journal is not None else None
        self._attempts.pop((result.nodeid, attempt), None)  # a repeated attempt moves to the end, as in the journal
        self._attempts[(result.nodeid, attempt)] = _filed(result, offset)
        return result

    def next_attempt(self, nodeid: str) -> int:
        """The attempt number (before the offset :meth:`add` applies) a new attempt of ``nodeid`` gets."""
        base = self._base.get(nodeid, 0)
        held = [a for n, a in self._attempts if n == nodeid and a >= base]
        return max(held) + 1 - base if held else 0

    def set_order(self, nodeids: Iterable[str]) -> None:
        """The collection order (first call wins: every process of a run collects the same items)."""
        if not self._order:
            self._order = {nodeid: n for n, nodeid in enumerate(nodeids)}

    @property
    def order(self) -> list[str]:
        """The collection order of the node ids, as :meth:`set_order` got it (empty before)."""
        return list(self._order)

    def _ordered(self) -> list[_Filed]:
        """Every filed attempt, items in collection order (then as they came), each item's attempts in order."""
        arrival: dict[str, int] = {}
        for nodeid, _ in self._attempts:
            arrival.setdefault(nodeid, len(arrival))
        unknown = len(self._order)

        def key(entry: tuple[tuple[str, int], _Filed]) -> tuple[int, int, int]:
            (nodeid, attempt), _ = entry
            return (self._order.get(nodeid, unknown), arrival[nodeid], attempt)

        return [filed for _, filed in sorted(self._attempts.items(), key=key)]

    @property
    def digests(self) -> list[AttemptDigest]:
        """Every attempt's digest, in the order of :attr:`attempts` (what summaries and statistics are made of)."""
        return [filed.digest for filed in self._ordered()]

    def iter_attempts(self) -> Iterator[ItemResult]:
        """Every attempt in full, in the order of :attr:`attempts`, read back from the journal one at a time."""
        ordered = self._ordered()
        if self.run_dir is None or all(filed.offset is None for filed in ordered):
            for filed in ordered:
                assert filed.result is not None
                yield filed.result
            return
        with open(self.run_dir / JOURNAL, "rb") as handle:
            for filed in ordered:
                if filed.offset is None:
                    assert filed.result is not None
                    yield filed.result
                else:
                    yield read_result_at(handle, filed.offset)

    @property
    def attempts(self) -> list[ItemResult]:
        """Every attempt in full, items in collection order (then as they came), each item's attempts in attempt
        order. Read back from the journal: for a large run prefer :attr:`digests` or :meth:`iter_attempts`."""
        return list(self.iter_attempts())

    @property
    def results(self) -> dict[str, Attempt]:
        """Each item's verdict attempt (its last) as its digest, by node id, in the order of :attr:`attempts`."""
        return {g.nodeid: g.final for g in group_attempts(self.digests)}

    def trace_lines(self) -> Iterator[str]:
        """The JSON text of the latest trace document of each attempt that has a result, in result order.

        Streamed from ``traces.jsonl``: one pass notes each trace's latest line offset (the keys are all that is
        held), a second reads those lines back one at a time, so memory does not grow with the size of the traces.
        Each is re-encoded compactly (:data:`~smoltrace_export.json_sink.COMPACT`) for ``traces.json``."""
        if self.run_dir is None:
            return
        path = self.run_dir / TRACE_JOURNAL
        if self._traces is not None:
            self._traces.close()  # flushed and closed: what it wrote is all on disk
        latest: dict[tuple[str, ...], int] = {}
        if not path.exists():
            return
        with open(path, "rb") as handle:
            offset = 0
            for line in handle:
                for key in _trace_keys(line):
                    latest[key] = offset
                offset += len(line)
            for result in self.digests:
                record = result.record
                found = latest.get(("trace", record.trace_id)) if record.trace_id else None
                if found is None:
                    found = latest.get(("attempt", result.nodeid, str(record.attempt)))
                if found is not None:
                    handle.seek(found)
                    yield _compact(handle.readline())

    def close(self) -> None:
        for journal in (self._journal, self._traces):
            if journal is not None:
                journal.close()

    def summaries(self, planned: dict[tuple[str, str], int]) -> list[AgentSummary]:
        return summarize(self.digests, planned)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back for the duration, then deliver it to the handler it was meant for.

    The handler is swapped, not the signal mask: a process-directed signal reaches any thread that does not block
    it, and the run-ahead threads would let it through. Only the main thread may install handlers (the hooks that
    file results run there); elsewhere this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, None)  # pytest's: default_int_handler raises KeyboardInterrupt
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def _filed(result: ItemResult, offset: int | None) -> _Filed:
    return _Filed(AttemptDigest.of(result), offset, result if offset is None else None)


def _spent(result: ItemResult) -> bool:
    """Whether an attempt recorded any spend (tokens or cost)."""
    record = result.record
    return bool(record.total_tokens or record.prompt_tokens or record.completion_tokens or record.cost_usd)


def journal_attempts(run_dir: Path) -> list[ItemResult]:
    """Every attempt in ``run_dir/journal.jsonl``, in journal order; a later line for the same attempt wins.

    (:func:`pytest_smoltrace.journal.read_journal` gives each item's last line instead.)"""
    attempts: dict[tuple[str, int], ItemResult] = {}
    for result in read_results(run_dir):
        key = (result.nodeid, result.record.attempt)
        attempts.pop(key, None)
        attempts[key] = result
    return list(attempts.values())


def _compact(line: bytes) -> str:
    """One ``traces.jsonl`` line as compact JSON text (the line as it is when it does not parse)."""
    from smoltrace_export.json_sink import COMPACT

    try:
        return json.dumps(json.loads(line), ensure_ascii=False, separators=COMPACT)
    except ValueError:
        return line.decode("utf-8")


def _trace_keys(line: bytes) -> list[tuple[str, ...]]:
    """The keys of one complete ``traces.jsonl`` line: its trace id, and its node id with the attempt (lines written
    before attempts were numbered are attempt 0). None for a blank line, one cut short by a kill, or no document."""
    try:
        data = json.loads(line)
    except ValueError:
        if line.strip():
            log.warning("%s: a line cut short is ignored", TRACE_JOURNAL)
        return []
    if not isinstance(data, dict) or not isinstance(data.get("nodeid"), str):
        return []
    attempt = data.get("attempt", 0)
    keys: list[tuple[str, ...]] = [("attempt", data["nodeid"], str(attempt if isinstance(attempt, int) else 0))]
    if isinstance(data.get("trace_id"), str):
        keys.append(("trace", data["trace_id"]))
    return keys


def _version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def _hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "logical_cores": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover - psutil is a dependency
        info["memory_gb"] = None
    return info


def run_totals(summaries: list[AgentSummary]) -> dict[str, Any]:
    """The run's counts and spend, the same in metadata.json, the leaderboard rows (summed) and the terminal summary:
    ``counts`` (items, by their verdicts) and ``totals`` (attempts and their spend: Σ over results.json)."""
    return {
        "counts": {
            "planned": sum(s.planned for s in summaries),
            "completed": sum(s.total for s in summaries),
            "passed": sum(s.passed for s in summaries),
            "failed": sum(s.failed for s in summaries),
            "errored": sum(s.errored for s in summaries),
        },
        "totals": {
            "timed_out": sum(s.timed_out for s in summaries),
            "cancelled": sum(s.cancelled for s in summaries),
            "not_run": sum(s.not_run for s in summaries),
            "flaky": sum(s.flaky for s in summaries),
            "attempts": sum(s.attempts for s in summaries),
            "prompt_tokens": sum(s.prompt_tokens for s in summaries),
            "completion_tokens": sum(s.completion_tokens for s in summaries),
            "total_tokens": sum(s.total_tokens for s in summaries),
            "cost_usd": known_cost(s.cost_usd for s in summaries),
            "duration_ms": round(sum(s.total_duration_ms for s in summaries), 3),
            # the rubric judge's spend, apart from the agent's (null: no judge was called / no cost known)
            "judge_tokens": known_sum(s.judge_tokens for s in summaries),
            "judge_cost_usd": known_cost(s.judge_cost_usd for s in summaries),
        },
    }


def environment_shares(summaries: list[AgentSummary]) -> dict[tuple[str, str], float]:
    """Each (model, agent type)'s share of the run's energy: its attempts' share of the summed run time (by attempts
    when no time was recorded). The shares sum to 1."""
    time_total = sum(s.total_duration_ms for s in summaries)
    if time_total > 0:
        return {(s.model, s.agent_type): s.total_duration_ms / time_total for s in summaries}
    count = sum(s.attempts for s in summaries)
    if count > 0:
        return {(s.model, s.agent_type): s.attempts / count for s in summaries}
    return {(s.model, s.agent_type): 1.0 / len(summaries) for s in summaries}


def write_outputs(
    identity: RunIdentity,
    aggregator: Aggregator,
    *,
    planned: dict[tuple[str, str], int],
    samples: list[dict[str, Any]],
    resumed_from_settings: dict[str, Any] | None,
    loop_s: float | None,
    interrupted: bool,
    stop_reason: str | None = None,
    standing: Standing | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the files of the run directory (results, traces, metrics, leaderboard, metadata; statistics and, when
    there are any, comparisons). ``extra``: more metadata.json fields (``smoltrace-merge``'s ``merged_from``).

    ``planned``: items planned per (model name, agent type); ``samples``: every process's samples; ``loop_s``: how
    long pytest's run loop took; ``stop_reason``: why pytest stopped early (``-x``'s "stopping after 1 failures",
    Ctrl-C), when it did; ``standing``: the statistics and comparisons (:mod:`.gate`)."""
    from smoltrace_export.json_sink import write_run_outputs
    from smoltrace_export.rows import RunContext, environment_from_metrics, leaderboard_row

    from .telemetry.metrics import build_metrics_document

    assert aggregator.run_dir is not None
    settings = identity.settings
    started_at = identity.started_at
    finished_at = time.time()
    results = aggregator.digests  # collection order, each item's attempts in order (results.json: read back)
    summaries = aggregator.summaries(planned)
    totals = run_totals(summaries)
    planned_total = totals["counts"]["planned"]
    completed = totals["counts"]["completed"]
    run_status = (
        "completed" if completed >= planned_total and not interrupted else ("partial" if completed else "failed")
    )
    spec = identity.spec
    metrics = build_metrics_document(
        samples,
        run_id=identity.run_id,
        model_is_local=spec.is_local_model,
        grid_intensity_g_per_kwh=settings.grid_intensity,
        energy_price_usd_per_kwh=settings.energy_price,
    )
    run_dir = aggregator.run_dir
    ctx = RunContext(
        model=spec.label,
        provider=spec.provider,
        run_id=identity.run_id,
        dataset=settings.dataset,
        dataset_revision=settings.revision,
        started_at=started_at,
        finished_at=finished_at,
        run_status=run_status,
        task_timeout_s=settings.timeout,
        results_location=f"local:{run_dir}",
        traces_location=f"local:{run_dir / 'traces.json'}",
        metrics_location=f"local:{run_dir / 'metrics.json'}",
        hardware_scope="model" if spec.is_local_model else "runner",
        run_stop_reason=(stop_reason or "interrupted") if interrupted else "completed",
        environment=environment_from_metrics(metrics),
    )
    price = identity.price
    meta = {
        "schema_version": SCHEMA_VERSION,
        "run_id": identity.run_id,
        "model": spec.label,
        "provider": spec.provider,
        "api_base": spec.api_base,
        "models": [model_entry(identity, s, c) for s, c in zip(identity.specs, identity.contenders, strict=True)],
        "dataset": settings.dataset,
        "split": settings.split,
        "dataset_revision": settings.revision,
        "run_status": run_status,
        "resumed_items": aggregator.resumed,
        "record_mode": settings.record_mode,
        "cassette_dir": str(settings.cassettes) if settings.record_mode else None,
        "replayed_attempts": sum(r.record.replayed for r in results),
        "resumed_from_settings": resumed_from_settings,
        "pricing": pricing(price),
        "options": settings.public_dict(),
        "run_stop_reason": ctx.run_stop_reason,
        **totals,
        "timings": {
            "started_at": started_at,
            "finished_at": finished_at,
            "duration_s": round(finished_at - started_at, 3),
            # pytest's run loop only (the items), without start-up, collection and writing the output files
            "loop_s": loop_s,
        },
        "versions": {
            "python": sys.version.split()[0],
            **{
                d: _version(d)
                for d in (
                    "pytest-smoltrace",
                    "pytest",
                    "pytest-xdist",
                    "smolagents",
                    "litellm",
                    "datasets",
                    "opentelemetry-sdk",
                )
            },
        },
        "hardware": _hardware(),
        # --smoltrace-shard: which shard, and the collection order of the whole run (smoltrace-merge restores it)
        "shard": {**settings.shard.to_dict(), "collection_order": aggregator.order} if settings.shard else None,
        **(extra or {}),
    }
    shares = environment_shares(summaries) if summaries else {}
    by_name = {spec.reported_name: spec for spec in identity.specs}
    stats = {(row.model, row.agent_type): row for row in standing.statistics} if standing else {}

    def model_ctx(summary: AgentSummary) -> RunContext:
        own = by_name.get(summary.model)
        if own is None or own == spec:
            return ctx
        return dataclasses.replace(
            ctx, model=own.label, provider=own.provider, hardware_scope="model" if own.is_local_model else "runner"
        )

    write_run_outputs(
        run_dir,
        results=result_rows(aggregator),
        leaderboard=[
            leaderboard_row(
                s,
                model_ctx(s),
                results=results,
                environment=ctx.environment.apportioned(shares[(s.model, s.agent_type)])
                if (s.model, s.agent_type) in shares
                else None,
                statistics=stats.get((s.model, s.agent_type)),
            )
            for s in summaries
        ],
        metadata=meta,
        traces=aggregator.trace_lines(),
        metrics=metrics,
    )
    if standing is not None:
        from smoltrace_export.comparison import write_comparison
        from smoltrace_export.statistics import write_statistics

        write_statistics(run_dir / STATISTICS_FILE, standing.statistics)
        if standing.comparisons:
            write_comparison(run_dir / COMPARISON_FILE, standing.comparisons)
    write_report(run_dir)
    return run_dir


def result_rows(aggregator: Aggregator) -> Iterator[dict[str, Any]]:
    """The results.json rows of every attempt, in order, made one at a time from the results read back from the
    journal (the same rows as :func:`smoltrace_export.rows.result_rows` of the results held in memory)."""
    from smoltrace_export.rows import result_row

    items = group_attempts(aggregator.digests)
    firsts = {(g.nodeid, g.first.record.attempt) for g in items if not g.cancelled}
    finals = {(g.nodeid, g.final.record.attempt) for g in items}
    for result in aggregator.iter_attempts():
        key = (result.nodeid, result.record.attempt)
        yield result_row(result, first=key in firsts, final=key in finals)


def write_report(run_dir: Path) -> None:
    """``report.html`` from the files just written (the last file: it reads them all); a failure is a warning, never
    the loss of the run."""
    from smoltrace_export.html_report import write_html_report

    try:
        write_html_report([run_dir], run_dir / REPORT_FILE)
    except (OSError, ValueError) as exc:
        log.warning("report.html could not be written in %s: %s", run_dir, exc)


def pricing(price: Price | None) -> dict[str, Any]:
    """A price as metadata.json records it (the run's, and each model's)."""
    return {
        "source": price.source if price else "unknown",
        "input_usd_per_1m": price.input_per_token * 1e6 if price else None,
        "output_usd_per_1m": price.output_per_token * 1e6 if price else None,
    }


def model_entry(identity: RunIdentity, spec: ModelSpec, contender: Contender) -> dict[str, Any]:
    """One model of the run in metadata.json: how it was given and reached, its generation settings (requested,
    applied, ignored and why) and its price."""
    from .generation import plan
    from .settings import redact_url

    price = identity.price_of(spec)
    return {
        "model": spec.label,
        "label": spec.name,
        "given_as": contender.model,
        "provider": spec.provider,
        "api_base": redact_url(spec.api_base) if spec.api_base else None,
        "generation": plan(spec.generation, spec).to_dict(),
        "pricing": pricing(price),
    }


def publish(run_dir: Path, *, private: bool) -> tuple[bool, list[str]]:
    """``--smoltrace-output hub``: publish the (already written) run directory; whether it worked, and the lines for
    the terminal summary (the URLs, or what failed)."""
    from smoltrace_export.hub import PublishError, publish_run_dir

    try:
        published = publish_run_dir(run_dir, private=private)
    except PublishError as exc:
        log.error("%s", exc)
        return False, [str(exc)]
    return True, [f"published: {url}" for url in published.urls]
