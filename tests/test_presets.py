"""Foreign task formats (issue 16, part 5): ``--smoltrace-task-preset gaia|smolagents-benchmark`` and
``--smoltrace-field-map SRC=DST,…``.

Rows in GAIA's and smolagents' benchmark columns load as tasks; a row that still does not fit is the usual error
naming source, row and field (the row's own column), and rows that look like a known preset say which one to use.
A real run of both presets' tasks goes through a conftest's ``pytest_smoltrace_tasks`` (the loaders themselves);
the same through the options needs the collector to pass them (see ``test_the_options_reach_collection``).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_smoltrace.presets import PRESET_NAMES, FieldMap, parse_field_map, preset_hint
from pytest_smoltrace.tasks import TaskError, TaskOptions, load_file, load_source, validate_row

GAIA_ROWS: list[dict[str, Any]] = [
    {"task_id": "c61d", "Question": "What is 2+2? [p-gaia-sum]", "Level": 1, "Final answer": "4", "file_name": ""},
    {
        "task_id": "a1f0",
        "Question": "Which word is in the sheet? [p-gaia-file]",
        "Level": "2",
        "Final answer": "egalitarian",
        "file_name": "sheet.txt",
        "Annotator Metadata": {"Steps": "read it", "Number of steps": "1"},
    },
    {"task_id": "t3", "Question": "A test-split question.", "Level": "3", "Final answer": "?", "file_name": "gone.png"},
]
BENCH_ROWS: list[dict[str, Any]] = [
    {"question": "How many legs has a spider? [p-smol-legs]", "true_answer": "8", "source": "SimpleQA"},
    {"question": "What is 6*7? [p-smol-math]", "true_answer": 42, "source": "MATH", "true_reasoning": "6*7=42"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def gaia_dir(tmp_path: Path) -> Path:
    (tmp_path / "sheet.txt").write_text("egalitarian\n", encoding="utf-8")
    write_jsonl(tmp_path / "metadata.jsonl", GAIA_ROWS)
    return tmp_path


GAIA = TaskOptions(fields=FieldMap(preset="gaia"))
SMOL = TaskOptions(fields=FieldMap(preset="smolagents-benchmark"))


# ------------------------------------------------------------------------------------------------ gaia


def test_gaia_rows_load_as_tasks(gaia_dir: Path) -> None:
    tasks = load_file(gaia_dir / "metadata.jsonl", split="validation", label="metadata.jsonl", options=GAIA)
    assert [(t.id, t.difficulty, t.expected_answer, t.row) for t in tasks] == [
        ("c61d", "easy", "4", 1),
        ("a1f0", "medium", "egalitarian", 2),
        ("t3", "hard", None, 3),  # the test split's "?" is no expected answer
    ]
    plain, attached, missing = tasks
    assert plain.prompt == GAIA_ROWS[0]["Question"] and "file_path" not in plain.metadata
    found = str((gaia_dir / "sheet.txt").resolve())
    assert attached.prompt == f"{GAIA_ROWS[1]['Question']}\n\nThe task comes with an attached file: {found}"
    assert attached.metadata == {
        "file_name": "sheet.txt",
        "file_path": found,
        "Annotator Metadata": {"Steps": "read it", "Number of steps": "1"},
    }
    assert missing.prompt == GAIA_ROWS[2]["Question"] and missing.metadata == {"file_name": "gone.png"}
    source = load_source("metadata.jsonl", split="validation", base_dir=gaia_dir, options=GAIA)
    assert source.tasks == tasks


def test_a_row_file_path_column_is_used(gaia_dir: Path) -> None:
    (gaia_dir / "files").mkdir()
    (gaia_dir / "files" / "x.csv").write_text("a,b\n", encoding="utf-8")
    row = {**GAIA_ROWS[0], "file_name": "x.csv", "file_path": "files/x.csv"}
    task = validate_row(row, source="s", row_number=1, options=TaskOptions(fields=FieldMap("gaia", base_dir=gaia_dir)))
    assert task.metadata["file_path"] == str((gaia_dir / "files" / "x.csv").resolve())
    assert task.prompt.endswith(f"attached file: {(gaia_dir / 'files' / 'x.csv').resolve()}")


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"Level": 4}, "Level", "must be 1, 2 or 3 (GAIA's levels, read as easy, medium, hard by the gaia preset)"),
        ({"Level": "one"}, "Level", "must be 1, 2 or 3"),
        (
            {"Final answer": ["4"]},
            "Final answer",
            "(read as expected_answer by preset gaia) must be a string or a number",
        ),
        ({"Question": ""}, "Question", "(read as prompt by preset gaia) must be a non-empty string"),
        ({"task_id": None}, "task_id", "(read as id by preset gaia) is required"),
        ({"task_id": "a::b"}, "task_id", "(read as id by preset gaia) must not contain '::'"),
        ({"prompt": "twice"}, "Question", "is read as 'prompt' (preset gaia), but the row has a 'prompt' column too"),
    ],
)
def test_a_gaia_row_that_does_not_fit_names_source_row_and_column(
    tmp_path: Path, change: dict[str, Any], field: str, rule: str
) -> None:
    path = write_jsonl(tmp_path / "metadata.jsonl", [GAIA_ROWS[0], {**GAIA_ROWS[0], "task_id": "b", **change}])
    with pytest.raises(TaskError) as info:
        load_file(path, split="validation", label="metadata.jsonl", options=GAIA)
    assert (info.value.source, info.value.row, info.value.field) == ("metadata.jsonl", 2, field)
    assert rule in info.value.rule
    assert str(info.value).startswith(f"metadata.jsonl: row 2: field '{field}': ")


def test_rows_that_look_like_a_preset_say_which_to_use(tmp_path: Path) -> None:
    gaia = write_jsonl(tmp_path / "gaia.jsonl", GAIA_ROWS)
    with pytest.raises(TaskError) as info:
        load_file(gaia, split="train", label="gaia.jsonl")
    assert str(info.value) == (
        "gaia.jsonl: row 1: field 'id': is required: every task needs a unique string id, e.g. \"weather_paris\"; "
        "these columns look like the gaia format: use --smoltrace-task-preset gaia"
    )
    smol = write_jsonl(tmp_path / "smol.jsonl", BENCH_ROWS)
    with pytest.raises(TaskError, match=r"use --smoltrace-task-preset smolagents-benchmark$"):
        load_file(smol, split="train", label="smol.jsonl", options=GAIA)  # the wrong preset
    assert preset_hint({"id", "prompt"}, None) is None
    assert preset_hint({"task_id", "Question", "Final answer"}, "gaia") is None  # in use already


# ------------------------------------------------------------------------------------------------ smolagents


def test_smolagents_benchmark_rows_load_as_tasks(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bench.jsonl", BENCH_ROWS)
    tasks = load_file(path, split="train", label="bench.jsonl", options=SMOL)
    assert [(t.id, t.prompt, t.expected_answer, t.category, t.metadata) for t in tasks] == [
        ("row-1", BENCH_ROWS[0]["question"], "8", "SimpleQA", {}),
        ("row-2", BENCH_ROWS[1]["question"], 42, "MATH", {"true_reasoning": "6*7=42"}),
    ]


# ------------------------------------------------------------------------------------------------ field map


def test_field_map_parses_pairs_with_spaces() -> None:
    assert parse_field_map("query=prompt, Final answer = expected_answer,") == (
        ("query", "prompt"),
        ("Final answer", "expected_answer"),
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("query", "expected SRC=DST pairs"),
        ("=prompt", "expected SRC=DST pairs"),
        ("query=", "expected SRC=DST pairs"),
        ("", "expected SRC=DST pairs"),
        ("query=question", "'question' is not a task field; task fields: agent_type, category,"),
        ("a=prompt,a=id", "column 'a' is mapped twice"),
    ],
)
def test_a_bad_field_map_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_field_map(text)
    assert why in str(info.value)


def test_field_map_renames_on_top_of_a_preset(tmp_path: Path) -> None:
    rows = [{"qid": "q1", "query": "Capital of France?", "gold": "Paris", "kind": "geo"}]
    fields = FieldMap(renames=parse_field_map("qid=id,query=prompt,gold=expected_answer,kind=category"))
    (task,) = load_file(
        write_jsonl(tmp_path / "t.jsonl", rows), split="train", label="t.jsonl", options=TaskOptions(fields)
    )
    assert (task.id, task.prompt, task.expected_answer, task.category, task.metadata) == (
        "q1",
        "Capital of France?",
        "Paris",
        "geo",
        {},
    )
    # a rename to a field the preset fills takes it over; the preset's column then stays in metadata
    over = FieldMap(preset="gaia", renames=(("short", "prompt"),))
    task = validate_row({**GAIA_ROWS[0], "short": "2+2?"}, source="s", row_number=1, options=TaskOptions(over))
    assert (task.prompt, task.metadata["Question"]) == ("2+2?", GAIA_ROWS[0]["Question"])
    with pytest.raises(TaskError) as info:
        validate_row({"qid": "q", "query": "x", "prompt": "y"}, source="s", row_number=4, options=TaskOptions(fields))
    assert info.value.field == "query" and "(--smoltrace-field-map), but the row has a 'prompt' column too" in str(
        info.value
    )
    with pytest.raises(TaskError) as info:
        validate_row({"qid": "q", "query": "x", "gold": True}, source="s", row_number=4, options=TaskOptions(fields))
    assert str(info.value).startswith(
        "s: row 4: field 'gold': (read as expected_answer by --smoltrace-field-map) must be a string or a number"
    )


def test_the_bundled_sets_are_read_as_they_are() -> None:
    source = load_source("default", options=GAIA)
    assert source.tasks == load_source("default").tasks


def test_task_options_from_settings() -> None:
    none = TaskOptions.from_settings(SimpleNamespace(task_preset=None, field_map=(), judge_model=None))
    assert none == TaskOptions(fields=None, judge_model=False)
    both = TaskOptions.from_settings(
        SimpleNamespace(task_preset="gaia", field_map=(("q", "prompt"),), judge_model="openai/gpt-4o-mini")
    )
    assert both == TaskOptions(fields=FieldMap(preset="gaia", renames=(("q", "prompt"),)), judge_model=True)
    assert PRESET_NAMES == ("gaia", "smolagents-benchmark")
    with pytest.raises(ValueError, match="unknown task preset 'nope'"):
        FieldMap(preset="nope")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--smoltrace-field-map", "query"), "--smoltrace-field-map / ini smoltrace_field_map: expected SRC=DST pairs"),
        (("--smoltrace-field-map", "q=nonsense"), "'nonsense' is not a task field"),
        (("--smoltrace-task-preset", "squad"), "invalid choice: 'squad'"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], message: str) -> None:
    result = pytester.runpytest("--smoltrace-model", "openai/scripted", "--smoltrace-dataset", "none", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


# ------------------------------------------------------------------------------------------------ a real run

CONFTEST = """
from pathlib import Path

from pytest_smoltrace.presets import FieldMap
from pytest_smoltrace.tasks import TaskOptions, load_file

HERE = Path(__file__).parent


def pytest_smoltrace_tasks(config):
    gaia = load_file(HERE / "gaia" / "metadata.jsonl", split="validation", label="gaia",
                     options=TaskOptions(fields=FieldMap(preset="gaia")))
    smol = load_file(HERE / "smol.jsonl", split="train", label="smol",
                     options=TaskOptions(fields=FieldMap(preset="smolagents-benchmark")))
    return [*gaia[:2], *smol]
"""


def test_preset_tasks_run_and_are_judged(bench: Any, pytester: pytest.Pytester) -> None:
    (pytester.path / "gaia").mkdir()
    (pytester.path / "gaia" / "sheet.txt").write_text("egalitarian\n", encoding="utf-8")
    write_jsonl(pytester.path / "gaia" / "metadata.jsonl", GAIA_ROWS)
    write_jsonl(pytester.path / "smol.jsonl", BENCH_ROWS)
    pytester.makeconftest(CONFTEST)
    attached = f"attached file: {(pytester.path / 'gaia' / 'sheet.txt').resolve()}"
    scripts = {
        "[p-gaia-sum]": [{"final_answer": "4"}],
        attached: [{"final_answer": "Egalitarian."}],  # the path reached the agent's prompt
        "[p-smol-legs]": [{"final_answer": "eight"}],
        "[p-smol-math]": [{"final_answer": "42"}],
    }
    run = bench(None, scripts, "--smoltrace-dataset", "none", "--smoltrace-agent-type", "tool", subprocess=True)
    run.result.assert_outcomes(passed=3, failed=1)
    assert run.verdicts() == {
        "smoltrace/conftest::tool::c61d": "passed",
        "smoltrace/conftest::tool::a1f0": "passed",
        "smoltrace/conftest::tool::row-1": "failed",  # "eight" is not GAIA's 8
        "smoltrace/conftest::tool::row-2": "passed",
    }
    assert {r["task_id"]: (r["difficulty"], r["category"]) for r in run.rows} == {
        "c61d": ("easy", None),
        "a1f0": ("medium", None),
        "row-1": (None, "SimpleQA"),
        "row-2": (None, "MATH"),
    }


def test_the_options_reach_collection(bench: Any, pytester: pytest.Pytester) -> None:
    write_jsonl(pytester.path / "metadata.jsonl", GAIA_ROWS[:1])
    scripts = {"[p-gaia-sum]": [{"final_answer": "4"}], "[p-map]": [{"final_answer": "42"}]}
    run = bench(
        None,
        scripts,
        "--smoltrace-dataset",
        "metadata.jsonl",
        "--smoltrace-task-preset",
        "gaia",
        "--smoltrace-agent-type",
        "tool",
        subprocess=True,
    )
    run.result.assert_outcomes(passed=1)
    assert run.verdicts() == {"smoltrace/metadata.jsonl::tool::c61d": "passed"}
    # a task file under the test paths, in columns of its own
    write_jsonl(pytester.path / "smoltrace_bench.jsonl", [{"q": "What is 6*7? [p-map]", "a": "42", "n": "m1"}])
    mapped = bench(
        None,
        scripts,
        "--smoltrace-field-map",
        "q=prompt,a=expected_answer,n=id",
        "--smoltrace-agent-type",
        "tool",
        "--smoltrace-dataset",
        "none",
        "smoltrace_bench.jsonl",
        run_id="mapped",
        subprocess=True,
    )
    mapped.result.assert_outcomes(passed=1)
