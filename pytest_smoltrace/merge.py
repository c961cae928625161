"""``smoltrace-merge``: run directories of one benchmark — the shards of ``--smoltrace-shard``, or any runs made with
the same settings — become one run directory.

The merged directory is written by the code that writes a session's own at its end: the attempts go through an
:class:`~.aggregate.Aggregator` (``journal.jsonl``, ``traces.jsonl``, then results, traces, metrics, leaderboard,
metadata and ``report.html`` through :func:`~.aggregate.write_outputs`), the statistics and comparisons through
:func:`~.gate.standing`, and ``settings.json`` through :func:`~.resume.write_run_settings` (so ``--smoltrace-resume``
of the merged run runs what the shards lacked). It lives in ``pytest_smoltrace``, not ``smoltrace_export``, because
that code does and ``smoltrace_export`` must not import ``pytest_smoltrace``.

Refused (:class:`MergeError`, nothing written): an input that is not a finished run directory, an output directory
that already holds something, inputs made with other run settings (every setting but :data:`NOT_COMPARED`), the
same item (node id, repeat, model) in two inputs, shards of different splits. An incomplete shard set is a warning
naming the missing shards. Results keep the collection order of the unsharded run (each shard's metadata.json
records it); each input's metrics processes are renamed ``<input run id>/<process>`` so that they stay apart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .records import ItemResult
from .settings import Settings
from .shard import Shard

log = logging.getLogger(__name__)

#: Settings that say where and how a run was carried out on its machine, not what it ran: not compared. Everything
#: else (model lineup, dataset and revision, agent types, limits, tools, prompts, generation and judging options,
#: prices, energy assumptions, baseline) must be equal.
NOT_COMPARED = frozenset(
    {
        "shard",
        "run_id",
        "resume",
        "resume_force",
        "output",
        "output_dir",
        "private",
        "working_dir",
        "cassette_dir",
        "concurrency",
        "otlp",
        "gpu_metrics",
        "sample_interval",
        "limits_url",
    }
)
_PATHS = ("models", "working_dir", "prompt_yml", "output_dir", "cassette_dir")


class MergeError(Exception):
    """The inputs cannot be merged (the message says which input and why); nothing was written."""


@dataclass(frozen=True)
class RunInput:
    """One run directory given to the merge, read."""

    run_dir: Path
    run_id: str
    #: The settings it ran with (settings.json, else metadata.json's ``options``).
    settings: dict[str, Any]
    metadata: dict[str, Any]
    #: Every attempt in its journal, in journal order.
    attempts: tuple[ItemResult, ...]

    @property
    def shard(self) -> Shard | None:
        entry = self.metadata.get("shard")
        return Shard.from_dict(entry if entry is not None else self.settings.get("shard"))

    @property
    def order(self) -> list[str]:
        """The node ids in this run's results order (results.json's, else the journal's)."""
        try:
            rows = json.loads((self.run_dir / "results.json").read_text(encoding="utf-8"))
            ids = [str(row["test_case_uid"]) for row in rows]
        except (OSError, ValueError, TypeError, KeyError):
            ids = [r.nodeid for r in self.attempts]
        return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class Merged:
    """What :func:`merge` wrote: the run directory, its items and attempts, and the warnings it gave."""

    run_dir: Path
    items: int
    attempts: int
    passed: int
    warnings: tuple[str, ...]


def read_input(run_dir: Path) -> RunInput:
    """A run directory as the merge reads it; :class:`MergeError` naming it when it is not a finished one."""
    from .aggregate import journal_attempts
    from .journal import JOURNAL
    from .resume import read_run_settings

    if not run_dir.is_dir():
        raise MergeError(f"{run_dir}: not a directory (expected a run directory, <output-dir>/<run-id>)")
    if not (run_dir / JOURNAL).is_file():
        raise MergeError(f"{run_dir}: no {JOURNAL}: not a pytest-smoltrace run directory")
    try:
        metadata = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(
            f"{run_dir}: no metadata.json: the run did not finish writing its outputs (killed?); complete it with "
            "--smoltrace-resume RUN_ID, then merge"
        ) from None
    except (OSError, ValueError) as exc:
        raise MergeError(f"{run_dir / 'metadata.json'}: not readable JSON ({exc})") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("models"), list) or not metadata["models"]:
        raise MergeError(f"{run_dir / 'metadata.json'}: no 'models' list (a run directory of an older version?)")
    settings, _ = read_run_settings(run_dir)
    if settings is None:
        raise MergeError(f"{run_dir}: neither settings.json nor metadata.json holds the run's settings")
    return RunInput(
        run_dir=run_dir,
        run_id=str(metadata.get("run_id") or run_dir.name),
        settings=settings,
        metadata=metadata,
        attempts=tuple(journal_attempts(run_dir)),
    )


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def settings_conflicts(inputs: Sequence[RunInput]) -> list[str]:
    """One line per setting on which an input differs from the first: the option, both directories and values. A
    setting one of the two files lacks (an older version wrote it) is not compared."""
    from .preflight import comparable

    def normal(settings: Mapping[str, Any]) -> dict[str, Any]:
        model = settings.get("model")
        return {**settings, "model": [model] if isinstance(model, str) else model}

    first = normal(inputs[0].settings)
    lines: list[str] = []
    for other in inputs[1:]:
        now = normal(other.settings)
        for key in first:
            if key in NOT_COMPARED or key not in now:
                continue
            a, b = comparable(first[key]), comparable(now[key])
            if a != b:
                lines.append(
                    f"--smoltrace-{key.replace('_', '-')}: {inputs[0].run_dir} has {_show(a)}, "
                    f"{other.run_dir} has {_show(b)}"
                )
    return lines


def duplicate_items(inputs: Sequence[RunInput]) -> list[str]:
    """One line per item (node id, repeat, model) found in two inputs, naming both."""
    seen: dict[tuple[str, int, str], Path] = {}
    lines: list[str] = []
    for run in inputs:
        mine: set[tuple[str, int, str]] = set()
        for result in run.attempts:
            key = (result.nodeid, result.record.repeat, result.record.model_name)
            if key in mine:
                continue  # another attempt of the same item in the same run: reruns are attempts of one item
            mine.add(key)
            where = seen.setdefault(key, run.run_dir)
            if where != run.run_dir:
                lines.append(f"{key[0]} (repeat {key[1]}, model {key[2]}) is in {where} and in {run.run_dir}")
    return lines


def shard_problems(inputs: Sequence[RunInput]) -> tuple[list[str], list[str]]:
    """Errors (shards of different splits, one shard twice) and warnings (shards missing from the set)."""
    sharded = [(run, run.shard) for run in inputs if run.shard is not None]
    if not sharded:
        return [], []
    counts = {shard.count for _, shard in sharded}
    if len(counts) > 1:
        given = ", ".join(f"{run.run_dir} is {shard}" for run, shard in sharded)
        return [f"the shards come from different splits: {given}"], []
    count = counts.pop()
    errors: list[str] = []
    by_index: dict[int, Path] = {}
    for run, shard in sharded:
        held = by_index.setdefault(shard.index, run.run_dir)
        if held != run.run_dir:
            errors.append(f"shard {shard} is given twice: {held} and {run.run_dir}")
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in by_index]
    warnings = (
        [f"the shard set is incomplete: {', '.join(missing)} missing (their items are not in the merged run)"]
        if missing
        else []
    )
    return errors, warnings


def settings_from_dict(data: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from their ``public_dict`` (settings.json); a setting it lacks takes the option's default."""
    from .options import OPTIONS_BY_NAME

    values: dict[str, Any] = {}
    for f in fields(Settings):
        spec = OPTIONS_BY_NAME.get(f.name.replace("_", "-"))
        default = spec.default if spec is not None else f.default
        value = data.get(f.name, default)
        if f.name == "field_map":
            value = tuple(tuple(pair) for pair in value) if value is not None else None
        elif f.name == "shard":
            value = Shard.from_dict(value)
        elif spec is not None and spec.kind == "list":
            value = tuple(value or ())
        elif f.name in _PATHS and value is not None:
            value = Path(value)
        values[f.name] = value
    return Settings(**values)


def _identity(run: RunInput, settings: Settings, run_id: str, started_at: float) -> Any:
    """The merged run's identity: the inputs' settings, and the models as the first input's metadata.json recorded
    them (served where they were served: a scripted or local model's address is the one that run had)."""
    from .generation import Generation
    from .identity import RunIdentity
    from .lineup import Contender
    from .models import ModelSpec

    contenders, specs = [], []
    for entry in run.metadata["models"]:
        generation = Generation.from_dict(dict((entry.get("generation") or {}).get("requested") or {}))
        pricing = entry.get("pricing") or {}
        custom = pricing.get("source") == "custom"
        label = entry.get("label")
        contenders.append(
            Contender(
                model=str(entry.get("given_as") or entry["model"]),
                provider=str(entry["provider"]),
                api_base=entry.get("api_base"),
                hf_inference_provider=settings.hf_inference_provider,
                generation=generation,
                label=label,
                price_input=pricing.get("input_usd_per_1m") if custom else None,
                price_output=pricing.get("output_usd_per_1m") if custom else None,
            )
        )
        specs.append(
            ModelSpec(
                str(entry["model"]),
                str(entry["provider"]),
                entry.get("api_base"),
                settings.timeout,
                retries=settings.retries,
                max_rpm=settings.max_rpm,
                inference_provider=settings.hf_inference_provider,
                generation=generation,
                name=label,
            )
        )
    return RunIdentity(
        settings=settings, run_id=run_id, contenders=tuple(contenders), specs=tuple(specs), started_at=started_at
    )


def _traces(run_dir: Path) -> dict[tuple[str, ...], dict[str, Any]]:
    """An input's trace documents by trace id and by (node id, attempt); later lines win, as at the end of a run."""
    from .journal import TRACE_JOURNAL, read_jsonl

    documents: Iterable[Any] = read_jsonl(run_dir / TRACE_JOURNAL)
    if not (run_dir / TRACE_JOURNAL).exists() and (run_dir / "traces.json").is_file():
        try:
            documents = json.loads((run_dir / "traces.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: not readable (%s); the merged run has no traces from it", run_dir / "traces.json", exc)
            documents = []
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for doc in documents:
        if not isinstance(doc, dict) or not isinstance(doc.get("nodeid"), str):
            continue
        attempt = doc.get("attempt", 0)
        found[("attempt", doc["nodeid"], str(attempt if isinstance(attempt, int) else 0))] = doc
        if isinstance(doc.get("trace_id"), str):
            found[("trace", doc["trace_id"])] = doc
    return found


def _planned(inputs: Sequence[RunInput]) -> dict[tuple[str, str], int]:
    """Items planned per (model name, agent type): the sum of the inputs' (their leaderboard rows record them)."""
    planned: dict[tuple[str, str], int] = {}
    for run in inputs:
        try:
            rows = json.loads((run.run_dir / "leaderboard_row.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rows = []
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, dict) and isinstance(row.get("planned_tests"), int):
                key = (str(row.get("model_label") or row.get("model")), str(row.get("agent_type")))
                planned[key] = planned.get(key, 0) + row["planned_tests"]
    return planned


def _samples(inputs: Sequence[RunInput]) -> list[Any]:
    from .telemetry.readback import samples_from_document

    offsets: dict[str, float] = {}
    samples: list[Any] = []
    for run in inputs:
        try:
            doc = json.loads((run.run_dir / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: no readable metrics.json (%s); its processes are not in the merged metrics", run, exc)
            continue
        try:
            samples += samples_from_document(doc, tag=run.run_id, energy_offsets=offsets)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: metrics.json is not in the expected form (%s); left out of the merged metrics", run, exc)
    return samples


def _order(inputs: Sequence[RunInput]) -> list[str]:
    """The unsharded run's collection order (recorded by each shard), then what no shard recorded, input by input."""
    order: list[str] = []
    for run in inputs:
        recorded = (run.metadata.get("shard") or {}).get("collection_order")
        if isinstance(recorded, list) and recorded:
            order = [str(n) for n in recorded]
            break
    for run in inputs:
        order += run.order
    return list(dict.fromkeys(order))


def _entry(run: RunInput) -> dict[str, Any]:
    """One input as the merged metadata.json's ``merged_from`` records it."""
    meta = run.metadata
    shard = run.shard
    return {
        "run_dir": str(run.run_dir),
        "run_id": run.run_id,
        "shard": shard.to_dict() if shard else None,
        "items": len({r.nodeid for r in run.attempts}),
        "attempts": len(run.attempts),
        "run_status": meta.get("run_status"),
        "run_stop_reason": meta.get("run_stop_reason"),
        "timings": meta.get("timings"),
        "hardware": meta.get("hardware"),
        "versions": meta.get("versions"),
    }


def check_output(out: Path, inputs: Sequence[RunInput]) -> None:
    """The output must be a new (or empty) directory, not one of the inputs."""
    resolved = out.resolve()
    for run in inputs:
        if run.run_dir.resolve() == resolved:
            raise MergeError(f"-o {out}: is one of the inputs; write the merged run to a new directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError(f"-o {out}: already exists and is not empty; nothing is overwritten, give a new directory")


def merge(run_dirs: Sequence[Path], out: Path, *, complete: bool = False) -> Merged:
    """Merge ``run_dirs`` into the new run directory ``out`` (its name is the merged run's id). ``complete``: an
    incomplete shard set is an error, not a warning. Raises :class:`MergeError` before anything is written."""
    from .aggregate import Aggregator, write_outputs
    from .gate import load_baseline, standing

    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise MergeError("no run directory to merge")
    seen: dict[Path, Path] = {}
    for path in paths:
        held = seen.setdefault(path.resolve(), path)
        if held is not path:
            raise MergeError(f"{path}: given twice")
    inputs = [read_input(path) for path in paths]
    check_output(out, inputs)
    out = out.resolve()
    conflicts = settings_conflicts(inputs)
    if conflicts:
        raise MergeError("the runs were made with other run settings:\n" + "\n".join(f"  {c}" for c in conflicts))
    duplicates = duplicate_items(inputs)
    if duplicates:
        shown = duplicates[:10] + ([f"… and {len(duplicates) - 10} more"] if len(duplicates) > 10 else [])
        raise MergeError("the same item is in two run directories:\n" + "\n".join(f"  {d}" for d in shown))
    errors, warnings = shard_problems(inputs)
    if complete and warnings:
        errors += warnings
    if errors:
        raise MergeError("\n".join(errors))
    for warning in warnings:
        log.warning("smoltrace-merge: %s", warning)

    run_id = out.name
    settings = dataclasses.replace(
        settings_from_dict(inputs[0].settings), run_id=run_id, output_dir=out.parent, shard=None, resume=None
    )
    started = [float(t["started_at"]) for r in inputs if isinstance(t := r.metadata.get("timings"), dict)]
    identity = _identity(inputs[0], settings, run_id, min(started, default=0.0))
    baseline = None
    if settings.baseline:
        import pytest

        try:
            baseline = load_baseline(settings)
        except pytest.UsageError as exc:
            warnings.append(f"the baseline is left out of comparison.json: {exc}")
            log.warning("smoltrace-merge: %s", warnings[-1])

    from .resume import write_run_settings

    try:
        write_run_settings(identity, None)
    except Exception as exc:  # pytest.UsageError naming the directory
        raise MergeError(f"-o {out}: cannot write the run directory: {exc}") from None
    aggregator = Aggregator(out)
    aggregator.set_order(_order(inputs))
    try:
        for run in inputs:
            traces = _traces(run.run_dir)
            for result in run.attempts:
                record = result.record
                doc = traces.get(("trace", record.trace_id)) if record.trace_id else None
                if doc is None:
                    doc = traces.get(("attempt", result.nodeid, str(record.attempt)))
                trace = None
                if doc is not None:
                    trace = {k: v for k, v in doc.items() if k not in ("nodeid", "attempt")}
                    trace["run_id"] = run_id
                aggregator.add(
                    dataclasses.replace(result, record=dataclasses.replace(record, run_id=run_id), trace=trace)
                )
        try:
            stand = standing(aggregator.attempts, baseline, models=len(identity.specs))
        except Exception as exc:  # statistics must never cost the merged run its outputs
            warnings.append(f"statistics.json and comparison.json not written: {exc}")
            log.error("smoltrace-merge: %s", warnings[-1])
            stand = None
        metas = [r.metadata for r in inputs]
        stops = [f"{r.run_id}: {m.get('run_stop_reason')}" for r, m in zip(inputs, metas, strict=True)]
        interrupted = any(m.get("run_stop_reason") not in (None, "completed") for m in metas)
        loops = [t["loop_s"] for m in metas if isinstance(t := m.get("timings"), dict) and t.get("loop_s")]
        write_outputs(
            identity,
            aggregator,
            planned=_planned(inputs),
            samples=_samples(inputs),
            resumed_from_settings=None,
            loop_s=max(loops) if loops else None,
            interrupted=interrupted,
            stop_reason="; ".join(s for s in stops if not s.endswith(": completed")) or None,
            standing=stand,
            extra={"merged_from": [_entry(r) for r in inputs]},
        )
        finals = aggregator.results
    finally:
        aggregator.close()
    return Merged(
        run_dir=out,
        items=len(finals),
        attempts=len(aggregator.attempts),
        passed=sum(r.verdict.passed for r in finals.values()),
        warnings=tuple(warnings),
    )
