"""Scaling: scripted runs of 100, 1,000 and 10,000 items side by side (0 ms model latency, ``--smoltrace-output json``).

Each size is ``N/2`` tasks × both agent types (half call a tool: 2 requests, half answer at once), run by a fresh
``pytest`` against the scripted server, which runs in this process (its request log is not the controller's memory).
Printed per size: wall time, pytest's run loop (``metadata.json`` ``timings.loop_s``), time per item over the loop
and its ratio to the smallest size (target ≤ 1.2), the time outside the loop (start-up, collection, writing the run
directory: it must not grow out of proportion), and the peak RSS of the pytest process (target ≤ 500 MB; polled every
20 ms). Each run's results.json must hold one row per item.

Usage: ``python benchmarks/scaling.py [--sizes 100,1000,10000] [--concurrency K] [--provider openai|litellm]``
(default openai, what ``--smoltrace-model scripted`` uses).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, pytest_argv, run_measured, scripted_args, session_timings, task_set, write_tasks

from pytest_smoltrace.testing import ScriptedModelServer

RSS_TARGET_MB = 500
RATIO_TARGET = 1.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated item counts (even numbers)")
    parser.add_argument("--concurrency", type=int, default=None, help="--smoltrace-concurrency (default: the plugin's)")
    parser.add_argument(
        "--provider",
        default="openai",
        help="--smoltrace-provider (default: openai, what --smoltrace-model scripted uses)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"machine: {machine()}")
    print("scripted model, 0 ms per request, --smoltrace-output json, N/2 tasks × both agent types\n")
    print(
        f"{'items':>6} {'wall s':>8} {'loop s':>8} {'ms/item':>8} {'ratio':>6} {'outside loop s':>15} "
        f"{'peak RSS MB':>12} {'results rows':>13}"
    )
    first: float | None = None
    failed = False
    for size in sizes:
        tasks, scripts, _ = task_set(size // 2)
        with ScriptedModelServer(scripts) as server, tempfile.TemporaryDirectory() as tmp:
            cwd = Path(tmp)
            write_tasks(cwd, tasks)
            run_id = f"scale-{size}"
            extra = ["--smoltrace-concurrency", str(args.concurrency)] if args.concurrency else []
            extra += ["--smoltrace-provider", args.provider] if args.provider else []
            argv = pytest_argv(
                *scripted_args(server.base_url), "--smoltrace-run-id", run_id, "--smoltrace-output", "json", *extra
            )
            measured = run_measured(argv, cwd)
            if measured.returncode != 0:
                print(f"{size}: pytest exited {measured.returncode}\n{measured.output[-3000:]}")
                return 1
            run_dir = cwd / "smoltrace_results" / run_id
            loop = float(session_timings(run_dir)["loop_s"])
            rows = len(json.loads((run_dir / "results.json").read_text(encoding="utf-8")))
        per_item = 1000 * loop / size
        first = first or per_item
        ratio = per_item / first
        peak_mb = measured.peak_rss_mib * 2**20 / 1e6
        failed |= rows != size
        print(
            f"{size:>6} {measured.wall_s:>8.1f} {loop:>8.1f} {per_item:>8.1f} {ratio:>6.2f} "
            f"{measured.wall_s - loop:>15.1f} {peak_mb:>12.0f} {rows:>13}"
        )
    print(
        f"\nms/item = pytest's run loop ÷ items; ratio = ms/item ÷ the first size's (target ≤ {RATIO_TARGET}); "
        f"peak RSS of the pytest process (target ≤ {RSS_TARGET_MB} MB)."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
