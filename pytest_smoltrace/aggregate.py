"""Controller side: collect item results as reports arrive, journal each one, write the run directory at the end.

Runs only where ``not hasattr(config, "workerinput")`` (the xdist controller, or the only process).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .journal import TRACE_JOURNAL, Journal
from .records import SCHEMA_VERSION, ItemResult
from .state import SmoltraceState
from .summary import AgentSummary, summarize

log = logging.getLogger(__name__)


class Aggregator:
    """Holds every finished item's result; appends each to ``journal.jsonl`` the moment it arrives.

    Trace documents go to ``traces.jsonl`` instead (they are large), and are gathered into ``traces.json`` at the end.
    """

    def __init__(self, run_dir: Path | None, previous: list[ItemResult] | None = None) -> None:
        self.run_dir = run_dir  # None: keep results in memory only (``--smoltrace-output none``)
        #: Results carried over from the journal of the run being resumed (already journaled).
        self.results: dict[str, ItemResult] = {r.nodeid: r for r in previous or ()}
        self.resumed = len(self.results)
        self._journal = Journal(run_dir) if run_dir is not None else None
        self._traces = Journal(run_dir, TRACE_JOURNAL) if run_dir is not None else None

    def add(self, result: ItemResult) -> None:
        if result.trace is not None:
            if self._traces is not None:
                self._traces.append_json({"nodeid": result.nodeid, **result.trace})
            result = dataclasses.replace(result, trace=None)
        self.results[result.nodeid] = result  # a rerun of the same node replaces the earlier result
        if self._journal is not None:
            self._journal.append(result)

    def trace_lines(self) -> Iterator[str]:
        """The JSON text of the latest trace document of each item that has a result, in result order.

        Streamed from ``traces.jsonl``: one pass notes each node's latest line offset (the node ids are all that is
        held), a second reads those lines back, so memory does not grow with the size of the traces."""
        if self.run_dir is None:
            return
        path = self.run_dir / TRACE_JOURNAL
        if self._traces is not None:
            self._traces.close()  # flushed and closed: what it wrote is all on disk
        latest: dict[str, int] = {}
        if not path.exists():
            return
        with open(path, "rb") as handle:
            offset = 0
            for line in handle:
                nodeid = _trace_nodeid(line)
                if nodeid is not None:
                    latest[nodeid] = offset
                offset += len(line)
            for nodeid in self.results:
                if nodeid in latest:
                    handle.seek(latest[nodeid])
                    yield handle.readline().decode("utf-8")

    def close(self) -> None:
        for journal in (self._journal, self._traces):
            if journal is not None:
                journal.close()

    def summaries(self, planned: dict[str, int]) -> list[AgentSummary]:
        return summarize(self.results.values(), planned)


def _trace_nodeid(line: bytes) -> str | None:
    """The node id of one complete ``traces.jsonl`` line (``None``: blank, cut short by a kill, or not a document)."""
    try:
        data = json.loads(line)
    except ValueError:
        if line.strip():
            log.warning("%s: a line cut short is ignored", TRACE_JOURNAL)
        return None
    nodeid = data.get("nodeid") if isinstance(data, dict) else None
    return nodeid if isinstance(nodeid, str) else None


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


def write_outputs(state: SmoltraceState, aggregator: Aggregator, *, interrupted: bool) -> Path:
    """Write the five files of the run directory (results, traces, metrics, leaderboard, metadata)."""
    from smoltrace_export.json_sink import write_run_outputs
    from smoltrace_export.rows import RunContext, environment_from_metrics, leaderboard_row, result_row

    from .telemetry.metrics import build_metrics_document

    assert aggregator.run_dir is not None
    settings = state.settings
    finished_at = time.time()
    results = sorted(aggregator.results.values(), key=lambda r: r.record.started_at)
    summaries = aggregator.summaries(state.planned)
    planned_total = sum(s.planned for s in summaries)
    completed = len(results)
    run_status = (
        "completed" if completed >= planned_total and not interrupted else ("partial" if completed else "failed")
    )
    spec = state.spec
    metrics = build_metrics_document(
        state.samples,
        run_id=state.run_id,
        model_is_local=spec.is_local_model,
        grid_intensity_g_per_kwh=settings.grid_intensity,
        energy_price_usd_per_kwh=settings.energy_price,
    )
    run_dir = aggregator.run_dir
    ctx = RunContext(
        model=spec.label,
        provider=spec.provider,
        run_id=state.run_id,
        dataset=settings.dataset,
        dataset_revision=settings.revision,
        started_at=state.started_at,
        finished_at=finished_at,
        run_status=run_status,
        task_timeout_s=settings.timeout,
        results_location=f"local:{run_dir}",
        traces_location=f"local:{run_dir / 'traces.json'}",
        metrics_location=f"local:{run_dir / 'metrics.json'}",
        hardware_scope="model" if spec.is_local_model else "runner",
        run_stop_reason="interrupted" if interrupted else "completed",
        environment=environment_from_metrics(metrics),
    )
    price = state.price
    meta = {
        "schema_version": SCHEMA_VERSION,
        "run_id": state.run_id,
        "model": spec.label,
        "provider": spec.provider,
        "api_base": spec.api_base,
        "dataset": settings.dataset,
        "split": settings.split,
        "dataset_revision": settings.revision,
        "run_status": run_status,
        "resumed_items": aggregator.resumed,
        "pricing": {
            "source": price.source if price else "unknown",
            "input_usd_per_1m": price.input_per_token * 1e6 if price else None,
            "output_usd_per_1m": price.output_per_token * 1e6 if price else None,
        },
        "options": settings.public_dict(),
        "counts": {
            "planned": planned_total,
            "completed": completed,
            "passed": sum(s.passed for s in summaries),
            "failed": sum(s.failed for s in summaries),
            "errored": sum(s.errored for s in summaries),
        },
        "timings": {
            "started_at": state.started_at,
            "finished_at": finished_at,
            "duration_s": round(finished_at - state.started_at, 3),
            # pytest's run loop only (the items), without start-up, collection and writing the output files
            "loop_s": round(state.loop_finished_at - state.loop_started_at, 3)
            if state.loop_started_at and state.loop_finished_at
            else None,
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
    }
    write_run_outputs(
        run_dir,
        results=[result_row(r) for r in results],
        leaderboard=[
            leaderboard_row(s, ctx, results=[r for r in results if r.record.agent_type == s.agent_type])
            for s in summaries
        ],
        metadata=meta,
        traces=aggregator.trace_lines(),
        metrics=metrics,
    )
    return run_dir


def publish(state: SmoltraceState, run_dir: Path) -> bool:
    """``--smoltrace-output hub``: publish the (already written) run directory; False when it failed."""
    from smoltrace_export.hub import PublishError, publish_run_dir

    try:
        published = publish_run_dir(run_dir, private=state.settings.private)
    except PublishError as exc:
        log.error("%s", exc)
        state.publish_lines.append(str(exc))
        return False
    state.publish_lines.extend(f"published: {url}" for url in published.urls)
    return True
