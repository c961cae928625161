"""Controller side: collect item results as reports arrive, journal each one, write the run directory at the end.

Runs only where ``not hasattr(config, "workerinput")`` (the xdist controller, or the only process).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .journal import Journal
from .records import SCHEMA_VERSION, ItemResult
from .state import SmoltraceState
from .summary import AgentSummary, summarize

log = logging.getLogger(__name__)


class Aggregator:
    """Holds every finished item's result; appends each to ``journal.jsonl`` the moment it arrives."""

    def __init__(self, run_dir: Path | None, previous: list[ItemResult] | None = None) -> None:
        self.run_dir = run_dir  # None: keep results in memory only (``--smoltrace-output none``)
        #: Results carried over from the journal of the run being resumed (already journaled).
        self.results: dict[str, ItemResult] = {r.nodeid: r for r in previous or ()}
        self.resumed = len(self.results)
        self._journal = Journal(run_dir) if run_dir is not None else None

    def add(self, result: ItemResult) -> None:
        self.results[result.nodeid] = result  # a rerun of the same node replaces the earlier result
        if self._journal is not None:
            self._journal.append(result)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()

    def summaries(self, planned: dict[str, int]) -> list[AgentSummary]:
        return summarize(self.results.values(), planned)


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
    """Write results.json, leaderboard_row.json and metadata.json into the run directory."""
    from smoltrace_export.json_sink import write_run_files
    from smoltrace_export.rows import RunContext, leaderboard_row, result_row

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
        results_location=f"local:{state.run_dir}",
    )
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
        "options": settings.public_dict(),
        "counts": {
            "planned": planned_total,
            "completed": completed,
            "passed": sum(s.passed for s in summaries),
            "failed": sum(s.failed for s in summaries),
            "errored": sum(s.errored for s in summaries),
            "num_results": completed,
        },
        "timings": {
            "started_at": state.started_at,
            "finished_at": finished_at,
            "duration_s": round(finished_at - state.started_at, 3),
        },
        "versions": {
            "python": sys.version.split()[0],
            **{
                d: _version(d)
                for d in ("pytest-smoltrace", "pytest", "pytest-xdist", "smolagents", "litellm", "datasets")
            },
        },
        "hardware": _hardware(),
    }
    write_run_files(
        state.run_dir,
        {
            "results.json": [result_row(r) for r in results],
            "leaderboard_row.json": [leaderboard_row(s, ctx) for s in summaries],
            "metadata.json": meta,
        },
    )
    return Path(state.run_dir)
