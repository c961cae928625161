"""The real embedded local model through the plugin: ``pytest --smoltrace-model local`` on two easy tool tasks.

Slow (≈1 min on 2 cores, ≈4 GB of memory) and skipped unless llama-cpp-python's server and the weights are here
(``pip install 'pytest-smoltrace[local]'``, ``SMOLTRACE_LOCAL_MODEL`` or the Hub cache; nothing is downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_smoltrace.localmodel import LocalModelError, llama_cpp_missing, resolve_weights

RUN_ID = "local-e2e"
TASKS = ("weather_london_rain", "calc_multiply")  # easy; each ≈5 s once the system prompt is in the server's cache
RUN_FILES = ("journal.jsonl", "results.json", "traces.json", "metrics.json", "leaderboard_row.json", "metadata.json")


def _unavailable() -> str | None:
    missing = llama_cpp_missing()
    if missing:
        return missing
    try:
        resolve_weights(download=False)
    except LocalModelError as exc:
        return str(exc)
    return None


def _llama_servers() -> set[int]:
    import psutil

    pids = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "llama_cpp.server" in cmdline:
            pids.add(proc.pid)
    return pids


@pytest.mark.slow
def test_local_model_passes_easy_tool_tasks(pytester: pytest.Pytester) -> None:
    reason = _unavailable()
    if reason:
        pytest.skip(f"the local model is not available here: {reason}")
    before = _llama_servers()
    result = pytester.runpytest_subprocess(
        "--smoltrace-model",
        "local",
        "--smoltrace-agent-type",
        "tool",
        "-k",
        " or ".join(TASKS),
        "--smoltrace-run-id",
        RUN_ID,
        "-p",
        "no:randomly",
        "-v",
        timeout=900,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert outcomes.get("error", 0) == 0, result.stdout.str()

    run_dir = Path(pytester.path) / "smoltrace_results" / RUN_ID
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{name} missing from {run_dir}"
    rows = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert sorted((r["agent_type"], r["task_id"]) for r in rows) == sorted(("tool", t) for t in TASKS)
    assert sum(bool(r["success"]) for r in rows) == outcomes["passed"]
    metadata = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
    assert "qwen2.5-coder-1.5b-instruct-q4_k_m" in json.dumps(metadata)
    assert _llama_servers() <= before, "the local model's server outlived the pytest session"
