"""The NVML seam: the real ``pynvml`` module (from ``nvidia-ml-py``) or a scripted stand-in for tests.

The sampler uses only these names of the module it is given::

    NVMLError, NVML_TEMPERATURE_GPU, nvmlInit(), nvmlShutdown(), nvmlDeviceGetCount(),
    nvmlDeviceGetHandleByIndex(i), nvmlDeviceGetName(h), nvmlDeviceGetUUID(h), nvmlDeviceGetMemoryInfo(h)
    (.used/.total bytes), nvmlDeviceGetUtilizationRates(h) (.gpu %), nvmlDeviceGetTemperature(h, sensor) (°C),
    nvmlDeviceGetPowerUsage(h) (mW), nvmlDeviceGetTotalEnergyConsumption(h) (mJ since driver load)

Depend on ``nvidia-ml-py`` (module ``pynvml``), not on the deprecated ``pynvml`` package, whose import hook warns
on every ``import pynvml`` and breaks ``-W error`` suites.

:class:`ScriptedNVML` serves scripted values for any number of GPUs: each metric is a list of values returned one
per call (the last repeats); ``None`` instead of a list makes that query raise NVML's "not supported" error, as a
GPU without a power sensor or energy counter does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_NOT_SUPPORTED", "ScriptedGPU", "ScriptedNVML", "load_nvml"]

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_LIBRARY_NOT_FOUND = 12


def load_nvml() -> Any:
    """The ``pynvml`` module of nvidia-ml-py; raises ImportError when it is not installed."""
    import pynvml

    return pynvml


@dataclass(frozen=True)
class ScriptedGPU:
    """One scripted GPU: per-metric value lists (consumed one per query; the last value repeats)."""

    name: str = "Scripted GPU"
    uuid: str | None = None
    memory_total_mib: float = 16384.0
    utilization_pct: Sequence[float] | None = (0.0,)
    memory_used_mib: Sequence[float] | None = (0.0,)
    temperature_c: Sequence[float] | None = (30.0,)
    power_w: Sequence[float] | None = (50.0,)
    #: Energy counter readings in mJ (read at sampler start and stop); None: the GPU has no counter.
    energy_mj: Sequence[float] | None = None


class _Memory:
    def __init__(self, used: float, total: float) -> None:
        self.used = used
        self.total = total
        self.free = total - used


class _Utilization:
    def __init__(self, gpu: float) -> None:
        self.gpu = gpu
        self.memory = 0.0


class ScriptedNVML:
    """A stand-in for the ``pynvml`` module (the subset listed in the module docstring)."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(f"NVML error {value}")
            self.value = value

    def __init__(self, gpus: Sequence[ScriptedGPU] = (), *, library_missing: bool = False) -> None:
        self.gpus = list(gpus)
        self.library_missing = library_missing
        self.initialised = False
        self.calls: dict[str, int] = {}
        self._cursor: dict[tuple[int, str], int] = {}

    def _next(self, handle: int, metric: str) -> float:
        self.calls[metric] = self.calls.get(metric, 0) + 1
        values = getattr(self.gpus[handle], metric)
        if values is None:
            raise self.NVMLError(NVML_ERROR_NOT_SUPPORTED)
        index = self._cursor.get((handle, metric), 0)
        self._cursor[(handle, metric)] = index + 1
        return float(values[min(index, len(values) - 1)])

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise self.NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle].name

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        uuid = self.gpus[handle].uuid
        if uuid is None:
            raise self.NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return uuid

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:
        used = self._next(handle, "memory_used_mib") * 2**20
        return _Memory(used, self.gpus[handle].memory_total_mib * 2**20)

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> _Utilization:
        return _Utilization(self._next(handle, "utilization_pct"))

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> float:
        return self._next(handle, "temperature_c")

    def nvmlDeviceGetPowerUsage(self, handle: int) -> float:
        return self._next(handle, "power_w") * 1000.0  # NVML reports milliwatts

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> float:
        return self._next(handle, "energy_mj")
