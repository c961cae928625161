"""Hostile task inputs get the usual clear :class:`TaskError` (source, row, field, rule), never a traceback.

Deep nesting (``RecursionError`` in the parser), integers beyond Python's int-string limit (``ValueError``),
NaN / Infinity (not JSON: they used to reach journal.jsonl as bare ``NaN``) and symbolic-link loops (reported as
"file not found"); each through ``.json`` and ``.jsonl`` files, Python-given rows and pytest's own collection.
The journal writer itself never writes non-standard JSON either.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace import tasks as tasks_module
from pytest_smoltrace.journal import Journal, read_jsonl
from pytest_smoltrace.tasks import TaskError, load_file, load_source, tasks_from_objects

DEEP = 10_000
HUGE_INT = "7" * 5_000
MAX_NESTING = 100  # tasks.MAX_NESTING: the deepest nesting a row may have


def _row_text(**extra: str) -> str:
    """A JSON row whose extra fields are given as raw JSON text (so that NaN and huge integers stay literal)."""
    fields = ['"id": "t1"', '"prompt": "What is 2 + 2?"'] + [f"{json.dumps(k)}: {v}" for k, v in extra.items()]
    return "{" + ", ".join(fields) + "}"


GOOD = _row_text()
GOOD2 = _row_text().replace('"t1"', '"t0"')


def _json(*rows: str) -> str:
    return "[" + ",\n".join(rows) + "]"


def _jsonl(*rows: str) -> str:
    return "".join(row + "\n" for row in rows)


def _strict_loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def _bad_field(
    case_id: str, name: str, field: str, raw: str, fragments: tuple[str, ...], *, after_good: bool = False
) -> tuple[str, str, str, int | None, str | None, tuple[str, ...]]:
    """A HOSTILE case: ``name`` (``.json`` or ``.jsonl``) whose last row sets ``field`` to the raw JSON text ``raw``,
    after one good row with ``after_good``; the error is expected at that last row."""
    rows = (GOOD2, _row_text(**{field: raw})) if after_good else (_row_text(**{field: raw}),)
    content = _jsonl(*rows) if name.endswith(".jsonl") else _json(*rows)
    return (case_id, name, content, len(rows), field, fragments)


# (case id, file name, content, expected row, expected field, fragments of the rule)
HOSTILE: list[tuple[str, str, str, int | None, str | None, tuple[str, ...]]] = [
    (
        "deep-json-document",
        "tasks.json",
        "[" * DEEP + "]" * DEEP,
        None,
        None,
        ("invalid JSON", "nesting is too deep", f"more than {MAX_NESTING} levels", "line 1, column 101"),
    ),
    (
        "deep-json-in-a-row",
        "tasks.json",
        _json(GOOD2, _row_text(metadata='{"x": ' + "[" * DEEP + "]" * DEEP + "}")),
        None,
        None,
        ("nesting is too deep", "line 2"),
    ),
    (
        "deep-jsonl-line",
        "tasks.jsonl",
        _jsonl(GOOD2, "", _row_text(extra="[" * DEEP + "]" * DEEP)),
        3,
        None,
        ("invalid JSON", "nesting is too deep", "line 3"),
    ),
    _bad_field(
        "deep-but-parsable-metadata",
        "tasks.json",
        "metadata",
        '{"x": ' + "[" * 150 + "]" * 150 + "}",
        ("nesting is too deep", f"more than {MAX_NESTING} levels", "at metadata.x[0]"),
        after_good=True,
    ),
    _bad_field(
        "huge-int-json",
        "tasks.json",
        "weight",
        HUGE_INT,
        ("integer of 5000 digits", "limit of", "write it as a string"),
        after_good=True,
    ),
    _bad_field(
        "huge-int-jsonl", "tasks.jsonl", "expected_answer", "-" + HUGE_INT, ("integer of 5000 digits",), after_good=True
    ),
    _bad_field(
        "huge-int-nested-in-metadata",
        "tasks.jsonl",
        "metadata",
        '{"ids": [1, ' + HUGE_INT + "]}",
        ("integer of 5000 digits at metadata.ids[1]",),
    ),
    _bad_field(
        "nan-in-metadata-json",
        "tasks.json",
        "metadata",
        '{"score": NaN}',
        ("numbers must be finite", "got NaN at metadata.score", "use null"),
        after_good=True,
    ),
    _bad_field(
        "nan-in-metadata-jsonl",
        "tasks.jsonl",
        "metadata",
        '{"score": NaN}',
        ("numbers must be finite", "got NaN at metadata.score"),
    ),
    _bad_field("infinity-extra-field-jsonl", "tasks.jsonl", "weight", "Infinity", ("got Infinity",), after_good=True),
    (
        "minus-infinity-nested-json",
        "tasks.json",
        '{"train": ' + _json(_row_text(metadata='{"odd key": [1.5, -Infinity]}')) + "}",
        1,
        "metadata",
        ('got -Infinity at metadata["odd key"][1]',),
    ),
    _bad_field(
        "overflowing-float-answer",
        "tasks.jsonl",
        "expected_answer",
        "1e999",
        ("numbers must be finite", "Infinity", "1.8e308"),
    ),
    _bad_field("nan-in-a-list-field", "tasks.json", "expected_keywords", "[NaN]", ("got NaN at expected_keywords[0]",)),
]


@pytest.mark.parametrize(
    ("name", "content", "row", "field", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTILE],
)
def test_hostile_file_is_a_clear_task_error(
    tmp_path: Path,
    name: str,
    content: str,
    row: int | None,
    field: str | None,
    fragments: tuple[str, ...],
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    for error in _errors(tmp_path / name, name):
        message = str(error)
        assert error.source == name
        assert message.startswith(name + ": ")
        assert error.row == row, message
        if row is not None:
            assert f"row {row}" in message
        assert error.field == field, message
        if field is not None:
            assert f"field '{field}'" in message
        for fragment in fragments:
            assert fragment in error.rule, message
        assert "Traceback" not in message and len(message) < 600


def _errors(path: Path, label: str) -> list[TaskError]:
    """The errors of both loaders (``--smoltrace-dataset`` and a collected task file) for ``path``."""
    errors: list[TaskError] = []
    with pytest.raises(TaskError) as by_source:
        load_source(path.name, base_dir=path.parent)
    errors.append(by_source.value)
    with pytest.raises(TaskError) as by_file:
        load_file(path, split="train", label=label)
    errors.append(by_file.value)
    return errors


def test_python_rows_with_values_json_cannot_hold_are_rejected(tmp_path: Path) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["again"] = cyclic
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"metadata": {"score": math.nan}}, "metadata", "got NaN at metadata.score"),
        ({"weight": -math.inf}, "weight", "got -Infinity"),
        ({"expected_answer": 10**5000}, "expected_answer", "integer of about 5001 digits"),
        ({"metadata": {"loop": cyclic}}, "metadata", "nesting is too deep"),
    ]
    for extra, field, fragment in cases:
        with pytest.raises(TaskError) as excinfo:
            tasks_from_objects([{"id": "ok", "prompt": "p"}, {"id": "t", "prompt": "p", **extra}], source="conftest")
        err = excinfo.value
        assert (err.source, err.row, err.field) == ("conftest", 2, field), str(err)
        assert fragment in err.rule, str(err)

    # what JSON can hold still loads: long integers within the limit, moderate nesting, large finite floats
    near_limit = "9" * 4000
    nested = "[" * 50 + "1" + "]" * 50
    content = _jsonl(_row_text(metadata='{"big": ' + near_limit + ', "nested": ' + nested + ', "x": 1.5e308}'))
    (tmp_path / "ok.jsonl").write_text(content, encoding="utf-8")
    (task,) = load_source("ok.jsonl", base_dir=tmp_path).tasks
    assert task.metadata["big"] == int(near_limit)
    assert task.metadata["x"] == 1.5e308


# ----------------------------------------------------------------------------------------------------------
# Symbolic links
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_symlink_loop_is_reported_as_a_loop(tmp_path: Path, suffix: str) -> None:
    name = f"tasks{suffix}"
    os.symlink(name, tmp_path / name)  # a link to itself
    with pytest.raises(TaskError) as excinfo:
        load_source(name, base_dir=tmp_path)
    message = str(excinfo.value)
    assert message == (
        f"{name}: cannot resolve {tmp_path / name}: a symbolic link loop (too many levels of symbolic links)"
    )
    with pytest.raises(TaskError, match="symbolic link loop"):
        load_file(tmp_path / name, split="train", label=name)


def test_loop_in_a_directory_of_the_path_is_reported_as_a_loop(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(TaskError) as excinfo:
        load_source("a/tasks.jsonl", base_dir=tmp_path)
    assert "symbolic link loop" in str(excinfo.value)
    assert str(tmp_path / "a" / "tasks.jsonl") in str(excinfo.value)
    with pytest.raises(TaskError, match=r"^\./a: cannot resolve .*: a symbolic link loop"):
        load_source("./a", base_dir=tmp_path)


def test_a_local_symlink_loop_is_not_sent_to_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hub(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a local symbolic link loop was sent to the Hugging Face loader")

    monkeypatch.setattr(tasks_module, "_load_hub", no_hub)
    os.symlink("mydata", tmp_path / "mydata")
    with pytest.raises(TaskError, match=r"^mydata: cannot resolve .*mydata: a symbolic link loop"):
        load_source("mydata", base_dir=tmp_path)


def test_dangling_symlink_says_where_it_points(tmp_path: Path) -> None:
    os.symlink("gone.json", tmp_path / "tasks.json")
    with pytest.raises(TaskError) as excinfo:
        load_source("tasks.json", base_dir=tmp_path)
    assert str(excinfo.value) == (
        f"tasks.json: file not found: {tmp_path / 'tasks.json'} (a symbolic link to 'gone.json', which does not exist)"
    )


# ----------------------------------------------------------------------------------------------------------
# The journal writer writes standard JSON only
# ----------------------------------------------------------------------------------------------------------


def test_journal_never_writes_nan(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.journal"):
        journal.append_json({"nodeid": "a", "metrics": {"score": math.nan, "spread": [1.0, math.inf]}})
        journal.append_json({"nodeid": "b", "huge": 10**5000, "loop": cyclic, "fine": 2.5})
        journal.append_json({"nodeid": "c", "value": 1})
    journal.close()
    lines = (tmp_path / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    assert [_strict_loads(line) for line in lines] == [
        {"nodeid": "a", "metrics": {"score": None, "spread": [1.0, None]}},
        {"nodeid": "b", "huge": None, "loop": [None], "fine": 2.5},
        {"nodeid": "c", "value": 1},
    ]
    assert [r["nodeid"] for r in read_jsonl(tmp_path / "journal.jsonl")] == ["a", "b", "c"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert str(tmp_path / "journal.jsonl") in warnings[0]
    assert "metrics.score (nan)" in warnings[0] and "metrics.spread[1] (inf)" in warnings[0]
    assert "huge (an integer of more than" in warnings[1] and "loop[0] (a reference cycle)" in warnings[1]


# ----------------------------------------------------------------------------------------------------------
# Through pytest: a collected task file and --smoltrace-dataset, in a fresh interpreter
# ----------------------------------------------------------------------------------------------------------


def test_hostile_task_files_are_collection_errors_without_traceback(pytester: pytest.Pytester) -> None:
    checks = pytester.mkdir("checks")
    (checks / "smoltrace_deep.json").write_text("[" * DEEP + "]" * DEEP, encoding="utf-8")
    (checks / "smoltrace_huge.jsonl").write_text(_jsonl(GOOD2, _row_text(weight=HUGE_INT)), encoding="utf-8")
    (checks / "smoltrace_nan.json").write_text(_json(_row_text(metadata='{"score": NaN}')), encoding="utf-8")
    result = pytester.runpytest_subprocess(
        "--smoltrace-model", "scripted", "--smoltrace-output-dir", "out", "-p", "no:randomly", "checks"
    )
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, output
    result.stdout.fnmatch_lines_random(
        [
            "*smoltrace task file: checks/smoltrace_deep.json: invalid JSON: nesting is too deep*",
            "*smoltrace task file: checks/smoltrace_huge.jsonl: row 2: field 'weight': an integer of 5000 digits*",
            "*smoltrace task file: checks/smoltrace_nan.json: row 1: field 'metadata': numbers must be finite;"
            " got NaN at metadata.score*",
        ]
    )
    assert "Traceback" not in output and "RecursionError" not in output and "ValueError" not in output
    assert not list(pytester.path.rglob("journal.jsonl"))  # nothing ran, nothing reached a journal


def test_symlink_loop_as_the_dataset_is_reported_without_traceback(pytester: pytest.Pytester) -> None:
    os.symlink("loop.jsonl", pytester.path / "loop.jsonl")
    looped = pytester.runpytest_subprocess(
        "--smoltrace-model", "scripted", "--smoltrace-output-dir", "out", "--smoltrace-dataset", "loop.jsonl"
    )
    output = looped.stdout.str() + looped.stderr.str()
    assert looped.ret != pytest.ExitCode.OK, output
    assert f"loop.jsonl: cannot resolve {pytester.path / 'loop.jsonl'}: a symbolic link loop" in output
    assert "file not found" not in output and "Traceback" not in output
