"""The file-system sandbox: the one place where every file and text tool turns a model-given path into a file.

Rules (all enforced here, never in the tools):

* A path is joined to the working directory when relative, then fully resolved (``os.path.realpath``: every
  ``..`` and every symlink, the last component included). The result must be the working directory or lie
  inside it; absolute paths are accepted only when they resolve inside it too.
* Paths with a NUL byte, longer than :data:`MAX_PATH_LENGTH`, or naming a device, FIFO or socket are refused.
* Regular files with more than one hard link are refused (a hard link can make a file outside look inside).
* Files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and re-checked with ``fstat`` (regular file, same inode as
  the checked path), so a symlink or FIFO swapped in after the check is refused rather than followed or
  blocked on.
* Reads are capped at :data:`MAX_READ_BYTES` (10 MB) and writes at :data:`MAX_WRITE_BYTES` per file, plus a
  per-run write budget (:data:`WRITE_BUDGET_BYTES`) so a loop of appends cannot fill the disk.
* Glob patterns may not be absolute or contain ``..``; every glob/rglob/walk result is resolved again and
  dropped when it lies outside (a symlink pointing out is never followed, listed or searched).

Refusals raise :class:`~smoltrace_tools.errors.SandboxViolation` (or its subclass ``FileTooLarge``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import FileTooLarge, SandboxViolation, ToolConfigError

__all__ = [
    "MAX_PATH_LENGTH",
    "MAX_READ_BYTES",
    "MAX_SCAN_ENTRIES",
    "MAX_WRITE_BYTES",
    "WRITE_BUDGET_BYTES",
    "Entry",
    "Sandbox",
]

logger = logging.getLogger(__name__)

MAX_READ_BYTES = 10 * 1024 * 1024
MAX_WRITE_BYTES = 10 * 1024 * 1024
WRITE_BUDGET_BYTES = 100 * 1024 * 1024
MAX_PATH_LENGTH = 4096
MAX_PATTERN_LENGTH = 500
#: How many directory entries one glob or walk may visit before it stops (with a note in the tool's output).
MAX_SCAN_ENTRIES = 20_000

_O_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Entry:
    """One directory entry that passed the sandbox: its path (as reached, inside the root) and ``stat`` data."""

    path: Path
    is_dir: bool
    size: int


def _describe_special(mode: int) -> str | None:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "not a regular file"
    return None


class Sandbox:
    """A working directory that model-given paths cannot leave. Thread-safe (the write budget is locked)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        max_read_bytes: int = MAX_READ_BYTES,
        max_write_bytes: int = MAX_WRITE_BYTES,
        write_budget_bytes: int = WRITE_BUDGET_BYTES,
        max_scan_entries: int = MAX_SCAN_ENTRIES,
    ) -> None:
        text = os.fspath(root)
        if "\x00" in text:
            raise ToolConfigError("the working directory path contains a NUL byte")
        resolved = Path(os.path.realpath(text))
        if not resolved.is_dir():
            raise ToolConfigError(f"the working directory {text!r} does not exist or is not a directory")
        self.root = resolved
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.write_budget_bytes = write_budget_bytes
        self.max_scan_entries = max_scan_entries
        self._written = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------ paths

    def resolve(self, path: object, *, what: str = "path") -> Path:
        """The fully resolved ``path`` (relative to the root unless absolute); refused unless inside the root."""
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise SandboxViolation(f"the {what} must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise SandboxViolation(f"the {what} {path!r} contains a NUL byte")
        if len(path) > MAX_PATH_LENGTH:
            raise SandboxViolation(f"the {what} is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}")
        if not path.strip():
            raise ValueError(f"the {what} is empty; use a path relative to the working directory, e.g. 'notes.txt'")
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = Path(os.path.realpath(candidate))
        if not self.contains_resolved(real):
            raise SandboxViolation(
                f"the {what} {path!r} is outside the working directory; only paths inside it are allowed "
                "(relative paths such as 'data/notes.txt' are relative to it)"
            )
        return real

    def contains_resolved(self, real: Path) -> bool:
        return real == self.root or real.is_relative_to(self.root)

    def contains(self, path: Path) -> bool:
        """True when ``path`` (any form) resolves inside the root."""
        try:
            return self.contains_resolved(Path(os.path.realpath(path)))
        except (OSError, ValueError):
            return False

    def display(self, path: Path) -> str:
        """``path`` relative to the root, POSIX style (``.`` for the root itself)."""
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = path.name
        return rel or "."

    def _stat(self, real: Path, original: str, what: str) -> os.stat_result:
        try:
            return os.stat(real)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no such {what}: {original!r} (paths are relative to the working directory)"
            ) from None
        except NotADirectoryError:
            raise FileNotFoundError(f"no such {what}: {original!r} (a parent is not a directory)") from None

    def _refuse_special(self, mode: int, original: str, what: str) -> None:
        kind = _describe_special(mode)
        if kind is not None:
            raise SandboxViolation(f"the {what} {original!r} is {kind}; only regular files and directories are allowed")

    def _refuse_hard_links(self, st: os.stat_result, original: str, what: str) -> None:
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise SandboxViolation(
                f"the {what} {original!r} has other hard links (it may be a file outside the working directory); "
                "refused"
            )

    def existing_dir(self, path: object, *, what: str = "directory") -> Path:
        """A resolved directory inside the root (``NotADirectoryError`` when it is a file)."""
        real = self.resolve(path, what=what)
        st = self._stat(real, str(path), what)
        self._refuse_special(st.st_mode, str(path), what)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"{str(path)!r} is a file, not a directory")
        return real

    # ------------------------------------------------------------------------------------------------ reading

    def read_bytes(self, path: object, *, limit: int | None = None, what: str = "file") -> tuple[Path, bytes]:
        """``(resolved path, content)`` of a regular file inside the root, at most ``limit`` bytes (else refused)."""
        cap = self.max_read_bytes if limit is None else min(limit, self.max_read_bytes)
        original = str(path)
        real = self.resolve(path, what=what)
        st = self._stat(real, original, what)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{original!r} is a directory; use list_directory to see what it contains")
        self._refuse_special(st.st_mode, original, what)
        self._refuse_hard_links(st, original, what)
        if st.st_size > cap:
            raise FileTooLarge(f"the file {original!r} is {st.st_size} bytes; the limit is {cap} bytes")
        try:
            fd = os.open(real, os.O_RDONLY | _O_SAFE)
        except OSError as exc:
            raise SandboxViolation(f"the file {original!r} could not be opened safely: {exc.strerror}") from None
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino) or fst.st_nlink > 1:
                raise SandboxViolation(f"the file {original!r} changed while it was being opened; refused")
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = os.read(fd, min(1 << 20, cap + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:
                    raise FileTooLarge(f"the file {original!r} is over the {cap}-byte limit")
        finally:
            os.close(fd)
        return real, b"".join(chunks)

    def read_text(
        self, path: object, *, encoding: str = "utf-8", limit: int | None = None, what: str = "file"
    ) -> tuple[Path, str]:
        """``(resolved path, text)``; undecodable bytes become U+FFFD."""
        real, data = self.read_bytes(path, limit=limit, what=what)
        return real, data.decode(encoding, errors="replace")

    # ------------------------------------------------------------------------------------------------ writing

    def write_bytes(self, path: object, data: bytes, *, append: bool = False, what: str = "file") -> Path:
        """Write (or append) ``data`` to a regular file inside the root, creating parent directories."""
        original = str(path)
        real = self.resolve(path, what=what)
        if real == self.root:
            raise IsADirectoryError("the working directory itself cannot be written; give a file name")
        if len(data) > self.max_write_bytes:
            raise FileTooLarge(f"{len(data)} bytes is over the {self.max_write_bytes}-byte limit for one file")
        try:
            st: os.stat_result | None = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(f"{original!r} is a directory")
            self._refuse_special(st.st_mode, original, what)
            self._refuse_hard_links(st, original, what)
            if append and st.st_size + len(data) > self.max_write_bytes:
                raise FileTooLarge(
                    f"appending {len(data)} bytes would make {original!r} larger than {self.max_write_bytes} bytes"
                )
        with self._lock:
            if self._written + len(data) > self.write_budget_bytes:
                raise FileTooLarge(
                    f"this run's tools already wrote {self._written} bytes; the budget is "
                    f"{self.write_budget_bytes} bytes"
                )
            self._written += len(data)
        real.parent.mkdir(parents=True, exist_ok=True)  # resolved and inside the root: no symlink in between
        flags = os.O_WRONLY | os.O_CREAT | _O_SAFE | (os.O_APPEND if append else 0)
        try:
            fd = os.open(real, flags, 0o644)
        except OSError as exc:
            raise SandboxViolation(f"the file {original!r} could not be opened safely: {exc.strerror}") from None
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode) or fst.st_nlink > 1:
                raise SandboxViolation(f"the file {original!r} is not a plain regular file; refused")
            if not append:
                os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        finally:
            os.close(fd)
        return real

    # ------------------------------------------------------------------------------------------------ listing

    @staticmethod
    def check_pattern(pattern: object) -> str:
        """A glob pattern that is relative and has no ``..`` component (results are re-checked anyway)."""
        if not isinstance(pattern, str):
            raise SandboxViolation(f"the pattern must be a string, got {type(pattern).__name__}")
        if "\x00" in pattern:
            raise SandboxViolation(f"the pattern {pattern!r} contains a NUL byte")
        if not pattern.strip():
            raise ValueError("the pattern is empty; use '*' for everything")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise SandboxViolation(f"the pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}")
        if pattern.startswith(("/", "\\", "~")) or _DRIVE.match(pattern):
            raise SandboxViolation(f"the pattern {pattern!r} is absolute; patterns are relative to the directory")
        if any(part == ".." for part in re.split(r"[\\/]+", pattern)):
            raise SandboxViolation(f"the pattern {pattern!r} contains '..'; it may not leave the directory")
        return pattern

    def _entry(self, path: Path) -> Entry | None:
        """An :class:`Entry` for a path that resolves inside the root and is a file or directory, else None."""
        try:
            real = Path(os.path.realpath(path))
            if not self.contains_resolved(real):
                return None
            st = os.stat(real)
        except (OSError, ValueError):
            return None
        if _describe_special(st.st_mode) is not None:
            return None
        return Entry(path=path, is_dir=stat.S_ISDIR(st.st_mode), size=st.st_size)

    def glob(self, directory: Path, pattern: str, *, recursive: bool = False) -> tuple[list[Entry], int, bool]:
        """``(entries inside the root, entries dropped, scan cut short)`` for ``directory.glob(pattern)``."""
        self.check_pattern(pattern)
        found = directory.rglob(pattern) if recursive else directory.glob(pattern)
        entries: list[Entry] = []
        dropped = 0
        scanned = 0
        for path in itertools.islice(found, self.max_scan_entries):
            scanned += 1
            entry = self._entry(path)
            if entry is None:
                dropped += 1
                logger.debug("sandbox dropped glob result %s", path)
            else:
                entries.append(entry)
        return entries, dropped, scanned >= self.max_scan_entries

    def walk_files(self, directory: Path) -> Iterator[Entry]:
        """Regular files under ``directory`` (symlinked directories are not entered; entries leaving the root and
        special files are skipped), at most :attr:`max_scan_entries` entries visited."""
        visited = 0
        for top, dirs, files in os.walk(directory, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                visited += 1
                if visited > self.max_scan_entries:
                    return
                entry = self._entry(Path(top) / name)
                if entry is not None and not entry.is_dir:
                    yield entry
