"""Idle cost and collection speed, each measured side by side in one run.

1. Idle cost: ``pytest --co`` of an unrelated 200-test suite with the plugin installed (loaded through its entry
   points, no ``--smoltrace-*`` option) vs blocked (``-p no:…`` for each entry point: never imported). Target ≤ 30 ms.
2. Collection of 10 000 tasks (``--smoltrace-agent-type both`` → 20 000 items): ``pytest --co`` wall time, and the
   time pytest itself reports for collection. Target ≤ 3 s.
Usage: ``python benchmarks/idle_and_collection.py [--repeat 7] [--tasks 10000]``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, scripted_args

BLOCKED = ("-p", "no:smoltrace")


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def idle_cost(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for n in range(20):
            tests = "\n".join(f"def test_{n}_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(10))
            (cwd / f"test_module_{n}.py").write_text(tests)
        base = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
        timed(base, cwd)  # warm the file system cache and .pyc files
        installed, blocked = [], []
        for _ in range(repeat):  # interleaved
            installed.append(timed(base, cwd)[0])
            blocked.append(timed([*base, *BLOCKED], cwd)[0])
    a, b = statistics.median(installed), statistics.median(blocked)
    print("1. idle cost: `pytest --co` of 200 unrelated tests (median of", repeat, "runs each, interleaved)")
    print(f"   plugin installed, inactive: {1000 * a:7.1f} ms")
    print(f"   plugin blocked (-p no:…):   {1000 * b:7.1f} ms")
    print(f"   cost of the installed plugin: {1000 * (a - b):+.1f} ms (ratio {a / b:.3f}); target ≤ 30 ms\n")


def collection(tasks: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        rows = [
            {
                "id": f"task_{i}",
                "prompt": f"Question number {i}?",
                "expected_keywords": [str(i)],
                "difficulty": ("easy", "medium", "hard")[i % 3],
                "category": f"c{i % 7}",
            }
            for i in range(tasks)
        ]
        (cwd / "big.json").write_text(json.dumps(rows))
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--co",
            "-q",
            "-p",
            "no:cacheprovider",
            *scripted_args("http://127.0.0.1:9/v1", "big.json", model="openai/x"),
        ]
        walls, reported = [], []
        for _ in range(repeat):
            wall, out = timed(argv, cwd)
            match = re.search(r"(\d+) tests? collected in ([\d.]+)s", out)
            if not match or int(match.group(1)) != 2 * tasks:
                raise SystemExit(f"unexpected collection output: {out[-500:]}")
            walls.append(wall)
            reported.append(float(match.group(2)))
    print(f"2. collection of {tasks} tasks × 2 agent types = {2 * tasks} items (median of {repeat} runs)")
    print(f"   whole `pytest --co` command: {statistics.median(walls):.2f} s")
    print(f"   collection as pytest reports it: {statistics.median(reported):.2f} s; target ≤ 3 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    idle_cost(args.repeat)
    collection(args.tasks, max(3, args.repeat // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
