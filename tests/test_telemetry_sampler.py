"""The sampler with a scripted NVML (two GPUs), the real no-GPU path, and real CPU sampling."""

from __future__ import annotations

import json
import logging
import time
import warnings

import pytest

from pytest_smoltrace.telemetry.metrics import GPU_COLUMNS, build_metrics_document
from pytest_smoltrace.telemetry.nvml import ScriptedGPU, ScriptedNVML
from pytest_smoltrace.telemetry.sampler import DISABLED, GPU_UNAVAILABLE, Sampler
from pytest_smoltrace.telemetry.samples import Samples


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def two_gpus() -> ScriptedNVML:
    return ScriptedNVML(
        [
            ScriptedGPU(
                name="Scripted A100",
                uuid="GPU-aaaa",
                memory_total_mib=40960,
                utilization_pct=(10, 50, 90),
                memory_used_mib=(1000, 2000, 3000),
                temperature_c=(40, 50, 60),
                power_w=(100, 200, 300),
                energy_mj=(1_000_000, 1_360_000),  # 360 J = 0.1 Wh between start and stop
            ),
            ScriptedGPU(
                name="Scripted T4",
                memory_total_mib=15360,
                utilization_pct=(0, 20, 40),
                memory_used_mib=(500,),
                temperature_c=(30, 30, 33),
                power_w=(60,),
                energy_mj=None,  # no counter: power × time
            ),
        ]
    )


def scripted_run(nvml: ScriptedNVML) -> Samples:
    clock = Clock(1000.0)
    sampler = Sampler(interval_s=3600, nvml=nvml, clock=clock, process="gw0").start()  # reading 1 at t=1000
    clock.now = 1010.0
    sampler.sample_now()  # reading 2
    clock.now = 1020.0
    return sampler.stop()  # reading 3


def test_two_scripted_gpus_aggregate_and_keep_per_gpu_series() -> None:
    nvml = two_gpus()
    samples = scripted_run(nvml)
    assert not nvml.initialised  # nvmlShutdown was called
    assert samples.gpu_unavailable is None and len(samples.gpus) == 2
    assert [g.name for g in samples.gpus] == ["Scripted A100", "Scripted T4"]
    assert samples.gpus[0].memory_total_mib == 40960 and samples.gpus[0].uuid == "GPU-aaaa"
    assert (samples.gpus[0].energy_start_mj, samples.gpus[0].energy_end_mj) == (1_000_000, 1_360_000)
    assert samples.gpus[1].energy_start_mj is None
    assert [(r.timestamp, r.gpu) for r in samples.gpu_readings] == [
        (1000.0, 0), (1000.0, 1), (1010.0, 0), (1010.0, 1), (1020.0, 0), (1020.0, 1)
    ]  # fmt: skip
    assert Samples.from_dict(json.loads(json.dumps(samples.to_dict()))) == samples

    doc = build_metrics_document([samples.to_dict()], run_id="r1", model_is_local=True)
    json.dumps(doc, allow_nan=False)
    agg = doc["aggregates"]
    assert agg["gpu_utilization_avg"] == pytest.approx(35.0) and agg["gpu_utilization_max"] == 90
    assert agg["gpu_memory_avg_mib"] == pytest.approx(1250.0) and agg["gpu_memory_max_mib"] == 3000
    assert agg["gpu_temperature_avg"] == pytest.approx(40.5) and agg["gpu_temperature_max"] == 60
    assert agg["gpu_power_avg_w"] == pytest.approx(130.0)
    a100, t4 = agg["per_gpu"]
    assert (a100["gpu_name"], a100["utilization_avg"], a100["power_avg_w"], a100["samples"]) == (
        "Scripted A100",
        50,
        200,
        3,
    )
    assert (t4["gpu_name"], t4["utilization_avg"], t4["temperature_max"], t4["samples"]) == ("Scripted T4", 20, 33, 3)
    assert a100["energy_wh"]["label"] == "measured" and a100["energy_wh"]["value"] == pytest.approx(0.1)
    assert t4["energy_wh"]["label"] == "estimated" and t4["energy_wh"]["value"] == pytest.approx(60 * 20 / 3600)
    gpu_energy = doc["energy"]["gpu_wh"]
    assert gpu_energy["value"] == pytest.approx(0.1 + 60 * 20 / 3600)  # summed over GPUs
    assert gpu_energy["label"] == "estimated" and gpu_energy["scope"] == "local"  # one part is estimated
    local = doc["energy"]["local_wh"]["value"]
    assert local == pytest.approx(gpu_energy["value"] + doc["energy"]["cpu_wh"]["value"])
    assert doc["co2_g"]["value"] == pytest.approx(local / 1000 * 475) and doc["co2_g"]["label"] == "estimated"
    assert doc["power_cost_usd"]["value"] == pytest.approx(local / 1000 * 0.12)

    gpu_rows = [r for r in doc["series"] if r["gpu_id"] is not None]
    assert len(gpu_rows) == 2 * 3 * 4  # GPUs × readings × metrics
    power_a100 = [r["value"] for r in gpu_rows if r["metric"] == "gpu.power" and r["gpu_id"] == 0]
    assert power_a100 == [100, 200, 300]
    assert {r["gpu_name"] for r in gpu_rows if r["gpu_id"] == 1} == {"Scripted T4"}
    assert gpu_rows[0]["timestamp"] == "1970-01-01T00:16:40.000Z" and gpu_rows[0]["unit"] in ("%", "MiB", "Cel", "W")
    assert doc["labels"]["gpu_metrics"] == "measured (NVML)" and doc["unavailable"] == {}
    assert [g["key"] for g in doc["gpus"]] == [f"{samples.host}/GPU-aaaa", f"{samples.host}/1"]


def test_unsupported_queries_are_not_retried_and_log_once(caplog: pytest.LogCaptureFixture) -> None:
    nvml = ScriptedNVML([ScriptedGPU(power_w=None, utilization_pct=(5,))])
    with caplog.at_level(logging.DEBUG, logger="pytest_smoltrace.telemetry.sampler"):
        sampler = Sampler(interval_s=3600, nvml=nvml).start()
        for _ in range(5):
            sampler.sample_now()
        samples = sampler.stop()
    assert nvml.calls["power_w"] == 1 and nvml.calls["utilization_pct"] == 7
    assert all(r.power_w is None and r.utilization_pct == 5 for r in samples.gpu_readings)
    assert len([r for r in caplog.records if "power unavailable" in r.getMessage()]) == 1
    doc = build_metrics_document([samples], run_id="r")
    assert doc["aggregates"]["gpu_power_avg_w"] is None
    assert doc["energy"]["gpu_wh"]["label"] == "unavailable"


def test_no_gpu_is_quiet_and_leaves_columns_null(caplog: pytest.LogCaptureFixture) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.DEBUG):
            sampler = Sampler(interval_s=0.05).start()  # the real nvidia-ml-py: no NVIDIA driver here
            time.sleep(0.3)
            samples = sampler.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert samples.gpu_unavailable == GPU_UNAVAILABLE == "unavailable: no NVIDIA GPU"
    assert samples.gpus == () and samples.gpu_readings == ()
    # CPU sampling ran in the thread at the interval
    assert len(samples.cpu_readings) >= 4
    last = samples.cpu_readings[-1]
    assert last.process_rss_mib and last.process_rss_mib > 1
    assert last.system_memory_used_mib and last.system_memory_used_mib > 1 and 0 < (last.system_memory_pct or 0) <= 100
    assert samples.cpu_readings[0].process_cpu_pct is None  # no interval yet
    assert all(r.process_cpu_pct is not None and r.process_cpu_pct >= 0 for r in samples.cpu_readings[1:])
    assert samples.process_cpu_seconds is not None and samples.process_cpu_seconds >= 0
    assert samples.logical_cpus and samples.logical_cpus >= 1

    doc = build_metrics_document([samples], run_id="r", model_is_local=False)
    assert all(doc["aggregates"][column] is None for column in GPU_COLUMNS)
    assert doc["unavailable"] == {"gpu": "unavailable: no NVIDIA GPU"}
    assert doc["labels"]["gpu_metrics"] == "unavailable: no NVIDIA GPU"
    assert doc["energy"]["gpu_wh"]["label"] == "unavailable"
    assert doc["energy"]["cpu_wh"]["label"] == "estimated"
    assert doc["energy"]["remote_inference_wh"] == {
        "value": None,
        "unit": "Wh",
        "label": "unavailable",
        "scope": "remote API: not measured",
        "method": "the model runs behind a remote API; its energy is not observable",
    }
    assert doc["aggregates"]["process_rss_max_mib"] > 1
    assert {r["metric"] for r in doc["series"]} >= {
        "process.memory.rss",
        "system.memory.used",
        "process.cpu.utilization",
    }


def test_missing_library_and_disabled_gpu() -> None:
    samples = scripted_run(ScriptedNVML([ScriptedGPU()], library_missing=True))
    assert samples.gpu_unavailable == GPU_UNAVAILABLE and samples.gpu_readings == ()
    assert scripted_run(ScriptedNVML([])).gpu_unavailable == GPU_UNAVAILABLE  # driver but no device
    off = Sampler(interval_s=3600, gpu=False, cpu=False).start().stop()
    assert (off.gpu_unavailable, off.cpu_unavailable, off.cpu_readings) == (DISABLED, DISABLED, ())
    doc = build_metrics_document([off], run_id="r")
    assert doc["unavailable"] == {"gpu": "disabled", "cpu": "disabled"}
    assert doc["energy"]["local_wh"]["label"] == "unavailable" and doc["co2_g"]["value"] is None


def test_sampler_lifecycle_errors() -> None:
    with pytest.raises(ValueError):
        Sampler(interval_s=0)
    sampler = Sampler(interval_s=3600, gpu=False)
    with pytest.raises(RuntimeError):
        sampler.stop()
    with sampler:
        assert sampler.running
    assert not sampler.running and sampler.stop() is sampler.stop()
    with pytest.raises(RuntimeError):
        sampler.start()
