"""Torn files: a line cut short by a kill is repaired before a later run appends after it (journal and traces).

Before the repair a resume glued its first new line onto the torn fragment, so both were unreadable and the item
that was run again was missing from traces.json (and from the journal, for a later resume or the Hub publisher).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from test_resilience import journal_nodeids

from pytest_smoltrace.journal import JOURNAL, TRACE_JOURNAL, Journal, read_journal, read_jsonl


def _line(index: int, **extra: Any) -> str:
    return json.dumps({"nodeid": f"n{index}", "answer": "20°C", **extra}, ensure_ascii=False) + "\n"


def _write_torn(path: Path, good: int, fragment: bytes) -> int:
    """``good`` complete lines then ``fragment``; returns the byte offset where the fragment starts."""
    body = "".join(_line(i) for i in range(good)).encode("utf-8")
    path.write_bytes(body + fragment)
    return len(body)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.endswith("journal")]


TORN = {
    "cut-mid-line": _line(99).encode("utf-8")[:25],
    "cut-inside-a-character": _line(99).encode("utf-8")[: _line(99).encode("utf-8").index("°".encode()) + 1],
    "cut-right-before-the-newline": _line(99).encode("utf-8")[:-2],
    "a-huge-torn-line": (_line(99, trace="x" * 300_000)).encode("utf-8")[:-7],
}


@pytest.mark.parametrize("name", [JOURNAL, TRACE_JOURNAL])
@pytest.mark.parametrize("torn", list(TORN), ids=list(TORN))
def test_append_after_a_torn_line_repairs_it_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, torn: str
) -> None:
    path = tmp_path / name
    offset = _write_torn(path, 5, TORN[torn])
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.journal"):
        assert [d["nodeid"] for d in read_jsonl(path)] == [f"n{i}" for i in range(5)]  # readers skip the cut line
        journal = Journal(tmp_path, name)
        journal.append_json({"nodeid": "new", "answer": "25°C"})
        journal.append_json({"nodeid": "newer"})
        journal.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["nodeid"] for line in lines] == [*(f"n{i}" for i in range(5)), "new", "newer"]
    assert [d["nodeid"] for d in read_jsonl(path)] == [*(f"n{i}" for i in range(5)), "new", "newer"]
    repairs = [w for w in _warnings(caplog) if "cut short" in w]
    assert repairs == [
        f"{path}: the last line was cut short (a kill or a full disk during a write): removed its "
        f"{len(TORN[torn])} bytes from byte offset {offset} before appending"
    ]


def test_a_complete_last_line_without_newline_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / JOURNAL
    offset = _write_torn(path, 3, _line(3).rstrip("\n").encode("utf-8"))
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.journal"):
        journal = Journal(tmp_path)
        journal.append_json({"nodeid": "new"})
        journal.close()
    assert [d["nodeid"] for d in read_jsonl(path)] == ["n0", "n1", "n2", "n3", "new"]
    assert _warnings(caplog) == [
        f"{path}: the last line (from byte offset {offset}) had no newline; kept it and ended it before appending"
    ]


def test_a_file_that_is_only_a_fragment_is_emptied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / TRACE_JOURNAL
    _write_torn(path, 0, b'{"nodeid": "n0", "ste')
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.journal"):
        journal = Journal(tmp_path, TRACE_JOURNAL)
        journal.append_json({"nodeid": "new"})
        journal.close()
    assert path.read_text(encoding="utf-8") == '{"nodeid": "new"}\n'
    assert [w for w in _warnings(caplog) if "from byte offset 0 " in w]


def test_an_intact_file_is_left_alone_and_readers_skip_torn_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / JOURNAL
    _write_torn(path, 3, b"")
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.journal"):
        journal = Journal(tmp_path)
        journal.append_json({"nodeid": "new"})
        journal.close()
    assert [d["nodeid"] for d in read_jsonl(path)] == ["n0", "n1", "n2", "new"]
    assert not _warnings(caplog)
    # a torn line that is not last (left by an older version, or copied around) is still just skipped by the
    # readers, even one cut inside a multi-byte character (that used to stop the reading with UnicodeDecodeError)
    torn = _line(1).encode("utf-8")[: _line(1).encode("utf-8").index("°".encode()) + 1] + b"\n"
    path.write_bytes(_line(0).encode("utf-8") + torn + _line(2).encode("utf-8"))
    assert [d["nodeid"] for d in read_jsonl(path)] == ["n0", "n2"]
    assert read_journal(tmp_path) == []  # not results: ignored with a warning, never fatal


# ----------------------------------------------------------------------------------------------------------
# End to end: kill -9 mid-write (simulated by tearing the files), then --smoltrace-resume, in fresh interpreters
# ----------------------------------------------------------------------------------------------------------

RUN = ("--smoltrace-model", "scripted", "--smoltrace-agent-type", "tool", "--smoltrace-output-dir", "OUT")
QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider", "-o", "log_cli=true", "--log-cli-level=WARNING")


def _tear_last_line(path: Path, cut: int) -> None:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    path.write_bytes(data[:-cut])


def test_resume_after_torn_journal_and_traces_has_every_item_once(pytester: pytest.Pytester) -> None:
    first = pytester.runpytest_subprocess(*RUN, "--smoltrace-run-id", "R", *QUIET)
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    run_dir = pytester.path / "OUT" / "R"
    nodeids = [r["test_case_uid"] for r in json.loads((run_dir / "results.json").read_text(encoding="utf-8"))]
    assert len(nodeids) >= 10 and len(set(nodeids)) == len(nodeids)

    # kill -9 while the last item's lines were being written: both files end in a torn fragment
    _tear_last_line(run_dir / JOURNAL, 7)
    _tear_last_line(run_dir / TRACE_JOURNAL, 11)
    for name in ("results.json", "traces.json"):
        (run_dir / name).unlink()  # a killed run never wrote them

    resumed = pytester.runpytest_subprocess(*RUN, "--smoltrace-resume", "R", *QUIET)
    output = resumed.stdout.str()
    assert resumed.ret == pytest.ExitCode.OK, output
    resumed.stdout.fnmatch_lines_random(
        [
            f"*1 passed, {len(nodeids) - 1} deselected*",
            "*OUT/R/journal.jsonl: the last line was cut short*removed its * bytes from byte offset * before appending",
            "*OUT/R/traces.jsonl: the last line was cut short*removed its * bytes from byte offset * before appending",
        ]
    )
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert sorted(r["test_case_uid"] for r in results) == sorted(nodeids)  # every item exactly once
    traces = json.loads((run_dir / "traces.json").read_text(encoding="utf-8"))
    assert sorted(doc["nodeid"] for doc in traces) == sorted(nodeids)  # a trace document for each
    # the files themselves are whole again: every line parses, and each item is journaled once
    assert sorted(journal_nodeids(run_dir)) == sorted(nodeids)
    for line in (run_dir / TRACE_JOURNAL).read_text(encoding="utf-8").splitlines():
        json.loads(line)
    assert sorted(r.nodeid for r in read_journal(run_dir)) == sorted(nodeids)


def test_a_late_earlier_attempt_does_not_replace_the_items_verdict(tmp_path: Path) -> None:
    """A run harvested at session end (started ahead, or past a pytest-timeout limit) is journaled after the item's
    rerun: the rerun (the higher attempt) stays the item's latest attempt, and a resume does not run it again."""
    from helpers import run_record

    from pytest_smoltrace.journal import finished
    from pytest_smoltrace.records import ItemResult, Verdict

    def line(attempt: int, error_type: str | None) -> ItemResult:
        rec = run_record(nodeid="n", attempt=attempt, error_type=error_type)
        return ItemResult(nodeid="n", record=rec, verdict=Verdict(()))

    journal = Journal(tmp_path)
    journal.append(line(1, None))  # the rerun, finished
    journal.append(line(0, "Cancelled"))  # the first attempt, harvested later
    journal.close()
    (latest,) = read_journal(tmp_path)
    assert latest.record.attempt == 1 and [r.nodeid for r in finished([latest])] == ["n"]


#: Journal lines exactly as the plugin wrote them before the records moved (retries as dicts, the task a dict;
#: the second line an item that never ran, with an empty task).
OLD_JOURNAL_LINES = (
    (
        '{"schema_version": 1, "nodeid": "smoltrace/tasks.json::tool::paris", "record": {"task_id": "paris", '
        '"agent_type": "tool", "source": "tasks.json", "model": "openai/scripted", "provider": "litellm", '
        '"run_id": "r1", "response": "20°C", "final_answer_called": true, "stop_reason": "final_answer", '
        '"steps": [{"kind": "action", "number": 1, "duration_ms": 12.5, "input_tokens": 100, '
        '"output_tokens": 20, "error": null, "requested_tools": ["get_weather"], "code": null, '
        '"is_final_answer": false}], "tool_calls": [{"name": "get_weather", '
        '"arguments": {"location": "Paris"}, "result": "20°C", "error": null, "duration_ms": 1.5, '
        '"started_at": 1.0}], "prompt_tokens": 100, "completion_tokens": 20, "duration_ms": 250.0, '
        '"started_at": 1790000000.0, "error": null, "error_type": null, '
        '"trace_id": "abababababababababababababababab", "span_id": "cdcdcdcdcdcdcdcd", "cost_usd": null, '
        '"repeat": 0, "nodeid": "smoltrace/tasks.json::tool::paris", "retries": [{"attempt": 1, '
        '"reason": "HTTP 429", "wait_s": 0.5}], "cached_input_tokens": null, '
        '"cache_creation_input_tokens": null, "reasoning_tokens": null, "attempt": 0, "total_tokens": 120}, '
        '"verdict": {"passed": true, "outcome": "passed", "error": null, "checks": [{"name": "final_answer", '
        '"passed": true, "expected": "called", "actual": "called"}]}, "task": {"id": "paris", '
        '"prompt": "Weather in Paris?", "agent_type": "tool", "difficulty": "easy", "category": "weather", '
        '"expected_tool": ["get_weather"], "expected_tool_calls": 1, "expected_keywords": ["20"], '
        '"keyword_mode": "all", "expected_answer": "20", "forbidden_tools": ["calculator"], '
        '"required_tools": [], "metadata": {"extra": [1, 2.5, null]}, "source": "tasks.json", "row": 3}}\n'
    ),
    (
        '{"schema_version": 1, "nodeid": "smoltrace/tasks.json::code::gone", "record": {"task_id": "gone", '
        '"agent_type": "code", "source": "tasks.json", "model": "m", "provider": "litellm", "run_id": "r1", '
        '"response": null, "final_answer_called": false, "stop_reason": "error", "steps": [], '
        '"tool_calls": [], "prompt_tokens": null, "completion_tokens": null, "duration_ms": 0.0, '
        '"started_at": 1790000000.0, "error": "the worker process crashed", "error_type": "WorkerCrashed", '
        '"trace_id": null, "span_id": null, "cost_usd": null, "repeat": 0, '
        '"nodeid": "smoltrace/tasks.json::code::gone", "retries": [], "cached_input_tokens": null, '
        '"cache_creation_input_tokens": null, "reasoning_tokens": null, "attempt": 0, "total_tokens": null}, '
        '"verdict": {"passed": false, "outcome": "error", "error": "error: the worker process crashed", '
        '"checks": [{"name": "final_answer", "passed": false, "expected": "called", "actual": "not run"}]}, '
        '"task": {}}\n'
    ),
)


def test_journals_written_before_the_records_moved_read_back_and_rewrite_byte_for_byte(tmp_path: Path) -> None:
    """The journal of an earlier version reads back into records (the task a ``Task``, retries ``RetryEvent``s)
    and a record writes exactly the line it was read from, so a resumed run's files are unchanged."""
    from pytest_smoltrace.journal import dumps_line
    from smoltrace_export.records import ItemResult, RetryEvent, Task
    from smoltrace_export.rows import result_row

    (tmp_path / JOURNAL).write_text("".join(OLD_JOURNAL_LINES), encoding="utf-8")
    ran, gone = read_journal(tmp_path)
    assert isinstance(ran.task, Task) and ran.task.expected_tool == ("get_weather",) and ran.task.row == 3
    assert ran.record.retries == (RetryEvent(attempt=1, reason="HTTP 429", wait_s=0.5),)
    assert gone.task is None
    assert [dumps_line(r.to_dict()) for r in (ran, gone)] == list(OLD_JOURNAL_LINES)
    assert ItemResult.from_dict(ran.to_dict()) == ran
    row, unrun = result_row(ran), result_row(gone)
    assert (row["prompt"], row["difficulty"], row["category"]) == ("Weather in Paris?", "easy", "weather")
    assert (unrun["prompt"], unrun["difficulty"], unrun["category"]) == (None, None, None)
