"""Foreign task formats: rows in an open benchmark's own columns read as tasks (``--smoltrace-task-preset``,
``--smoltrace-field-map``).

A :class:`FieldMap` renames a row's columns to task fields before the row is validated; everything it does not
rename is validated (and kept in ``metadata``) as usual. Presets:

- ``gaia`` (GAIA's ``metadata.jsonl`` / Hub rows): ``task_id`` → ``id``, ``Question`` → ``prompt``,
  ``Final answer`` → ``expected_answer`` (the test split's placeholder ``?`` is no expected answer), ``Level``
  ``1``/``2``/``3`` → ``difficulty`` ``easy``/``medium``/``hard``; ``file_name`` stays in ``metadata`` and, when
  the file is found beside the data (or at the row's ``file_path``), its path is ``metadata.file_path`` and is
  offered to the agent at the end of the prompt;
- ``smolagents-benchmark`` (smolagents' benchmark dataset): ``question`` → ``prompt``, ``true_answer`` →
  ``expected_answer``, ``source`` → ``category``; its rows have no id, so each gets ``row-<row number>``.

``--smoltrace-field-map SRC=DST,…`` renames any other columns (on top of a preset: its renames win). A row that still
does not fit is the usual error naming source, row and field; when the row's columns look like a preset that is not
in use, the error says which preset to use (:func:`preset_hint`).

This module is imported with the option table: it holds data and small functions only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .records import Task

__all__ = [
    "PRESETS",
    "PRESET_NAMES",
    "TASK_FIELDS",
    "FieldMap",
    "MappingProblem",
    "Preset",
    "parse_field_map",
    "preset_hint",
]

logger = logging.getLogger(__name__)


class MappingProblem(Exception):
    """A column a field map reads cannot become its task field: ``column`` (the row's own name) and the ``rule``."""

    def __init__(self, column: str, rule: str) -> None:
        self.column = column
        self.rule = rule
        super().__init__(f"{column}: {rule}")


#: ``(value, row, field map) → value``: how a preset reads one of its columns (raises :class:`MappingProblem`).
Reader = Callable[[Any, Mapping[str, Any], "FieldMap"], Any]

#: The fields a column can be renamed to: the task schema's (``source`` and ``row`` are the loader's).
TASK_FIELDS: frozenset[str] = frozenset(f.name for f in fields(Task)) - {"source", "row"}

GAIA_LEVELS = {"1": "easy", "2": "medium", "3": "hard"}
#: GAIA's test split hides its answers behind this placeholder.
GAIA_HIDDEN_ANSWER = "?"


def _gaia_level(value: Any, row: Mapping[str, Any], fields: FieldMap) -> Any:
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text not in GAIA_LEVELS:
        shown = repr(value) if not isinstance(value, str) else repr(value[:40])
        raise MappingProblem(
            "Level", f"must be 1, 2 or 3 (GAIA's levels, read as easy, medium, hard by the gaia preset); got {shown}"
        )
    return GAIA_LEVELS[text]


def _gaia_answer(value: Any, row: Mapping[str, Any], fields: FieldMap) -> Any:
    if isinstance(value, str) and value.strip() == GAIA_HIDDEN_ANSWER:
        return None  # the test split: no answer to compare with
    return value


@dataclass(frozen=True)
class Preset:
    """A known benchmark's columns: ``columns`` maps its column names to task fields, ``readers`` convert values,
    ``signature`` are the columns that identify its rows, ``make_id`` gives rows without an id ``row-<n>``."""

    name: str
    columns: Mapping[str, str]
    signature: frozenset[str]
    readers: Mapping[str, Reader] = field(default_factory=dict)
    make_id: bool = False
    attachment_column: str | None = None


PRESETS: dict[str, Preset] = {
    "gaia": Preset(
        name="gaia",
        columns={"task_id": "id", "Question": "prompt", "Final answer": "expected_answer", "Level": "difficulty"},
        signature=frozenset({"task_id", "Question", "Final answer"}),
        readers={"Level": _gaia_level, "Final answer": _gaia_answer},
        attachment_column="file_name",
    ),
    "smolagents-benchmark": Preset(
        name="smolagents-benchmark",
        columns={"question": "prompt", "true_answer": "expected_answer", "source": "category"},
        signature=frozenset({"question", "true_answer"}),
        make_id=True,
    ),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def parse_field_map(text: str) -> tuple[tuple[str, str], ...]:
    """``--smoltrace-field-map`` text: ``SRC=DST`` pairs separated by commas (column names may hold spaces).

    ``DST`` must be a task field; a column may be renamed once. Raises ``ValueError`` with the rule broken."""
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        source, sep, target = part.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise ValueError(f"expected SRC=DST pairs separated by commas (e.g. Question=prompt); got {part.strip()!r}")
        if target not in TASK_FIELDS:
            known = ", ".join(sorted(TASK_FIELDS))
            raise ValueError(f"{part.strip()!r}: {target!r} is not a task field; task fields: {known}")
        if any(source == s for s, _ in pairs):
            raise ValueError(f"column {source!r} is mapped twice")
        pairs.append((source, target))
    if not pairs:
        raise ValueError("expected SRC=DST pairs separated by commas (e.g. Question=prompt)")
    return tuple(pairs)


@dataclass(frozen=True)
class FieldMap:
    """How a source's rows are read: a preset (:data:`PRESETS`) and/or explicit renames; ``base_dir`` is where the
    data is (attached files are looked for beside it; the loader sets it)."""

    preset: str | None = None
    renames: tuple[tuple[str, str], ...] = ()
    base_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown task preset {self.preset!r}; presets: {', '.join(PRESET_NAMES)}")

    @property
    def active(self) -> bool:
        return self.preset is not None or bool(self.renames)

    @property
    def spec(self) -> Preset | None:
        return PRESETS[self.preset] if self.preset is not None else None

    def columns(self) -> dict[str, str]:
        """Column → task field: the preset's, then the renames (a rename of a column the preset reads replaces it,
        and a rename to a field the preset fills takes that field over)."""
        preset = self.spec
        columns = dict(preset.columns) if preset is not None else {}
        for source, target in self.renames:
            for column in [c for c, t in columns.items() if t == target]:
                del columns[column]
            columns[source] = target
        return columns

    def describe(self, column: str) -> str:
        """Who maps ``column``: ``--smoltrace-field-map`` or the preset."""
        if any(column == s for s, _ in self.renames):
            return "--smoltrace-field-map"
        return f"preset {self.preset}"

    def apply(self, row: Mapping[str, Any], row_number: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The row with its columns renamed to task fields, and which column each renamed field came from.

        Raises :class:`MappingProblem` for a column that cannot become its field."""
        columns = self.columns()
        preset = self.spec
        readers = preset.readers if preset is not None else {}
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for key, value in row.items():
            target = columns.get(key)
            if target is None:
                continue
            if target in row and target not in columns:
                raise MappingProblem(
                    key,
                    f"is read as {target!r} ({self.describe(key)}), but the row has a {target!r} column too; "
                    "drop one of them or map the other elsewhere",
                )
            reader = readers.get(key) if preset is not None and preset.columns.get(key) == target else None
            out[target] = reader(value, row, self) if reader is not None and value is not None else value
            origin[target] = key
        for key, value in row.items():
            if key not in columns and key not in out:
                out[key] = value
        if preset is not None and preset.make_id and out.get("id") is None:
            out["id"] = f"row-{row_number}"
        if preset is not None and preset.attachment_column is not None:
            self._attach(out, row, preset.attachment_column)
        return out, origin

    def _attach(self, out: dict[str, Any], row: Mapping[str, Any], column: str) -> None:
        """Offer the row's attached file to the agent when it is found (GAIA's ``file_name``)."""
        name = row.get(column)
        if not isinstance(name, str) or not name.strip():
            return
        candidates: list[Path] = []
        given = row.get("file_path")
        if isinstance(given, str) and given.strip():
            path = Path(given)
            candidates.append(path if path.is_absolute() or self.base_dir is None else self.base_dir / path)
        if self.base_dir is not None:
            candidates.append(self.base_dir / name.strip())
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            logger.debug("attached file %r of a row not found beside the data (%s)", name, self.base_dir)
            return
        out.pop("file_path", None)  # the row's own path, resolved below
        metadata = out.get("metadata")
        merged = dict(metadata) if isinstance(metadata, Mapping) else {}
        merged["file_path"] = str(found.resolve())
        out["metadata"] = merged
        prompt = out.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            out["prompt"] = f"{prompt}\n\nThe task comes with an attached file: {found.resolve()}"


def preset_hint(columns: Mapping[str, Any] | set[str], active: str | None) -> str | None:
    """``use --smoltrace-task-preset NAME`` when the columns look like a known preset's and it is not in use."""
    names = set(columns)
    for preset in PRESETS.values():
        if preset.name != active and preset.signature <= names:
            return f"these columns look like the {preset.name} format: use --smoltrace-task-preset {preset.name}"
    return None
