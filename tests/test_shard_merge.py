"""``--smoltrace-shard I/N`` and ``smoltrace-merge``: the bundled scripted benchmark run whole and as 4 shards (fresh
interpreters), the shards merged by the console script, and the merged run held to the whole one item for item."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.collect import parse_nodeid
from pytest_smoltrace.shard import Shard, assign, parse_shard, split

#: The bundled set against the bundled scripted server, one run per process, in the order pytest collects.
RUN = ("-p", "no:randomly", "-p", "no:cacheprovider", "-q")
MODEL = ("--smoltrace-model", "scripted")
SHARDS = 4
#: What differs between two runs of the same items (ids, clocks, where files are): not compared.
VOLATILE = {"evaluation_date", "trace_id", "span_id", "run_id", "execution_time_ms", "enhanced_trace_info"}
#: Tools whose result is the time of the call.
CLOCKS = {"get_current_time"}


def _pytest(
    cwd: Path, *args: str, env: dict[str, str] | None = None, model: tuple[str, ...] = MODEL
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *RUN, *model, *args],
        cwd=cwd,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def merge_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, in a fresh interpreter."""
    script = shutil.which("smoltrace-merge", path=str(Path(sys.executable).parent)) or "smoltrace-merge"
    return subprocess.run([script, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``whole`` (unsharded) and ``s1`` … ``s4`` (``--smoltrace-shard I/4``) under ``<root>/smoltrace_results``."""
    root = tmp_path_factory.mktemp("parts")
    procs = [_pytest(root, "--smoltrace-run-id", "whole")]
    procs += [_pytest(root, "--smoltrace-run-id", f"s{i}", "--smoltrace-shard", f"{i}/{SHARDS}") for i in (1, 2)]
    for proc in procs:
        _finish(proc)
    # SMOLTRACE_SHARD is the same option as --smoltrace-shard
    procs = [_pytest(root, "--smoltrace-run-id", f"s{i}", env={"SMOLTRACE_SHARD": f"{i}/{SHARDS}"}) for i in (3, 4)]
    for proc in procs:
        _finish(proc)
    return root / "smoltrace_results"


def task_key(nodeid: str, labels: tuple[str, ...] = ()) -> tuple[str, str] | None:
    ref = parse_nodeid(nodeid, labels)
    return (ref.source, ref.task_id) if ref is not None else None


def read(run_dir: Path, name: str) -> Any:
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def span_shape(doc: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Each span's category and name with its parent's name: the trace's shape without ids and clocks."""
    names = {s["span_id"]: s["name"] for s in doc["spans"]}
    return sorted((s["category"], s["name"], names.get(s.get("parent_span_id"))) for s in doc["spans"])


def comparable_row(row: dict[str, Any]) -> dict[str, Any]:
    """A results row without what differs between two runs of one item: ids, clocks, what a clock tool read, and
    the order of the calls of one step (smolagents runs a step's tool calls in parallel: they finish in any order)."""
    calls = [
        {k: c[k] for k in ("name", "arguments", "result", "error") if k != "result" or c["name"] not in CLOCKS}
        for c in row["tool_calls"]
    ]
    # a check's "actual" names the calls in the order they finished: its words are compared, not their order
    checks = [
        {**c, "actual": sorted(re.findall(r"[^\W_]+", json.dumps(c["actual"], ensure_ascii=False)))}
        for c in row["checks"]
    ]
    return {
        **{k: v for k, v in row.items() if k not in VOLATILE},
        "tool_calls": sorted(calls, key=lambda c: json.dumps(c, sort_keys=True)),
        "tools_used": sorted(row["tools_used"]),
        "checks": checks,
    }


# -- the merged run equals the whole one --------------------------------------------------------------------------


def test_merged_shards_equal_the_unsharded_run(runs: Path) -> None:
    whole = runs / "whole"
    shards = [runs / f"s{i}" for i in range(1, SHARDS + 1)]
    done = merge_cli(*shards, "-o", runs / "merged")
    assert done.returncode == 0, done.stderr
    merged = runs / "merged"
    assert f"into {merged}" in done.stdout and "warning" not in done.stderr.lower()

    # every item in exactly one shard, and no shard empty
    items = [{r["test_case_uid"] for r in read(s, "results.json")} for s in shards]
    assert all(items) and sum(map(len, items)) == len(set().union(*items))
    assert set().union(*items) == {r["test_case_uid"] for r in read(whole, "results.json")}

    # results: the same rows in the same (collection) order, verdicts, tokens, tool calls and checks alike
    expected, got = read(whole, "results.json"), read(merged, "results.json")
    assert [r["test_case_uid"] for r in got] == [r["test_case_uid"] for r in expected]
    assert [comparable_row(r) for r in got] == [comparable_row(r) for r in expected]
    assert {r["run_id"] for r in got} == {"merged"}

    # traces: one per item, each of the same shape
    by_item = {d["nodeid"]: d for d in read(merged, "traces.json")}
    assert len(by_item) == len(expected) == len(read(merged, "traces.json"))
    for doc in read(whole, "traces.json"):
        assert span_shape(by_item[doc["nodeid"]]) == span_shape(doc), doc["nodeid"]
        assert by_item[doc["nodeid"]]["run_id"] == "merged"

    # statistics and the leaderboard's deterministic columns
    assert read(merged, "statistics.json") == read(whole, "statistics.json")
    fixed = ("model", "agent_type", "total_tests", "successful_tests", "failed_tests", "success_rate", "pass_at_1")
    fixed += ("total_tokens", "total_prompt_tokens", "total_completion_tokens", "planned_tests", "completed_tests")
    fixed += ("avg_steps", "tool_called_rate", "correct_tool_rate", "attempts", "run_status")
    lines = [{k: row[k] for k in fixed} for row in read(merged, "leaderboard_row.json")]
    assert lines == [{k: row[k] for k in fixed} for row in read(whole, "leaderboard_row.json")]

    # journal: every attempt; metadata: counts, totals and where each part came from
    journal = [json.loads(line) for line in (merged / "journal.jsonl").read_text().splitlines()]
    assert sorted(j["nodeid"] for j in journal) == sorted(r["test_case_uid"] for r in expected)
    meta, whole_meta = read(merged, "metadata.json"), read(whole, "metadata.json")
    samples = ("num_metrics",)  # four processes sampled: more readings than one
    assert {k: v for k, v in meta["counts"].items() if k not in samples} == {
        k: v for k, v in whole_meta["counts"].items() if k not in samples
    }
    assert meta["run_status"] == "completed"
    for key in ("attempts", "prompt_tokens", "completion_tokens", "total_tokens"):
        assert meta["totals"][key] == whole_meta["totals"][key]
    assert meta["run_id"] == "merged" and meta["shard"] is None and meta["options"]["shard"] is None
    assert [(e["run_id"], e["shard"]) for e in meta["merged_from"]] == [
        (f"s{i}", {"index": i, "count": SHARDS}) for i in range(1, SHARDS + 1)
    ]
    assert sum(e["items"] for e in meta["merged_from"]) == len(expected)
    assert read(merged, "settings.json")["settings"]["run_id"] == "merged"
    assert (merged / "report.html").stat().st_size > 0

    # metrics: each shard's process stays its own, every reading kept
    metrics = read(merged, "metrics.json")
    processes = {p["process"] for p in metrics["processes"]}
    own = [{p["process"] for p in read(s, "metrics.json")["processes"]} for s in shards]
    assert processes == {f"s{i}/{name}" for i, names in enumerate(own, 1) for name in names}
    assert len(processes) == SHARDS  # one process per shard, even though each shard's own is called the same
    readings = sum(len(read(s, "metrics.json")["series"]) for s in shards)
    assert len(metrics["series"]) == readings and {r["process"] for r in metrics["series"]} == processes


def test_each_shard_records_its_shard(runs: Path) -> None:
    order = [r["test_case_uid"] for r in read(runs / "whole", "results.json")]
    for i in range(1, SHARDS + 1):
        meta = read(runs / f"s{i}", "metadata.json")
        assert {k: meta["shard"][k] for k in ("index", "count")} == {"index": i, "count": SHARDS}
        assert meta["shard"]["collection_order"] == order  # the whole run's, whichever shard ran
        assert read(runs / f"s{i}", "settings.json")["settings"]["shard"] == {"index": i, "count": SHARDS}
    assert read(runs / "whole", "metadata.json")["shard"] is None


# -- what the merge refuses, and what it warns about ---------------------------------------------------------------


def test_the_same_item_twice_is_refused_naming_it_and_both_directories(runs: Path) -> None:
    whole, first = runs / "whole", runs / "s1"
    done = merge_cli(whole, first, "-o", runs / "dup")
    assert done.returncode == 2 and done.stdout == ""
    assert "the same item is in two run directories" in done.stderr
    one = read(first, "results.json")[0]["test_case_uid"]
    assert f"{one} (repeat 0, model openai/scripted) is in {whole} and in {first}" in done.stderr
    assert not (runs / "dup").exists()


def test_an_incomplete_shard_set_is_merged_with_a_warning_naming_the_missing_shard(runs: Path) -> None:
    parts = [runs / f"s{i}" for i in (1, 2, 4)]
    done = merge_cli(*parts, "-o", runs / "partial")
    assert done.returncode == 0, done.stderr
    assert "the shard set is incomplete: 3/4 missing" in done.stderr
    got = {r["test_case_uid"] for r in read(runs / "partial", "results.json")}
    assert got == set().union(*({r["test_case_uid"] for r in read(p, "results.json")} for p in parts))

    strict = merge_cli(*parts, "-o", runs / "strict", "--complete")
    assert strict.returncode == 2 and "3/4 missing" in strict.stderr and not (runs / "strict").exists()


def test_the_merged_run_of_an_incomplete_set_resumes_into_the_whole_run(runs: Path) -> None:
    """settings.json of the merged run lets --smoltrace-resume run exactly what the missing shard held."""
    parts = [runs / f"s{i}" for i in (1, 2, 3)]
    done = merge_cli(*parts, "-o", runs / "resumed")
    assert done.returncode == 0, done.stderr
    out = _finish(_pytest(runs.parent, "--smoltrace-resume", "resumed"))
    fourth = len(read(runs / "s4", "results.json"))
    assert f"{fourth} passed" in out
    got, expected = read(runs / "resumed", "results.json"), read(runs / "whole", "results.json")
    assert [comparable_row(r) for r in got] == [comparable_row(r) for r in expected]


def test_other_run_settings_are_refused_with_the_setting_and_both_values(runs: Path, tmp_path: Path) -> None:
    other = _finish(
        _pytest(
            tmp_path,
            *("--smoltrace-run-id", "other", "--smoltrace-max-steps", "5", "--smoltrace-shard", f"3/{SHARDS}"),
            *("--smoltrace-agent-type", "tool"),
        )
    )
    assert "passed" in other
    mine = tmp_path / "smoltrace_results" / "other"
    done = merge_cli(runs / "s1", runs / "s2", mine, runs / "s4", "-o", tmp_path / "merged")
    assert done.returncode == 2, done.stdout
    assert "the runs were made with other run settings" in done.stderr
    assert f"--smoltrace-max-steps: {runs / 's1'} has 6, {mine} has 5" in done.stderr
    assert f'--smoltrace-agent-type: {runs / "s1"} has "both", {mine} has "tool"' in done.stderr
    assert "shard" not in done.stderr and "run-id" not in done.stderr and not (tmp_path / "merged").exists()


def test_bad_inputs_and_outputs_are_refused(runs: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    cases = [
        ((runs / "s1", "-o", tmp_path / "taken"), "already exists and is not empty"),
        ((runs / "s1", "-o", runs / "s1"), "is one of the inputs"),
        ((runs / "s1", runs / "s1", "-o", tmp_path / "x"), "given twice"),
        ((tmp_path / "nowhere", "-o", tmp_path / "x"), "not a directory"),
        ((tmp_path / "taken", "-o", tmp_path / "x"), "no journal.jsonl: not a pytest-smoltrace run directory"),
    ]
    for args, message in cases:
        done = merge_cli(*args)
        assert done.returncode == 2 and "smoltrace-merge: error: " in done.stderr and message in done.stderr, args
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and not (tmp_path / "x").exists()
    usage = merge_cli(runs / "s1")  # -o is required
    assert usage.returncode == 2 and "-o/--output" in usage.stderr


# -- the split ----------------------------------------------------------------------------------------------------


def _collected(
    pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None, model: tuple[str, ...] = MODEL
) -> list[str]:
    proc = _pytest(pytester.path, "--co", *args, env=env, model=model)
    out = _finish(proc)
    return [line for line in out.splitlines() if line.startswith("smoltrace/")]


def test_a_tasks_repeats_models_and_agent_types_stay_in_one_shard(pytester: pytest.Pytester) -> None:
    (pytester.path / "models.yaml").write_text("- {id: scripted, label: a}\n- {id: scripted, label: b}\n")
    args = ("--smoltrace-models", "models.yaml", "--smoltrace-repeats", "2")
    whole = _collected(pytester, *args, model=())
    by_shard = [
        _collected(pytester, *args, "--smoltrace-shard", f"{i}/{SHARDS}", model=()) for i in range(1, SHARDS + 1)
    ]
    assert sorted(n for ids in by_shard for n in ids) == sorted(whole) and all(by_shard)
    shards_of: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, ids in enumerate(by_shard, 1):
        for nodeid in ids:
            key = task_key(nodeid, ("a", "b"))
            assert key is not None
            shards_of[key].add(i)
    assert all(len(s) == 1 for s in shards_of.values()), shards_of
    for ids in by_shard:  # each task's items: 2 labels × 2 repeats × its agent types, all here
        for key in {task_key(n, ("a", "b")) for n in ids}:
            mine = [n for n in ids if task_key(n, ("a", "b")) == key]
            assert len(mine) == len([n for n in whole if task_key(n, ("a", "b")) == key])
            assert {"::a::", "::b::"} <= {f"::{n.split('::')[1]}::" for n in mine}
            assert {n.rsplit("[", 1)[1] for n in mine} == {"repeat-0]", "repeat-1]"}


def test_the_split_does_not_depend_on_the_interpreters_hash_seed(pytester: pytest.Pytester) -> None:
    seeds = [_collected(pytester, "--smoltrace-shard", "2/3", env={"PYTHONHASHSEED": s}) for s in ("1", "2", "3")]
    assert seeds[0] and seeds[0] == seeds[1] == seeds[2]


@pytest.mark.parametrize("value", ["3/2", "0/4", "a/b", "4", "1/0", "-1/2"])
def test_a_bad_shard_is_a_usage_error_naming_the_flag_and_the_form(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest_subprocess("--smoltrace-model", "scripted", "--co", f"--smoltrace-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--smoltrace-shard" in err and "expected I/N with 1 ≤ I ≤ N" in err and repr(value) in err
    assert "Traceback" not in err


def test_a_bad_shard_from_the_environment_names_it_too(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMOLTRACE_SHARD", "5/4")
    result = pytester.runpytest_subprocess("--smoltrace-model", "scripted", "--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "env SMOLTRACE_SHARD: expected I/N" in result.stderr.str() and "'5/4'" in result.stderr.str()


def test_parse_shard() -> None:
    assert parse_shard("2/4") == Shard(2, 4) and parse_shard(" 1 / 1 ") == Shard(1, 1)
    assert str(Shard(3, 8)) == "3/8" and Shard.from_dict({"index": 3, "count": 8}) == Shard(3, 8)
    assert Shard.from_dict("2/4") == Shard(2, 4) and Shard.from_dict(None) is None


def test_the_split_is_balanced_by_items_and_keeps_every_item_once() -> None:
    # 40 tasks: odd ones with both agent types (2 items), even ones tool only; 3 repeats each
    ids = [
        f"smoltrace/set::{agent}::t{n}[repeat-{r}]"
        for agent in ("tool", "code")
        for n in range(40)
        for r in range(3)
        if agent == "tool" or n % 2
    ]
    kept = [split([task_key(n) for n in ids], Shard(i, 4))[0] for i in range(1, 5)]
    assert sorted(p for k in kept for p in k) == list(range(len(ids)))
    sizes = [len(k) for k in kept]
    assert max(sizes) - min(sizes) <= 6  # within one task's items (2 agent types × 3 repeats)
    # fewer tasks than shards: no shard gets two while another is empty
    assert sorted(assign({("s", "a"): 1, ("s", "b"): 1}, 3).values()) == [1, 2]
