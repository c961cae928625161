"""Shared helpers: run a benchmark through pytester against the scripted model server and read its run directory."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _pytest.pytester as _pytester
import pytest

from pytest_smoltrace.testing import ScriptedModelServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# The importlib_metadata backport (imported by litellm/opentelemetry during an in-process pytester run) deletes the
# stdlib PathFinder.find_distributions and appends its own finder to sys.meta_path; pytester then restores
# sys.meta_path and every later run finds no entry points (so no plugins). Importing it up front keeps both in place.
with contextlib.suppress(ImportError):
    import importlib_metadata  # noqa: F401

# pytester's in-process runs drop every module first imported during the run. Re-importing litellm costs ≈4 s per
# run, and C extensions pulled in lazily (torch, jiter, …) break when imported twice ("bad call flags"). Keep every
# installed or project module across runs; only modules from the runs' temporary directories are dropped.
_KEEP_ROOTS = tuple({sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])})


class _KeepInstalledModules(_pytester.SysModulesSnapshot):
    def __init__(self, preserve: Any = None) -> None:
        def keep(name: str) -> bool:
            origin = getattr(sys.modules.get(name), "__file__", None) or ""
            return bool(preserve and preserve(name)) or origin.startswith(_KEEP_ROOTS)

        super().__init__(preserve=keep)


_pytester.SysModulesSnapshot = _KeepInstalledModules  # type: ignore[misc]

RUN_ID = "test-run"


@dataclass
class BenchRun:
    result: pytest.RunResult
    run_dir: Path

    def read(self, name: str) -> Any:
        return json.loads((self.run_dir / name).read_text(encoding="utf-8"))

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.read("results.json"))

    def row(self, task_id: str, agent_type: str) -> dict[str, Any]:
        matches = [r for r in self.rows if r["task_id"] == task_id and r["agent_type"] == agent_type]
        assert len(matches) == 1, f"{task_id}/{agent_type}: {len(matches)} rows"
        return matches[0]

    def verdicts(self) -> dict[str, str]:
        return {r["test_case_uid"]: r["outcome"] for r in self.rows}

    @property
    def stdout(self) -> str:
        return self.result.stdout.str()


@pytest.fixture
def server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as srv:
        yield srv


@pytest.fixture
def bench(pytester: pytest.Pytester, server: ScriptedModelServer) -> Any:
    """``bench(tasks, scripts, *args, run_id=…, subprocess=False, model="openai/scripted")`` → :class:`BenchRun`
    (``--smoltrace-model`` is repeatable: pass another model here, not in ``args``, to replace it)."""

    def run(
        tasks: list[dict[str, Any]] | None,
        scripts: dict[str, Any] | None = None,
        *args: str,
        run_id: str = RUN_ID,
        subprocess: bool = False,
        model: str = "openai/scripted",
    ) -> BenchRun:
        for key, script in (scripts or {}).items():
            server.add_script(key, script)
        dataset_args: tuple[str, ...] = ()
        if tasks is not None:
            (pytester.path / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
            dataset_args = ("--smoltrace-dataset", "tasks.json")
        argv = (
            "--smoltrace-model",
            model,
            "--smoltrace-api-base",
            server.base_url,
            "--smoltrace-run-id",
            run_id,
            "-p",
            "no:randomly",
            *dataset_args,
            *args,
        )
        result = pytester.runpytest_subprocess(*argv) if subprocess else pytester.runpytest(*argv)
        return BenchRun(result, pytester.path / "smoltrace_results" / run_id)

    return run
