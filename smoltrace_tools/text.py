"""Text tools (SMOLTRACE's names and arguments): ``grep``, ``sed``, ``sort``, ``head_tail``.

Files are read and written through the run's :class:`~smoltrace_tools.sandbox.Sandbox` (10 MB limit); every
regular expression is a :class:`~smoltrace_tools.patterns.BoundedPattern`, so a pathological pattern ends in a
clear ``PatternRefused`` error instead of a hang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .base import ContextTool, as_bool, as_int, as_str, clip
from .patterns import BoundedPattern

__all__ = ["GrepTool", "HeadTailTool", "SedCommand", "SedTool", "SortTool", "parse_sed_command"]

MAX_CONTEXT_LINES = 100
MAX_OUTPUT_LINES = 2000
MAX_HEAD_TAIL_LINES = 10_000


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _write_or_return(tool: ContextTool, lines: list[str], output_file: object, summary: str) -> str:
    text = "\n".join(lines) + ("\n" if lines else "")
    target = as_str(output_file, "", "output_file")
    if target:
        sandbox = tool.context.sandbox
        real = sandbox.write_bytes(target, text.encode("utf-8"))
        return f"{summary}; wrote {len(lines)} lines to {sandbox.display(real)}"
    return (
        clip(text, hint="give output_file to write the whole result to a file") if lines else f"{summary}; (no lines)"
    )


# ---------------------------------------------------------------------------------------------------- grep


class GrepTool(ContextTool):
    name = "grep"
    description = (
        "Searches a file in the working directory for lines matching a regular expression (Python syntax), "
        "like grep. Options: case_insensitive, line_numbers (prefix 'N:'), context_before/context_after lines, "
        "invert_match (lines NOT matching), count_only (just the number of matching lines)."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "File to search, relative to the working directory."},
        "pattern": {"type": "string", "description": "Regular expression, e.g. 'error|warning'."},
        "case_insensitive": {"type": "boolean", "description": "Ignore case (default false).", "nullable": True},
        "line_numbers": {"type": "boolean", "description": "Prefix line numbers (default true).", "nullable": True},
        "context_before": {"type": "integer", "description": "Lines of context before a match.", "nullable": True},
        "context_after": {"type": "integer", "description": "Lines of context after a match.", "nullable": True},
        "invert_match": {"type": "boolean", "description": "Select non-matching lines.", "nullable": True},
        "count_only": {"type": "boolean", "description": "Return only the count of lines.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        file_path: str,
        pattern: str,
        case_insensitive: bool | None = False,
        line_numbers: bool | None = True,
        context_before: int | None = 0,
        context_after: int | None = 0,
        invert_match: bool | None = False,
        count_only: bool | None = False,
    ) -> str:
        before = as_int(context_before, 0, "context_before", low=0, high=MAX_CONTEXT_LINES)
        after = as_int(context_after, 0, "context_after", low=0, high=MAX_CONTEXT_LINES)
        numbered = as_bool(line_numbers, True, "line_numbers")
        invert = as_bool(invert_match, False, "invert_match")
        regex = BoundedPattern(
            as_str(pattern, "", "pattern"),
            ignore_case=as_bool(case_insensitive, False, "case_insensitive"),
            budget_s=min(5.0, self.context.timeout_s),
        )
        _, text = self.context.sandbox.read_text(file_path)
        lines = _lines(text)
        selected = [i for i, line in enumerate(lines) if (regex.search(line) is not None) != invert]
        if as_bool(count_only, False, "count_only"):
            return str(len(selected))
        if not selected:
            return f"No lines {'without' if invert else 'matching'} {pattern!r} in {file_path}"
        shown: dict[int, bool] = {}
        for i in selected:
            for j in range(max(0, i - before), min(len(lines), i + after + 1)):
                shown.setdefault(j, False)
            shown[i] = True
        out: list[str] = []
        previous = -2
        for j in sorted(shown):
            if (before or after) and previous >= 0 and j != previous + 1:
                out.append("--")
            separator = ":" if shown[j] else "-"
            out.append(f"{j + 1}{separator}{lines[j]}" if numbered else lines[j])
            previous = j
            if len(out) >= MAX_OUTPUT_LINES:
                out.append(f"… [stopped after {MAX_OUTPUT_LINES} lines; {len(selected)} lines matched]")
                break
        return clip("\n".join(out))


# ----------------------------------------------------------------------------------------------------- sed


@dataclass(frozen=True)
class SedCommand:
    """A parsed sed command: ``s`` (substitute), ``d`` (delete) or ``p`` (print) on lines or a pattern."""

    op: str
    pattern: str | None = None
    replacement: str = ""
    flags: str = ""
    first: int | None = None
    last: int | None = None


_LINE_RANGE = re.compile(r"^\s*(\d+)\s*(?:,\s*(\d+|\$)\s*)?([dp])\s*$")


def _split_delimited(text: str, delimiter: str, parts: int) -> list[str]:
    """Split ``text`` on unescaped ``delimiter`` into ``parts`` pieces plus the remainder (escapes kept)."""
    out: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            current.append(nxt if nxt == delimiter else char + nxt)
            i += 2
            continue
        if char == delimiter and len(out) < parts:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    if len(out) < parts:
        raise ValueError("unterminated command")
    out.append("".join(current))
    return out


def parse_sed_command(command: str) -> SedCommand:
    """Parse ``s/pat/rep/[gi]``, ``/pat/d``, ``/pat/p``, ``Nd``, ``N,Md``, ``Np``, ``N,Mp`` (``$`` = last line)."""
    text = command.strip()
    if not text:
        raise ValueError("the sed command is empty")
    ranged = _LINE_RANGE.match(text)
    if ranged:
        first = int(ranged.group(1))
        last_text = ranged.group(2)
        last = first if last_text is None else (None if last_text == "$" else int(last_text))
        if first < 1 or (last is not None and last < first):
            raise ValueError(f"invalid line range in {command!r}")
        return SedCommand(op=ranged.group(3), first=first, last=last if last is not None else -1)
    try:
        if text[0] == "s" and len(text) > 1 and not text[1].isalnum() and not text[1].isspace():
            pattern, replacement, flags = _split_delimited(text[2:], text[1], 2)
            flags = flags.strip()
            if set(flags) - set("gIi"):
                raise ValueError(f"unsupported flags {flags!r} (use g and/or i)")
            return SedCommand(op="s", pattern=pattern, replacement=replacement, flags=flags)
        if text[0] == "/":
            pattern, rest = _split_delimited(text[1:], "/", 1)
            if rest.strip() in ("d", "p"):
                return SedCommand(op=rest.strip(), pattern=pattern)
    except ValueError as exc:
        raise ValueError(f"cannot parse sed command {command!r}: {exc}") from None
    raise ValueError(
        f"unsupported sed command {command!r}; supported: 's/pattern/replacement/[g][i]', '/pattern/d', "
        "'/pattern/p', 'Nd', 'N,Md', 'Np', 'N,Mp' ('$' is the last line)"
    )


def _python_replacement(sed_replacement: str, groups: int) -> Any:
    """sed replacement syntax (``&``, ``\\1``…``\\9``, ``\\n``, ``\\&``) as a callable for ``regex.subn``."""
    pieces: list[tuple[str, str | int]] = []
    i = 0
    while i < len(sed_replacement):
        char = sed_replacement[i]
        if char == "\\" and i + 1 < len(sed_replacement):
            nxt = sed_replacement[i + 1]
            if nxt.isdigit():
                if int(nxt) > groups:
                    raise ValueError(f"the replacement refers to group \\{nxt} but the pattern has {groups} groups")
                pieces.append(("group", int(nxt)))
            elif nxt == "n":
                pieces.append(("text", "\n"))
            elif nxt == "t":
                pieces.append(("text", "\t"))
            else:
                pieces.append(("text", nxt))
            i += 2
            continue
        pieces.append(("group", 0) if char == "&" else ("text", char))
        i += 1

    def replace(match: Any) -> str:
        out: list[str] = []
        for kind, value in pieces:
            if kind == "text":
                out.append(str(value))
            else:
                group = match.group(int(value))
                out.append(group or "")
        return "".join(out)

    return replace


class SedTool(ContextTool):
    name = "sed"
    description = (
        "Edits the lines of a file in the working directory, like sed. Commands: 's/pattern/replacement/' "
        "(add 'g' to replace every match on a line, 'i' to ignore case; '&' and '\\1' refer to the match and its "
        "groups), '/pattern/d' (delete matching lines), '/pattern/p' (keep only matching lines), 'Nd' or 'N,Md' "
        "(delete lines), 'Np' or 'N,Mp' (print lines). The file is not changed: the result is returned, or "
        "written to output_file when given."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "File to edit, relative to the working directory."},
        "command": {"type": "string", "description": "The sed command, e.g. 's/cat/dog/g'."},
        "global_replace": {"type": "boolean", "description": "Replace every match (like 'g').", "nullable": True},
        "case_insensitive": {"type": "boolean", "description": "Ignore case (like 'i').", "nullable": True},
        "output_file": {"type": "string", "description": "Write the result here instead.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        file_path: str,
        command: str,
        global_replace: bool | None = False,
        case_insensitive: bool | None = False,
        output_file: str | None = None,
    ) -> str:
        parsed = parse_sed_command(as_str(command, "", "command"))
        every = as_bool(global_replace, False, "global_replace") or "g" in parsed.flags
        ignore_case = as_bool(case_insensitive, False, "case_insensitive") or bool(set("iI") & set(parsed.flags))
        regex = (
            BoundedPattern(parsed.pattern, ignore_case=ignore_case, budget_s=min(5.0, self.context.timeout_s))
            if parsed.pattern is not None
            else None
        )
        _, text = self.context.sandbox.read_text(file_path)
        lines = _lines(text)
        out: list[str] = []
        changed = 0
        if parsed.op == "s":
            assert regex is not None
            replace = _python_replacement(parsed.replacement, regex.groups)
            for line in lines:
                new, count = regex.subn(replace, line, count=0 if every else 1)
                changed += 1 if count else 0
                out.append(new)
            summary = f"{changed} lines changed"
        else:
            for number, line in enumerate(lines, start=1):
                if regex is not None:
                    hit = regex.search(line) is not None
                else:
                    assert parsed.first is not None and parsed.last is not None
                    hit = number >= parsed.first and (parsed.last == -1 or number <= parsed.last)
                if hit:
                    changed += 1
                if (parsed.op == "d" and not hit) or (parsed.op == "p" and hit):
                    out.append(line)
            summary = f"{changed} lines {'deleted' if parsed.op == 'd' else 'printed'}"
        return _write_or_return(self, out, output_file, summary)


# ---------------------------------------------------------------------------------------------------- sort

_LEADING_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")


def _numeric_key(line: str) -> float:
    match = _LEADING_NUMBER.match(line)
    return float(match.group(1)) if match else 0.0


class SortTool(ContextTool):
    name = "sort"
    description = (
        "Sorts the lines of a file in the working directory, like sort. Options: numeric (by the leading number; "
        "lines without one count as 0), reverse, unique (drop duplicate lines), case_insensitive. The file is not "
        "changed: the sorted lines are returned, or written to output_file when given."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "File to sort, relative to the working directory."},
        "numeric": {"type": "boolean", "description": "Sort by leading number.", "nullable": True},
        "reverse": {"type": "boolean", "description": "Largest/last first.", "nullable": True},
        "unique": {"type": "boolean", "description": "Drop duplicate lines.", "nullable": True},
        "case_insensitive": {"type": "boolean", "description": "Ignore case.", "nullable": True},
        "output_file": {"type": "string", "description": "Write the result here instead.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        file_path: str,
        numeric: bool | None = False,
        reverse: bool | None = False,
        unique: bool | None = False,
        case_insensitive: bool | None = False,
        output_file: str | None = None,
    ) -> str:
        by_number = as_bool(numeric, False, "numeric")
        fold = as_bool(case_insensitive, False, "case_insensitive")
        _, text = self.context.sandbox.read_text(file_path)
        lines = _lines(text)

        def key(line: str) -> tuple[Any, ...]:
            folded = line.lower() if fold else line
            # like GNU sort: equal keys fall back to comparing the whole line byte-wise
            return (_numeric_key(line), folded, line) if by_number else (folded, line)

        ordered = sorted(lines, key=key, reverse=as_bool(reverse, False, "reverse"))
        if as_bool(unique, False, "unique"):
            seen: set[Any] = set()
            kept: list[str] = []
            for line in ordered:
                identity = _numeric_key(line) if by_number else (line.lower() if fold else line)
                if identity not in seen:
                    seen.add(identity)
                    kept.append(line)
            ordered = kept
        return _write_or_return(self, ordered, output_file, f"{len(ordered)} lines sorted")


# ------------------------------------------------------------------------------------------------ head_tail


class HeadTailTool(ContextTool):
    name = "head_tail"
    description = "Returns the first (mode 'head') or last (mode 'tail') lines of a file in the working directory."
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "File to read, relative to the working directory."},
        "mode": {"type": "string", "description": "'head' (default) or 'tail'.", "nullable": True},
        "lines": {"type": "integer", "description": "How many lines (default 10).", "nullable": True},
    }
    output_type = "string"

    def forward(self, file_path: str, mode: str | None = "head", lines: int | None = 10) -> str:
        chosen = as_str(mode, "head", "mode").strip().lower() or "head"
        if chosen not in ("head", "tail"):
            raise ValueError(f"mode must be 'head' or 'tail', got {mode!r}")
        count = as_int(lines, 10, "lines", low=1, high=MAX_HEAD_TAIL_LINES)
        _, text = self.context.sandbox.read_text(file_path)
        all_lines = _lines(text)
        picked = all_lines[:count] if chosen == "head" else all_lines[-count:]
        return clip("\n".join(picked))
