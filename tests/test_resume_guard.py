"""``--smoltrace-resume`` refuses to continue a run with other settings, and a complete run is reported as such
(issue 11, part 6).

Before: a resume with another model or other options was accepted silently (results.json then mixed two models, and
metadata.json relabelled the whole run), and resuming a complete run ended with exit code 5 ("3 deselected").
The run's settings are written into ``settings.json`` when it starts; without it (a run from before), metadata.json's
options and then the journal's records are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import run_record

from pytest_smoltrace.lineup import lineup
from pytest_smoltrace.preflight import Difference, journal_differences, settings_differences
from pytest_smoltrace.records import Check, ItemResult, Verdict

WEATHER = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]}
TASKS = [
    {"id": f"t{i}", "prompt": f"Weather in Paris? [g-t{i}]", "agent_type": "tool", "expected_tool": "get_weather"}
    for i in range(3)
]
SCRIPTS = {f"[g-t{i}]": {"tool": [WEATHER, {"final_answer": f"20°C #{i}"}]} for i in range(3)}
OTHER = ("--smoltrace-agent-type", "tool", "--smoltrace-max-steps", "3")  # with model="openai/other"
#: What a resume with OTHER is told differs from the run (made with the defaults).
OTHER_DIFFERENCES = (
    "model: journal openai/scripted, now openai/other",
    "agent-type: journal both, now tool",
    "max-steps: journal 6, now 3",
)


def refusal(source: str, *differences: str) -> list[str]:
    return [
        f"ERROR: --smoltrace-resume test-run: the run was made with other settings (read from {source}):",
        *(f"  {d}" for d in differences),
        "give the same options to resume it, or add --smoltrace-resume-force to continue it with these "
        "(both settings are then recorded)",
    ]


def assert_refused(bench: Any, source: str, *differences: str) -> None:
    """A resume of ``test-run`` with the OTHER settings (and model ``openai/other``) is a usage error that says it was
    made with other settings, read from ``source``: ``differences``."""
    refused = bench(TASKS, None, "--smoltrace-resume", "test-run", *OTHER, subprocess=True, model="openai/other")
    assert refused.result.ret == pytest.ExitCode.USAGE_ERROR, refused.stdout
    assert [line for line in refused.result.stderr.lines if line.strip()] == refusal(source, *differences)


def partial_run(bench: Any) -> Any:
    """A run that did one of its three items (``-k t0``): a resume has two left to run."""
    run = bench(TASKS, SCRIPTS, "-k", "t0", subprocess=True)
    run.result.assert_outcomes(passed=1, deselected=2)
    return run


def files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def test_resume_with_other_settings_is_refused_unless_forced(bench: Any) -> None:
    run = partial_run(bench)
    started = json.loads((run.run_dir / "settings.json").read_text())
    assert started["run_id"] == "test-run" and started["history"] == []
    assert started["settings"]["model"] == ["openai/scripted"] and started["settings"]["max_steps"] == 6
    before = files(run.run_dir)

    assert_refused(bench, "settings.json", *OTHER_DIFFERENCES)
    assert files(run.run_dir) == before  # nothing was run, written or relabelled

    forced = bench(
        TASKS,
        None,
        "--smoltrace-resume",
        "test-run",
        *OTHER,
        "--smoltrace-resume-force",
        subprocess=True,
        model="openai/other",
    )
    forced.result.assert_outcomes(passed=2, deselected=1)
    assert {r["task_id"]: r["model"] for r in forced.rows} == {
        "t0": "openai/scripted",
        "t1": "openai/other",
        "t2": "openai/other",
    }
    recorded = json.loads((run.run_dir / "settings.json").read_text())
    assert recorded["settings"]["model"] == ["openai/other"] and recorded["settings"]["max_steps"] == 3
    [replaced] = recorded["history"]
    assert replaced["source"] == "settings.json" and replaced["settings"] == started["settings"]
    assert replaced["differences"] == [
        {"option": "model", "journal": ["openai/scripted"], "now": ["openai/other"]},
        {"option": "agent-type", "journal": "both", "now": "tool"},
        {"option": "max-steps", "journal": 6, "now": 3},
    ]


def test_without_settings_json_metadata_then_the_journal_is_compared(bench: Any) -> None:
    run = partial_run(bench)
    (run.run_dir / "settings.json").unlink()  # a run directory from before settings.json existed
    assert_refused(bench, "metadata.json", *OTHER_DIFFERENCES)
    (run.run_dir / "metadata.json").unlink()  # a kill -9 of the controller: only the journal is left
    assert_refused(bench, "journal.jsonl", "model: journal openai/scripted, now openai/other")
    # the same settings: accepted, and the run gets its settings.json
    same = bench(TASKS, None, "--smoltrace-resume", "test-run", subprocess=True)
    same.result.assert_outcomes(passed=2, deselected=1)
    assert json.loads((run.run_dir / "settings.json").read_text())["settings"]["model"] == ["openai/scripted"]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_resuming_a_complete_run_says_so_and_exits_0(bench: Any, workers: tuple[str, ...]) -> None:
    run = bench(TASKS, SCRIPTS, *workers, subprocess=True)
    run.result.assert_outcomes(passed=3)
    again = bench(TASKS, None, "--smoltrace-resume", "test-run", *workers, subprocess=True)
    assert again.result.ret == pytest.ExitCode.OK, again.stdout
    again.result.stdout.fnmatch_lines(
        ["smoltrace: run test-run is already complete: its journal holds all 3 items, nothing left to run"]
    )
    assert len(again.rows) == 3 and all(r["success"] for r in again.rows)
    # deselecting what is not finished yet is not a complete run: pytest's own "no tests ran" stands
    partial = bench([*TASKS, {**TASKS[0], "id": "t9"}], None, "--smoltrace-resume", "test-run", "-k", "not t9")
    assert partial.result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, partial.stdout
    assert "already complete" not in partial.stdout


# ── the comparison itself ─────────────────────────────────────────────────────────────────────────────────────────


def test_settings_differences_name_each_option() -> None:
    before = {"model": "openai/a", "difficulty": None, "max_steps": 6, "tools": [], "timeout": 300.0, "retries": 3}
    now = {"model": "openai/b", "difficulty": "easy", "max_steps": 3, "tools": ("read_file",), "timeout": 300.0}
    assert [str(d) for d in settings_differences(before, {**now, "retries": 0, "concurrency": 2})] == [
        "model: journal openai/a, now openai/b",
        "difficulty: journal all, now easy",
        "max-steps: journal 6, now 3",
        "tools: journal defaults only, now read_file",
    ]  # retries and concurrency change no verdict: not compared
    assert settings_differences({"model": "openai/a"}, {"model": "openai/a", "max_steps": 9}) == []  # older file
    # a settings.json of before --smoltrace-model was repeatable (a string) against today's list
    assert settings_differences({"model": "openai/a"}, {"model": ("openai/a",)}) == []
    assert [str(d) for d in settings_differences({"model": "openai/a"}, {"model": ("openai/a", "openai/b")})] == [
        "model: journal openai/a, now openai/a,openai/b"
    ]
    assert [str(d) for d in settings_differences({"model": ["a"], "repeats": 1}, {"model": ["a"], "repeats": 4})] == [
        "repeats: journal 1, now 4"
    ]
    assert str(Difference("timeout", 300.0, 60.0)) == "timeout: journal 300, now 60"


def _result(nodeid: str, started_at: float, **fields: Any) -> ItemResult:
    """A passed item: its agent type and task are the node id's last two parts; ``fields``: more of its record's."""
    *_, agent_type, task_id = nodeid.split("::")
    record = run_record("x", task_id=task_id, agent_type=agent_type, started_at=started_at, nodeid=nodeid, **fields)
    return ItemResult(nodeid=nodeid, record=record, verdict=Verdict(checks=(Check("final_answer", True, "", ""),)))


def _settings(**values: Any) -> Any:
    """Settings with the defaults of the option table, overridden by ``values``."""
    from dataclasses import fields

    from pytest_smoltrace.options import OPTIONS
    from pytest_smoltrace.settings import Settings

    defaults = {spec.dest[len("smoltrace_") :]: spec.default for spec in OPTIONS}
    defaults.update(output_dir=Path("smoltrace_results"), working_dir=Path("."), **values)
    return Settings(**{f.name: defaults[f.name] for f in fields(Settings)})


def test_journal_differences_from_the_records() -> None:
    results = [_result("s::tool::a", 1.0, model="openai/a"), _result("s::code::b", 2.0, model="openai/a")]

    def differences(settings: Any, records: list[Any]) -> list[Any]:
        return journal_differences(settings, lineup(settings), records)

    assert differences(_settings(model=("openai/a",)), results) == []
    assert [str(d) for d in differences(_settings(model=("openai/b",), agent_type="tool"), results)] == [
        "model: journal openai/a, now openai/b",
        "agent-type: journal both, now tool",
    ]
    # the scripted model is recorded as openai/scripted on the openai provider; a partial journal of one agent type
    # fits "both"
    scripted = [_result("s::tool::a", 1.0, model="openai/scripted", provider="openai")]
    assert differences(_settings(model=("scripted",)), scripted) == []
    assert [str(d) for d in differences(_settings(model=("openai/a",), provider="ollama"), scripted)] == [
        "model: journal openai/scripted, now openai/a",
        "provider: journal openai, now ollama",
    ]
    assert differences(_settings(model=("openai/b",)), []) == []
    # several models: the journal's model names (labels) must be among this session's
    labelled = [_result("s::m1::tool::a", 1.0, model="openai/a", model_label="m1")]
    assert differences(_settings(model=("openai/a", "openai/b")), labelled) == [Difference("model", ["m1"], ["a", "b"])]
