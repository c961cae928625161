"""A ``metrics.json`` document read back into the :class:`~.samples.Samples` it was built from (``smoltrace-merge``).

The document keeps every reading (its ``series``) and every process, so the samples come back reading for reading;
each process is renamed ``<tag>/<process>`` so that the processes of several runs stay apart in the merged
document (two shards on one machine are both ``main``). What the document does not keep is a GPU's raw NVML energy
counter, only the counter difference (``energy_wh``, ``measured``): the samples get counters on a running axis per GPU
(``energy_offsets``), so that :func:`~.metrics.build_metrics_document` sums the measured energy of the runs that used
one GPU one after the other instead of taking the largest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metrics import _CPU_METRICS, _GPU_METRICS
from .samples import CpuReading, GpuDevice, GpuReading, Samples

__all__ = ["samples_from_document"]

_MJ_PER_WH = 3.6e6
_GPU_ATTR = {metric: attr for attr, metric, _ in _GPU_METRICS}
_CPU_ATTR = {metric: attr for attr, metric, _ in _CPU_METRICS}


def samples_from_document(
    doc: Mapping[str, Any], *, tag: str, energy_offsets: dict[str, float] | None = None
) -> list[Samples]:
    """The samples of every process of one ``metrics.json`` document, processes named ``<tag>/<process>``.

    ``energy_offsets``: per GPU key, where the next run's counter starts (updated here); pass the same dict for every
    document of one merge."""
    offsets = energy_offsets if energy_offsets is not None else {}
    gpu_rows: dict[tuple[str, str], dict[tuple[float, int], dict[str, float]]] = {}
    cpu_rows: dict[tuple[str, str], dict[float, dict[str, float]]] = {}
    for row in doc.get("series") or ():
        where = (str(row.get("process", "")), str(row.get("host", "")))
        metric, stamp = row.get("metric"), float(row["timestamp_unix"])
        if metric in _GPU_ATTR and row.get("gpu_id") is not None:
            gpu_rows.setdefault(where, {}).setdefault((stamp, int(row["gpu_id"])), {})[_GPU_ATTR[metric]] = row["value"]
        elif metric in _CPU_ATTR:
            cpu_rows.setdefault(where, {}).setdefault(stamp, {})[_CPU_ATTR[metric]] = row["value"]
    measured: dict[str, float] = {}
    for gpu in (doc.get("aggregates") or {}).get("per_gpu") or ():
        energy = gpu.get("energy_wh") or {}
        if energy.get("label") == "measured" and energy.get("value") is not None:
            measured[str(gpu["key"])] = float(energy["value"]) * _MJ_PER_WH
    devices = [g for g in doc.get("gpus") or () if isinstance(g, Mapping)]
    out: list[Samples] = []
    for process in doc.get("processes") or ():
        where = (str(process.get("process", "")), str(process.get("host", "")))
        readings = [
            GpuReading.from_dict({"timestamp": stamp, "gpu": gpu, **values})
            for (stamp, gpu), values in sorted(gpu_rows.get(where, {}).items())
        ]
        used = {r.gpu for r in readings}
        gpus = []
        for device in devices:
            if device.get("host") != where[1] or device.get("gpu_id") not in used:
                continue
            key = str(device.get("key"))
            start = offsets.get(key, 0.0)
            gpus.append(
                GpuDevice(
                    index=int(device["gpu_id"]),
                    name=str(device.get("gpu_name") or ""),
                    uuid=device.get("uuid"),
                    memory_total_mib=device.get("memory_total_mib"),
                    energy_start_mj=start if key in measured else None,
                    energy_end_mj=start + measured[key] if key in measured else None,
                )
            )
        out.append(
            Samples(
                process=f"{tag}/{where[0]}",
                pid=int(process.get("pid") or 0),
                host=where[1],
                started_at=float(process["started_at"]),
                ended_at=float(process["ended_at"]),
                interval_s=float(process.get("interval_s") or 1.0),
                gpus=tuple(gpus),
                gpu_readings=tuple(readings),
                cpu_readings=tuple(
                    CpuReading.from_dict({"timestamp": stamp, **values})
                    for stamp, values in sorted(cpu_rows.get(where, {}).items())
                ),
                process_cpu_seconds=process.get("process_cpu_seconds"),
                logical_cpus=process.get("logical_cpus"),
                gpu_unavailable=process.get("gpu_unavailable"),
                cpu_unavailable=process.get("cpu_unavailable"),
            )
        )
    for key, energy in measured.items():
        offsets[key] = offsets.get(key, 0.0) + energy
    return out
