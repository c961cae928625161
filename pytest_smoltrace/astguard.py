"""One ``ast.parse`` at a time in this process: CPython ≤ 3.12 cannot parse in two threads at once.

CPython keeps the AST constructor's recursion depth per interpreter, not per thread (python/cpython gh-106905), so
two threads inside ``ast.parse`` can make one of them fail with ``SystemError: AST constructor recursion depth
mismatch``. With run-ahead concurrency the agent threads parse all the time (smolagents parses every CodeAgent
action and every tool's source) while pytest's main thread parses source to render a traceback — and a
``SystemError`` there ends the whole session with ``INTERNALERROR``. :func:`install` puts a process-wide lock
around ``ast.parse`` (the module attribute that smolagents, pytest and the standard library all call), once, while
the plugin is active. A parse takes microseconds to milliseconds, so the lock costs next to nothing.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

__all__ = ["install", "installed"]

_lock = threading.RLock()
_MARK = "_smoltrace_serialised"


def installed() -> bool:
    return bool(getattr(ast.parse, _MARK, False))


def install() -> None:
    """Serialise ``ast.parse`` in this process (idempotent; nothing to do on interpreters without the bug)."""
    if sys.version_info >= (3, 13) or installed():
        return
    with _lock:
        if installed():
            return
        original = ast.parse

        @functools.wraps(original)
        def parse(*args: Any, **kwargs: Any) -> Any:
            with _lock:
                return original(*args, **kwargs)

        setattr(parse, _MARK, True)
        ast.parse = parse
