"""Processes started by the agent's own tools, and the only processes ``kill`` may signal.

Every child a tool starts goes through :meth:`ProcessRegistry.spawn`: its own session (so a signal never reaches
the evaluator's process group), no stdin, a minimal fixed environment (the agent's ``env set`` overlay and
variables such as ``LD_PRELOAD`` never reach it). ``kill`` signals through the ``Popen`` object, which knows
whether the child was already reaped, so a recycled pid can never be hit. Anything else — pid 0/1/negative, this
process, its ancestors (pytest, an xdist controller, the shell), unrelated processes — is refused.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

from .errors import ProcessPolicyViolation

__all__ = ["SUBPROCESS_ENV", "ProcessRegistry", "protected_reason"]

logger = logging.getLogger(__name__)

#: The whole environment of a child started by a tool.
SUBPROCESS_ENV: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}


def _ancestors() -> set[int]:
    pids: set[int] = set()
    try:
        import psutil

        pids.update(p.pid for p in psutil.Process().parents())
    except Exception:  # psutil missing or /proc unreadable: fall back to the direct parent
        logger.debug("could not list ancestors", exc_info=True)
    pids.add(os.getppid())
    return pids


def protected_reason(pid: int) -> str | None:
    """Why ``pid`` may never be signalled (whoever started it), or None."""
    if pid <= 0:
        return "pids 0 and below address process groups or every process"
    if pid == 1:
        return "pid 1 is the init process"
    if pid == os.getpid():
        return "it is the evaluator itself (the pytest process)"
    if pid in _ancestors():
        return "it is an ancestor of the evaluator (pytest, its controller or its shell)"
    return None


class ProcessRegistry:
    """The children the tools of one run started. Thread-safe."""

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def spawn(self, argv: Sequence[str], *, cwd: str | os.PathLike[str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` (stdout+stderr piped together) and register it."""
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(SUBPROCESS_ENV),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        with self._lock:
            self._children[child.pid] = child
        logger.debug("tool started pid %d: %s", child.pid, argv[0])
        return child

    def running(self) -> list[int]:
        """Pids of registered children that have not exited."""
        with self._lock:
            children = list(self._children.values())
        return sorted(c.pid for c in children if c.poll() is None)

    def owns(self, pid: int) -> bool:
        with self._lock:
            return pid in self._children

    def signal(self, pid: int, *, force: bool = False, wait_s: float = 2.0) -> str:
        """SIGTERM (SIGKILL with ``force``) a running child of this run; refused for anything else."""
        reason = protected_reason(pid)
        if reason is not None:
            raise ProcessPolicyViolation(f"refusing to signal pid {pid}: {reason}")
        with self._lock:
            child = self._children.get(pid)
        if child is None:
            running = self.running()
            hint = f"running: {', '.join(map(str, running))}" if running else "none is running"
            raise ProcessPolicyViolation(
                f"refusing to signal pid {pid}: kill may only signal processes started by this run's own tools ({hint})"
            )
        if child.poll() is not None:
            return f"Process {pid} had already exited (exit code {child.returncode})."
        sig = signal.SIGKILL if force else signal.SIGTERM
        child.send_signal(sig)  # Popen checks returncode first: a reaped pid is never signalled
        try:
            code = child.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return f"Sent {sig.name} to process {pid}; it is still running after {wait_s:g} s."
        return f"Sent {sig.name} to process {pid}; it exited (exit code {code})."

    def wait_all(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every registered child to exit; True when none is left running."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            children = list(self._children.values())
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def terminate_all(self) -> None:
        """Kill every registered child that still runs (called when a run's tools are closed)."""
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if child.poll() is None:
                child.kill()
                try:
                    child.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    logger.warning("pid %d did not exit after SIGKILL", child.pid)
            if child.stdout is not None:
                child.stdout.close()
