"""The Sandbox itself: path resolution, symlinks in and out, special files, limits, glob checks, swapped files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smoltrace_tools.errors import FileTooLarge, SandboxViolation, ToolConfigError
from smoltrace_tools.sandbox import Sandbox


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "a.txt").write_text("A\n", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("secret\n", encoding="utf-8")
    return Sandbox(work)


def test_root_is_resolved_and_must_exist(tmp_path: Path) -> None:
    link = tmp_path / "link"
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", link)
    assert Sandbox(link).root == (tmp_path / "real").resolve()
    with pytest.raises(ToolConfigError):
        Sandbox(tmp_path / "missing")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ToolConfigError):
        Sandbox(tmp_path / "file")


@pytest.mark.parametrize("path", [".", "a.txt", "sub", "sub/../a.txt", "./sub/./x/../../a.txt", "new/deep/file"])
def test_paths_inside_are_accepted(box: Sandbox, path: str) -> None:
    resolved = box.resolve(path)
    assert resolved == box.root or resolved.is_relative_to(box.root)


def test_absolute_path_inside_is_accepted(box: Sandbox) -> None:
    assert box.resolve(str(box.root / "a.txt")) == box.root / "a.txt"


@pytest.mark.parametrize("path", ["..", "../outside.txt", "sub/../../outside.txt", "/etc/passwd", "/", "//etc"])
def test_paths_outside_are_refused(box: Sandbox, path: str) -> None:
    with pytest.raises(SandboxViolation, match="outside the working directory"):
        box.resolve(path)


def test_symlink_inside_pointing_inside_is_followed(box: Sandbox) -> None:
    os.symlink("a.txt", box.root / "alias")
    os.symlink(box.root / "sub", box.root / "subalias")
    assert box.resolve("alias") == box.root / "a.txt"
    assert box.read_text("alias")[1] == "A\n"
    assert box.existing_dir("subalias") == box.root / "sub"


def test_symlink_outside_pointing_in_is_accepted(box: Sandbox, tmp_path: Path) -> None:
    os.symlink(box.root / "a.txt", tmp_path / "in_link")
    assert box.read_text(str(tmp_path / "in_link"))[1] == "A\n"


def test_symlink_loops_and_dangling_links_out(box: Sandbox) -> None:
    os.symlink("loop2", box.root / "loop1")
    os.symlink("loop1", box.root / "loop2")
    with pytest.raises(OSError):
        box.read_bytes("loop1")
    os.symlink("/nonexistent/target", box.root / "dangling")
    with pytest.raises(SandboxViolation):
        box.write_bytes("dangling", b"x")
    assert not Path("/nonexistent/target").exists()


def test_nul_long_and_empty_paths(box: Sandbox) -> None:
    with pytest.raises(SandboxViolation, match="NUL"):
        box.resolve("a.txt\x00")
    with pytest.raises(SandboxViolation, match="limit"):
        box.resolve("a" * 5000)
    with pytest.raises(ValueError, match="empty"):
        box.resolve("  ")
    with pytest.raises(SandboxViolation, match="must be a string"):
        box.resolve(b"a.txt")


def test_fifo_is_refused_without_blocking(box: Sandbox) -> None:
    os.mkfifo(box.root / "pipe")
    with pytest.raises(SandboxViolation, match="FIFO"):
        box.read_bytes("pipe")
    with pytest.raises(SandboxViolation, match="FIFO"):
        box.write_bytes("pipe", b"x")


def test_read_and_write_limits(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, max_read_bytes=10, max_write_bytes=8, write_budget_bytes=20)
    (tmp_path / "eleven").write_bytes(b"x" * 11)
    with pytest.raises(FileTooLarge):
        box.read_bytes("eleven")
    with pytest.raises(FileTooLarge):
        box.write_bytes("w", b"x" * 9)
    box.write_bytes("w", b"x" * 8)
    with pytest.raises(FileTooLarge, match="larger than 8"):
        box.write_bytes("w", b"y", append=True)
    box.write_bytes("v", b"x" * 8)
    with pytest.raises(FileTooLarge, match="budget"):
        box.write_bytes("u", b"x" * 8)


def test_write_creates_parents_truncates_and_appends(box: Sandbox) -> None:
    box.write_bytes("new/deep/f.txt", b"hello world")
    box.write_bytes("new/deep/f.txt", b"hi")
    assert (box.root / "new/deep/f.txt").read_bytes() == b"hi"
    box.write_bytes("new/deep/f.txt", b"!", append=True)
    assert (box.root / "new/deep/f.txt").read_bytes() == b"hi!"
    with pytest.raises(IsADirectoryError):
        box.write_bytes(".", b"x")
    with pytest.raises(IsADirectoryError):
        box.write_bytes("sub", b"x")


def test_hard_links_are_refused(box: Sandbox, tmp_path: Path) -> None:
    os.link(tmp_path / "outside.txt", box.root / "hard")
    with pytest.raises(SandboxViolation, match="hard links"):
        box.read_bytes("hard")
    with pytest.raises(SandboxViolation, match="hard links"):
        box.write_bytes("hard", b"pwned")
    assert (tmp_path / "outside.txt").read_text(encoding="utf-8") == "secret\n"


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(
    box: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check/open race: the file becomes a symlink between the check and open(); O_NOFOLLOW refuses it."""
    target = box.root / "a.txt"
    checked = Sandbox._stat

    def stat_then_swap(self: Sandbox, real: Path, original: str, what: str) -> os.stat_result:
        result = checked(self, real, original, what)
        target.unlink()
        os.symlink(tmp_path / "outside.txt", target)
        return result

    monkeypatch.setattr(Sandbox, "_stat", stat_then_swap)
    with pytest.raises(SandboxViolation, match="could not be opened safely"):
        box.read_bytes("a.txt")


def test_a_file_swapped_for_another_file_is_refused(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    target = box.root / "a.txt"
    checked = Sandbox._stat

    def stat_then_replace(self: Sandbox, real: Path, original: str, what: str) -> os.stat_result:
        result = checked(self, real, original, what)
        target.rename(box.root / "kept")  # the old inode stays alive, so the new file gets another one
        target.write_text("other inode", encoding="utf-8")
        return result

    monkeypatch.setattr(Sandbox, "_stat", stat_then_replace)
    with pytest.raises(SandboxViolation, match="changed while"):
        box.read_bytes("a.txt")


@pytest.mark.parametrize("pattern", ["../*", "sub/../../*", "/etc/*", "\\x", "~/x", "C:/x", "a\x00"])
def test_bad_glob_patterns(pattern: str) -> None:
    with pytest.raises(SandboxViolation):
        Sandbox.check_pattern(pattern)


def test_glob_and_walk_drop_entries_leaving_the_root(box: Sandbox, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside.txt", box.root / "out_link")
    os.symlink(tmp_path, box.root / "out_dir")
    os.symlink("a.txt", box.root / "in_link")
    entries, dropped, cut = box.glob(box.root, "*")
    names = sorted(e.path.name for e in entries)
    assert names == ["a.txt", "in_link", "sub"] and dropped == 2 and not cut
    assert sorted(e.path.name for e in box.walk_files(box.root)) == ["a.txt", "in_link"]


def test_scan_limit(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i}").write_text("x", encoding="utf-8")
    box = Sandbox(tmp_path, max_scan_entries=10)
    entries, _, cut = box.glob(tmp_path, "*")
    assert len(entries) == 10 and cut
    assert len(list(box.walk_files(tmp_path))) == 10
