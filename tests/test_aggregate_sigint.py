"""A Ctrl-C while the controller files a result is held until memory and journal both have it (issue 11)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from helpers import run_record

from pytest_smoltrace.aggregate import Aggregator
from pytest_smoltrace.journal import read_results
from pytest_smoltrace.records import Check, ItemResult, Verdict


def _result(task_id: str) -> ItemResult:
    record = run_record("42", task_id=task_id, prompt_tokens=10, completion_tokens=2)
    verdict = Verdict(checks=(Check("final_answer", True, "called", "called"),))
    return ItemResult(nodeid=f"smoltrace/tasks.json::tool::{task_id}", record=record, verdict=verdict)


def test_ctrl_c_between_memory_and_journal_is_delivered_after_both(tmp_path: Path, monkeypatch: Any) -> None:
    aggregator = Aggregator(tmp_path)
    journal = aggregator._journal
    assert journal is not None
    append = journal.append

    def interrupted_append(result: ItemResult) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the memory update, before the journal line
        append(result)

    monkeypatch.setattr(journal, "append", interrupted_append)
    with pytest.raises(KeyboardInterrupt):
        aggregator.add(_result("t0"))
    aggregator.close()
    # the Ctrl-C still stopped the session, and the attempt is in both places
    assert [r.nodeid for r in aggregator.attempts] == ["smoltrace/tasks.json::tool::t0"]
    assert [r.nodeid for r in read_results(tmp_path)] == ["smoltrace/tasks.json::tool::t0"]
    # and SIGINT is handled as before afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
