"""Shared helpers for the benchmark scripts: task sets, scripted-server scripts, subprocess runs with peak RSS.

The helpers they share with the test files (``helpers``, ``agent_helpers``, ``escape_lab``) live in ``tests/``, which
importing this module puts on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.append(str(TESTS_DIR))

from helpers import scripted_args as scripted_args  # noqa: E402  (re-exported: the options of a scripted session)

WEATHER = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
WEATHER_CODE = {"code": "w = get_weather(location='Paris, France')\nprint(w)"}


def task_set(n: int) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
    """``n`` tasks for both agent types: half use a tool (2 requests), half answer at once (1 request).

    Returns (tasks, scripts, total model requests for both agent types).
    """
    tasks, scripts, requests = [], {}, 0
    for i in range(n):
        key = f"[bench-{i}]"
        uses_tool = i % 2 == 0
        tasks.append(
            {
                "id": f"b{i}",
                "prompt": f"Benchmark task {key}",
                "agent_type": "both",
                "difficulty": "easy",  # SMOLTRACE requires it
                **({"expected_tool": "get_weather"} if uses_tool else {}),
                "expected_keywords": ["20"],
            }
        )
        final = {"final_answer": f"20°C ({i})"}
        scripts[key] = {
            "tool": [WEATHER, final] if uses_tool else [final],
            "code": [WEATHER_CODE, final] if uses_tool else [final],
        }
        requests += 2 * (2 if uses_tool else 1)
    return tasks, scripts, requests


@dataclass(frozen=True)
class Measured:
    wall_s: float
    peak_rss_mib: float
    returncode: int
    output: str


def run_measured(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> Measured:
    """Run ``argv``; wall time and the peak of the summed RSS of the process tree (polled every 20 ms).

    Output goes to a temporary file, not a pipe: a chatty command would otherwise block on a full pipe.
    """
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
        parent = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        output = out.read()
    return Measured(wall, peak / 2**20, proc.returncode, output)


def pytest_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def write_tasks(directory: Path, tasks: list[dict[str, Any]]) -> Path:
    path = directory / "tasks.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


def session_timings(run_dir: Path) -> dict[str, Any]:
    """The run's ``metadata.json`` timings: ``duration_s`` (configure → finish) and ``loop_s`` (the items)."""
    return dict(json.loads((run_dir / "metadata.json").read_text())["timings"])


def machine() -> str:
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
