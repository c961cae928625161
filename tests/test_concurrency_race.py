"""Concurrency cannot end a session: many agents failing at once while pytest renders their errors.

CPython ≤ 3.12 breaks when two threads are inside ``ast.parse`` at once (``SystemError: AST constructor recursion
depth mismatch``); before the fix, 120 items answered with HTTP 400 at the default concurrency ended the session
with ``INTERNALERROR`` in 3 of 4 runs (pytest parsed source in the main thread to render a setup error while agent
threads parsed code). Run in fresh interpreters, twice, so that a race has room to show.
"""

from __future__ import annotations

import ast
import json
import sys
import threading
from typing import Any

import pytest
from helpers import scripted_args

from pytest_smoltrace import astguard
from pytest_smoltrace.testing import ScriptedModelServer

BAD = {"status": 400, "body": {"error": {"message": "bad request", "type": "invalid_request_error"}}}


@pytest.mark.parametrize("attempt", [1, 2])
def test_many_failing_items_at_default_concurrency_never_crash_the_session(
    pytester: pytest.Pytester, server: ScriptedModelServer, attempt: int
) -> None:
    server.add_script("[k-bad]", {"tool": [BAD], "code": [BAD]})
    tasks = [{"id": f"t{i}", "prompt": f"Task number {i} [k-bad]"} for i in range(60)]
    (pytester.path / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        *scripted_args(server.base_url),
        "--smoltrace-retries",
        "0",
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.assert_outcomes(errors=120)
    # every setup error shows the item's own report, not a Python traceback
    result.stdout.fnmatch_lines(["*tool agent on task 't0': ERROR*", "*BadRequestError*"])
    rows = json.loads((pytester.path / "smoltrace_results").glob("*/results.json").__next__().read_text())
    assert len(rows) == 120 and {r["outcome"] for r in rows} == {"error"}


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="the guard is needed (and installed) on CPython <= 3.12 only")
def test_astguard_serialises_ast_parse_and_installs_once() -> None:
    astguard.install()
    first = ast.parse
    astguard.install()
    assert ast.parse is first and astguard.installed()
    # parses are serialised: while one thread holds the guard's lock, another thread's parse waits
    started, done = threading.Event(), threading.Event()
    trees: list[Any] = []

    def parse() -> None:
        started.set()
        trees.append(ast.parse("x = 1"))
        done.set()

    with astguard._lock:
        thread = threading.Thread(target=parse)
        thread.start()
        assert started.wait(5)
        assert not done.wait(0.2)  # blocked behind the lock
    assert done.wait(5)
    thread.join(5)
    assert isinstance(trees[0], ast.Module)
