"""Throughput: N tasks × both agent types against the scripted server at a fixed latency per request.

Runs, side by side in one invocation: ``-n 0`` with concurrency 1 / 8 / 16 and ``-n 2 --dist loadscope`` (each worker
gets whole agent-type groups, so its queue is deep enough to run ahead) with concurrency 8, and
prints wall time, in-session time, ideal time (requests × latency ÷ concurrency), loop efficiency (ideal ÷ in-session)
and peak RSS of the whole process tree. Usage: ``python benchmarks/throughput.py [--tasks 40] [--latency 0.2]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Measured,
    machine,
    pytest_argv,
    run_measured,
    scripted_args,
    session_timings,
    task_set,
    write_tasks,
)

from pytest_smoltrace.testing import ScriptedModelServer

CONFIGS = (
    ("-n 0, concurrency 1", 0, 1),
    ("-n 0, concurrency 8", 0, 8),
    ("-n 0, concurrency 16", 0, 16),
    ("-n 2, concurrency 8", 2, 8),
)


def run_smoltrace(venv: Path, cwd: Path, base_url: str) -> Measured | None:
    """SMOLTRACE's own CLI on the same tasks and server (its best configuration: 8 worker threads)."""
    argv = [
        str(venv / "bin" / "smoltrace-eval"),
        "--model",
        "openai/scripted",
        "--provider",
        "litellm",
        "--dataset-name",
        str(cwd / "tasks.json"),
        "--agent-type",
        "both",
        "--parallel-workers",
        "8",
        "--output-format",
        "json",
        "--output-dir",
        str(cwd / "smoltrace_out"),
        "--quiet",
    ]
    env = {
        "OPENAI_API_BASE": base_url,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "sk-benchmark",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    measured = run_measured(argv, cwd, env=env)
    if measured.returncode != 0:
        print(f"SMOLTRACE run failed ({measured.returncode}):\n{measured.output[-2000:]}")
        return None
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--smoltrace-venv",
        type=Path,
        default=None,
        help="a virtualenv with smoltrace==0.2.12: also run SMOLTRACE on the same tasks and server",
    )
    args = parser.parse_args()
    tasks, scripts, requests = task_set(args.tasks)
    print(f"machine: {machine()}")
    print(
        f"{args.tasks} tasks × 2 agent types = {2 * args.tasks} runs, {requests} requests, "
        f"{args.latency * 1000:.0f} ms per request\n"
    )
    print(f"{'configuration':<22} {'wall s':>7} {'loop s':>9} {'ideal s':>8} {'efficiency':>10} {'peak RSS MiB':>13}")
    walls: list[float] = []
    with ScriptedModelServer(scripts, latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        write_tasks(cwd, tasks)
        for n, (label, workers, concurrency) in enumerate(CONFIGS):
            run_id = f"bench-{n}"
            argv = pytest_argv(
                *scripted_args(server.base_url),
                "--smoltrace-run-id",
                run_id,
                "--smoltrace-concurrency",
                str(concurrency),
                *(["-n", str(workers), "--dist", "loadscope"] if workers else []),
            )
            measured = run_measured(argv, cwd)
            walls.append(measured.wall_s)
            if measured.returncode != 0:
                print(measured.output[-3000:])
                return 1
            loop = float(session_timings(cwd / "smoltrace_results" / run_id)["loop_s"])
            ideal = requests * args.latency / (concurrency * max(workers, 1))
            print(
                f"{label:<22} {measured.wall_s:>7.2f} {loop:>9.2f} {ideal:>8.2f} "
                f"{ideal / loop:>10.2f} {measured.peak_rss_mib:>13.0f}"
            )
        if args.smoltrace_venv is not None:
            best_wall = min(walls)
            theirs = run_smoltrace(args.smoltrace_venv, cwd, server.base_url)
            if theirs is not None:
                print(
                    f"{'SMOLTRACE 0.2.12, 8 thr':<22} {theirs.wall_s:>7.2f} {'—':>9} "
                    f"{requests * args.latency / 8:>8.2f} {'—':>10} {theirs.peak_rss_mib:>13.0f}"
                )
                print(f"\nbest pytest-smoltrace wall ÷ SMOLTRACE wall: {best_wall / theirs.wall_s:.2f}")
    print(
        "\nwall = whole command (interpreter start, imports, collection, run, exit); loop = pytest's run loop "
        "(the items; for -n 2 it includes the workers' start-up and litellm import); efficiency = ideal ÷ loop."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
