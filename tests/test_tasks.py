"""Tests for the task schema, validation and task sources (``pytest_smoltrace.tasks``)."""

from __future__ import annotations

import ast
import io
import json
import operator
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pytest_smoltrace.records import AgentType
from pytest_smoltrace.tasks import (
    MULTIPLE,
    Task,
    TaskError,
    TaskSource,
    bundled_names,
    load_file,
    load_source,
    read_bundled_script,
    select,
    tasks_from_objects,
    validate_row,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _row(**fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": "t1", "prompt": "What is 2 + 2?"}
    row.update(fields)
    return row


def _write(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _one_bad_row(
    case_id: str, field: str, fragments: tuple[str, ...], **fields: Any
) -> tuple[str, str, object, str, int | None, str | None, tuple[str, ...]]:
    """A MALFORMED case: ``tasks.json`` holding the one row ``_row(**fields)``, wrong in ``field`` (row 1)."""
    return (case_id, "tasks.json", [_row(**fields)], "train", 1, field, fragments)


# ----------------------------------------------------------------------------------------------------------
# Malformed input: every error names the source, the row number, the field and the rule.
# ----------------------------------------------------------------------------------------------------------

# (case id, file name, file content, split, expected row, expected field, fragments of the rule)
MALFORMED: list[tuple[str, str, object, str, int | None, str | None, tuple[str, ...]]] = [
    ("missing-id", "tasks.json", [{"prompt": "hi"}], "train", 1, "id", ("is required",)),
    ("empty-prompt", "tasks.json", [_row(), _row(id="t2", prompt="   ")], "train", 2, "prompt", ("non-empty",)),
    _one_bad_row(
        "bad-agent-type", "agent_type", ("must be one of tool, code, both", "got 'robot'"), agent_type="robot"
    ),
    (
        "bad-difficulty",
        "tasks.json",
        [_row(), _row(id="t2"), _row(id="t3", difficulty="extreme")],
        "train",
        3,
        "difficulty",
        ("must be one of easy, medium, hard; got 'extreme'",),
    ),
    _one_bad_row("tool-calls-zero", "expected_tool_calls", ("≥ 1", "got 0"), expected_tool_calls=0),
    _one_bad_row(
        "tool-calls-string", "expected_tool_calls", ("≥ 1", "'2' (a string)", "without quotes"), expected_tool_calls="2"
    ),
    _one_bad_row("tool-calls-bool", "expected_tool_calls", ("≥ 1", "true (a boolean)"), expected_tool_calls=True),
    _one_bad_row(
        "tool-calls-float",
        "expected_tool_calls",
        ("got 2.0", "write 2 without the decimal point"),
        expected_tool_calls=2.0,
    ),
    _one_bad_row(
        "keywords-bare-string",
        "expected_keywords",
        ('must be a list of strings, e.g. ["Paris"]', "'Paris'"),
        expected_keywords="Paris",
    ),
    _one_bad_row(
        "keywords-number-item",
        "expected_keywords",
        ("item 2 must be a non-empty string", '"42"'),
        expected_keywords=["ok", 42],
    ),
    _one_bad_row("keyword-mode", "keyword_mode", ("must be one of any, all; got 'some'",), keyword_mode="some"),
    _one_bad_row(
        "answer-list", "expected_answer", ("string or a number", "(a list)", '"a, b, c"'), expected_answer=["a", "b"]
    ),
    _one_bad_row("answer-bool", "expected_answer", ("string or a number", "false (a boolean)"), expected_answer=False),
    (
        "duplicate-ids",
        "tasks.json",
        [_row(id="a"), _row(id="b"), _row(id="a")],
        "train",
        3,
        "id",
        ("duplicate id 'a'", "rows 1 and 3"),
    ),
    ("id-with-colons", "tasks.json", [_row(id="a::b")], "train", 1, "id", ("must not contain '::'", "node id")),
    ("id-with-brackets", "tasks.json", [_row(id="a[1]")], "train", 1, "id", ("must not contain '[' or ']'",)),
    ("id-float", "tasks.json", [_row(id=1.5)], "train", 1, "id", ("must be a string", "1.5")),
    ("row-not-object", "tasks.json", [_row(), "just text"], "train", 2, None, ("must be a JSON object", "'just text'")),
    _one_bad_row("expected-tool-empty-list", "expected_tool", ("empty list", "use null"), expected_tool=[]),
    _one_bad_row(
        "expected-and-forbidden",
        "forbidden_tools",
        ("'calculator'", "both expected and forbidden"),
        expected_tool=["get_weather", "calculator"],
        forbidden_tools=["calculator"],
    ),
    _one_bad_row(
        "forbidden-bare-string", "forbidden_tools", ("must be a list of strings",), forbidden_tools="calculator"
    ),
    (
        "bad-jsonl-line",
        "tasks.jsonl",
        json.dumps(_row(id="a")) + "\n\n" + '{"id": "b", "prompt": \n' + json.dumps(_row(id="c")) + "\n",
        "train",
        3,
        None,
        ("invalid JSON", "column"),
    ),
    ("bad-json-document", "tasks.json", '[{"id": "a",]', "train", None, None, ("invalid JSON at line 1",)),
    ("top-level-string", "tasks.json", '"hello"', "train", None, None, ("must contain a list of task objects",)),
    (
        "missing-split",
        "tasks.json",
        {"test": [_row()], "validation": []},
        "train",
        None,
        None,
        ("no split 'train'", "available keys: 'test', 'validation'"),
    ),
    (
        "split-not-a-list",
        "tasks.json",
        {"train": {"id": "a"}},
        "train",
        None,
        None,
        ("'train' entry must be a list",),
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "split", "row", "field", "fragments"),
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_input_is_a_clear_task_error(
    tmp_path: Path,
    name: str,
    content: object,
    split: str,
    row: int | None,
    field: str | None,
    fragments: tuple[str, ...],
) -> None:
    _write(tmp_path / name, content)
    with pytest.raises(TaskError) as excinfo:
        load_source(name, split=split, base_dir=tmp_path)
    err = excinfo.value
    message = str(err)
    assert err.source == name
    assert message.startswith(name + ": ")
    assert err.row == row
    if row is not None:
        assert f"row {row}" in message
    assert err.field == field
    if field is not None:
        assert f"field '{field}'" in message
    for fragment in fragments:
        assert fragment in err.rule, message
    assert "Traceback" not in message


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(TaskError) as excinfo:
        load_source("nope/tasks.jsonl", base_dir=tmp_path)
    message = str(excinfo.value)
    assert message.startswith("nope/tasks.jsonl: file not found: ")
    assert str(tmp_path / "nope" / "tasks.jsonl") in message
    assert "revision" not in message


@pytest.mark.parametrize("spec", ["./my_tasks", "../elsewhere/tasks", "my_tasks/"])
def test_missing_local_directory_is_not_sent_to_the_hub(tmp_path: Path, spec: str) -> None:
    with pytest.raises(TaskError) as excinfo:
        load_source(spec, base_dir=tmp_path)
    assert str(excinfo.value) == f"{spec}: no such file or directory: {tmp_path / spec}"


def test_existing_file_with_other_suffix_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "tasks.yaml", "- id: a\n")
    with pytest.raises(TaskError, match=r"tasks.yaml: task files must end in .json or .jsonl"):
        load_source("tasks.yaml", base_dir=tmp_path)


def test_empty_spec_is_rejected() -> None:
    with pytest.raises(TaskError, match="empty"):
        load_source("  ")


def test_validate_row_directly_reports_source_and_row() -> None:
    with pytest.raises(TaskError) as excinfo:
        validate_row(_row(difficulty="Extreme"), source="my-source", row_number=7)
    assert str(excinfo.value) == (
        "my-source: row 7: field 'difficulty': must be one of easy, medium, hard; got 'Extreme' (a string)"
    )


# ----------------------------------------------------------------------------------------------------------
# Valid input
# ----------------------------------------------------------------------------------------------------------


def test_valid_json_list(tmp_path: Path) -> None:
    rows = [
        _row(id="w", prompt="Weather in Paris?", expected_tool="get_weather", expected_keywords=["20"]),
        _row(id="c", prompt="234*67?", agent_type="code", expected_tool="calculator", expected_answer=15678),
    ]
    _write(tmp_path / "sub" / "mine.json", rows)
    source = load_source("sub/mine.json", base_dir=tmp_path, revision="ignored")
    assert isinstance(source, TaskSource)
    assert source.label == "sub/mine.json"
    assert source.location == str(tmp_path / "sub" / "mine.json")
    assert source.revision is None
    first, second = source.tasks
    assert (first.id, first.source, first.row, first.agent_type) == ("w", "sub/mine.json", 1, "both")
    assert first.expected_keywords == ("20",)
    assert first.expected_tool_calls == 1
    assert first.keyword_mode == "any"
    assert (second.id, second.row, second.agent_type, second.expected_answer) == ("c", 2, "code", 15678)


def test_relative_path_uses_cwd_without_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "here.jsonl", json.dumps(_row()) + "\n")
    monkeypatch.chdir(tmp_path)
    assert [t.id for t in load_source("here.jsonl").tasks] == ["t1"]
    assert [t.id for t in load_source(str(tmp_path / "here.jsonl")).tasks] == ["t1"]


def test_json_dict_keyed_by_split(tmp_path: Path) -> None:
    _write(tmp_path / "split.json", {"train": [_row(id="tr")], "test": [_row(id="te1"), _row(id="te2")]})
    assert [t.id for t in load_source("split.json", base_dir=tmp_path).tasks] == ["tr"]
    test_tasks = load_source("split.json", split="test", base_dir=tmp_path).tasks
    assert [(t.id, t.row) for t in test_tasks] == [("te1", 1), ("te2", 2)]


def test_json_dict_falls_back_to_data_key(tmp_path: Path) -> None:
    _write(tmp_path / "data.json", {"data": [_row(id="d")]})
    assert [t.id for t in load_source("data.json", split="validation", base_dir=tmp_path).tasks] == ["d"]


def test_jsonl_blank_lines_and_line_numbers(tmp_path: Path) -> None:
    text = "\n" + json.dumps(_row(id="a")) + "\n   \n" + json.dumps(_row(id="b")) + "\n\n"
    _write(tmp_path / "t.jsonl", text)
    tasks = load_file(tmp_path / "t.jsonl", split="train", label="tests/smoltrace_t.jsonl")
    assert [(t.id, t.row, t.source) for t in tasks] == [
        ("a", 2, "tests/smoltrace_t.jsonl"),
        ("b", 4, "tests/smoltrace_t.jsonl"),
    ]


def test_load_file_errors_use_the_label(tmp_path: Path) -> None:
    _write(tmp_path / "smoltrace_x.json", [_row(keyword_mode="most")])
    with pytest.raises(TaskError) as excinfo:
        load_file(tmp_path / "smoltrace_x.json", split="train", label="tests/smoltrace_x.json")
    assert str(excinfo.value).startswith("tests/smoltrace_x.json: row 1: field 'keyword_mode': ")


def test_unknown_fields_are_kept_in_metadata() -> None:
    task = validate_row(
        _row(notes="from the docs", weight=2, metadata={"origin": "hand-written", "weight": 1}),
        source="s",
        row_number=1,
    )
    assert task.metadata == {"origin": "hand-written", "weight": 2, "notes": "from the docs"}


def test_normalisation_and_defaults() -> None:
    task = validate_row(
        {
            "id": 7,
            "prompt": "p",
            "agent_type": "Tool",
            "difficulty": "HARD",
            "keyword_mode": " All ",
            "expected_tool": "Multiple",
            "expected_tool_calls": 3,
            "category": None,
            "expected_keywords": None,
            "expected_answer": None,
        },
        source="s",
        row_number=4,
    )
    assert (task.id, task.agent_type, task.difficulty, task.keyword_mode) == ("7", "tool", "hard", "all")
    assert task.expected_tool == MULTIPLE
    assert task.expected_tool_calls == 3
    assert (task.category, task.expected_keywords, task.expected_answer) == (None, (), None)
    assert (task.source, task.row) == ("s", 4)
    assert task.agent_types == ("tool",)


def test_smoltrace_style_row_loads_unchanged() -> None:
    row = {
        "id": "tool_weather_single",
        "prompt": "What's the weather like in Tokyo, Japan?",
        "expected_tool": "get_weather",
        "expected_tool_calls": 1,
        "difficulty": "easy",
        "agent_type": "tool",
        "expected_keywords": ["18", "Clear"],
        "category": "weather",
        "required_tools": ["get_weather"],
    }
    task = validate_row(row, source="s", row_number=1)
    assert task.to_dict()["expected_tool"] == "get_weather"
    assert task.required_tools == ("get_weather",)
    assert task.metadata == {}


def test_expected_tool_list_becomes_tuple_and_answer_types() -> None:
    task = validate_row(
        _row(expected_tool=["get_weather", "calculator"], expected_answer=2.5), source="s", row_number=1
    )
    assert task.expected_tool == ("get_weather", "calculator")
    assert task.expected_answer == 2.5
    assert validate_row(_row(expected_answer="Paris"), source="s", row_number=1).expected_answer == "Paris"


def test_tasks_from_objects_accepts_dicts_and_tasks() -> None:
    existing = Task(id="made", prompt="p", difficulty="easy", metadata={"k": 1}, source="elsewhere", row=9)
    tasks = tasks_from_objects([_row(id="d"), existing], source="conftest")
    assert [(t.id, t.source, t.row) for t in tasks] == [("d", "conftest", 1), ("made", "conftest", 2)]
    assert tasks[1].metadata == {"k": 1}
    assert tasks[1].difficulty == "easy"


def test_tasks_from_objects_validates() -> None:
    with pytest.raises(TaskError, match=r"^conftest: row 2: field 'id': duplicate id 'd': rows 1 and 2"):
        tasks_from_objects([_row(id="d"), Task(id="d", prompt="p")], source="conftest")
    with pytest.raises(TaskError, match=r"^conftest: row 1: must be a JSON object"):
        tasks_from_objects(["not a task"], source="conftest")
    with pytest.raises(TaskError, match=r"^conftest: row 1: field 'id': must not contain '::'"):
        tasks_from_objects([Task(id="a::b", prompt="p")], source="conftest")


# ----------------------------------------------------------------------------------------------------------
# select
# ----------------------------------------------------------------------------------------------------------


def _selection_tasks() -> tuple[Task, ...]:
    return tasks_from_objects(
        [
            _row(id="both_easy", difficulty="easy"),
            _row(id="code_hard", agent_type="code", difficulty="hard"),
            _row(id="tool_none", agent_type="tool"),
            _row(id="both_hard", difficulty="Hard"),
        ],
        source="s",
    )


def _ids(pairs: list[tuple[Task, AgentType]]) -> list[str]:
    return [f"{task.id}:{kind}" for task, kind in pairs]


def test_select_order_is_source_order_then_tool_code() -> None:
    assert _ids(select(_selection_tasks(), difficulty=None, agent_type="both")) == [
        "both_easy:tool",
        "both_easy:code",
        "code_hard:code",
        "tool_none:tool",
        "both_hard:tool",
        "both_hard:code",
    ]


def test_select_filters() -> None:
    tasks = _selection_tasks()
    assert _ids(select(tasks, difficulty=None, agent_type="tool")) == [
        "both_easy:tool",
        "tool_none:tool",
        "both_hard:tool",
    ]
    assert _ids(select(tasks, difficulty=None, agent_type="code")) == [
        "both_easy:code",
        "code_hard:code",
        "both_hard:code",
    ]
    assert _ids(select(tasks, difficulty="HARD", agent_type="both")) == [
        "code_hard:code",
        "both_hard:tool",
        "both_hard:code",
    ]
    assert _ids(select(tasks, difficulty="hard", agent_type="tool")) == ["both_hard:tool"]
    assert select(tasks, difficulty="medium", agent_type="both") == []


def test_select_rejects_bad_filters() -> None:
    with pytest.raises(ValueError, match="agent type must be one of tool, code, both"):
        select(_selection_tasks(), difficulty=None, agent_type="robot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="difficulty must be one of easy, medium, hard"):
        select(_selection_tasks(), difficulty="extreme", agent_type="both")


# ----------------------------------------------------------------------------------------------------------
# The bundled default set and its script
# ----------------------------------------------------------------------------------------------------------

DEFAULT_TOOLS = ("get_weather", "calculator", "get_current_time")
WEATHER = {
    "Paris, France": "20°C, Partly Cloudy",
    "London, UK": "15°C, Rainy",
    "New York, USA": "25°C, Sunny",
    "Tokyo, Japan": "18°C, Clear",
    "Sydney, Australia": "22°C, Windy",
}


def test_bundled_default_loads() -> None:
    assert "default" in bundled_names()
    assert not any(name.endswith(".script") for name in bundled_names())
    source = load_source("default", revision="ignored")
    assert source.label == "default"
    assert source.revision is None
    tasks = source.tasks
    assert 12 <= len(tasks) <= 20
    assert all(t.source == "default" for t in tasks)
    assert {t.agent_type for t in tasks} == {"tool", "code", "both"}
    assert {t.difficulty for t in tasks} == {"easy", "medium", "hard"}
    assert {t.category for t in tasks} == {"weather", "math", "time", "multi-tool", "reasoning"}
    expected_names: set[str] = set()
    for task in tasks:
        if isinstance(task.expected_tool, tuple):
            expected_names.update(task.expected_tool)
        elif task.expected_tool not in (None, MULTIPLE):
            expected_names.add(str(task.expected_tool))
    assert expected_names == set(DEFAULT_TOOLS)
    kinds = {type(t.expected_tool).__name__ if t.expected_tool != MULTIPLE else MULTIPLE for t in tasks}
    assert kinds == {"str", "tuple", MULTIPLE, "NoneType"}
    assert {t.keyword_mode for t in tasks if t.expected_keywords} == {"any", "all"}
    assert any(t.expected_tool_calls > 1 for t in tasks)
    assert any(t.forbidden_tools for t in tasks)
    assert any(t.expected_tool is None and not t.forbidden_tools and t.expected_answer is not None for t in tasks)
    assert all(t.expected_keywords or t.expected_answer is not None for t in tasks)
    # time varies: time tasks are judged by tool use and stable keywords, never by the clock value
    for task in tasks:
        if task.category == "time":
            assert task.expected_answer is None
            assert not any(re.search(r"\d", keyword) for keyword in task.expected_keywords)


def _calculate(expression: str) -> float:
    """The default calculator's arithmetic (AST based), enough to check the script's expressions."""
    binary: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.Pow: operator.pow,
        ast.Mod: operator.mod,
    }

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in binary:
            return binary[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise AssertionError(f"not plain arithmetic: {expression!r}")

    return float(walk(ast.parse(expression, mode="eval")))


class _Tools:
    """Stand-ins for the three default tools that record every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        if name == "get_weather":
            assert set(arguments) == {"location"}, arguments
            assert arguments["location"] in WEATHER, arguments
            result = f"Weather in {arguments['location']}: {WEATHER[arguments['location']]}"
        elif name == "calculator":
            assert set(arguments) == {"expression"}, arguments
            value = _calculate(arguments["expression"])
            result = f"Result: {int(value) if value.is_integer() else value}"
        elif name == "get_current_time":
            assert set(arguments) == {"timezone"}, arguments
            ZoneInfo(arguments["timezone"])  # a real IANA zone
            result = f"Current time in {arguments['timezone']}: 2026-01-01 00:00:00 XYZ (UTC+00:00)"
        else:
            raise AssertionError(f"not a default tool: {name}")
        self.calls.append((name, arguments, result))
        return result

    def namespace(self) -> dict[str, Any]:
        def tool(name: str) -> Callable[..., str]:
            return lambda **kwargs: self.call(name, kwargs)

        return {name: tool(name) for name in DEFAULT_TOOLS}


def _play(turns: list[dict[str, Any]], agent_type: AgentType) -> tuple[object, _Tools, list[str]]:
    """Run a scripted conversation against stub tools; returns the final answer, the tools and the outputs."""
    tools = _Tools()
    outputs: list[str] = []
    assert turns, "empty script"
    assert set(turns[-1]) == {"final_answer"}, "the last turn must be the final answer"
    for turn in turns[:-1]:
        assert "final_answer" not in turn, "only the last turn may give the final answer"
        if agent_type == "tool":
            assert set(turn) == {"tool_calls"}, turn
            for call in turn["tool_calls"]:
                outputs.append(tools.call(call["name"], call["arguments"]))
        else:
            assert set(turn) == {"code"}, turn
            buffer = io.StringIO()
            with redirect_stdout(buffer):
                exec(
                    compile(turn["code"], "<script>", "exec"), tools.namespace()
                )  # our own script, run against stub tools
            outputs.append(buffer.getvalue())
    return turns[-1]["final_answer"], tools, outputs


def _script_cases() -> Iterator[Any]:
    for task, agent_type in select(load_source("default").tasks, difficulty=None, agent_type="both"):
        yield pytest.param(task, agent_type, id=f"{task.id}-{agent_type}")


def _as_number(value: object) -> float | None:
    try:
        return float(str(value).replace(",", "").strip())
    except ValueError:
        return None


@pytest.mark.parametrize(("task", "agent_type"), list(_script_cases()))
def test_default_script_solves_every_task(task: Task, agent_type: AgentType) -> None:
    script = read_bundled_script("default")
    prompts = [t.prompt for t in load_source("default").tasks]
    matching = [key for key in script if key.lower() in task.prompt.lower()]
    assert len(matching) == 1, f"{task.id}: keys matching the prompt: {matching}"
    key = matching[0]
    assert sum(key.lower() in prompt.lower() for prompt in prompts) == 1, f"key {key!r} is not unique"
    entry = script[key]
    assert isinstance(entry.get("summary"), str)
    final, tools, outputs = _play(entry[agent_type], agent_type)

    for output in outputs:  # an observation must never select another script entry
        assert not [k for k in script if k.lower() in output.lower()], output

    names = [name for name, _, _ in tools.calls]
    if isinstance(task.expected_tool, tuple):
        assert set(task.expected_tool) <= set(names)
    elif task.expected_tool == MULTIPLE:
        assert len(names) >= task.expected_tool_calls
    elif task.expected_tool is not None:
        assert names.count(task.expected_tool) >= task.expected_tool_calls
    assert not set(task.forbidden_tools) & set(names)

    answer = str(final)
    if task.expected_keywords:
        hits = [kw.lower() in answer.lower() for kw in task.expected_keywords]
        assert all(hits) if task.keyword_mode == "all" else any(hits), (task.expected_keywords, answer)
    if task.expected_answer is not None:
        expected_number = _as_number(task.expected_answer)
        if expected_number is not None:
            assert _as_number(final) == pytest.approx(expected_number), answer
            last_calculator = [result for name, _, result in tools.calls if name == "calculator"][-1:]
            if last_calculator:  # the script's arithmetic really gives the expected answer
                assert _as_number(last_calculator[0].removeprefix("Result: ")) == pytest.approx(expected_number)
        else:
            assert answer.strip().lower() == str(task.expected_answer).strip().lower()
    if "get_current_time" in names:
        assert not re.search(r"\d{1,2}:\d{2}:\d{2}", answer), "a time answer must not depend on the clock"


def test_default_script_has_no_stray_entries() -> None:
    script = read_bundled_script("default")
    tasks = load_source("default").tasks
    for key, entry in script.items():
        owners = [t for t in tasks if key.lower() in t.prompt.lower()]
        assert len(owners) == 1, key
        assert set(entry) - {"summary"} == set(owners[0].agent_types), key


# ----------------------------------------------------------------------------------------------------------
# Hugging Face datasets (through the real datasets.load_dataset, offline, in a temporary cache)
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def offline_hf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hub and an empty datasets cache under tmp_path.

    ``datasets`` and ``huggingface_hub`` read these variables once, at import, so the module-level copies
    are patched as well as the environment.
    """
    datasets = pytest.importorskip("datasets")
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    home = tmp_path / "hf-home"
    cache = home / "datasets"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


def test_dataset_directory_loads_through_datasets(tmp_path: Path, offline_hf: Path) -> None:
    directory = tmp_path / "ds"
    train = [
        {"id": "a", "prompt": "p1", "difficulty": "easy", "expected_keywords": ["x"], "expected_answer": None},
        {"id": "b", "prompt": "p2", "difficulty": None, "expected_keywords": None, "expected_answer": "42"},
    ]
    test = [{"id": "c", "prompt": "p3", "difficulty": "Hard", "expected_keywords": ["y", "z"], "expected_answer": "7"}]
    _write(directory / "data" / "train.jsonl", "".join(json.dumps(r) + "\n" for r in train))
    _write(directory / "data" / "test.jsonl", "".join(json.dumps(r) + "\n" for r in test))

    source = load_source(str(directory), revision=None)
    assert source.label == str(directory)
    assert source.location == str(directory)
    assert [(t.id, t.row, t.difficulty, t.expected_keywords, t.expected_answer) for t in source.tasks] == [
        ("a", 1, "easy", ("x",), None),
        ("b", 2, None, (), "42"),  # datasets' None for a missing value means absent
    ]
    assert all(t.metadata == {} for t in source.tasks)

    test_source = load_source("ds", split="test", base_dir=tmp_path)
    assert test_source.label == "ds:test"
    assert [(t.id, t.source, t.difficulty, t.keyword_mode) for t in test_source.tasks] == [
        ("c", "ds:test", "hard", "any")
    ]
    assert any(offline_hf.iterdir()), "the datasets cache went to the temporary directory"

    with pytest.raises(TaskError) as excinfo:
        load_source(str(directory), split="validation")
    message = str(excinfo.value)
    assert message.startswith(f"{directory}: could not load Hugging Face dataset")
    assert "split 'validation'" in message
    assert "ValueError" in message
    assert "--smoltrace-split" in message


def test_dataset_rows_are_validated(tmp_path: Path, offline_hf: Path) -> None:
    directory = tmp_path / "bad"
    rows = [{"id": "a", "prompt": "p", "agent_type": "tool"}, {"id": "b", "prompt": "p", "agent_type": "robot"}]
    _write(directory / "data" / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(TaskError) as excinfo:
        load_source(str(directory))
    assert (
        str(excinfo.value)
        == f"{directory}: row 2: field 'agent_type': must be one of tool, code, both; got 'robot' (a string)"
    )


def test_unknown_hub_dataset_offline_is_a_clear_task_error(offline_hf: Path) -> None:
    with pytest.raises(TaskError) as excinfo:
        load_source("nobody-here/no-such-tasks", revision="abc123")
    err = excinfo.value
    assert (err.source, err.row, err.field) == ("nobody-here/no-such-tasks", None, None)
    message = str(err)
    assert (
        "could not load Hugging Face dataset 'nobody-here/no-such-tasks' (split 'train', revision 'abc123')" in message
    )
    assert "ConnectionError" in message
    assert "offline" in message
    assert "Traceback" not in message


def test_typo_in_bundled_name_hints_at_bundled_sets(offline_hf: Path) -> None:
    with pytest.raises(TaskError, match=r"bundled task sets: default"):
        load_source("defualt")


# ----------------------------------------------------------------------------------------------------------
# Import cost
# ----------------------------------------------------------------------------------------------------------


def test_import_is_cheap() -> None:
    code = (
        "import sys, pytest_smoltrace.tasks\n"
        "heavy = sorted(m for m in ('datasets', 'smolagents', 'huggingface_hub', 'pyarrow') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
