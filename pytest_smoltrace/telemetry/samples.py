"""What one process's :class:`~.sampler.Sampler` recorded: plain-JSON frozen records.

:class:`Samples` travels from an xdist worker to the controller (``Samples.to_dict()`` → JSON → ``from_dict``),
where :func:`~.metrics.build_metrics_document` merges the samples of every process.

Units: timestamps are Unix epoch seconds (float); utilization and memory percentages are 0–100 (process CPU %
is per core, like ``top``: 200 = two busy cores); memory in MiB (2**20 bytes); temperature in °C; power in W;
NVML energy counters in millijoules since the driver loaded. ``None`` means "not available on this device".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CpuReading", "GpuDevice", "GpuReading", "Samples"]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as NVML described it, with its energy counter at the start and end of sampling (mJ)."""

    index: int
    name: str
    uuid: str | None = None
    memory_total_mib: float | None = None
    energy_start_mj: float | None = None
    energy_end_mj: float | None = None

    def key(self, host: str) -> str:
        """Identity across processes: the same GPU sampled by two workers counts once."""
        return f"{host}/{self.uuid or self.index}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuDevice:
        return cls(
            index=int(data["index"]),
            name=str(data.get("name", "")),
            uuid=data.get("uuid"),
            memory_total_mib=_opt_float(data.get("memory_total_mib")),
            energy_start_mj=_opt_float(data.get("energy_start_mj")),
            energy_end_mj=_opt_float(data.get("energy_end_mj")),
        )


@dataclass(frozen=True)
class GpuReading:
    """One NVML sample of one GPU."""

    timestamp: float
    gpu: int
    utilization_pct: float | None
    memory_used_mib: float | None
    temperature_c: float | None
    power_w: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GpuReading:
        return cls(
            timestamp=float(data["timestamp"]),
            gpu=int(data["gpu"]),
            utilization_pct=_opt_float(data.get("utilization_pct")),
            memory_used_mib=_opt_float(data.get("memory_used_mib")),
            temperature_c=_opt_float(data.get("temperature_c")),
            power_w=_opt_float(data.get("power_w")),
        )


@dataclass(frozen=True)
class CpuReading:
    """One psutil sample: this process and the whole system (CPU % since the previous reading)."""

    timestamp: float
    process_cpu_pct: float | None
    system_cpu_pct: float | None
    process_rss_mib: float | None
    system_memory_used_mib: float | None
    system_memory_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CpuReading:
        return cls(
            timestamp=float(data["timestamp"]),
            process_cpu_pct=_opt_float(data.get("process_cpu_pct")),
            system_cpu_pct=_opt_float(data.get("system_cpu_pct")),
            process_rss_mib=_opt_float(data.get("process_rss_mib")),
            system_memory_used_mib=_opt_float(data.get("system_memory_used_mib")),
            system_memory_pct=_opt_float(data.get("system_memory_pct")),
        )


@dataclass(frozen=True)
class Samples:
    """Everything one process's sampler recorded between ``start()`` and ``stop()``."""

    process: str
    pid: int
    host: str
    started_at: float
    ended_at: float
    interval_s: float
    gpus: tuple[GpuDevice, ...] = ()
    gpu_readings: tuple[GpuReading, ...] = ()
    cpu_readings: tuple[CpuReading, ...] = ()
    #: CPU time (user + system) this process used while sampling.
    process_cpu_seconds: float | None = None
    logical_cpus: int | None = None
    #: Why there are no GPU samples (``"unavailable: no NVIDIA GPU"``, ``"disabled"``), else None.
    gpu_unavailable: str | None = None
    cpu_unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "pid": self.pid,
            "host": self.host,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "interval_s": self.interval_s,
            "gpus": [g.to_dict() for g in self.gpus],
            "gpu_readings": [r.to_dict() for r in self.gpu_readings],
            "cpu_readings": [r.to_dict() for r in self.cpu_readings],
            "process_cpu_seconds": self.process_cpu_seconds,
            "logical_cpus": self.logical_cpus,
            "gpu_unavailable": self.gpu_unavailable,
            "cpu_unavailable": self.cpu_unavailable,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Samples:
        logical = data.get("logical_cpus")
        return cls(
            process=str(data.get("process", "")),
            pid=int(data.get("pid", 0)),
            host=str(data.get("host", "")),
            started_at=float(data["started_at"]),
            ended_at=float(data["ended_at"]),
            interval_s=float(data.get("interval_s", 1.0)),
            gpus=tuple(GpuDevice.from_dict(g) for g in data.get("gpus") or ()),
            gpu_readings=tuple(GpuReading.from_dict(r) for r in data.get("gpu_readings") or ()),
            cpu_readings=tuple(CpuReading.from_dict(r) for r in data.get("cpu_readings") or ()),
            process_cpu_seconds=_opt_float(data.get("process_cpu_seconds")),
            logical_cpus=None if logical is None else int(logical),
            gpu_unavailable=data.get("gpu_unavailable"),
            cpu_unavailable=data.get("cpu_unavailable"),
        )
