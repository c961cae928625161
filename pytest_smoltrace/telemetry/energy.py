"""Energy, CO2 and power cost — every figure labelled ``measured`` / ``estimated`` / ``unavailable`` with its scope.

How each figure is obtained (units: energy Wh, CO2 g CO2e, cost USD):

- **GPU energy, measured**: the difference of NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
  mJ since the driver loaded; Volta and newer) between the first and the last reading of that GPU.
- **GPU energy, estimated**: ``Σ (P_i + P_i+1) / 2 × Δt`` over the sampled power readings (trapezoid rule) for a
  GPU without the counter. Gaps longer than ``3 × interval`` are not bridged.
- **CPU energy, estimated**: ``process CPU-seconds × TDP / logical CPUs`` — this process's busy CPU time priced at
  an equal share of one CPU package's TDP per logical CPU. Default TDP :data:`DEFAULT_CPU_TDP_W` = 65 W (a
  common desktop/server-core TDP class; the real CPU is not identified). Idle power, RAM, disks and the rest of
  the machine are not included.
- **CO2** = local energy (kWh) × grid intensity, default :data:`DEFAULT_GRID_INTENSITY_G_PER_KWH` = 475 g CO2e/kWh,
  the world-average electricity carbon intensity reported by the IEA for 2018 and the default of
  genai-otel-instrument (``GENAI_CARBON_INTENSITY``). Always ``estimated``: the intensity is an average, not a
  measurement of the grid that fed this machine.
- **Power cost** = local energy (kWh) × energy price, default :data:`DEFAULT_ENERGY_PRICE_USD_PER_KWH` = 0.12 USD/kWh
  (genai-otel-instrument's ``GENAI_POWER_COST_PER_KWH`` default). Always ``estimated`` (an assumed tariff).
- Sums: ``measured`` only when every part is measured; ``unavailable`` when no part is available; otherwise
  ``estimated``.

Scope: ``local`` figures cover this machine's sampled processes and GPUs. The energy of a model served by a
remote API cannot be observed: that figure is ``unavailable`` with scope ``remote API: not measured``. Nothing
here converts tokens into CO2 with a per-token constant.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_CPU_TDP_W",
    "DEFAULT_ENERGY_PRICE_USD_PER_KWH",
    "DEFAULT_GRID_INTENSITY_G_PER_KWH",
    "ENERGY_PRICE_SOURCE",
    "GRID_INTENSITY_SOURCE",
    "SCOPE_LOCAL",
    "SCOPE_REMOTE",
    "Figure",
    "Label",
    "co2_g",
    "cpu_energy_wh",
    "gpu_energy_wh",
    "power_cost_usd",
    "remote_inference_energy",
    "total",
]

Label = Literal["measured", "estimated", "unavailable"]

SCOPE_LOCAL = "local"
SCOPE_REMOTE = "remote API: not measured"

DEFAULT_GRID_INTENSITY_G_PER_KWH = 475.0
GRID_INTENSITY_SOURCE = "world average, IEA 2018 (genai-otel-instrument default GENAI_CARBON_INTENSITY)"
DEFAULT_ENERGY_PRICE_USD_PER_KWH = 0.12
ENERGY_PRICE_SOURCE = "assumed tariff (genai-otel-instrument default GENAI_POWER_COST_PER_KWH)"
DEFAULT_CPU_TDP_W = 65.0

_MJ_PER_WH = 3.6e6
_J_PER_WH = 3600.0


@dataclass(frozen=True)
class Figure:
    """A number with its unit, how it was obtained (``label``), what it covers (``scope``) and the method."""

    value: float | None
    unit: str
    label: Label
    scope: str
    method: str

    @classmethod
    def unavailable(cls, unit: str, reason: str, scope: str = SCOPE_LOCAL) -> Figure:
        return cls(None, unit, "unavailable", scope, reason)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        label: Label = data["label"] if data.get("label") in ("measured", "estimated") else "unavailable"
        value = data.get("value")
        return cls(
            None if value is None else float(value),
            str(data["unit"]),
            label,
            str(data["scope"]),
            str(data["method"]),
        )


def gpu_energy_wh(
    power: Sequence[tuple[float, float | None]],
    *,
    counter_start_mj: float | None = None,
    counter_end_mj: float | None = None,
    max_gap_s: float | None = None,
) -> Figure:
    """One GPU's energy: the NVML counter difference (measured) or power × time (estimated)."""
    if counter_start_mj is not None and counter_end_mj is not None and counter_end_mj >= counter_start_mj:
        return Figure(
            (counter_end_mj - counter_start_mj) / _MJ_PER_WH,
            "Wh",
            "measured",
            SCOPE_LOCAL,
            "NVML total-energy counter difference",
        )
    points = sorted((t, p) for t, p in power if p is not None)
    if len(points) < 2:
        return Figure.unavailable("Wh", "no energy counter and fewer than two power readings")
    joules = 0.0
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        dt = t1 - t0
        if dt <= 0 or (max_gap_s is not None and dt > max_gap_s):
            continue
        joules += (p0 + p1) / 2.0 * dt
    return Figure(joules / _J_PER_WH, "Wh", "estimated", SCOPE_LOCAL, "sampled power × time (trapezoid rule)")


def cpu_energy_wh(
    process_cpu_seconds: float | None, logical_cpus: int | None, *, cpu_tdp_w: float = DEFAULT_CPU_TDP_W
) -> Figure:
    """This process's CPU energy estimate: CPU-seconds × TDP / logical CPUs."""
    if process_cpu_seconds is None or not logical_cpus:
        return Figure.unavailable("Wh", "process CPU time was not sampled")
    watts_per_cpu = cpu_tdp_w / logical_cpus
    return Figure(
        process_cpu_seconds * watts_per_cpu / _J_PER_WH,
        "Wh",
        "estimated",
        SCOPE_LOCAL,
        f"process CPU-seconds × {cpu_tdp_w:g} W TDP / {logical_cpus} logical CPUs",
    )


def total(figures: Iterable[Figure], *, unit: str, method: str, scope: str = SCOPE_LOCAL) -> Figure:
    """The sum of the available figures; measured only if all parts are measured."""
    parts = list(figures)
    available = [f for f in parts if f.label != "unavailable" and f.value is not None]
    if not available:
        reasons = "; ".join(sorted({f.method for f in parts})) or "nothing was sampled"
        return Figure.unavailable(unit, reasons, scope)
    label: Label = (
        "measured" if len(available) == len(parts) and all(f.label == "measured" for f in parts) else "estimated"
    )
    return Figure(sum(f.value for f in available if f.value is not None), unit, label, scope, method)


def _energy_times_rate(energy: Figure, rate: float, unit: str, rate_unit: str, source: str) -> Figure:
    """``energy`` (Wh) × ``rate`` per kWh, in ``unit``; always estimated (unavailable without energy)."""
    if energy.value is None:
        return Figure.unavailable(unit, f"no energy figure ({energy.method})", energy.scope)
    return Figure(
        energy.value / 1000.0 * rate,
        unit,
        "estimated",
        energy.scope,
        f"{energy.label} energy × {rate:g} {rate_unit} ({source})",
    )


def co2_g(energy: Figure, *, grid_intensity_g_per_kwh: float = DEFAULT_GRID_INTENSITY_G_PER_KWH) -> Figure:
    """CO2 (g CO2e) = energy × grid intensity; always estimated (unavailable without energy)."""
    source = GRID_INTENSITY_SOURCE if grid_intensity_g_per_kwh == DEFAULT_GRID_INTENSITY_G_PER_KWH else "user-set"
    return _energy_times_rate(energy, grid_intensity_g_per_kwh, "gCO2e", "gCO2e/kWh", source)


def power_cost_usd(energy: Figure, *, price_usd_per_kwh: float = DEFAULT_ENERGY_PRICE_USD_PER_KWH) -> Figure:
    """Electricity cost (USD) = energy × price per kWh; always estimated (unavailable without energy)."""
    source = ENERGY_PRICE_SOURCE if price_usd_per_kwh == DEFAULT_ENERGY_PRICE_USD_PER_KWH else "user-set"
    return _energy_times_rate(energy, price_usd_per_kwh, "USD", "USD/kWh", source)


def remote_inference_energy() -> Figure:
    """The model's own energy when it runs behind a remote API: not observable."""
    return Figure.unavailable("Wh", "the model runs behind a remote API; its energy is not observable", SCOPE_REMOTE)
