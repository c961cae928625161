"""metrics.json aggregation across processes, and the energy / CO2 / power-cost figures with their labels."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_smoltrace.telemetry.energy import (
    Figure,
    co2_g,
    cpu_energy_wh,
    gpu_energy_wh,
    power_cost_usd,
    total,
)
from pytest_smoltrace.telemetry.metrics import build_metrics_document
from pytest_smoltrace.telemetry.samples import CpuReading, GpuDevice, GpuReading, Samples


def worker(name: str, gpus: tuple[GpuDevice, ...], readings: list[tuple[float, int, float]], **kw: Any) -> Samples:
    """Samples of one process; readings are (timestamp, gpu index, power W) with fixed other metrics."""
    return Samples(
        process=name,
        pid=hash(name) % 10_000,
        host="node-1",
        started_at=min(t for t, _, _ in readings),
        ended_at=max(t for t, _, _ in readings),
        interval_s=1.0,
        gpus=gpus,
        gpu_readings=tuple(GpuReading(t, i, 50.0, 1024.0, 40.0, p) for t, i, p in readings),
        cpu_readings=(CpuReading(readings[0][0], None, None, 100.0, 4000.0, 50.0),),
        process_cpu_seconds=kw.get("cpu_s", 36.0),
        logical_cpus=kw.get("cpus", 4),
    )


def test_a_gpu_sampled_by_two_workers_counts_once() -> None:
    shared = "GPU-shared"
    gw0 = worker(
        "gw0",
        (GpuDevice(0, "H100", shared, 81559.0, 1_000_000, 1_720_000), GpuDevice(1, "Old GPU", None, 8000.0)),
        [(100.0, 0, 300.0), (100.0, 1, 100.0), (101.0, 1, 100.0), (102.0, 1, 100.0)],
    )
    gw1 = worker(
        "gw1",
        (GpuDevice(0, "H100", shared, 81559.0, 1_100_000, 1_800_000), GpuDevice(1, "Old GPU", None, 8000.0)),
        [(100.5, 0, 310.0), (100.5, 1, 100.0), (101.5, 1, 100.0), (104.0, 1, 100.0)],
    )
    doc = build_metrics_document([gw0, gw1.to_dict()], run_id="r", cpu_tdp_w=40.0)
    per_gpu = {g["key"]: g for g in doc["aggregates"]["per_gpu"]}
    assert sorted(per_gpu) == ["node-1/1", "node-1/GPU-shared"]
    h100 = per_gpu["node-1/GPU-shared"]
    # counter difference over the union of both windows, not the sum of both workers' differences
    assert h100["energy_wh"]["value"] == pytest.approx((1_800_000 - 1_000_000) / 3.6e6)
    assert h100["energy_wh"]["label"] == "measured" and h100["samples"] == 2
    old = per_gpu["node-1/1"]
    # merged power readings 100..104 s at 100 W: 4 s × 100 W = 400 J (once, though both workers sampled it)
    assert old["energy_wh"]["value"] == pytest.approx(400 / 3600) and old["energy_wh"]["label"] == "estimated"
    assert doc["energy"]["gpu_wh"]["value"] == pytest.approx(800_000 / 3.6e6 + 400 / 3600)
    cpu = doc["energy"]["cpu_wh"]
    assert cpu["value"] == pytest.approx(2 * 36.0 * 40.0 / 4 / 3600)  # CPU is per process: summed
    assert cpu["label"] == "estimated" and "40 W TDP" in cpu["method"]
    assert doc["aggregates"]["process_cpu_seconds"] == 72.0
    assert [p["process"] for p in doc["processes"]] == ["gw0", "gw1"]
    assert len(doc["gpus"]) == 2


def test_gpu_energy_rules() -> None:
    measured = gpu_energy_wh([(0.0, 100.0)], counter_start_mj=0.0, counter_end_mj=3_600_000.0)
    assert (measured.value, measured.label, measured.unit) == (1.0, "measured", "Wh")
    estimated = gpu_energy_wh([(0.0, 100.0), (10.0, 200.0), (11.0, None)])
    assert estimated.value == pytest.approx(1500 / 3600) and estimated.label == "estimated"
    gap = gpu_energy_wh([(0.0, 100.0), (1.0, 100.0), (100.0, 100.0)], max_gap_s=3.0)
    assert gap.value == pytest.approx(100 / 3600)  # the 99 s gap is not bridged
    assert gpu_energy_wh([(0.0, 100.0)]).label == "unavailable"
    backwards = gpu_energy_wh([(0.0, 50.0), (36.0, 50.0)], counter_start_mj=10.0, counter_end_mj=5.0)
    assert backwards.label == "estimated" and backwards.value == pytest.approx(0.5)


def test_totals_co2_and_cost_carry_labels() -> None:
    m = Figure(2.0, "Wh", "measured", "local", "x")
    e = Figure(1.0, "Wh", "estimated", "local", "y")
    u = Figure.unavailable("Wh", "nothing")
    assert total([m, m], unit="Wh", method="sum").label == "measured"
    assert total([m, e], unit="Wh", method="sum") == Figure(3.0, "Wh", "estimated", "local", "sum")
    assert total([m, u], unit="Wh", method="sum").label == "estimated"  # incomplete: not a measurement
    assert total([u], unit="Wh", method="sum").label == "unavailable"
    co2 = co2_g(Figure(1000.0, "Wh", "measured", "local", "counter"))
    assert co2.value == pytest.approx(475.0) and co2.unit == "gCO2e" and co2.label == "estimated"
    assert "475 gCO2e/kWh" in co2.method and "IEA" in co2.method
    assert co2_g(m, grid_intensity_g_per_kwh=100.0).value == pytest.approx(0.2)
    cost = power_cost_usd(Figure(500.0, "Wh", "measured", "local", "counter"), price_usd_per_kwh=0.3)
    assert cost.value == pytest.approx(0.15) and cost.unit == "USD" and "user-set" in cost.method
    assert co2_g(u).label == "unavailable" and power_cost_usd(u).value is None
    cpu = cpu_energy_wh(3600.0, 8, cpu_tdp_w=80.0)
    assert cpu.value == pytest.approx(10.0) and cpu.label == "estimated"
    assert cpu_energy_wh(None, 8).label == "unavailable"
    assert Figure.from_dict(json.loads(json.dumps(co2.to_dict()))) == co2


def test_document_shape_assumptions_and_remote_scope() -> None:
    s = worker("main", (), [(10.0, 0, 0.0)])
    s = Samples.from_dict({**s.to_dict(), "gpu_readings": [], "gpu_unavailable": "unavailable: no NVIDIA GPU"})
    doc = build_metrics_document(
        [s], run_id="r9", model_is_local=False, grid_intensity_g_per_kwh=50.0, energy_price_usd_per_kwh=0.2
    )
    assert doc["run_id"] == "r9" and doc["schema_version"] == 1
    assert doc["assumptions"]["grid_intensity_g_per_kwh"] == 50.0
    assert doc["assumptions"]["grid_intensity_source"].startswith("user-set")
    assert doc["energy"]["remote_inference_wh"]["scope"] == "remote API: not measured"
    local = doc["energy"]["local_wh"]
    assert local["label"] == "estimated" and local["scope"] == "local"
    assert doc["co2_g"]["value"] == pytest.approx(local["value"] / 1000 * 50.0)
    assert doc["power_cost_usd"]["value"] == pytest.approx(local["value"] / 1000 * 0.2)
    cpu_rows = [r for r in doc["series"] if r["metric"] == "process.memory.rss"]
    assert cpu_rows == [
        {
            "timestamp": "1970-01-01T00:00:10.000Z",
            "timestamp_unix": 10.0,
            "metric": "process.memory.rss",
            "gpu_id": None,
            "gpu_name": None,
            "value": 100.0,
            "unit": "MiB",
            "process": "main",
            "host": "node-1",
        }
    ]
    empty = build_metrics_document([], run_id="r")
    assert empty["unavailable"] == {"gpu": "unavailable: not sampled", "cpu": "unavailable: not sampled"}
    assert empty["co2_g"]["label"] == "unavailable"
    assert "remote_inference_wh" not in empty["energy"]
