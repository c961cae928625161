"""File tools (SMOLTRACE's names and arguments): ``read_file``, ``write_file``, ``list_directory``, ``search_files``.

Every path goes through the run's :class:`~smoltrace_tools.sandbox.Sandbox`; refusals raise
:class:`~smoltrace_tools.errors.SandboxViolation`, ordinary failures (missing file, bad argument) raise
``FileNotFoundError`` / ``ValueError``, and the agent sees the message either way.
"""

from __future__ import annotations

import codecs
import fnmatch
from pathlib import Path, PurePosixPath

from .base import ContextTool, as_int, as_str, clip
from .sandbox import Entry

__all__ = [
    "CONTENT_SEARCH_EXTENSIONS",
    "CONTENT_SEARCH_MAX_FILE_BYTES",
    "ListDirectoryTool",
    "ReadFileTool",
    "SearchFilesTool",
    "WriteFileTool",
]

#: Files ``search_files(search_type="content")`` looks into.
CONTENT_SEARCH_EXTENSIONS = frozenset(
    {
        ".txt", ".md", ".rst", ".py", ".js", ".ts", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg",
        ".csv", ".tsv", ".html", ".htm", ".css", ".xml", ".sh", ".log", ".sql", ".c", ".h", ".java", ".go", ".rs",
    }
)  # fmt: skip
CONTENT_SEARCH_MAX_FILE_BYTES = 1024 * 1024
MAX_LISTED = 1000
MAX_SEARCH_RESULTS = 1000


def _encoding(value: object) -> str:
    name = as_str(value, "utf-8", "encoding") or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}; use e.g. 'utf-8' or 'latin-1'") from None


def _size(n: int) -> str:
    return f"{n} bytes"


class ReadFileTool(ContextTool):
    name = "read_file"
    description = (
        "Reads a text file inside the working directory and returns its content, preceded by a 'File:' and "
        "'Size:' header. Paths are relative to the working directory; paths outside it are refused. "
        "Files over 10 MB are refused (use head_tail or grep for parts of big files)."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "Path of the file, relative to the working directory."},
        "encoding": {"type": "string", "description": "Text encoding (default 'utf-8').", "nullable": True},
    }
    output_type = "string"

    def forward(self, file_path: str, encoding: str | None = "utf-8") -> str:
        sandbox = self.context.sandbox
        codec = _encoding(encoding)
        real, data = sandbox.read_bytes(file_path)
        header = f"File: {sandbox.display(real)}\nSize: {_size(len(data))}\n\n"
        text = data.decode(codec, errors="replace")
        return header + clip(text, hint="use head_tail or grep to read parts of a big file")


class WriteFileTool(ContextTool):
    name = "write_file"
    description = (
        "Writes text to a file inside the working directory (creating parent directories). mode 'write' "
        "replaces the file, 'append' adds to its end. Paths outside the working directory are refused; "
        "one file may hold at most 10 MB."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "file_path": {"type": "string", "description": "Path of the file, relative to the working directory."},
        "content": {"type": "string", "description": "The text to write."},
        "mode": {"type": "string", "description": "'write' (default) or 'append'.", "nullable": True},
    }
    output_type = "string"

    def forward(self, file_path: str, content: str, mode: str | None = "write") -> str:
        chosen = as_str(mode, "write", "mode").strip().lower() or "write"
        if chosen not in ("write", "append"):
            raise ValueError(f"mode must be 'write' or 'append', got {mode!r}")
        if not isinstance(content, str):
            content = str(content)
        data = content.encode("utf-8")
        sandbox = self.context.sandbox
        real = sandbox.write_bytes(file_path, data, append=chosen == "append")
        verb = "Appended" if chosen == "append" else "Wrote"
        return f"{verb} {_size(len(data))} to {sandbox.display(real)}"


def _format_entries(entries: list[Entry], directory: Path) -> list[str]:
    lines: list[str] = []
    for entry in sorted(entries, key=lambda e: (not e.is_dir, str(e.path).lower())):
        name = entry.path.relative_to(directory).as_posix()
        lines.append(f"[DIR]  {name}/" if entry.is_dir else f"[FILE] {name} ({_size(entry.size)})")
    return lines


class ListDirectoryTool(ContextTool):
    name = "list_directory"
    description = (
        "Lists a directory inside the working directory: sub-directories first, then files with their sizes. "
        "An optional glob pattern (e.g. '*.txt' or 'data/*.csv') filters the entries. Entries outside the "
        "working directory (e.g. symlinks pointing out) are never listed."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "directory_path": {
            "type": "string",
            "description": "Directory relative to the working directory (default '.').",
            "nullable": True,
        },
        "pattern": {"type": "string", "description": "Glob pattern, e.g. '*.py' (default '*').", "nullable": True},
    }
    output_type = "string"

    def forward(self, directory_path: str | None = ".", pattern: str | None = "*") -> str:
        sandbox = self.context.sandbox
        directory = sandbox.existing_dir(as_str(directory_path, ".", "directory_path") or ".")
        glob = as_str(pattern, "*", "pattern") or "*"
        entries, dropped, cut = sandbox.glob(directory, glob)
        shown = entries[:MAX_LISTED]
        lines = [f"Directory: {sandbox.display(directory)}" + (f" (pattern {glob!r})" if glob != "*" else "")]
        lines.append(f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}" if entries else "(no entries)")
        lines.extend(_format_entries(shown, directory))
        if len(entries) > MAX_LISTED:
            lines.append(f"… {len(entries) - MAX_LISTED} more entries not shown")
        if dropped:
            lines.append(f"({dropped} entries pointing outside the working directory are not shown)")
        if cut:
            lines.append("(the listing stopped early: too many entries; use a narrower pattern)")
        return "\n".join(lines)


class SearchFilesTool(ContextTool):
    name = "search_files"
    description = (
        "Searches files under a directory of the working directory. search_type 'name' matches file names "
        "against a glob pattern recursively (e.g. '*.py'); 'content' finds a case-insensitive text inside "
        "text files (under 1 MB) and returns 'path:line: text' matches."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "directory": {
            "type": "string",
            "description": "Directory to search, relative to the working directory (default '.').",
            "nullable": True,
        },
        "pattern": {
            "type": "string",
            "description": "Required: a glob pattern for names (e.g. '*.md'), or the text to find for content.",
            "nullable": True,
        },
        "search_type": {"type": "string", "description": "'name' (default) or 'content'.", "nullable": True},
        "max_results": {"type": "integer", "description": "Most results to return (default 100).", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        directory: str | None = ".",
        pattern: str | None = None,
        search_type: str | None = "name",
        max_results: int | None = 100,
    ) -> str:
        sandbox = self.context.sandbox
        root = sandbox.existing_dir(as_str(directory, ".", "directory") or ".")
        kind = as_str(search_type, "name", "search_type").strip().lower() or "name"
        limit = as_int(max_results, 100, "max_results", low=1, high=MAX_SEARCH_RESULTS)
        text = as_str(pattern, "", "pattern")
        if not text:
            raise ValueError("pattern is required: a glob such as '*.md' for names, or the text to find for content")
        if kind == "name":
            return self._by_name(root, text, limit)
        if kind == "content":
            return self._by_content(root, text, limit)
        raise ValueError(f"search_type must be 'name' or 'content', got {search_type!r}")

    def _by_name(self, root: Path, pattern: str, limit: int) -> str:
        sandbox = self.context.sandbox
        sandbox.check_pattern(pattern)
        found: list[str] = []
        for entry in sandbox.walk_files(root):
            rel = PurePosixPath(entry.path.relative_to(root).as_posix())
            if fnmatch.fnmatchcase(entry.path.name, pattern) or ("/" in pattern and rel.match(pattern)):
                found.append(sandbox.display(entry.path))
                if len(found) >= limit:
                    break
        header = f"Files matching {pattern!r} under {sandbox.display(root)}: {len(found)}"
        if len(found) >= limit:
            header += f" (stopped at max_results={limit})"
        return "\n".join([header, *found]) if found else f"No files matching {pattern!r} under {sandbox.display(root)}"

    def _by_content(self, root: Path, needle: str, limit: int) -> str:
        if not needle:
            raise ValueError("pattern is empty; give the text to search for")
        sandbox = self.context.sandbox
        lowered = needle.lower()
        matches: list[str] = []
        for entry in sandbox.walk_files(root):
            if entry.path.suffix.lower() not in CONTENT_SEARCH_EXTENSIONS or entry.size > CONTENT_SEARCH_MAX_FILE_BYTES:
                continue
            try:
                _, text = sandbox.read_text(entry.path, limit=CONTENT_SEARCH_MAX_FILE_BYTES)
            except (OSError, ValueError):
                continue  # vanished, changed or refused since the walk: skip it
            for number, line in enumerate(text.splitlines(), start=1):
                if lowered in line.lower():
                    matches.append(f"{sandbox.display(entry.path)}:{number}: {clip(line.strip(), 300)}")
                    if len(matches) >= limit:
                        break
            if len(matches) >= limit:
                break
        if not matches:
            return f"No text files under {sandbox.display(root)} contain {needle!r}"
        header = f"Lines containing {needle!r} under {sandbox.display(root)}: {len(matches)}"
        if len(matches) >= limit:
            header += f" (stopped at max_results={limit})"
        return "\n".join([header, *matches])
