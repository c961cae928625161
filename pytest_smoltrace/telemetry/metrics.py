"""The ``metrics.json`` document: flattened time series, aggregates, energy/CO2/cost figures with labels.

``build_metrics_document(samples, run_id=..., model_is_local=...)`` merges the :class:`~.samples.Samples` of every
process (dicts from ``Samples.to_dict()`` are accepted too)::

    {"schema_version": 1, "run_id": str,
     "processes": [{"process", "pid", "host", "started_at", "ended_at", "interval_s", "gpu_unavailable",
                    "cpu_unavailable", "process_cpu_seconds", "logical_cpus"}],
     "gpus": [{"key": "host/uuid-or-index", "host", "gpu_id", "gpu_name", "uuid", "memory_total_mib"}],
     "hosts": [{"host", "processes": [str], "logical_cpus", "gpus": int, "process_cpu_seconds",
                "cpu_system_percent_avg", "cpu_system_percent_max", "system_memory_used_avg_mib",
                "system_memory_used_max_mib", "system_memory_percent_avg", "system_memory_percent_max"}],
     "series": [{"timestamp": ISO-8601 UTC, "timestamp_unix": float, "metric": str, "gpu_id": int | None,
                 "gpu_name": str | None, "value": float, "unit": str, "process": str, "host": str}],
     "aggregates": {"gpu_utilization_avg", "gpu_utilization_max", "gpu_memory_avg_mib", "gpu_memory_max_mib",
                    "gpu_temperature_avg", "gpu_temperature_max", "gpu_power_avg_w",
                    "cpu_process_percent_avg", "cpu_process_percent_max", "cpu_system_percent_avg",
                    "cpu_system_percent_max", "process_rss_avg_mib", "process_rss_max_mib",
                    "system_memory_used_avg_mib", "system_memory_used_max_mib", "system_memory_percent_avg",
                    "system_memory_percent_max", "process_cpu_seconds",
                    "per_gpu": [{"key", "gpu_id", "gpu_name", "samples", "utilization_avg", ..., "energy_wh": Figure}]},
     "energy": {"gpu_wh": Figure, "cpu_wh": Figure, "local_wh": Figure, "remote_inference_wh": Figure (remote models)},
     "co2_g": Figure, "power_cost_usd": Figure,
     "labels": {"gpu_metrics": "measured (NVML)" | reason, "cpu_metrics": "measured (psutil)" | reason},
     "assumptions": {"grid_intensity_g_per_kwh", "grid_intensity_source", "energy_price_usd_per_kwh",
                     "energy_price_source", "cpu_tdp_w"},
     "unavailable": {"gpu": "unavailable: no NVIDIA GPU", ...}}      # empty when everything was sampled

Series metric names and units: ``gpu.utilization`` (%), ``gpu.memory.used`` (MiB), ``gpu.temperature`` (Cel),
``gpu.power`` (W), ``process.cpu.utilization`` (%, per core), ``system.cpu.utilization`` (%),
``process.memory.rss`` (MiB), ``system.memory.used`` (MiB), ``system.memory.utilization`` (%).

``hosts``: one entry per machine that sampled (xdist workers on other hosts, ``--tx ssh=…``), in order of first
appearance: its processes, and the machine-wide CPU and memory figures of its own readings only — the run-wide
``cpu_system_*`` and ``system_memory_*`` aggregates pool the readings of every host.

Aggregation: the seven ``gpu_*`` columns pool every reading of every GPU (a per-GPU mean/max; ``null`` without
GPU readings); per-GPU aggregates keep each GPU apart. Energy is summed over GPUs (each GPU counted once even when
several xdist workers sampled it: the counter difference is taken over the union of their windows, power
readings are merged) and over processes for CPU. A Figure is ``{"value", "unit", "label", "scope", "method"}``
(:mod:`.energy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .energy import (
    DEFAULT_CPU_TDP_W,
    DEFAULT_ENERGY_PRICE_USD_PER_KWH,
    DEFAULT_GRID_INTENSITY_G_PER_KWH,
    ENERGY_PRICE_SOURCE,
    GRID_INTENSITY_SOURCE,
    Figure,
    co2_g,
    cpu_energy_wh,
    gpu_energy_wh,
    power_cost_usd,
    remote_inference_energy,
    total,
)
from .samples import GpuDevice, GpuReading, Samples

__all__ = ["GPU_COLUMNS", "SCHEMA_VERSION", "build_metrics_document"]

SCHEMA_VERSION = 1
#: The per-run GPU columns (null when no GPU was sampled).
GPU_COLUMNS = (
    "gpu_utilization_avg",
    "gpu_utilization_max",
    "gpu_memory_avg_mib",
    "gpu_memory_max_mib",
    "gpu_temperature_avg",
    "gpu_temperature_max",
    "gpu_power_avg_w",
)
_GPU_METRICS = (
    ("utilization_pct", "gpu.utilization", "%"),
    ("memory_used_mib", "gpu.memory.used", "MiB"),
    ("temperature_c", "gpu.temperature", "Cel"),
    ("power_w", "gpu.power", "W"),
)
_CPU_METRICS = (
    ("process_cpu_pct", "process.cpu.utilization", "%"),
    ("system_cpu_pct", "system.cpu.utilization", "%"),
    ("process_rss_mib", "process.memory.rss", "MiB"),
    ("system_memory_used_mib", "system.memory.used", "MiB"),
    ("system_memory_pct", "system.memory.utilization", "%"),
)


def _avg(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _series(samples: Sequence[Samples]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(
        s: Samples, reading: Any, metrics: Sequence[tuple[str, str, str]], gpu_id: int | None, gpu_name: Any
    ) -> None:
        for attr, metric, unit in metrics:
            value = getattr(reading, attr)
            if value is not None:
                rows.append(
                    {
                        "timestamp": _iso(reading.timestamp),
                        "timestamp_unix": reading.timestamp,
                        "metric": metric,
                        "gpu_id": gpu_id,
                        "gpu_name": gpu_name,
                        "value": value,
                        "unit": unit,
                        "process": s.process,
                        "host": s.host,
                    }
                )

    for s in samples:
        names = {g.index: g.name for g in s.gpus}
        for reading in s.gpu_readings:
            add(s, reading, _GPU_METRICS, reading.gpu, names.get(reading.gpu))
        for cpu in s.cpu_readings:
            add(s, cpu, _CPU_METRICS, None, None)
    rows.sort(key=lambda r: (r["timestamp_unix"], r["metric"], r["gpu_id"] if r["gpu_id"] is not None else -1))
    return rows


def _per_gpu(samples: Sequence[Samples]) -> list[dict[str, Any]]:
    devices: dict[str, list[tuple[Samples, GpuDevice]]] = {}
    readings: dict[str, list[GpuReading]] = {}
    for s in samples:
        for device in s.gpus:
            key = device.key(s.host)
            devices.setdefault(key, []).append((s, device))
            readings.setdefault(key, []).extend(r for r in s.gpu_readings if r.gpu == device.index)
    out: list[dict[str, Any]] = []
    for key, seen in devices.items():
        first = seen[0][1]
        rows = sorted(readings[key], key=lambda r: r.timestamp)
        starts = [d.energy_start_mj for _, d in seen]
        ends = [d.energy_end_mj for _, d in seen]
        measured = all(v is not None for v in starts + ends)
        interval = max(s.interval_s for s, _ in seen)
        energy = gpu_energy_wh(
            [(r.timestamp, r.power_w) for r in rows],
            counter_start_mj=min(v for v in starts if v is not None) if measured else None,
            counter_end_mj=max(v for v in ends if v is not None) if measured else None,
            max_gap_s=3 * interval,
        )
        out.append(
            {
                "key": key,
                "host": seen[0][0].host,
                "gpu_id": first.index,
                "gpu_name": first.name,
                "uuid": first.uuid,
                "memory_total_mib": first.memory_total_mib,
                "samples": len(rows),
                "utilization_avg": _avg(r.utilization_pct for r in rows),
                "utilization_max": _max(r.utilization_pct for r in rows),
                "memory_avg_mib": _avg(r.memory_used_mib for r in rows),
                "memory_max_mib": _max(r.memory_used_mib for r in rows),
                "temperature_avg": _avg(r.temperature_c for r in rows),
                "temperature_max": _max(r.temperature_c for r in rows),
                "power_avg_w": _avg(r.power_w for r in rows),
                "power_max_w": _max(r.power_w for r in rows),
                "energy_wh": energy.to_dict(),
            }
        )
    return out


def _per_host(samples: Sequence[Samples]) -> list[dict[str, Any]]:
    """Each machine apart: its processes and its machine-wide figures (the run-wide ones pool every host)."""
    hosts: dict[str, list[Samples]] = {}
    for s in samples:
        hosts.setdefault(s.host, []).append(s)
    out: list[dict[str, Any]] = []
    for host, group in hosts.items():
        cpu = [r for s in group for r in s.cpu_readings]
        seconds = [s.process_cpu_seconds for s in group if s.process_cpu_seconds is not None]
        out.append(
            {
                "host": host,
                "processes": [s.process for s in group],
                "logical_cpus": next((s.logical_cpus for s in group if s.logical_cpus is not None), None),
                "gpus": len({d.key(host) for s in group for d in s.gpus}),
                "process_cpu_seconds": sum(seconds) if seconds else None,
                "cpu_system_percent_avg": _avg(r.system_cpu_pct for r in cpu),
                "cpu_system_percent_max": _max(r.system_cpu_pct for r in cpu),
                "system_memory_used_avg_mib": _avg(r.system_memory_used_mib for r in cpu),
                "system_memory_used_max_mib": _max(r.system_memory_used_mib for r in cpu),
                "system_memory_percent_avg": _avg(r.system_memory_pct for r in cpu),
                "system_memory_percent_max": _max(r.system_memory_pct for r in cpu),
            }
        )
    return out


def _as_samples(item: Samples | Mapping[str, Any]) -> Samples:
    return item if isinstance(item, Samples) else Samples.from_dict(dict(item))


def build_metrics_document(
    samples: Sequence[Samples | Mapping[str, Any]],
    *,
    run_id: str,
    model_is_local: bool = True,
    grid_intensity_g_per_kwh: float = DEFAULT_GRID_INTENSITY_G_PER_KWH,
    energy_price_usd_per_kwh: float = DEFAULT_ENERGY_PRICE_USD_PER_KWH,
    cpu_tdp_w: float = DEFAULT_CPU_TDP_W,
) -> dict[str, Any]:
    """Merge every process's samples into the ``metrics.json`` document (format in the module docstring)."""
    merged = [_as_samples(s) for s in samples]
    gpu_readings = [r for s in merged for r in s.gpu_readings]
    cpu_readings = [r for s in merged for r in s.cpu_readings]

    unavailable: dict[str, str] = {}
    if not merged:
        unavailable["gpu"] = unavailable["cpu"] = "unavailable: not sampled"
    else:
        if not gpu_readings:
            reasons = sorted({s.gpu_unavailable for s in merged if s.gpu_unavailable})
            unavailable["gpu"] = "; ".join(reasons) or "unavailable: no GPU readings"
        if not cpu_readings:
            reasons = sorted({s.cpu_unavailable for s in merged if s.cpu_unavailable})
            unavailable["cpu"] = "; ".join(reasons) or "unavailable: no CPU readings"

    per_gpu = _per_gpu(merged)
    aggregates: dict[str, Any] = {
        "gpu_utilization_avg": _avg(r.utilization_pct for r in gpu_readings),
        "gpu_utilization_max": _max(r.utilization_pct for r in gpu_readings),
        "gpu_memory_avg_mib": _avg(r.memory_used_mib for r in gpu_readings),
        "gpu_memory_max_mib": _max(r.memory_used_mib for r in gpu_readings),
        "gpu_temperature_avg": _avg(r.temperature_c for r in gpu_readings),
        "gpu_temperature_max": _max(r.temperature_c for r in gpu_readings),
        "gpu_power_avg_w": _avg(r.power_w for r in gpu_readings),
        "cpu_process_percent_avg": _avg(r.process_cpu_pct for r in cpu_readings),
        "cpu_process_percent_max": _max(r.process_cpu_pct for r in cpu_readings),
        "cpu_system_percent_avg": _avg(r.system_cpu_pct for r in cpu_readings),
        "cpu_system_percent_max": _max(r.system_cpu_pct for r in cpu_readings),
        "process_rss_avg_mib": _avg(r.process_rss_mib for r in cpu_readings),
        "process_rss_max_mib": _max(r.process_rss_mib for r in cpu_readings),
        "system_memory_used_avg_mib": _avg(r.system_memory_used_mib for r in cpu_readings),
        "system_memory_used_max_mib": _max(r.system_memory_used_mib for r in cpu_readings),
        "system_memory_percent_avg": _avg(r.system_memory_pct for r in cpu_readings),
        "system_memory_percent_max": _max(r.system_memory_pct for r in cpu_readings),
        "process_cpu_seconds": (
            sum(s.process_cpu_seconds for s in merged if s.process_cpu_seconds is not None)
            if any(s.process_cpu_seconds is not None for s in merged)
            else None
        ),
        "per_gpu": per_gpu,
    }

    gpu_parts = [Figure.from_dict(g["energy_wh"]) for g in per_gpu]
    gpu_energy = (
        total(gpu_parts, unit="Wh", method="sum over GPUs")
        if gpu_parts
        else Figure.unavailable("Wh", unavailable.get("gpu", "unavailable: no GPU"))
    )
    cpu_energy = total(
        [cpu_energy_wh(s.process_cpu_seconds, s.logical_cpus, cpu_tdp_w=cpu_tdp_w) for s in merged],
        unit="Wh",
        method=f"sum over processes of process CPU-seconds × {cpu_tdp_w:g} W TDP / logical CPUs",
    )
    local_parts = [f for f in (gpu_energy, cpu_energy) if f.label != "unavailable"]
    local_energy = (
        total(local_parts, unit="Wh", method="GPU energy + CPU energy estimate")
        if local_parts
        else Figure.unavailable("Wh", "no local energy figure")
    )
    energy: dict[str, Any] = {
        "gpu_wh": gpu_energy.to_dict(),
        "cpu_wh": cpu_energy.to_dict(),
        "local_wh": local_energy.to_dict(),
    }
    if not model_is_local:
        energy["remote_inference_wh"] = remote_inference_energy().to_dict()

    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "processes": [
            {
                "process": s.process,
                "pid": s.pid,
                "host": s.host,
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "interval_s": s.interval_s,
                "gpu_unavailable": s.gpu_unavailable,
                "cpu_unavailable": s.cpu_unavailable,
                "process_cpu_seconds": s.process_cpu_seconds,
                "logical_cpus": s.logical_cpus,
            }
            for s in merged
        ],
        "gpus": [{k: g[k] for k in ("key", "host", "gpu_id", "gpu_name", "uuid", "memory_total_mib")} for g in per_gpu],
        "hosts": _per_host(merged),
        "series": _series(merged),
        "aggregates": aggregates,
        "energy": energy,
        "co2_g": co2_g(local_energy, grid_intensity_g_per_kwh=grid_intensity_g_per_kwh).to_dict(),
        "power_cost_usd": power_cost_usd(local_energy, price_usd_per_kwh=energy_price_usd_per_kwh).to_dict(),
        "labels": {
            "gpu_metrics": "measured (NVML)" if gpu_readings else unavailable.get("gpu", "unavailable"),
            "cpu_metrics": "measured (psutil)" if cpu_readings else unavailable.get("cpu", "unavailable"),
        },
        "assumptions": {
            "grid_intensity_g_per_kwh": grid_intensity_g_per_kwh,
            "grid_intensity_source": GRID_INTENSITY_SOURCE
            if grid_intensity_g_per_kwh == DEFAULT_GRID_INTENSITY_G_PER_KWH
            else "user-set (--smoltrace-grid-intensity)",
            "energy_price_usd_per_kwh": energy_price_usd_per_kwh,
            "energy_price_source": ENERGY_PRICE_SOURCE
            if energy_price_usd_per_kwh == DEFAULT_ENERGY_PRICE_USD_PER_KWH
            else "user-set (--smoltrace-energy-price)",
            "cpu_tdp_w": cpu_tdp_w,
        },
        "unavailable": unavailable,
    }
