"""Text tools on ordinary input: grep, sed, sort, head_tail; the sed parser; bounded regular expressions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from smoltrace_tools import get_tools
from smoltrace_tools.errors import PatternRefused, SandboxViolation
from smoltrace_tools.patterns import BoundedPattern
from smoltrace_tools.text import SedCommand, parse_sed_command

LOG = "INFO start\nWARN disk 91%\nINFO work\nERROR failed: disk full\nINFO retry\nerror again\nINFO done\n"


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "app.log").write_text(LOG, encoding="utf-8")
    (tmp_path / "nums.txt").write_text("10 ten\n9 nine\n-2.5 minus\n100 hundred\nzero\n9 nine\n", encoding="utf-8")
    (tmp_path / "words.txt").write_text("banana\nApple\ncherry\napple\nBanana\n", encoding="utf-8")
    return {t.name: t for t in get_tools(["grep", "sed", "sort", "head_tail"], working_dir=tmp_path)}


# ------------------------------------------------------------------------------------------------------- grep


def test_grep_basic_and_options(tools: dict[str, Any]) -> None:
    grep = tools["grep"]
    assert grep(file_path="app.log", pattern="ERROR") == "4:ERROR failed: disk full"
    assert grep(file_path="app.log", pattern="error", case_insensitive=True) == (
        "4:ERROR failed: disk full\n6:error again"
    )
    assert grep(file_path="app.log", pattern="^INFO", line_numbers=False).splitlines() == [
        "INFO start",
        "INFO work",
        "INFO retry",
        "INFO done",
    ]
    assert grep(file_path="app.log", pattern="INFO", count_only=True) == "4"
    assert grep(file_path="app.log", pattern="INFO|WARN", invert_match=True) == (
        "4:ERROR failed: disk full\n6:error again"
    )
    assert grep(file_path="app.log", pattern="nothing") == "No lines matching 'nothing' in app.log"


def test_grep_context(tools: dict[str, Any]) -> None:
    out = tools["grep"](file_path="app.log", pattern="WARN|again", context_before=1, context_after=1)
    assert out.splitlines() == [
        "1-INFO start",
        "2:WARN disk 91%",
        "3-INFO work",
        "--",
        "5-INFO retry",
        "6:error again",
        "7-INFO done",
    ]


def test_grep_bad_arguments(tools: dict[str, Any]) -> None:
    with pytest.raises(PatternRefused, match="invalid regular expression"):
        tools["grep"](file_path="app.log", pattern="(unclosed")
    with pytest.raises(ValueError, match="between 0 and 100"):
        tools["grep"](file_path="app.log", pattern="x", context_before=500)
    with pytest.raises(ValueError, match="true or false"):
        tools["grep"](file_path="app.log", pattern="x", count_only="maybe")


# -------------------------------------------------------------------------------------------------------- sed


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("s/disk/DISK/", SedCommand("s", "disk", "DISK", "")),
        ("s|a/b|c|g", SedCommand("s", "a/b", "c", "g")),
        (r"s/a\/b/c/gi", SedCommand("s", "a/b", "c", "gi")),
        ("/INFO/d", SedCommand("d", "INFO")),
        ("/INFO/p", SedCommand("p", "INFO")),
        ("3p", SedCommand("p", first=3, last=3)),
        ("2,4d", SedCommand("d", first=2, last=4)),
        ("5,$p", SedCommand("p", first=5, last=-1)),
    ],
)
def test_parse_sed_command(command: str, expected: SedCommand) -> None:
    assert parse_sed_command(command) == expected


@pytest.mark.parametrize("command", ["", "y/abc/xyz/", "s/a/b", "s/a/b/q", "4,2d", "0p", "e rm -rf /", "w out"])
def test_parse_sed_command_refuses(command: str) -> None:
    with pytest.raises(ValueError):
        parse_sed_command(command)


def test_sed_substitute(tools: dict[str, Any]) -> None:
    sed = tools["sed"]
    assert sed(file_path="app.log", command="s/disk/DISK/").splitlines()[1] == "WARN DISK 91%"
    assert sed(file_path="app.log", command="s/i/I/").splitlines()[0] == "INFO start"
    assert sed(file_path="app.log", command="s/o/0/g").splitlines()[-1] == "INFO d0ne"
    assert sed(file_path="app.log", command="s/o/0/", global_replace=True).splitlines()[-1] == "INFO d0ne"
    assert (
        sed(file_path="app.log", command="s/error/E/", case_insensitive=True).splitlines()[3] == "E failed: disk full"
    )
    assert sed(file_path="app.log", command=r"s/(\w+) (\w+)/\2 \1/").splitlines()[0] == "start INFO"
    assert sed(file_path="app.log", command="s/WARN/[&]/").splitlines()[1] == "[WARN] disk 91%"
    with pytest.raises(ValueError, match="group"):
        sed(file_path="app.log", command=r"s/(a)/\2/")


def test_sed_delete_print_and_output_file(tools: dict[str, Any], tmp_path: Path) -> None:
    sed = tools["sed"]
    assert sed(file_path="app.log", command="/INFO/d") == "WARN disk 91%\nERROR failed: disk full\nerror again\n"
    assert sed(file_path="app.log", command="/disk/p") == "WARN disk 91%\nERROR failed: disk full\n"
    assert sed(file_path="app.log", command="2,6d") == "INFO start\nINFO done\n"
    assert sed(file_path="app.log", command="6,$p") == "error again\nINFO done\n"
    out = sed(file_path="app.log", command="/INFO/d", output_file="out/errors.log")
    assert out == "4 lines deleted; wrote 3 lines to out/errors.log"
    assert (tmp_path / "out" / "errors.log").read_text(encoding="utf-8").startswith("WARN disk")
    assert (tmp_path / "app.log").read_text(encoding="utf-8") == LOG  # the input is never changed in place
    sed(file_path="app.log", command="s/INFO/info/g", output_file="app.log")  # ... unless asked to
    assert (tmp_path / "app.log").read_text(encoding="utf-8").startswith("info start")


# ------------------------------------------------------------------------------------------------------- sort


def test_sort_variants(tools: dict[str, Any]) -> None:
    sort = tools["sort"]
    assert sort(file_path="words.txt") == "Apple\nBanana\napple\nbanana\ncherry\n"
    assert sort(file_path="words.txt", case_insensitive=True) == "Apple\napple\nBanana\nbanana\ncherry\n"
    assert sort(file_path="words.txt", case_insensitive=True, unique=True) == "Apple\nBanana\ncherry\n"
    assert sort(file_path="words.txt", reverse=True).splitlines()[0] == "cherry"
    assert sort(file_path="nums.txt", numeric=True) == "-2.5 minus\nzero\n9 nine\n9 nine\n10 ten\n100 hundred\n"
    assert sort(file_path="nums.txt", numeric=True, unique=True, reverse=True).splitlines() == [
        "100 hundred",
        "10 ten",
        "9 nine",
        "zero",
        "-2.5 minus",
    ]


def test_sort_output_file(tools: dict[str, Any], tmp_path: Path) -> None:
    assert (
        tools["sort"](file_path="words.txt", output_file="sorted.txt") == "5 lines sorted; wrote 5 lines to sorted.txt"
    )
    assert (tmp_path / "sorted.txt").read_text(encoding="utf-8").splitlines()[0] == "Apple"
    with pytest.raises(SandboxViolation):
        tools["sort"](file_path="words.txt", output_file="../x.txt")


# -------------------------------------------------------------------------------------------------- head_tail


def test_head_tail(tools: dict[str, Any]) -> None:
    head_tail = tools["head_tail"]
    assert head_tail(file_path="app.log", lines=2) == "INFO start\nWARN disk 91%"
    assert head_tail(file_path="app.log", mode="tail", lines=2) == "error again\nINFO done"
    assert head_tail(file_path="app.log", mode=None, lines=None).count("\n") == 6  # 7 lines: all of them
    assert head_tail(file_path="app.log", mode="TAIL", lines="1") == "INFO done"
    with pytest.raises(ValueError, match="'head' or 'tail'"):
        head_tail(file_path="app.log", mode="middle")
    with pytest.raises(ValueError, match="between 1 and 10000"):
        head_tail(file_path="app.log", lines=0)


# ------------------------------------------------------------------------------------------ bounded patterns


def test_catastrophic_pattern_stops_within_its_budget() -> None:
    pattern = BoundedPattern("(a|aa)+$", budget_s=0.3)
    started = time.perf_counter()
    with pytest.raises(PatternRefused, match="catastrophic backtracking"):
        pattern.search("a" * 64 + "!")
    assert time.perf_counter() - started < 3


def test_budget_is_shared_by_all_lines_of_a_call() -> None:
    pattern = BoundedPattern("x", budget_s=0.05)
    pattern.search("x")
    time.sleep(0.06)
    with pytest.raises(PatternRefused):
        pattern.search("x")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("a{2000}", "over 1000"), ("(a{100}){100}(b{1000})", "multiply"), ("x" * 1001, "limit"), ("", "empty")],
)
def test_pattern_shape_limits(pattern: str, message: str) -> None:
    with pytest.raises(PatternRefused, match=message):
        BoundedPattern(pattern)


def test_literal_and_ordinary_patterns() -> None:
    assert BoundedPattern("a.b", literal=True).search("a.b") is not None
    assert BoundedPattern("a.b", literal=True).search("axb") is None
    assert BoundedPattern(r"\d{4}-\d{2}-\d{2}").search("on 2024-05-01") is not None
    assert BoundedPattern("ABC", ignore_case=True).subn("x", "abc abc") == ("x x", 2)
