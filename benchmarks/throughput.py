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

from _common import machine, pytest_argv, run_measured, session_timings, task_set, write_tasks

from pytest_smoltrace.testing import ScriptedModelServer

CONFIGS = (
    ("-n 0, concurrency 1", 0, 1),
    ("-n 0, concurrency 8", 0, 8),
    ("-n 0, concurrency 16", 0, 16),
    ("-n 2, concurrency 8", 2, 8),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    tasks, scripts, requests = task_set(args.tasks)
    print(f"machine: {machine()}")
    print(
        f"{args.tasks} tasks × 2 agent types = {2 * args.tasks} runs, {requests} requests, "
        f"{args.latency * 1000:.0f} ms per request\n"
    )
    print(f"{'configuration':<22} {'wall s':>7} {'loop s':>9} {'ideal s':>8} {'efficiency':>10} {'peak RSS MiB':>13}")
    with ScriptedModelServer(scripts, latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        write_tasks(cwd, tasks)
        for n, (label, workers, concurrency) in enumerate(CONFIGS):
            run_id = f"bench-{n}"
            argv = pytest_argv(
                "--smoltrace-model",
                "openai/scripted",
                "--smoltrace-api-base",
                server.base_url,
                "--smoltrace-dataset",
                "tasks.json",
                "--smoltrace-run-id",
                run_id,
                "--smoltrace-concurrency",
                str(concurrency),
                *(["-n", str(workers), "--dist", "loadscope"] if workers else []),
            )
            measured = run_measured(argv, cwd)
            if measured.returncode != 0:
                print(measured.output[-3000:])
                return 1
            loop = float(session_timings(cwd / "smoltrace_results" / run_id)["loop_s"])
            ideal = requests * args.latency / (concurrency * max(workers, 1))
            print(
                f"{label:<22} {measured.wall_s:>7.2f} {loop:>9.2f} {ideal:>8.2f} "
                f"{ideal / loop:>10.2f} {measured.peak_rss_mib:>13.0f}"
            )
    print(
        "\nwall = whole command (interpreter start, imports, collection, run, exit); loop = pytest's run loop "
        "(the items; for -n 2 it includes the workers' start-up and litellm import); efficiency = ideal ÷ loop."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
