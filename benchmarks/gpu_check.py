"""Real-GPU check: sample NVML (nvidia-ml-py) for a few seconds under some GPU load, print the aggregates.

For a machine with an NVIDIA GPU (the test suite uses a scripted NVML). It starts the telemetry Sampler with the
real ``pynvml``, optionally keeps the GPU busy with torch matrix multiplies (if torch with CUDA is installed),
stops it and prints what ``metrics.json`` would say: the GPU columns, per-GPU aggregates and energy figures with
their labels (``measured`` when the GPU has NVML's energy counter). On a machine without a GPU it says so and
exits 0.

    python benchmarks/gpu_check.py [--seconds 5] [--interval 0.5] [--no-load] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any


def _load(seconds: float, stop: threading.Event) -> str:
    try:
        import torch
    except ImportError:
        return "no torch: sampling an idle GPU"
    if not torch.cuda.is_available():
        return "torch without CUDA: sampling an idle GPU"
    a = torch.randn(4096, 4096, device="cuda")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        (a @ a).sum().item()
    return f"torch matmul load on {torch.cuda.get_device_name(0)}"


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--no-load", action="store_true", help="do not run a torch load")
    parser.add_argument("--json", help="also write the metrics document here")
    args = parser.parse_args(argv)

    from pytest_smoltrace.telemetry.metrics import GPU_COLUMNS, build_metrics_document
    from pytest_smoltrace.telemetry.sampler import Sampler

    sampler = Sampler(interval_s=args.interval).start()
    if sampler.gpu_count == 0:
        samples = sampler.stop()
        print(f"no GPU: {samples.gpu_unavailable} — nothing to check on this machine")
        return 0
    stop = threading.Event()
    load = "idle GPU (--no-load)"
    if args.no_load:
        time.sleep(args.seconds)
    else:
        load = _load(args.seconds, stop)
        if load.startswith(("no torch", "torch without")):
            time.sleep(args.seconds)
    samples = sampler.stop()
    doc: dict[str, Any] = build_metrics_document([samples], run_id="gpu-check", model_is_local=True)
    print(f"load: {load}; {len(samples.gpu_readings)} GPU readings from {len(samples.gpus)} GPU(s)")
    for column in GPU_COLUMNS:
        print(f"  {column:22} {doc['aggregates'][column]}")
    for gpu in doc["aggregates"]["per_gpu"]:
        energy = gpu["energy_wh"]
        print(
            f"  GPU {gpu['gpu_id']} {gpu['gpu_name']}: util avg {_fmt(gpu['utilization_avg'])}% "
            f"max {_fmt(gpu['utilization_max'])}%, mem max {_fmt(gpu['memory_max_mib'])} MiB, "
            f"temp max {_fmt(gpu['temperature_max'])} °C, power avg {_fmt(gpu['power_avg_w'])} W, "
            f"energy {_fmt(energy['value'], '.4f')} Wh ({energy['label']}: {energy['method']})"
        )
        if gpu["power_avg_w"] and energy["value"]:
            span = samples.ended_at - samples.started_at
            print(f"    cross-check: power avg × time = {gpu['power_avg_w'] * span / 3600:.4f} Wh over {span:.1f} s")
    for key in ("gpu_wh", "cpu_wh", "local_wh"):
        figure = doc["energy"][key]
        print(f"  energy {key:8} {figure['value']} {figure['unit']} [{figure['label']}, {figure['scope']}]")
    print(f"  CO2 {doc['co2_g']['value']} g [{doc['co2_g']['label']}]; power cost {doc['power_cost_usd']['value']} USD")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
