"""Task schema (DESIGN §3), validation and task sources.

A task is one JSON object; SMOLTRACE's rows load unchanged. Bad input raises :class:`TaskError`
naming the source, the row number, the field and the rule that was broken.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, cast

# ``Task`` is a record of the run (defined with the others in smoltrace_export.records); it and its field types are
# importable from here too (``from pytest_smoltrace.tasks import Task``).
from smoltrace_export.records import (
    DIFFICULTIES,
    KEYWORD_MODES,
    TASK_AGENT_TYPES,
    TOOL_ORDER_MODES,
    AgentType,
    Difficulty,
    KeywordMode,
    Task,
    TaskAgentType,
    ToolOrderMode,
)

from .arguments import matcher_problem
from .presets import FieldMap, MappingProblem, preset_hint

logger = logging.getLogger(__name__)


class TaskError(Exception):
    """A task source or row is malformed. ``str()`` is the user-facing message."""

    def __init__(self, source: str, row: int | None, field_name: str | None, rule: str) -> None:
        self.source = source
        self.row = row
        self.field = field_name
        self.rule = rule
        where = source
        if row is not None:
            where += f": row {row}"
        if field_name is not None:
            where += f": field '{field_name}'"
        super().__init__(f"{where}: {rule}")


# --------------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------------

#: ``expected_tool`` value meaning "at least ``expected_tool_calls`` executed calls of any tools".
MULTIPLE = "multiple"

KNOWN_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "prompt",
        "agent_type",
        "difficulty",
        "category",
        "expected_tool",
        "expected_tool_calls",
        "expected_keywords",
        "keyword_mode",
        "expected_answer",
        "forbidden_tools",
        "required_tools",
        "metadata",
        "rubric",
        "expected_tool_order",
        "tool_order_mode",
        "expected_tool_args",
        "max_repeated_calls",
    }
)

#: The option that configures the rubric judge (named by the error for a rubric task without one).
JUDGE_MODEL_OPTION = "--smoltrace-judge-model"


@dataclass(frozen=True)
class TaskOptions:
    """The session's options that decide how task rows are read.

    ``fields``: ``--smoltrace-task-preset`` / ``--smoltrace-field-map`` (None: rows are read as they are);
    ``judge_model``: whether ``--smoltrace-judge-model`` is configured (None: unknown, a ``rubric`` is not checked
    against it; False: a task with a ``rubric`` is an error naming the option).
    """

    fields: FieldMap | None = None
    judge_model: bool | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> TaskOptions:
        """The options of a session's :class:`~pytest_smoltrace.settings.Settings`."""
        preset = getattr(settings, "task_preset", None)
        renames = tuple(getattr(settings, "field_map", None) or ())
        fields = FieldMap(preset=preset, renames=renames) if preset is not None or renames else None
        return cls(fields=fields, judge_model=getattr(settings, "judge_model", None) is not None)

    def beside(self, base_dir: Path | None) -> TaskOptions:
        """These options for data in ``base_dir`` (where a preset looks for attached files)."""
        if self.fields is None or base_dir is None:
            return self
        return TaskOptions(fields=replace(self.fields, base_dir=base_dir), judge_model=self.judge_model)


NO_OPTIONS = TaskOptions()

#: Suffixes of local task files (and of ``smoltrace_*`` files the collector picks up).
TASK_FILE_SUFFIXES: tuple[str, ...] = (".json", ".jsonl")
#: Bundled files with this suffix are scripts for the scripted model server, not task sets.
SCRIPT_SUFFIX = ".script.json"
_DATA_PACKAGE = "pytest_smoltrace"
_DATA_DIR = "data"
#: Deepest nesting of lists and objects allowed inside one field of a row (a task needs two or three levels; the
#: limit keeps every later step — journal, traces, Hub rows — far from Python's recursion limit).
MAX_NESTING = 100


class _TooManyDigits:
    """What the task-file parser gives for an integer literal longer than Python's int-string limit.

    ``json.loads`` would raise a bare ``ValueError`` for the whole file; the stand-in lets the row check name the row
    and the field instead.
    """

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def _parse_int(text: str) -> int | _TooManyDigits:
    try:
        return int(text)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        return _TooManyDigits(len(text.lstrip("-")))


def _loads(text: str) -> object:
    """``json.loads`` for task files: over-long integers become :class:`_TooManyDigits` (reported per row)."""
    return json.loads(text, parse_int=_parse_int)


#: A JSON string (escapes included) or a bracket: enough to measure nesting without parsing.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _too_deep(text: str, *, first_line: int = 1) -> str:
    """The rule for a document the parser gave up on (``RecursionError``): where nesting first passes the limit."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = first_line + text.count("\n", 0, match.start())
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                return (
                    f"invalid JSON: nesting is too deep (lists and objects inside one another more than {MAX_NESTING} "
                    f"levels, from line {line}, column {column}); a task row needs only a few levels"
                )
        elif token in "]}":
            depth -= 1
    return "invalid JSON: nesting is too deep for the JSON parser; a task row needs only a few levels"


_LOG2_10 = math.log2(10)


def _number_problem(value: object, where: str) -> str | None:
    """Why a value inside a row cannot be kept (it would not survive the journal or the Hub), or ``None``.

    ``where`` (`` at metadata.x`` or empty) says where the value is inside its field.
    """
    fix = "write it as a string if it is an identifier"
    if isinstance(value, _TooManyDigits):
        limit = sys.get_int_max_str_digits()
        return f"an integer of {value.digits} digits{where} is beyond Python's limit of {limit} digits; {fix}"
    if isinstance(value, float) and not math.isfinite(value):
        shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return (
            f"numbers must be finite; got {shown}{where} (NaN and Infinity are not JSON, and a number beyond "
            "±1.8e308 becomes Infinity): use null, or write the value as a string"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        limit = sys.get_int_max_str_digits()
        if limit and value.bit_length() > limit * _LOG2_10:  # more than `limit` decimal digits
            digits = int(value.bit_length() / _LOG2_10) + 1
            return f"an integer of about {digits} digits{where} is beyond Python's limit of {limit} digits; {fix}"
    return None


def _render_path(field_name: str, path: list[str | int]) -> str:
    """``metadata.scores[2]`` for the value at ``path`` inside ``field_name`` (long paths elided)."""
    parts = [field_name]
    shown = path if len(path) <= 8 else [*path[:6], "…", *path[-1:]]
    for step in shown:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif step == "…":
            parts.append("…")
        elif step.isidentifier():
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step, ensure_ascii=False)}]")
    return "".join(parts)


def _got(value: object) -> str:
    """How a found value is shown in an error message: its JSON-ish form and, where it helps, its type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:60] + "…"
        return repr(text) + " (a string)" if text.strip() else repr(text)
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a number with a decimal point)"
    if isinstance(value, _TooManyDigits):
        return f"an integer of {value.digits} digits"
    if isinstance(value, (list, tuple)):
        kind = "a list"
    elif isinstance(value, Mapping):
        kind = "an object"
    else:
        return f"{type(value).__name__} {value!r:.60}"
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:60] + "…"
    return f"{text} ({kind})"


class _RowChecker:
    """Validates the fields of one row; every failure is a :class:`TaskError` for that row."""

    def __init__(self, source: str, row_number: int) -> None:
        self.source = source
        self.row_number = row_number

    def fail(self, field_name: str | None, rule: str) -> NoReturn:
        raise TaskError(self.source, self.row_number, field_name, rule)

    def id(self, value: object) -> str:
        if value is None:
            self.fail("id", 'is required: every task needs a unique string id, e.g. "weather_paris"')
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail("id", f"must be a string; got {_got(value)}")
        task_id = str(value)
        if not task_id.strip():
            self.fail("id", "must be a non-empty string")
        if task_id != task_id.strip():
            self.fail("id", f"must not start or end with whitespace; got {task_id!r}")
        where = "it becomes part of the pytest node id smoltrace/<source>::<agent_type>::<id>"
        if "::" in task_id:
            self.fail("id", f"must not contain '::' ({where}); got {task_id!r}")
        if "[" in task_id or "]" in task_id:
            self.fail("id", f"must not contain '[' or ']' ({where}, and brackets are reserved); got {task_id!r}")
        if not task_id.isprintable():
            self.fail("id", f"must not contain newlines, tabs or other control characters ({where}); got {task_id!r}")
        return task_id

    def prompt(self, value: object) -> str:
        if value is None:
            self.fail("prompt", "is required: the text given to the agent")
        if not isinstance(value, str):
            self.fail("prompt", f"must be a string; got {_got(value)}")
        if not value.strip():
            self.fail("prompt", "must be a non-empty string")
        return value

    def choice(self, field_name: str, value: object, choices: tuple[str, ...], default: str | None) -> str | None:
        if value is None:
            return default
        allowed = ", ".join(choices)
        if not isinstance(value, str) or value.strip().lower() not in choices:
            self.fail(field_name, f"must be one of {allowed}; got {_got(value)}")
        return value.strip().lower()

    def category(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail("category", f"must be a string or null; got {_got(value)}")
        return value or None

    def name_list(self, field_name: str, value: object, example: str) -> tuple[str, ...]:
        """A list of non-empty strings (``None`` → empty)."""
        if value is None:
            return ()
        if isinstance(value, str):
            self.fail(field_name, f"must be a list of strings, e.g. {example}; got {_got(value)}")
        if not isinstance(value, (list, tuple)):
            self.fail(field_name, f"must be a list of strings, e.g. {example}; got {_got(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                hint = (
                    f' (write it in quotes: "{item}")'
                    if isinstance(item, (int, float)) and not isinstance(item, bool)
                    else ""
                )
                self.fail(field_name, f"item {index + 1} must be a non-empty string{hint}; got {_got(item)}")
        return tuple(value)

    def expected_tool(self, value: object) -> str | tuple[str, ...] | None:
        rule = 'must be a tool name, "multiple", a non-empty list of tool names, or null'
        if value is None:
            return None
        if isinstance(value, str):
            name = value.strip()
            if not name:
                self.fail("expected_tool", f"{rule}; got ''")
            return MULTIPLE if name.lower() == MULTIPLE else name
        if isinstance(value, (list, tuple)):
            if not value:
                self.fail("expected_tool", f"{rule}; got an empty list (use null when no tool is expected)")
            names = self.name_list("expected_tool", value, '["get_weather", "calculator"]')
            if MULTIPLE in names:
                self.fail(
                    "expected_tool",
                    f'"multiple" cannot be an item of a list; write "multiple" alone; got {_got(value)}',
                )
            return names
        self.fail("expected_tool", f"{rule}; got {_got(value)}")

    def expected_tool_calls(self, value: object) -> int:
        rule = "must be a whole number ≥ 1 (the minimum number of executed calls)"
        if value is None:
            return 1
        if isinstance(value, bool):
            self.fail("expected_tool_calls", f"{rule}; got {_got(value)}")
        if isinstance(value, float):
            fix = f" (write {int(value)} without the decimal point)" if value.is_integer() and value >= 1 else ""
            self.fail("expected_tool_calls", f"{rule}; got {_got(value)}{fix}")
        if isinstance(value, str):
            fix = f" (write {value.strip()} without quotes)" if value.strip().isdigit() else ""
            self.fail("expected_tool_calls", f"{rule}; got {_got(value)}{fix}")
        if not isinstance(value, int):
            self.fail("expected_tool_calls", f"{rule}; got {_got(value)}")
        if value < 1:
            self.fail("expected_tool_calls", f"{rule}; got {value}")
        return value

    def expected_answer(self, value: object) -> str | int | float | None:
        rule = "must be a string or a number (or null)"
        if value is None:
            return None
        if isinstance(value, bool):
            self.fail("expected_answer", f'{rule}; got {_got(value)} (write "yes"/"no" or "true"/"false" as a string)')
        if isinstance(value, (list, tuple)):
            self.fail(
                "expected_answer", f'{rule}; got {_got(value)} (write a list answer as one string, e.g. "a, b, c")'
            )
        if isinstance(value, float) and not math.isfinite(value):
            self.fail("expected_answer", f"must be a finite number; got {value!r}")
        if isinstance(value, str):
            if not value.strip():
                self.fail("expected_answer", "must not be empty (use null when there is no expected answer)")
            return value
        if isinstance(value, (int, float)):
            return value
        self.fail("expected_answer", f"{rule}; got {_got(value)}")

    def whole_number(self, field_name: str, value: object, rule: str) -> int | None:
        """A whole number ≥ 1, or ``None`` when absent."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(field_name, f"{rule}; got {_got(value)}")
        if isinstance(value, float):
            fix = f" (write {int(value)} without the decimal point)" if value.is_integer() and value >= 1 else ""
            self.fail(field_name, f"{rule}; got {_got(value)}{fix}")
        if isinstance(value, str):
            fix = f" (write {value.strip()} without quotes)" if value.strip().isdigit() else ""
            self.fail(field_name, f"{rule}; got {_got(value)}{fix}")
        if value < 1:
            self.fail(field_name, f"{rule}; got {value}")
        return value

    def rubric(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(
                "rubric", f"must be a string (what the judge model grades the final answer against); got {_got(value)}"
            )
        if not value.strip():
            self.fail("rubric", "must not be empty (use null when there is no rubric)")
        return value

    def tool_order(self, value: object, mode: object) -> tuple[tuple[str, ...] | None, ToolOrderMode]:
        if value is None:
            if mode is not None:
                self.fail(
                    "tool_order_mode",
                    "has no effect without expected_tool_order (the sequence of tool names it applies to); "
                    f"got {_got(mode)}",
                )
            return None, "in_order"
        names = self.name_list("expected_tool_order", value, '["get_weather", "calculator"]')
        if "final_answer" in names:
            self.fail(
                "expected_tool_order",
                "must not list final_answer: the order is of the other tools (the final_answer check covers it)",
            )
        chosen = self.choice("tool_order_mode", mode, TOOL_ORDER_MODES, "in_order")
        return names, cast(ToolOrderMode, chosen)

    def tool_args(self, value: object) -> dict[str, dict[str, Any]] | None:
        example = '{"calculator": {"expression": "234*67"}}'
        if value is None:
            return None
        if not isinstance(value, Mapping) or not value:
            self.fail(
                "expected_tool_args",
                f"must be a non-empty object {{tool: {{argument: matcher}}}}, e.g. {example}; got {_got(value)}",
            )
        result: dict[str, dict[str, Any]] = {}
        for tool, arguments in value.items():
            where = f"expected_tool_args.{tool}" if str(tool).isidentifier() else f"expected_tool_args[{tool!r}]"
            if not str(tool).strip():
                self.fail("expected_tool_args", "a tool name must be a non-empty string")
            if not isinstance(arguments, Mapping) or not arguments:
                self.fail(
                    "expected_tool_args",
                    f"{where} must be a non-empty object {{argument: matcher}}, e.g. {example}; got {_got(arguments)}",
                )
            for argument, matcher in arguments.items():
                problem = matcher_problem(matcher)
                if problem is not None:
                    self.fail("expected_tool_args", f"{where}.{argument}: {problem}")
            result[str(tool)] = {str(k): v for k, v in arguments.items()}
        return result

    def values(self, data: Mapping[str, Any]) -> None:
        """Every value of every field must survive JSON: finite numbers, integers Python can print, bounded nesting.

        Walks without recursion (a row may be nested thousands of levels deep); the first problem in document order
        is reported, with its path inside the field.
        """
        for field_name, value in data.items():
            stack: list[tuple[object, list[str | int]]] = [(value, [])]
            while stack:
                current, path = stack.pop()
                problem = _number_problem(current, f" at {_render_path(field_name, path)}" if path else "")
                if problem is not None:
                    self.fail(field_name, problem)
                children: list[tuple[str | int, object]]
                if isinstance(current, Mapping):
                    children = [(str(key), item) for key, item in current.items()]
                elif isinstance(current, (list, tuple)):
                    children = list(enumerate(current))
                else:
                    continue
                if children and len(path) >= MAX_NESTING:
                    self.fail(
                        field_name,
                        f"nesting is too deep: lists and objects inside one another more than {MAX_NESTING} levels "
                        f"(at {_render_path(field_name, path)}); a task row needs only a few levels",
                    )
                stack.extend((item, [*path, step]) for step, item in reversed(children))

    def metadata(self, data: Mapping[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        own = data.get("metadata")
        if isinstance(own, Mapping):
            metadata.update({str(k): v for k, v in own.items()})
        elif own is not None:
            metadata["metadata"] = own
        metadata.update({k: v for k, v in data.items() if k not in KNOWN_FIELDS})
        return metadata


def validate_row(row: object, *, source: str, row_number: int, options: TaskOptions | None = None) -> Task:
    """Validate one task row (a JSON object) and build its :class:`Task`.

    ``None`` for any schema field means "absent" (``datasets`` fills missing keys with ``None``).
    Strings for ``agent_type``, ``difficulty``, ``keyword_mode`` and ``tool_order_mode`` are matched
    case-insensitively and stored lowercase; an integer ``id`` is converted to a string. Fields outside the schema
    are kept in ``Task.metadata``. ``options`` (:class:`TaskOptions`): a preset or field map renames the row's columns
    first, and a ``rubric`` needs a judge model when the session says none is configured. Raises
    :class:`TaskError` naming ``source``, ``row_number``, the field (the row's own column when it was renamed) and
    the rule; when the columns look like a known preset that is not in use, the rule says which to use.
    """
    options = options or NO_OPTIONS
    check = _RowChecker(source, row_number)
    if not isinstance(row, Mapping):
        check.fail(None, f'must be a JSON object with at least "id" and "prompt"; got {_got(row)}')
    raw: dict[str, Any] = {str(key): value for key, value in row.items()}
    fields = options.fields if options.fields is not None and options.fields.active else None
    origin: dict[str, str] = {}
    try:
        if fields is not None:
            try:
                data, origin = fields.apply(raw, row_number)
            except MappingProblem as exc:
                check.fail(exc.column, exc.rule)
        else:
            data = raw
        task = _build_task(check, data)
        if task.rubric is not None and options.judge_model is False:
            check.fail(
                "rubric",
                f"needs a judge model to grade the answer: give {JUDGE_MODEL_OPTION} (with --smoltrace-judge-provider "
                "and --smoltrace-judge-api-base where the judge is not reached through litellm's defaults)",
            )
        return task
    except TaskError as exc:
        raise _explained(exc, raw, origin, fields) from None


def _explained(exc: TaskError, raw: Mapping[str, Any], origin: Mapping[str, str], fields: FieldMap | None) -> TaskError:
    """``exc`` naming the row's own column for a renamed field, with a preset hint when the columns look like one."""
    field_name, rule = exc.field, exc.rule
    if fields is not None and field_name is not None and field_name in origin:
        column = origin[field_name]
        field_name, rule = column, f"(read as {exc.field} by {fields.describe(column)}) {rule}"
    hint = preset_hint(raw, fields.preset if fields is not None else None)
    if hint is not None:
        rule = f"{rule}; {hint}"
    if (field_name, rule) == (exc.field, exc.rule):
        return exc
    return TaskError(exc.source, exc.row, field_name, rule)


def _build_task(check: _RowChecker, data: dict[str, Any]) -> Task:
    check.values(data)
    task_id = check.id(data.get("id"))
    prompt = check.prompt(data.get("prompt"))
    agent_type = check.choice("agent_type", data.get("agent_type"), TASK_AGENT_TYPES, "both")
    difficulty = check.choice("difficulty", data.get("difficulty"), DIFFICULTIES, None)
    category = check.category(data.get("category"))
    expected_tool = check.expected_tool(data.get("expected_tool"))
    expected_tool_calls = check.expected_tool_calls(data.get("expected_tool_calls"))
    keywords = check.name_list("expected_keywords", data.get("expected_keywords"), '["Paris"]')
    keyword_mode = check.choice("keyword_mode", data.get("keyword_mode"), KEYWORD_MODES, "any")
    expected_answer = check.expected_answer(data.get("expected_answer"))
    forbidden = check.name_list("forbidden_tools", data.get("forbidden_tools"), '["calculator"]')
    required = check.name_list("required_tools", data.get("required_tools"), '["calculator"]')
    rubric = check.rubric(data.get("rubric"))
    tool_order, tool_order_mode = check.tool_order(data.get("expected_tool_order"), data.get("tool_order_mode"))
    tool_args = check.tool_args(data.get("expected_tool_args"))
    max_repeated = check.whole_number(
        "max_repeated_calls",
        data.get("max_repeated_calls"),
        "must be a whole number ≥ 1 (the most times one tool may be called with identical arguments)",
    )
    expected_names: tuple[str, ...] = ()
    if isinstance(expected_tool, tuple):
        expected_names = expected_tool
    elif expected_tool is not None and expected_tool != MULTIPLE:
        expected_names = (expected_tool,)
    for name in forbidden:
        if name in expected_names:
            check.fail(
                "forbidden_tools",
                f"{name!r} is also in expected_tool; a tool cannot be both expected and forbidden",
            )
        if tool_order is not None and tool_order_mode != "subset" and name in tool_order:
            check.fail(
                "forbidden_tools",
                f"{name!r} is also in expected_tool_order ({tool_order_mode}); a tool cannot be both required and "
                "forbidden",
            )
        if tool_args is not None and name in tool_args:
            check.fail(
                "forbidden_tools",
                f"{name!r} is also in expected_tool_args, which needs a call of it; a tool cannot be both expected "
                "and forbidden",
            )
    return Task(
        id=task_id,
        prompt=prompt,
        agent_type=cast(TaskAgentType, agent_type),
        difficulty=cast("Difficulty | None", difficulty),
        category=category,
        expected_tool=expected_tool,
        expected_tool_calls=expected_tool_calls,
        expected_keywords=keywords,
        keyword_mode=cast(KeywordMode, keyword_mode),
        expected_answer=expected_answer,
        forbidden_tools=forbidden,
        required_tools=required,
        metadata=check.metadata(data),
        source=check.source,
        row=check.row_number,
        rubric=rubric,
        expected_tool_order=tool_order,
        tool_order_mode=tool_order_mode,
        expected_tool_args=tool_args,
        max_repeated_calls=max_repeated,
    )


def _validate_rows(
    rows: Iterable[tuple[int, object]], *, source: str, options: TaskOptions | None = None
) -> tuple[Task, ...]:
    """Validate numbered rows and check that ids are unique within the source."""
    tasks: list[Task] = []
    first_row: dict[str, int] = {}
    for row_number, row in rows:
        task = validate_row(row, source=source, row_number=row_number, options=options)
        if task.id in first_row:
            raise TaskError(
                source,
                row_number,
                "id",
                f"duplicate id {task.id!r}: rows {first_row[task.id]} and {row_number} both use it; "
                "ids must be unique within a source",
            )
        first_row[task.id] = row_number
        tasks.append(task)
    return tuple(tasks)


def tasks_from_objects(objs: Iterable[object], *, source: str, options: TaskOptions | None = None) -> tuple[Task, ...]:
    """Validate tasks given from Python (e.g. a conftest hook): dicts or :class:`Task` instances.

    Task instances are re-validated through their ``to_dict()`` form (a preset or field map of ``options`` is not
    applied to them again) and re-stamped with ``source`` and their 1-based position.
    """
    options = options or NO_OPTIONS
    as_tasks = TaskOptions(judge_model=options.judge_model)
    tasks: list[Task] = []
    first_row: dict[str, int] = {}
    for index, obj in enumerate(objs, start=1):
        if isinstance(obj, Task):
            data = obj.to_dict()
            data.pop("source", None)
            data.pop("row", None)
            tasks.extend(_validate_rows([(index, data)], source=source, options=as_tasks))
        else:
            tasks.extend(_validate_rows([(index, obj)], source=source, options=options))
        task = tasks[-1]
        if task.id in first_row:
            raise TaskError(
                source,
                index,
                "id",
                f"duplicate id {task.id!r}: rows {first_row[task.id]} and {index} both use it; "
                "ids must be unique within a source",
            )
        first_row[task.id] = index
    return tuple(tasks)


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSource:
    """A loaded task source.

    ``label`` names the source in node ids (``smoltrace/<label>::<agent_type>::<id>``); ``location`` says
    where it was read from (a file path, a bundled resource or ``hf://datasets/<name>``); ``revision`` is the
    dataset revision that was asked for (Hugging Face datasets only, else ``None``).
    """

    label: str
    tasks: tuple[Task, ...]
    location: str
    revision: str | None = None


def _data_dir() -> Any:
    return resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)


def bundled_names() -> tuple[str, ...]:
    """Names of the bundled task sets (``pytest_smoltrace/data/<name>.json``, scripts excluded)."""
    names: list[str] = []
    try:
        entries = list(_data_dir().iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return ()
    for entry in entries:
        name = entry.name
        if name.endswith(".json") and not name.endswith(SCRIPT_SUFFIX) and entry.is_file():
            names.append(name[: -len(".json")])
    return tuple(sorted(names))


def read_bundled_script(name: str = "default") -> dict[str, Any]:
    """The scripted-model script for a bundled task set (``pytest_smoltrace/data/<name>.script.json``)."""
    payload = json.loads(_data_dir().joinpath(name + SCRIPT_SUFFIX).read_text(encoding="utf-8"))
    if not isinstance(payload, dict):
        raise TaskError(f"{name}{SCRIPT_SUFFIX}", None, None, "must hold a JSON object keyed by prompt substring")
    return payload


def _rows_from_payload(payload: object, *, split: str, label: str) -> list[tuple[int, object]]:
    """The numbered rows of a ``.json`` document: a list, or an object keyed by split (or ``"data"``)."""
    shape = 'a list of task objects, or an object whose keys are splits (e.g. {"train": [...]})'
    if isinstance(payload, list):
        return list(enumerate(payload, start=1))
    if isinstance(payload, dict):
        if split in payload:
            key = split
        elif "data" in payload:
            key = "data"
        else:
            keys = ", ".join(repr(k) for k in payload) or "none"
            hint = (
                " (a single task must be wrapped in a list: [{...}])" if "id" in payload and "prompt" in payload else ""
            )
            raise TaskError(
                label,
                None,
                None,
                f"no split {split!r} (and no 'data' key) in the top-level object; available keys: {keys}{hint}",
            )
        rows = payload[key]
        if not isinstance(rows, list):
            raise TaskError(label, None, None, f"the {key!r} entry must be a list of task objects; got {_got(rows)}")
        return list(enumerate(rows, start=1))
    raise TaskError(label, None, None, f"must contain {shape}; got {_got(payload)}")


def _parse_text(
    text: str, *, suffix: str, split: str, label: str, options: TaskOptions | None = None
) -> tuple[Task, ...]:
    if suffix == ".jsonl":
        numbered: list[tuple[int, object]] = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((line_number, _loads(line)))
            except json.JSONDecodeError as exc:
                raise TaskError(label, line_number, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            except RecursionError:
                raise TaskError(label, line_number, None, _too_deep(line, first_line=line_number)) from None
        return _validate_rows(numbered, source=label, options=options)
    try:
        payload = _loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(
            label, None, None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise TaskError(label, None, None, _too_deep(text)) from None
    return _validate_rows(_rows_from_payload(payload, split=split, label=label), source=label, options=options)


def _not_found(path: Path, missing: str) -> str:
    """Why ``path`` cannot be opened although it was asked for: ``missing`` (e.g. "file not found"), or the real cause.

    ``Path.exists()`` is ``False`` for a symbolic-link loop and for a dangling link as well as for a missing path;
    ``os.stat`` tells them apart.
    """
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"cannot resolve {path}: a symbolic link loop (too many levels of symbolic links)"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"cannot access {path}: permission denied"
        if exc.errno == errno.ENOTDIR:
            return f"{missing}: {path} (a part of the path is a file, not a directory)"
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"{missing}: {path} (a symbolic link to {target!r}, which does not exist)"
    return f"{missing}: {path}"


def _unresolvable(path: Path) -> bool:
    """True when something is at ``path`` (or along it) but it cannot be followed: a link loop or a dangling link."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP or os.path.islink(path)
    return False


def load_file(path: Path, *, split: str, label: str, options: TaskOptions | None = None) -> tuple[Task, ...]:
    """Load and validate a local ``.json`` / ``.jsonl`` task file; errors name ``label`` as the source.

    ``.jsonl``: one object per non-blank line (row number = line number). ``.json``: a list (row number =
    index + 1), or an object keyed by split, falling back to its ``"data"`` entry. ``options``: see
    :class:`TaskOptions` (a preset looks for attached files beside the file).
    """
    suffix = path.suffix.lower()
    if suffix not in TASK_FILE_SUFFIXES:
        raise TaskError(label, None, None, f"task files must end in .json or .jsonl; got {path.name!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TaskError(label, None, None, _not_found(path, "file not found")) from None
    except UnicodeDecodeError as exc:
        raise TaskError(label, None, None, f"file is not UTF-8 text: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise TaskError(label, None, None, _not_found(path, "file not found")) from None
        raise TaskError(label, None, None, f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    options = (options or NO_OPTIONS).beside(path.parent)
    tasks = _parse_text(text, suffix=suffix, split=split, label=label, options=options)
    logger.debug("loaded %d tasks from %s", len(tasks), path)
    return tasks


def _load_bundled(name: str, options: TaskOptions | None = None) -> TaskSource:
    resource = _data_dir().joinpath(name + ".json")
    # the bundled sets are in the plugin's own format: a preset or field map is not applied to them
    options = TaskOptions(judge_model=options.judge_model) if options is not None else None
    tasks = _parse_text(
        resource.read_text(encoding="utf-8"), suffix=".json", split="train", label=name, options=options
    )
    return TaskSource(label=name, tasks=tasks, location=str(resource), revision=None)


def _looks_like_path(spec: str) -> bool:
    """True for specs that can only mean a local path (Hub names never start with '.', '/' or '~')."""
    return spec.startswith((".", "/", "~")) or spec.endswith(("/", "\\")) or "\\" in spec or Path(spec).is_absolute()


def _hub_failure(spec: str, split: str, revision: str | None, exc: BaseException, resolved: Path) -> str:
    """A one-paragraph message for a failed ``datasets.load_dataset``: what was asked, what broke, what to check."""
    asked = f"split {split!r}" + (f", revision {revision!r}" if revision else "")
    detail = " ".join(str(exc).split())
    if len(detail) > 400:
        detail = detail[:400] + "…"
    detail = detail.rstrip(". ")
    message = f"could not load Hugging Face dataset {spec!r} ({asked}): {type(exc).__name__}: {detail}"
    text = f"{type(exc).__name__} {detail}".lower()
    hints: list[str] = []
    if "split" in text:
        hints.append("check --smoltrace-split against the splits the dataset has")
    if isinstance(exc, (ConnectionError, TimeoutError)) or "offline" in text or "couldn't reach" in text:
        hints.append(
            "the Hub could not be reached: if you are offline (HF_HUB_OFFLINE=1 or no network) the dataset must "
            "already be in the local datasets cache; a local .json/.jsonl file works offline"
        )
    if "notfound" in text.replace(" ", "") or "doesn't exist" in text or "does not exist" in text:
        hints.append("check the dataset name (user/name) and, for a private dataset, that HF_TOKEN is set")
    if Path(spec).suffix and not resolved.exists():
        hints.append(f"no file or directory {resolved} exists")
    if "/" not in spec and not resolved.exists():
        names = ", ".join(bundled_names()) or "none"
        hints.append(f"bundled task sets: {names}")
    if not hints:
        hints.append("check the dataset name (user/name), --smoltrace-split and --smoltrace-revision")
    return message + ". Hint: " + "; ".join(hints)


def source_label(spec: str, split: str) -> str:
    """The name of a ``--smoltrace-dataset`` source in node ids and records: the dataset, with its split when that
    is not ``train`` (task files have no split)."""
    if spec.endswith(TASK_FILE_SUFFIXES) or split == "train":
        return spec
    return f"{spec}:{split}"


def _load_hub(
    spec: str, *, target: str, split: str, revision: str | None, resolved: Path, options: TaskOptions | None = None
) -> TaskSource:
    label = source_label(spec, split)
    try:
        import datasets  # heavy: imported only when a dataset is really loaded
    except ImportError:
        raise TaskError(
            spec, None, None, "loading a Hugging Face dataset needs the 'datasets' package: pip install datasets"
        ) from None
    try:
        dataset = datasets.load_dataset(target, split=split, revision=revision)
        raw_rows = [dict(row) for row in dataset]
    except Exception as exc:  # any loader failure becomes one clear collection error
        raise TaskError(spec, None, None, _hub_failure(spec, split, revision, exc, resolved)) from exc
    # datasets gives every row every column, None where a row lacked the key: None means absent.
    numbered = [(index, {k: v for k, v in row.items() if v is not None}) for index, row in enumerate(raw_rows, 1)]
    options = (options or NO_OPTIONS).beside(resolved if resolved.is_dir() else None)
    tasks = _validate_rows(numbered, source=label, options=options)
    location = str(resolved) if resolved.is_dir() else f"hf://datasets/{spec}"
    logger.debug("loaded %d tasks from %s (split %s, revision %s)", len(tasks), location, split, revision)
    return TaskSource(label=label, tasks=tasks, location=location, revision=revision)


def load_source(
    spec: str,
    *,
    split: str = "train",
    revision: str | None = None,
    base_dir: Path | None = None,
    options: TaskOptions | None = None,
) -> TaskSource:
    """Load the task source named by ``spec`` (the ``--smoltrace-dataset`` value).

    In order: a bundled set name (``default``, …); a path ending ``.json``/``.jsonl`` (relative to
    ``base_dir`` or the current directory; it must exist); otherwise (an existing directory, or a Hugging
    Face dataset name such as ``user/name``) ``datasets.load_dataset(spec, split=split, revision=revision)``.
    ``revision`` is optional and recorded on the result. ``options`` (:class:`TaskOptions`, e.g.
    ``TaskOptions.from_settings(settings)``): how rows are read (a preset or field map; not for the bundled sets)
    and whether a judge model is configured. Every failure is a :class:`TaskError`.
    """
    if not spec or not spec.strip():
        raise TaskError(
            "dataset", None, None, "the dataset name is empty; give a bundled set name, a file or a dataset"
        )
    if spec in bundled_names():
        if revision:
            logger.warning("revision %r ignored for bundled task set %r", revision, spec)
        return _load_bundled(spec, options)
    base = base_dir if base_dir is not None else Path.cwd()
    path = Path(spec).expanduser()
    resolved = path if path.is_absolute() else base / path
    label = spec.replace("\\", "/")
    if spec.lower().endswith(TASK_FILE_SUFFIXES) and not resolved.is_dir():
        if not resolved.exists():
            raise TaskError(label, None, None, _not_found(resolved, "file not found"))
        if revision:
            logger.warning("revision %r ignored for local task file %s", revision, resolved)
        tasks = load_file(resolved, split=split, label=label, options=options)
        return TaskSource(label=label, tasks=tasks, location=str(resolved), revision=None)
    if resolved.is_file():
        raise TaskError(
            label,
            None,
            None,
            f"task files must end in .json or .jsonl; got {resolved.name!r} "
            "(other formats load from a dataset directory)",
        )
    if (_looks_like_path(spec) and not resolved.exists()) or _unresolvable(resolved):
        raise TaskError(label, None, None, _not_found(resolved, "no such file or directory"))
    target = str(resolved) if resolved.is_dir() else spec
    return _load_hub(spec, target=target, split=split, revision=revision, resolved=resolved, options=options)


def select(
    tasks: Iterable[Task], *, difficulty: str | None = None, agent_type: TaskAgentType = "both"
) -> list[tuple[Task, AgentType]]:
    """The (task, agent type) pairs to run, in a deterministic order.

    For each task in source order, its agent types in the order tool, code; kept when the agent type is
    selected by ``agent_type`` (``tool``, ``code`` or ``both``) and, when ``difficulty`` is given, the task
    has that difficulty (case-insensitive; tasks without a difficulty are then left out).
    """
    wanted_type = agent_type.strip().lower()
    if wanted_type not in TASK_AGENT_TYPES:
        raise ValueError(f"agent type must be one of {', '.join(TASK_AGENT_TYPES)}; got {agent_type!r}")
    wanted_difficulty = difficulty.strip().lower() if difficulty is not None else None
    if wanted_difficulty is not None and wanted_difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}; got {difficulty!r}")
    pairs: list[tuple[Task, AgentType]] = []
    for task in tasks:
        if wanted_difficulty is not None and (task.difficulty or "").lower() != wanted_difficulty:
            continue
        for kind in task.agent_types:
            if wanted_type in ("both", kind):
                pairs.append((task, kind))
    return pairs
