"""Process and system tools (SMOLTRACE's names and arguments): ``ps``, ``kill``, ``env``, ``which``.

* ``ps`` lists processes (pid, name, user, status, CPU %, memory %) but never command lines, which often carry
  secrets.
* ``kill`` signals only children that this run's own tools started (:mod:`smoltrace_tools.processes`).
* ``env`` reads ``os.environ`` plus the run's overlay, writes only the overlay, and hides secret-looking values
  (:mod:`smoltrace_tools.environment`).
* ``which`` searches the evaluator's real ``PATH`` (an agent-set ``PATH`` in the overlay is ignored, so ``which``
  cannot probe arbitrary directories).
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from typing import Any

from .base import ContextTool, as_bool, as_int, as_str, clip
from .environment import secret_reason
from .errors import ProcessPolicyViolation, SandboxViolation

__all__ = ["EnvTool", "KillTool", "PsTool", "WhichTool"]

MAX_PS_LIMIT = 500
MAX_ENV_VALUE = 4096
MAX_ENV_LISTED = 300
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_COMMAND = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")


class PsTool(ContextTool):
    name = "ps"
    description = (
        "Lists running processes with pid, name, user, status, CPU % and memory %. filter_name keeps processes "
        "whose name contains the text; sort_by is 'cpu' (default), 'memory', 'pid' or 'name'."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "filter_name": {"type": "string", "description": "Keep names containing this text.", "nullable": True},
        "sort_by": {"type": "string", "description": "'cpu', 'memory', 'pid' or 'name'.", "nullable": True},
        "limit": {"type": "integer", "description": "Most processes to list (default 20, max 500).", "nullable": True},
        "descending": {"type": "boolean", "description": "Largest first (default true).", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        filter_name: str | None = None,
        sort_by: str | None = "cpu",
        limit: int | None = 20,
        descending: bool | None = True,
    ) -> str:
        import psutil

        key = as_str(sort_by, "cpu", "sort_by").strip().lower() or "cpu"
        if key not in ("cpu", "memory", "pid", "name"):
            raise ValueError(f"sort_by must be 'cpu', 'memory', 'pid' or 'name', got {sort_by!r}")
        count = as_int(limit, 20, "limit", low=1, high=MAX_PS_LIMIT)
        wanted = as_str(filter_name, "", "filter_name").strip().lower()
        procs = []
        for proc in psutil.process_iter(["pid", "name", "username", "status"]):
            name = str(proc.info.get("name") or "")
            if wanted and wanted not in name.lower():
                continue
            try:
                proc.cpu_percent(None)  # first call primes the counter
            except (psutil.Error, OSError):
                continue
            procs.append(proc)
        if key == "cpu":
            time.sleep(0.1)
        rows: list[dict[str, Any]] = []
        for proc in procs:
            try:
                rows.append(
                    {
                        **proc.info,
                        "cpu": proc.cpu_percent(None) if key == "cpu" else 0.0,
                        "memory": proc.memory_percent(),
                    }
                )
            except (psutil.Error, OSError):
                continue
        reverse = as_bool(descending, True, "descending")
        rows.sort(key=lambda r: r[key] if key != "name" else str(r["name"] or "").lower(), reverse=reverse)
        shown = rows[:count]
        lines = [f"{'PID':>7}  {'CPU%':>5}  {'MEM%':>5}  {'STATUS':<9} {'USER':<12} NAME"]
        for row in shown:
            lines.append(
                f"{row['pid']:>7}  {row['cpu']:>5.1f}  {row['memory']:>5.1f}  {row['status'] or ''!s:<9} "
                f"{str(row['username'] or '')[:12]:<12} {row['name'] or ''}"
            )
        lines.append(f"({len(shown)} of {len(rows)} processes{' matching ' + repr(wanted) if wanted else ''})")
        return "\n".join(lines)


class KillTool(ContextTool):
    name = "kill"
    description = (
        "Sends SIGTERM (or SIGKILL with force=true) to a process. Only processes started by this run's own "
        "tools may be signalled; any other pid is refused."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "pid": {"type": "integer", "description": "The process id."},
        "force": {"type": "boolean", "description": "Use SIGKILL instead of SIGTERM.", "nullable": True},
    }
    output_type = "string"

    def forward(self, pid: int, force: bool | None = False) -> str:
        if isinstance(pid, bool) or not isinstance(pid, int):
            try:
                pid = int(str(pid).strip())
            except ValueError:
                raise ValueError(f"pid must be an integer, got {pid!r}") from None
        return self.context.processes.signal(pid, force=as_bool(force, False, "force"))


class EnvTool(ContextTool):
    name = "env"
    description = (
        "Reads or sets environment variables for this run. action 'get' returns one variable (name), 'list' "
        "lists variables (filter_pattern: text or glob on the name), 'set' sets name=value for this run only. "
        "Values that look secret (keys, tokens, passwords, URLs with credentials) are hidden."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "action": {"type": "string", "description": "'get', 'set' or 'list'."},
        "name": {"type": "string", "description": "Variable name (get, set).", "nullable": True},
        "value": {"type": "string", "description": "Value to set (set).", "nullable": True},
        "filter_pattern": {"type": "string", "description": "Filter names for list.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        action: str,
        name: str | None = None,
        value: str | None = None,
        filter_pattern: str | None = None,
    ) -> str:
        chosen = as_str(action, "", "action").strip().lower()
        if chosen == "get":
            return self._get(self._name(name))
        if chosen == "set":
            return self._set(self._name(name), value)
        if chosen == "list":
            return self._list(as_str(filter_pattern, "", "filter_pattern"))
        raise ValueError(f"action must be 'get', 'set' or 'list', got {action!r}")

    @staticmethod
    def _name(name: object) -> str:
        text = as_str(name, "", "name").strip()
        if not text:
            raise ValueError("name is required for get and set")
        if not _ENV_NAME.match(text):
            raise ValueError(f"invalid variable name {text!r} (letters, digits and '_', not starting with a digit)")
        return text

    def _show(self, name: str, value: str) -> str:
        reason = secret_reason(name, value)
        return f"{name}=<hidden: {reason}>" if reason else f"{name}={value}"

    def _get(self, name: str) -> str:
        value = self.context.env.get(name)
        if value is None:
            return f"{name} is not set"
        return self._show(name, value)

    def _set(self, name: str, value: object) -> str:
        if value is None:
            raise ValueError("value is required for set")
        text = value if isinstance(value, str) else str(value)
        if "\x00" in text:
            raise ProcessPolicyViolation("environment values may not contain a NUL byte")
        if len(text) > MAX_ENV_VALUE:
            raise ProcessPolicyViolation(f"the value is {len(text)} characters long; the limit is {MAX_ENV_VALUE}")
        self.context.env.set(name, text)
        return f"Set {name} for this run's tools (the evaluator's own environment is not changed)"

    def _list(self, pattern: str) -> str:
        wanted = pattern.strip()
        names = self.context.env.names()
        if wanted:
            if any(c in wanted for c in "*?["):
                names = [n for n in names if fnmatch.fnmatch(n.upper(), wanted.upper())]
            else:
                names = [n for n in names if wanted.lower() in n.lower()]
        lines = []
        for name in names[:MAX_ENV_LISTED]:
            value = self.context.env.get(name)
            if value is not None:
                lines.append(self._show(name, value))
        if len(names) > MAX_ENV_LISTED:
            lines.append(f"… {len(names) - MAX_ENV_LISTED} more variables (use filter_pattern)")
        if not lines:
            return f"No variables match {wanted!r}" if wanted else "No variables are set"
        return clip("\n".join(lines))


class WhichTool(ContextTool):
    name = "which"
    description = (
        "Finds where an executable is on the PATH, like which. all_matches lists every match instead of the first."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "command": {"type": "string", "description": "Command name, e.g. 'python3' (no path)."},
        "all_matches": {"type": "boolean", "description": "List every match on the PATH.", "nullable": True},
    }
    output_type = "string"

    def forward(self, command: str, all_matches: bool | None = False) -> str:
        text = as_str(command, "", "command").strip()
        if "/" in text or "\\" in text or "\x00" in text:
            raise SandboxViolation(f"which looks up bare command names on the PATH, not paths: {text!r}")
        if not _COMMAND.match(text):
            raise ValueError(
                f"invalid command name {text!r}: give a bare name such as 'python3' (no '/', no leading '-')"
            )
        every = as_bool(all_matches, False, "all_matches")
        found: list[str] = []
        for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
            if not directory:
                continue
            candidate = os.path.join(directory, text)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and candidate not in found:
                found.append(candidate)
                if not every:
                    break
        if not found:
            return f"{text} not found on the PATH"
        return "\n".join(found)
