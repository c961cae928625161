"""File tools on ordinary input: read_file, write_file, list_directory, search_files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from smoltrace_tools import get_tools
from smoltrace_tools.errors import SandboxViolation


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\nInstall with pip.\n", encoding="utf-8")
    (tmp_path / "docs" / "notes.txt").write_text("remember the milk\nPIP is a tool\n", encoding="utf-8")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("café\n".encode("latin-1"))
    (tmp_path / "image.bin").write_bytes(b"\x00pip\x01")
    return {
        t.name: t
        for t in get_tools(["read_file", "write_file", "list_directory", "search_files"], working_dir=tmp_path)
    }


def test_read_file_has_a_header(tools: dict[str, Any]) -> None:
    assert tools["read_file"](file_path="data.csv") == "File: data.csv\nSize: 8 bytes\n\na,b\n1,2\n"
    assert tools["read_file"](file_path="docs/guide.md").startswith("File: docs/guide.md\nSize: 26 bytes\n\n# Guide")


def test_read_file_encodings(tools: dict[str, Any]) -> None:
    assert tools["read_file"](file_path="latin.txt", encoding="latin-1").endswith("café\n")
    assert "caf\ufffd" in tools["read_file"](file_path="latin.txt")  # utf-8 default, bad bytes replaced
    assert tools["read_file"](file_path="latin.txt", encoding=None).endswith("\ufffd\n")
    with pytest.raises(ValueError, match="unknown encoding"):
        tools["read_file"](file_path="latin.txt", encoding="klingon")


def test_read_file_errors(tools: dict[str, Any]) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file: 'missing\.txt'"):
        tools["read_file"](file_path="missing.txt")
    with pytest.raises(IsADirectoryError, match="list_directory"):
        tools["read_file"](file_path="docs")


def test_read_file_cuts_long_output(tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text("x" * 150_000, encoding="utf-8")
    (tool,) = get_tools(["read_file"], working_dir=tmp_path)
    out = tool(file_path="long.txt")
    assert "output cut: 50000 more characters" in out and "head_tail" in out


def test_write_file_modes(tools: dict[str, Any], tmp_path: Path) -> None:
    assert tools["write_file"](file_path="out/new.txt", content="one\n") == "Wrote 4 bytes to out/new.txt"
    assert tools["write_file"](file_path="out/new.txt", content="two\n", mode="append") == (
        "Appended 4 bytes to out/new.txt"
    )
    assert (tmp_path / "out" / "new.txt").read_text(encoding="utf-8") == "one\ntwo\n"
    tools["write_file"](file_path="out/new.txt", content="three", mode=None)
    assert (tmp_path / "out" / "new.txt").read_text(encoding="utf-8") == "three"
    with pytest.raises(ValueError, match="'write' or 'append'"):
        tools["write_file"](file_path="x.txt", content="x", mode="overwrite")


def test_write_file_blocked_paths_of_smoltrace_are_simply_outside(tools: dict[str, Any]) -> None:
    for path in ("/etc/pwned", "/proc/self/x", "/sys/x", "/dev/null"):
        with pytest.raises(SandboxViolation):
            tools["write_file"](file_path=path, content="x")


def test_list_directory(tools: dict[str, Any]) -> None:
    assert tools["list_directory"]().splitlines() == [
        "Directory: .",
        "4 entries",
        "[DIR]  docs/",
        "[FILE] data.csv (8 bytes)",
        "[FILE] image.bin (5 bytes)",
        "[FILE] latin.txt (5 bytes)",
    ]


def test_list_directory_with_pattern_and_subdirectory(tools: dict[str, Any]) -> None:
    out = tools["list_directory"](directory_path="docs", pattern="*.md")
    assert out.splitlines() == ["Directory: docs (pattern '*.md')", "1 entry", "[FILE] guide.md (26 bytes)"]
    nested = tools["list_directory"](directory_path=".", pattern="docs/*.txt")
    assert "[FILE] docs/notes.txt" in nested
    assert "(no entries)" in tools["list_directory"](pattern="*.nothing")
    with pytest.raises(NotADirectoryError):
        tools["list_directory"](directory_path="data.csv")


def test_search_files_by_name(tools: dict[str, Any]) -> None:
    out = tools["search_files"](directory=".", pattern="*.txt")
    assert out.splitlines() == ["Files matching '*.txt' under .: 2", "latin.txt", "docs/notes.txt"]
    assert tools["search_files"](pattern="docs/*.md").splitlines()[1:] == ["docs/guide.md"]
    assert "No files matching" in tools["search_files"](pattern="*.py")
    limited = tools["search_files"](pattern="*", max_results=2)
    assert "stopped at max_results=2" in limited and len(limited.splitlines()) == 3


def test_search_files_by_content(tools: dict[str, Any]) -> None:
    out = tools["search_files"](directory=".", pattern="pip", search_type="content")
    assert out.splitlines() == [
        "Lines containing 'pip' under .: 2",
        "docs/guide.md:2: Install with pip.",
        "docs/notes.txt:2: PIP is a tool",
    ]  # image.bin is not a text extension
    with pytest.raises(ValueError, match="'name' or 'content'"):
        tools["search_files"](pattern="x", search_type="regex")
    with pytest.raises(ValueError, match="pattern is required"):
        tools["search_files"](directory=".")


def test_search_skips_big_files(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("needle\n" + "x" * (1024 * 1024), encoding="utf-8")
    (tmp_path / "small.txt").write_text("needle\n", encoding="utf-8")
    (tool,) = get_tools(["search_files"], working_dir=tmp_path)
    assert tool(pattern="needle", search_type="content").splitlines()[1:] == ["small.txt:1: needle"]


def test_symlink_inside_is_usable(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("hi\n", encoding="utf-8")
    os.symlink("real.txt", tmp_path / "alias.txt")
    (read,) = get_tools(["read_file"], working_dir=tmp_path)
    assert read(file_path="alias.txt").endswith("hi\n")
