"""Harness overhead per model request: plugin items vs the same agents called bare, side by side, 0 ms latency.

Both run against one scripted server (after a warm-up, so imports are not counted): the bare loop builds a fresh
agent per task exactly like the plugin (same tools, same model object kind) and runs it, in a fresh interpreter of
its own each round — never instrumented: once the plugin has run in a process, OpenInference's patches of the
smolagents classes stay, and a bare loop there would pay for the spans too; the plugin runs the same tasks as pytest
items (``pytest.main`` in this process, concurrency 1, tracing on as always, model-call spans included).
Usage: ``python benchmarks/overhead.py [--tasks 40] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, scripted_args, session_timings, task_set, write_tasks

from pytest_smoltrace.testing import ScriptedModelServer


def bare(base_url: str, tasks: list[dict[str, object]]) -> float:
    from smolagents import CodeAgent, LiteLLMModel, ToolCallingAgent

    from smoltrace_tools import get_tools

    model = LiteLLMModel(model_id="openai/scripted", api_base=base_url, api_key="x", retry=False, num_retries=0)
    start = time.perf_counter()
    for agent_cls in (ToolCallingAgent, CodeAgent):
        for task in tasks:
            agent = agent_cls(tools=get_tools(), model=model, max_steps=6, verbosity_level=-1)
            agent.run(str(task["prompt"]), return_full_result=True)
    return time.perf_counter() - start


def bare_in_child(base_url: str, tasks_file: Path) -> float:
    """:func:`bare` in a fresh interpreter (nothing instrumented), after its own warm-up; the loop's seconds."""
    argv = [sys.executable, __file__, "--bare-child", base_url, str(tasks_file)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"bare run failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _bare_child(base_url: str, tasks_file: str) -> int:
    tasks = json.loads(Path(tasks_file).read_text(encoding="utf-8"))
    bare(base_url, tasks[:2])  # warm-up: imports, first connections
    if "openinference" in sys.modules or "pytest_smoltrace.telemetry.tracing" in sys.modules:
        raise SystemExit("the bare loop imported the instrumentation")
    sys.stdout.write(f"{bare(base_url, tasks)}\n")
    return 0


def plugin(server: ScriptedModelServer, workdir: Path, run_id: str) -> tuple[float, float]:
    """(whole in-process session, its run loop) in seconds."""
    import pytest

    args = [
        "-p",
        "no:cacheprovider",
        *scripted_args(server.base_url),
        "--smoltrace-concurrency",
        "1",
        "--smoltrace-run-id",
        run_id,
        "-p",
        "no:terminal",
    ]
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        start = time.perf_counter()
        code = pytest.main(args)
        elapsed = time.perf_counter() - start
    finally:
        os.chdir(cwd)
    if code != 0:
        raise SystemExit(f"plugin run failed with exit code {code}")
    return elapsed, float(session_timings(workdir / "smoltrace_results" / run_id)["loop_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bare-child", nargs=2, metavar=("BASE_URL", "TASKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_child:
        return _bare_child(*args.bare_child)
    tasks, scripts, requests = task_set(args.tasks)
    print(f"machine: {machine()}")
    print(f"{args.tasks} tasks × 2 agent types, {requests} requests per round, 0 ms latency, {args.rounds} rounds\n")
    bare_s: list[float] = []
    plugin_s: list[float] = []
    loop_s: list[float] = []
    with ScriptedModelServer(scripts) as server, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tasks_file = write_tasks(workdir, tasks)
        plugin(server, workdir, "warmup")  # warm-up: imports, first connections
        for n in range(args.rounds):  # interleaved, so machine load hits both alike
            bare_s.append(bare_in_child(server.base_url, tasks_file))
            session, loop = plugin(server, workdir, f"round-{n}")
            plugin_s.append(session)
            loop_s.append(loop)
    b, p, lp = statistics.median(bare_s), statistics.median(plugin_s), statistics.median(loop_s)
    print(f"{'':<36} {'total s':>8} {'ms/request':>11}")
    print(f"{'bare smolagents (same agents)':<36} {b:>8.2f} {1000 * b / requests:>11.2f}")
    print(f"{'pytest-smoltrace: run loop':<36} {lp:>8.2f} {1000 * lp / requests:>11.2f}")
    print(f"{'pytest-smoltrace: whole session':<36} {p:>8.2f} {1000 * p / requests:>11.2f}")
    print(
        f"\nper-request overhead of the items (run loop vs bare): {1000 * (lp - b) / requests:+.2f} ms "
        f"(ratio {lp / b:.2f}); target ≤ +2 ms; SMOLTRACE 0.2.12 ≈ +54 ms"
    )
    print(f"fixed cost per session (start-up, collection, output files, pytest's exit): {p - lp:.2f} s")
    print("run loop = pytest's runtestloop (items run, traced, judged, journaled); medians of the rounds, interleaved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
