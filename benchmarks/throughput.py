"""Throughput: N tasks × both agent types against the scripted server at a fixed latency per request.

Runs, side by side in one invocation: the default ``litellm`` provider with ``-n 0`` and concurrency 1 / 8 / 16 and
``-n 2 --dist loadscope`` (each worker gets whole agent-type groups, so its queue is deep enough to run ahead) with
concurrency 8, then the ``openai`` provider (no litellm import) with ``-n 0`` and concurrency 8 / 16 / 32 and
``-n 2`` with concurrency 8; prints wall time, in-session time, ideal time (requests × latency ÷ concurrency),
loop efficiency (ideal ÷ in-session) and peak RSS of the whole process tree.

With ``--smoltrace-venv`` (a virtualenv with ``smoltrace==0.2.12``) SMOLTRACE's own CLI runs the same tasks against the
same server with 8, 16 and 32 worker threads, and the script prints the best wall time of each tool and their ratio
(target: ≤ 0.6 at 40 tasks and 200 ms). Usage:
``python benchmarks/throughput.py [--tasks 40] [--latency 0.2] [--smoltrace-venv /tmp/st-venv] [--quick] [--rounds N]``
(``--quick``: only each tool's best configurations; ``--rounds N``: the comparison N times, interleaved, and the
median ratio — on a busy machine one round's ratio moves by ±0.3).
"""

from __future__ import annotations

import argparse
import statistics
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

#: (label, provider, xdist workers, concurrency per process, part of --quick)
CONFIGS = (
    ("litellm -n 0, conc 1", "litellm", 0, 1, False),
    ("litellm -n 0, conc 8", "litellm", 0, 8, False),
    ("litellm -n 0, conc 16", "litellm", 0, 16, False),
    ("litellm -n 2, conc 8", "litellm", 2, 8, False),
    ("openai -n 0, conc 8", "openai", 0, 8, False),
    ("openai -n 0, conc 16", "openai", 0, 16, True),
    ("openai -n 0, conc 32", "openai", 0, 32, True),
    ("openai -n 2, conc 8", "openai", 2, 8, True),
)
#: SMOLTRACE's ``--parallel-workers`` tried (its best is taken).
SMOLTRACE_WORKERS = (8, 16, 32)


def run_smoltrace(venv: Path, cwd: Path, base_url: str, workers: int = 8) -> Measured | None:
    """SMOLTRACE's own CLI on the same tasks and server with ``workers`` threads."""
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
        str(workers),
        "--output-format",
        "json",
        "--output-dir",
        str(cwd / f"smoltrace_out_{workers}"),
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


def run_ours(
    args: argparse.Namespace, cwd: Path, base_url: str, requests: int, round_no: int = 1
) -> dict[str, float] | None:
    """One run of each of our configurations (``--quick``: the best ones); wall seconds by label, None on failure."""
    walls: dict[str, float] = {}
    for n, (label, provider, workers, concurrency, quick) in enumerate(CONFIGS):
        if args.quick and not quick:
            continue
        run_id = f"bench-r{round_no}-{n}"
        argv = pytest_argv(
            *scripted_args(base_url),
            "--smoltrace-provider",
            provider,
            "--smoltrace-run-id",
            run_id,
            "--smoltrace-concurrency",
            str(concurrency),
            *(["-n", str(workers), "--dist", "loadscope"] if workers else []),
        )
        measured = run_measured(argv, cwd)
        if measured.returncode != 0:
            print(measured.output[-3000:])
            return None
        walls[label] = measured.wall_s
        loop = float(session_timings(cwd / "smoltrace_results" / run_id)["loop_s"])
        ideal = requests * args.latency / (concurrency * max(workers, 1))
        print(
            f"{label:<26} {measured.wall_s:>7.2f} {loop:>9.2f} {ideal:>8.2f} "
            f"{ideal / loop:>10.2f} {measured.peak_rss_mib:>13.0f}"
        )
    return walls


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
    parser.add_argument("--quick", action="store_true", help="only each tool's best configurations")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the side-by-side comparison; the median ratio is printed"
    )
    args = parser.parse_args()
    tasks, scripts, requests = task_set(args.tasks)
    print(f"machine: {machine()}")
    print(
        f"{args.tasks} tasks × 2 agent types = {2 * args.tasks} runs, {requests} requests, "
        f"{args.latency * 1000:.0f} ms per request\n"
    )
    print(f"{'configuration':<26} {'wall s':>7} {'loop s':>9} {'ideal s':>8} {'efficiency':>10} {'peak RSS MiB':>13}")
    ratios: list[float] = []
    with ScriptedModelServer(scripts, latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        write_tasks(cwd, tasks)
        for round_no in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {round_no}/{args.rounds}")
            walls = run_ours(args, cwd, server.base_url, requests, round_no)
            if walls is None:
                return 1
            if args.smoltrace_venv is None:
                continue
            theirs: dict[int, float] = {}
            for workers in SMOLTRACE_WORKERS:
                measured_theirs = run_smoltrace(args.smoltrace_venv, cwd, server.base_url, workers)
                if measured_theirs is None:
                    return 1
                theirs[workers] = measured_theirs.wall_s
                print(
                    f"{f'SMOLTRACE 0.2.12, {workers} thr':<26} {measured_theirs.wall_s:>7.2f} {'—':>9} "
                    f"{requests * args.latency / workers:>8.2f} {'—':>10} {measured_theirs.peak_rss_mib:>13.0f}"
                )
            ours_label = min(walls, key=walls.__getitem__)
            theirs_workers = min(theirs, key=theirs.__getitem__)
            ratios.append(walls[ours_label] / theirs[theirs_workers])
            print(
                f"best pytest-smoltrace ({ours_label}) {walls[ours_label]:.2f} s ÷ best SMOLTRACE 0.2.12 "
                f"({theirs_workers} threads) {theirs[theirs_workers]:.2f} s = ratio {ratios[-1]:.2f}\n"
            )
    if ratios:
        shown = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"ratio (best of each, side by side): median {statistics.median(ratios):.2f} over {len(ratios)} ", end="")
        print(f"round(s) [{shown}] (target ≤ 0.6)")
    print(
        "\nwall = whole command (interpreter start, imports, collection, run, exit); loop = pytest's run loop "
        "(the items; for -n 2 it includes the workers' start-up and imports); efficiency = ideal ÷ loop."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
