"""The sampler: one thread per process reading NVML (every GPU) and psutil (this process + system) at an interval.

Usage::

    sampler = Sampler(interval_s=1.0, gpu=True).start()   # one reading at start
    ...                                                    # a reading every interval_s in a daemon thread
    samples = sampler.stop()                               # one reading at stop; returns Samples (plain JSON)

GPU (NVML): utilization %, memory used MiB, temperature °C and power W of every GPU per reading, plus the NVML
energy counter (mJ) at start and stop where the GPU has one. The NVML module is injectable (``nvml=``; default:
``pynvml`` from nvidia-ml-py, see :mod:`.nvml`). No NVML library, no GPU or ``nvmlInit`` failing → no GPU
readings and ``Samples.gpu_unavailable == "unavailable: no NVIDIA GPU"``, logged once per process at INFO and
never raised or warned. A query that fails on one GPU (a GPU without a power sensor) gives ``None`` for that
metric and is logged once at DEBUG; "not supported" queries are not retried.

CPU (psutil): process CPU % (per core, from CPU-time deltas), system CPU % (from ``psutil.cpu_times`` deltas, so
no shared ``cpu_percent`` state is touched), process RSS, system memory used MiB and %. The process's CPU-seconds
over the whole sampling window feed the CPU energy estimate (:mod:`.energy`).
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .nvml import NVML_ERROR_NOT_SUPPORTED, load_nvml
from .samples import CpuReading, GpuDevice, GpuReading, Samples

__all__ = ["DISABLED", "GPU_UNAVAILABLE", "Sampler"]

log = logging.getLogger(__name__)

GPU_UNAVAILABLE = "unavailable: no NVIDIA GPU"
DISABLED = "disabled"
_MIB = 2**20
_reported_no_gpu = False


def _device_text(query: Callable[[Any], Any], handle: Any) -> str:
    value = query(handle)
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Sampler:
    """Samples GPU and CPU metrics in a daemon thread between :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        gpu: bool = True,
        cpu: bool = True,
        nvml: Any | None = None,
        process: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_s = float(interval_s)
        self._want_gpu = gpu
        self._want_cpu = cpu
        self._nvml_given = nvml
        self._nvml: Any | None = None
        self._clock = clock
        self.process = process or os.environ.get("PYTEST_XDIST_WORKER") or "main"
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: Samples | None = None
        self._started_at = 0.0
        # GPU state
        self._handles: list[Any] = []
        self._names: list[str] = []
        self._uuids: list[str | None] = []
        self._memory_total: list[float | None] = []
        self._energy_start: list[float | None] = []
        self._gpu_readings: list[GpuReading] = []
        self._gpu_unavailable: str | None = None
        self._unsupported: set[tuple[int, str]] = set()
        self._logged: set[tuple[int, str]] = set()
        # CPU state
        self._psutil: Any | None = None
        self._proc: Any | None = None
        self._cpu_unavailable: str | None = None
        self._cpu_readings: list[CpuReading] = []
        self._proc_cpu_start = 0.0
        self._last_mono = 0.0
        self._last_proc_cpu = 0.0
        self._last_sys: tuple[float, float] = (0.0, 0.0)
        self._tick_errors = 0

    # ------------------------------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._thread is not None and self._result is None

    @property
    def gpu_count(self) -> int:
        return len(self._handles)

    def start(self) -> Sampler:
        """Initialise NVML/psutil, take the first reading and start the thread. Returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("a Sampler can be started only once")
        self._started_at = self._clock()
        self._gpu_unavailable = self._init_gpu() if self._want_gpu else DISABLED
        self._cpu_unavailable = self._init_cpu() if self._want_cpu else DISABLED
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name="smoltrace-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Samples:
        """Stop the thread, take a last reading and return everything recorded (idempotent)."""
        if self._result is not None:
            return self._result
        if self._thread is None:
            raise RuntimeError("the Sampler was not started")
        self._stop_event.set()
        self._thread.join(timeout=self.interval_s + 5.0)
        self.sample_now()
        ended_at = self._clock()
        gpus = tuple(
            GpuDevice(
                index=i,
                name=self._names[i],
                uuid=self._uuids[i],
                memory_total_mib=self._memory_total[i],
                energy_start_mj=self._energy_start[i],
                energy_end_mj=self._energy(i) if self._energy_start[i] is not None else None,
            )
            for i in range(len(self._handles))
        )
        if self._nvml is not None and self._handles:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)
        process_cpu_seconds: float | None = None
        logical: int | None = None
        if self._proc is not None and self._psutil is not None:
            try:
                process_cpu_seconds = self._proc_cpu() - self._proc_cpu_start
                logical = self._psutil.cpu_count(logical=True)
            except Exception:
                log.debug("reading process CPU time failed", exc_info=True)
        with self._lock:
            self._result = Samples(
                process=self.process,
                pid=os.getpid(),
                host=socket.gethostname(),
                started_at=self._started_at,
                ended_at=ended_at,
                interval_s=self.interval_s,
                gpus=gpus,
                gpu_readings=tuple(self._gpu_readings),
                cpu_readings=tuple(self._cpu_readings),
                process_cpu_seconds=process_cpu_seconds,
                logical_cpus=logical,
                gpu_unavailable=self._gpu_unavailable,
                cpu_unavailable=self._cpu_unavailable,
            )
        return self._result

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self.sample_now()

    # ------------------------------------------------------------------------------------- readings

    def sample_now(self) -> None:
        """Take one reading of every GPU and of CPU/RAM now (also called by the thread)."""
        with self._lock:
            if self._result is not None:
                return
            now = self._clock()
            try:
                for i in range(len(self._handles)):
                    self._gpu_readings.append(self._read_gpu(i, now))
                if self._proc is not None:
                    self._cpu_readings.append(self._read_cpu(now))
            except Exception:  # a sampler must never take the session down
                self._tick_errors += 1
                if self._tick_errors == 1:
                    log.debug("a telemetry reading failed", exc_info=True)

    # ------------------------------------------------------------------------------------- GPU

    def _init_gpu(self) -> str | None:
        global _reported_no_gpu
        nvml = self._nvml_given
        if nvml is None:
            try:
                nvml = load_nvml()
            except ImportError:
                log.debug("nvidia-ml-py is not installed: no GPU metrics")
                return GPU_UNAVAILABLE
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:  # NVMLError (library not found, driver not loaded, ...)
            level = logging.DEBUG if _reported_no_gpu else logging.INFO
            _reported_no_gpu = True
            log.log(level, "GPU metrics %s (NVML: %s)", GPU_UNAVAILABLE, exc)
            return GPU_UNAVAILABLE
        if count == 0:
            try:
                nvml.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)
            return GPU_UNAVAILABLE
        self._nvml = nvml
        for i in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            self._handles.append(handle)
            name = self._query(i, "name", functools.partial(_device_text, nvml.nvmlDeviceGetName, handle))
            self._names.append(name or f"GPU {i}")
            self._uuids.append(self._query(i, "uuid", functools.partial(_device_text, nvml.nvmlDeviceGetUUID, handle)))
            self._memory_total.append(None)
        self._energy_start = [self._energy(i) for i in range(count)]
        return None

    def _query(self, gpu: int, metric: str, fn: Callable[[], Any]) -> Any:
        if (gpu, metric) in self._unsupported:
            return None
        try:
            return fn()
        except Exception as exc:
            if getattr(exc, "value", None) == NVML_ERROR_NOT_SUPPORTED:
                self._unsupported.add((gpu, metric))
            if (gpu, metric) not in self._logged:
                self._logged.add((gpu, metric))
                log.debug("GPU %d: %s unavailable (%s)", gpu, metric, exc)
            return None

    def _energy(self, gpu: int) -> float | None:
        assert self._nvml is not None
        nvml, handle = self._nvml, self._handles[gpu]
        value = self._query(gpu, "energy", lambda: float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))
        return None if value is None else float(value)

    def _read_gpu(self, gpu: int, now: float) -> GpuReading:
        assert self._nvml is not None
        nvml, handle = self._nvml, self._handles[gpu]
        memory = self._query(gpu, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        if memory is not None and self._memory_total[gpu] is None:
            self._memory_total[gpu] = float(memory.total) / _MIB
        utilization = self._query(gpu, "utilization", lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        temperature = self._query(
            gpu, "temperature", lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        )
        power_mw = self._query(gpu, "power", lambda: float(nvml.nvmlDeviceGetPowerUsage(handle)))
        return GpuReading(
            timestamp=now,
            gpu=gpu,
            utilization_pct=utilization,
            memory_used_mib=None if memory is None else float(memory.used) / _MIB,
            temperature_c=temperature,
            power_w=None if power_mw is None else power_mw / 1000.0,
        )

    # ------------------------------------------------------------------------------------- CPU

    def _init_cpu(self) -> str | None:
        try:
            import psutil
        except ImportError:
            return "unavailable: psutil not installed"
        try:
            self._psutil = psutil
            self._proc = psutil.Process()
            self._proc_cpu_start = self._last_proc_cpu = self._proc_cpu()
            self._last_sys = self._sys_busy_total()
            self._last_mono = time.monotonic()
        except Exception as exc:
            log.debug("psutil failed: %s", exc)
            self._proc = None
            return f"unavailable: {exc}"
        return None

    def _proc_cpu(self) -> float:
        assert self._proc is not None
        times = self._proc.cpu_times()
        return float(times.user + times.system)

    def _sys_busy_total(self) -> tuple[float, float]:
        assert self._psutil is not None
        times = self._psutil.cpu_times()
        total = float(sum(times))
        idle = float(times.idle + getattr(times, "iowait", 0.0))
        return total - idle, total

    def _read_cpu(self, now: float) -> CpuReading:
        assert self._proc is not None and self._psutil is not None
        mono = time.monotonic()
        proc_cpu = self._proc_cpu()
        busy, total = self._sys_busy_total()
        elapsed = mono - self._last_mono
        first = not self._cpu_readings
        process_pct = None if first or elapsed <= 0 else (proc_cpu - self._last_proc_cpu) / elapsed * 100.0
        total_delta = total - self._last_sys[1]
        system_pct = None if first or total_delta <= 0 else (busy - self._last_sys[0]) / total_delta * 100.0
        self._last_mono, self._last_proc_cpu, self._last_sys = mono, proc_cpu, (busy, total)
        memory = self._psutil.virtual_memory()
        return CpuReading(
            timestamp=now,
            process_cpu_pct=process_pct,
            system_cpu_pct=system_pct,
            process_rss_mib=float(self._proc.memory_info().rss) / _MIB,
            system_memory_used_mib=float(memory.used) / _MIB,
            system_memory_pct=float(memory.percent),
        )
