"""The statistics of a run (smoltrace_export.statistics), each figure against its closed form on hand-picked outcomes.

Also the two ways to item outcomes (records and results.json rows: they agree), the counting rules (reruns are one
item outcome; cancelled and crashed items are left out; errors are failures), and load_outcomes on run directories
and on Hub results datasets (the local Hub stand-in, over real HTTP). Home of the record builders test_comparison
uses.
"""

from __future__ import annotations

import io
import json
import math
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from helpers import assert_bad_rows_files_refused

from pytest_smoltrace.testing.hub import FakeHub, hub_environment
from smoltrace_export import json_sink
from smoltrace_export.hub import DATA_FILE, features_for, hub_row, publish_run_dir
from smoltrace_export.records import CANCELLED, WORKER_CRASHED, Check, ItemResult, RunRecord, StepInfo, Task, Verdict
from smoltrace_export.rows import result_rows
from smoltrace_export.schemas import RESULTS_SCHEMA
from smoltrace_export.statistics import (
    LoadError,
    Outcome,
    StatisticsRow,
    load_outcomes,
    outcomes_from_results,
    outcomes_from_rows,
    parse_hub_ref,
    read_statistics,
    statistics,
    statistics_document,
    statistics_table,
    write_statistics,
)

# huggingface_hub's own LFS upload (the non-Xet path the stand-in speaks) passes bytes as `data=`
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

STARTED = 1_790_000_000.0
MODEL = "openai/scripted"


# -- builders --------------------------------------------------------------------------------------------------------


def attempt(
    task_id: str,
    passed: bool = True,
    *,
    agent_type: str = "tool",
    model: str = MODEL,
    label: str | None = None,
    repeat: int = 0,
    repeats: int = 1,
    attempt: int = 0,
    error_type: str | None = None,
    timeout: bool = False,
) -> ItemResult:
    """One attempt of one item, as the plugin records it; node id as collect.py makes it."""
    name = task_id if repeats == 1 else f"{task_id}[repeat-{repeat}]"
    nodeid = f"smoltrace/tasks.json::{label + '::' if label else ''}{agent_type}::{name}"
    error = None
    if timeout:
        error, error_type = "the run took longer than 300 s", error_type or "RunTimeout"
    elif error_type is not None:
        error = f"{error_type}: the attempt did not finish"
    record = RunRecord(
        task_id=task_id,
        agent_type=agent_type,  # type: ignore[arg-type]
        source="tasks.json",
        model=model,
        provider="litellm",
        run_id="run-a",
        response=None if error else "42",
        final_answer_called=error is None,
        stop_reason="timeout" if timeout else "error" if error else "final_answer",
        steps=(StepInfo("action", 1, 10.0, 100, 20),),
        tool_calls=(),
        prompt_tokens=100,
        completion_tokens=20,
        duration_ms=250.0,
        started_at=STARTED + attempt,
        error=error,
        error_type=error_type,
        repeat=repeat,
        nodeid=nodeid,
        attempt=attempt,
        model_label=label,
    )
    checks = (Check("expected_answer", passed, "42", "42" if passed else "41"),)
    verdict = Verdict(checks, error=error)
    return ItemResult(nodeid, record, verdict, Task(task_id, f"What is 6×7? [{task_id}]", source="tasks.json"))


def repeated(task_id: str, flags: Sequence[bool], **kwargs: Any) -> list[ItemResult]:
    """One item per repeat, ``flags[i]`` its verdict."""
    return [attempt(task_id, f, repeat=i, repeats=len(flags), **kwargs) for i, f in enumerate(flags)]


def outcomes(per_task: dict[str, Sequence[bool]], *, model: str = "m", agent_type: str = "tool") -> list[Outcome]:
    return [Outcome(model, agent_type, t, i, f) for t, flags in per_task.items() for i, f in enumerate(flags)]


def write_run(root: Path, results: Iterable[ItemResult], name: str = "run") -> Path:
    """A run directory's results.json (what smoltrace-compare reads), written by the rows' own builder."""
    run_dir = root / name
    json_sink.write_json(run_dir / json_sink.RESULTS, result_rows(list(results)))
    return run_dir


def pass_at(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat(n: int, c: int, k: int) -> float:
    return math.comb(c, k) / math.comb(n, k)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The closed form: (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


# -- the figures -------------------------------------------------------------------------------------------------


def test_pass_at_k_and_pass_hat_k_of_a_task_with_3_of_4_against_the_closed_form() -> None:
    (row,) = statistics(outcomes({"t1": [True, False, True, True]}))
    assert (row.tasks, row.repeats, row.attempts, row.successes) == (1, 4, 4, 3)
    # pass@2 = 1 − C(1,2)/C(4,2) = 1 − 0/6 = 1; pass^2 = C(3,2)/C(4,2) = 3/6
    assert row.pass_at_k == {"1": 0.75, "2": 1.0, "3": 1.0, "4": 1.0}
    assert row.pass_hat_k == {"1": 0.75, "2": 0.5, "3": 0.25, "4": 0.0}
    assert row.pass_hat_k["3"] == pass_hat(4, 3, 3) and row.pass_at_k["2"] == pass_at(4, 3, 2)
    assert row.flaky_tasks == ("t1",)


def test_pass_at_k_is_averaged_over_tasks() -> None:
    per_task = {"a": [True, False, True, True], "b": [False, True, False, False], "c": [True] * 4, "d": [False] * 4}
    (row,) = statistics(outcomes(per_task))
    counts = [(4, 3), (4, 1), (4, 4), (4, 0)]
    for k in range(1, 5):
        assert row.pass_at_k[str(k)] == pytest.approx(sum(pass_at(n, c, k) for n, c in counts) / 4, abs=1e-6)
        assert row.pass_hat_k[str(k)] == pytest.approx(sum(pass_hat(n, c, k) for n, c in counts) / 4, abs=1e-6)
    assert row.pass_at_k["2"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert row.pass_hat_k["2"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    # pass@1 is the mean success; with even attempts, the success rate
    assert row.pass_at_k["1"] == row.success_rate == 8 / 16
    assert row.flaky_tasks == ("a", "b")
    assert [(t.task_id, t.attempts, t.successes) for t in row.per_task] == [
        ("a", 4, 3),
        ("b", 4, 1),
        ("c", 4, 4),
        ("d", 4, 0),
    ]


def test_wilson_interval_of_7_of_10_matches_the_closed_formula() -> None:
    (row,) = statistics(outcomes({f"t{i}": [i < 7] for i in range(10)}))
    assert (row.successes, row.attempts, row.success_rate) == (7, 10, 0.7)
    low, high = wilson(7, 10)
    assert row.success_rate_ci95 == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert row.success_rate_ci95 == pytest.approx((0.396778, 0.892209), abs=1e-6)
    # one attempt per task: pass@1 is the success rate, nothing is flaky, N = 1
    assert row.pass_at_k == {"1": 0.7} and row.pass_hat_k == {"1": 0.7} and row.repeats == 1
    assert row.flaky_tasks == ()


@pytest.mark.parametrize(("successes", "n"), [(0, 5), (5, 5), (1, 3), (37, 40)])
def test_wilson_interval_at_the_edges(successes: int, n: int) -> None:
    (row,) = statistics(outcomes({f"t{i}": [i < successes] for i in range(n)}))
    low, high = wilson(successes, n)
    assert row.success_rate_ci95 == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert 0 <= row.success_rate_ci95[0] <= row.success_rate <= row.success_rate_ci95[1] <= 1


def test_wilson_interval_equals_scipys() -> None:
    """statistics.json's interval is computed without scipy; it is scipy's Wilson interval to 1e-9."""
    from scipy.stats import binomtest

    from smoltrace_export.statistics import wilson_interval

    for n in (1, 2, 3, 5, 10, 37, 100, 1000):
        for successes in sorted({0, 1, n // 3, n // 2, n - 1, n} - {-1}):
            ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
            assert wilson_interval(successes, n) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


def test_tasks_with_uneven_attempts() -> None:
    # a lost repeat: task b has 2 counted attempts, a has 4
    (row,) = statistics(outcomes({"a": [True, False, False, True], "b": [True, True]}))
    assert (row.tasks, row.repeats, row.attempts, row.successes) == (2, 4, 6, 4)
    assert row.success_rate == pytest.approx(4 / 6, abs=1e-6)  # pooled over attempts
    assert row.pass_at_k["1"] == pytest.approx((2 / 4 + 2 / 2) / 2)  # mean over tasks
    assert row.pass_at_k["2"] == pytest.approx((pass_at(4, 2, 2) + pass_at(2, 2, 2)) / 2)
    # k = 3, 4: only a has that many attempts
    assert row.pass_at_k["3"] == pytest.approx(pass_at(4, 2, 3)) == 1.0
    assert row.pass_hat_k["3"] == pass_hat(4, 2, 3) == 0.0
    assert list(row.pass_at_k) == ["1", "2", "3", "4"] and list(row.pass_hat_k) == ["1", "2", "3", "4"]
    assert row.flaky_tasks == ("a",)


def test_rows_per_model_and_agent_type_in_order() -> None:
    mixed = [
        Outcome("m2", "code", "t1", 0, True),
        Outcome("m1", "code", "t1", 0, False),
        Outcome("m2", "tool", "t1", 0, True),
        Outcome("m1", "tool", "t1", 0, True),
        Outcome("m2", "tool", "t2", 0, False),
    ]
    rows = statistics(mixed)
    assert [(r.model, r.agent_type, r.tasks, r.successes) for r in rows] == [
        ("m2", "tool", 2, 1),
        ("m2", "code", 1, 1),
        ("m1", "tool", 1, 1),
        ("m1", "code", 1, 0),
    ]
    assert statistics([]) == []


# -- counting rules: records ----------------------------------------------------------------------------------


def test_reruns_count_as_one_item_outcome_and_unfinished_items_are_left_out() -> None:
    results = [
        attempt("rerun", False, attempt=0),
        attempt("rerun", True, attempt=1),  # pytest-rerunfailures: the item passed on its rerun
        attempt("failed-twice", False, attempt=0),
        attempt("failed-twice", False, attempt=1),
        attempt("cancelled", True, error_type=CANCELLED),  # started ahead, never run
        attempt("crashed", False, error_type=WORKER_CRASHED),  # its worker died
        attempt("resumed", False, error_type=WORKER_CRASHED, attempt=0),
        attempt("resumed", True, attempt=1),  # re-run by --smoltrace-resume: counts
        attempt("ran-then-cancelled", True, attempt=0),
        attempt("ran-then-cancelled", False, error_type=CANCELLED, attempt=1),  # a run started ahead elsewhere
        attempt("timed-out", False, timeout=True),  # an error is a failure, not left out
    ]
    found = outcomes_from_results(results)
    assert [(o.task_id, o.passed) for o in found] == [
        ("rerun", True),
        ("failed-twice", False),
        ("resumed", True),
        ("ran-then-cancelled", True),
        ("timed-out", False),
    ]
    (row,) = statistics(found)
    assert (row.tasks, row.attempts, row.successes, row.repeats) == (5, 5, 3, 1)
    assert row.success_rate == 0.6 and row.flaky_tasks == ()


def test_repeats_and_model_names() -> None:
    results = [
        *repeated("t1", [True, False, True], label="small"),
        *repeated("t1", [True, True, True], model="openai/other"),  # no label: the model id
    ]
    found = outcomes_from_results(results)
    assert {o.model for o in found} == {"small", "openai/other"}
    assert [o.repeat for o in found if o.model == "small"] == [0, 1, 2]
    rows = statistics(found)
    assert [(r.model, r.repeats, r.successes, r.flaky_tasks) for r in rows] == [
        ("small", 3, 2, ("t1",)),
        ("openai/other", 3, 3, ()),
    ]


# -- rows and records agree ------------------------------------------------------------------------------------


def mixed_results() -> list[ItemResult]:
    return [
        *repeated("a", [True, False, True, True], label="small"),
        *repeated("b", [False, False, True, False], label="small"),
        *repeated("a", [True, True, True, True], label="small", agent_type="code"),
        attempt("c", False, label="small", attempt=0, repeat=0, repeats=4),
        attempt("c", True, label="small", attempt=1, repeat=0, repeats=4),
        attempt("c", True, label="small", repeat=1, repeats=4, error_type=CANCELLED),
        attempt("c", True, label="small", repeat=2, repeats=4, error_type=WORKER_CRASHED),
        attempt("c", False, label="small", repeat=3, repeats=4, timeout=True),
        attempt("d", True, label="small", attempt=0, repeat=0, repeats=4),
        attempt("d", False, label="small", attempt=1, repeat=0, repeats=4, error_type=CANCELLED),
        *repeated("a", [False, False, True, True], model="openai/big"),
    ]


def test_outcomes_from_rows_and_from_results_agree() -> None:
    results = mixed_results()
    from_records = outcomes_from_results(results)
    rows = result_rows(results)
    assert outcomes_from_rows(rows) == from_records
    # the rows as results.json holds them, and in another order
    assert outcomes_from_rows(json.loads(json.dumps(rows))[::-1]) == outcomes_from_results(results[::-1])
    # rows written before the final_attempt column: the highest attempt that was not cancelled
    old = [{k: v for k, v in r.items() if k != "final_attempt"} for r in rows]
    assert outcomes_from_rows(old) == from_records
    # the Hub's encoding of the rows (json columns as strings) reads the same
    assert outcomes_from_rows([hub_row(r, RESULTS_SCHEMA) for r in rows]) == from_records
    assert statistics(outcomes_from_rows(rows)) == statistics(from_records)
    c = [o for o in from_records if o.task_id == "c"]
    assert [(o.repeat, o.passed) for o in c] == [(0, True), (3, False)]
    assert [o.passed for o in from_records if o.task_id == "d"] == [True]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([["not", "an", "object"]], "row 1 is a list, not an object"),
        ([{"test_case_uid": "x", "task_id": "t", "agent_type": "tool"}], "row 1 has no model"),
        ([{"task_id": "t", "agent_type": "tool", "model": "m"}], "row 1 has no test_case_uid"),
        ([{"test_case_uid": "x", "task_id": "t", "agent_type": "tool", "model": "m", "attempt": "two"}], "integers"),
    ],
)
def test_outcomes_from_rows_names_the_bad_row(rows: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        outcomes_from_rows(rows)


# -- records and documents ----------------------------------------------------------------------------------


def test_statistics_row_json_round_trip(tmp_path: Path) -> None:
    rows = statistics(outcomes_from_results(mixed_results()))
    doc = statistics_document(rows)
    assert list(doc[0]) == [
        "model",
        "agent_type",
        "tasks",
        "repeats",
        "attempts",
        "successes",
        "success_rate",
        "success_rate_ci95",
        "pass_at_k",
        "pass_hat_k",
        "per_task",
        "flaky_tasks",
    ]
    first = doc[0]
    assert first["model"] == "small" and first["agent_type"] == "tool" and first["repeats"] == 4
    assert isinstance(first["success_rate_ci95"], list) and list(first["pass_at_k"]) == ["1", "2", "3", "4"]
    assert first["per_task"][0] == {"task_id": "a", "attempts": 4, "successes": 3}
    assert [StatisticsRow.from_dict(d) for d in json.loads(json.dumps(doc))] == rows
    path = write_statistics(tmp_path / "statistics.json", rows)
    assert json.loads(path.read_text()) == doc and read_statistics(path) == rows
    assert_bad_rows_files_refused(read_statistics, tmp_path, "statistics", {"model": "m"})


def test_statistics_table() -> None:
    rows = statistics(
        outcomes({"a": [True, False, True, True], "b": [True] * 4}, model="openai/gpt-4.1-nano")
        + outcomes({"a": [False] * 4, "b": [True, False, False, False]}, model="openai/gpt-4.1-nano", agent_type="code")
    )
    tool_low, tool_high = wilson(7, 8)
    code_low, code_high = wilson(1, 8)
    assert statistics_table(rows) == [
        "model                agent  tasks×repeats  passed  rate [95% CI]         pass@1  pass@N  pass^N  flaky",
        f"openai/gpt-4.1-nano  tool   2×4            7/8     0.875 [{tool_low:.3f}, {tool_high:.3f}]  0.875   1.000   "
        "0.500   1 (a)",
        f"openai/gpt-4.1-nano  code   2×4            1/8     0.125 [{code_low:.3f}, {code_high:.3f}]  0.125   0.500   "
        "0.000   1 (b)",
    ]
    many = statistics(outcomes({t: [True, False] for t in "abcde"}))
    assert statistics_table(many)[1].endswith("5 (a, b, c…)")


# -- load_outcomes: run directories ------------------------------------------------------------------------------


def test_load_outcomes_from_a_run_directory(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, mixed_results())
    assert load_outcomes(run_dir) == outcomes_from_results(mixed_results())
    assert load_outcomes(str(run_dir)) == load_outcomes(run_dir / "results.json")


def test_load_outcomes_names_the_path_when_it_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError, match=r"empty: no results\.json in this directory; expected a pytest-smoltrace"):
        load_outcomes(tmp_path / "empty")
    with pytest.raises(LoadError, match=r"nowhere: no such file or directory"):
        load_outcomes(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("[{not json")
    with pytest.raises(LoadError, match=r"bad/results\.json: not a readable JSON file"):
        load_outcomes(bad)
    (bad / "results.json").write_text('{"rows": []}')
    with pytest.raises(LoadError, match=r"bad/results\.json: a JSON dict, not a list of results rows"):
        load_outcomes(bad)
    (bad / "results.json").write_text('[{"task_id": "t"}]')
    with pytest.raises(LoadError, match=r"bad/results\.json: row 1 has no test_case_uid, agent_type, model"):
        load_outcomes(bad)


def test_parse_hub_ref() -> None:
    assert parse_hub_ref("hf://datasets/tester/smoltrace-results-x") == ("tester/smoltrace-results-x", None)
    assert parse_hub_ref("hf://datasets/tester/x@abc123") == ("tester/x", "abc123")
    assert parse_hub_ref("tester/x@main") == ("tester/x", "main")
    assert parse_hub_ref("tester/x") == ("tester/x", None)
    assert parse_hub_ref("./runs/x/y") is None and parse_hub_ref("x") is None and parse_hub_ref("/abs/x") is None


# -- load_outcomes: the Hub (the local stand-in, over HTTP) -----------------------------------------------------


def parquet(rows: list[dict[str, Any]]) -> bytes:
    """Results rows encoded as the publisher encodes them (hub_row + features_for: the same as hub._parquet)."""
    import datasets

    table = [hub_row(r, RESULTS_SCHEMA) for r in rows]
    buf = io.BytesIO()
    datasets.Dataset.from_list(table, features=features_for(RESULTS_SCHEMA)).to_parquet(buf)
    return buf.getvalue()


def test_load_outcomes_from_a_published_run(fake_hub: FakeHub, tmp_path: Path) -> None:
    results = mixed_results()
    run_dir = write_run(tmp_path, results)
    json_sink.write_json(run_dir / json_sink.LEADERBOARD, [{"run_id": "run-a", "model": MODEL, "agent_type": "tool"}])
    published = publish_run_dir(run_dir, retries=0)
    repo_id = published.results.repo_id
    assert repo_id.startswith("tester/smoltrace-results-")
    expected = outcomes_from_results(results)
    assert load_outcomes(f"hf://datasets/{repo_id}") == expected
    assert load_outcomes(repo_id) == expected
    assert load_outcomes(f"{repo_id}@{published.results.commit}") == expected


def test_load_outcomes_at_a_revision_and_from_jsonl(fake_hub: FakeHub) -> None:
    first = result_rows([attempt("t1", True), attempt("t2", True)])
    second = result_rows([attempt("t1", False), attempt("t2", True)])
    old = fake_hub.seed("tester/smoltrace-results-x", {DATA_FILE: parquet(first), "README.md": "# results\n"})
    fake_hub.seed("tester/smoltrace-results-x", {DATA_FILE: parquet(second)})
    assert [o.passed for o in load_outcomes("tester/smoltrace-results-x")] == [False, True]
    assert [o.passed for o in load_outcomes(f"hf://datasets/tester/smoltrace-results-x@{old.sha}")] == [True, True]
    lines = "".join(json.dumps(r) + "\n" for r in second)
    fake_hub.seed("tester/jsonl-results", {"data/train.jsonl": lines})
    assert load_outcomes("tester/jsonl-results") == outcomes_from_rows(second)


def test_load_outcomes_names_the_dataset_it_could_not_read(fake_hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(
        LoadError,
        match=r"tester/missing: no such run directory here, and could not download the Hub "
        r"dataset tester/missing from http://127\.0\.0\.1:\d+: no such dataset",
    ):
        load_outcomes("tester/missing")
    fake_hub.seed("tester/cards-only", {"README.md": "# nothing\n"})
    with pytest.raises(LoadError, match=r"tester/cards-only has no parquet or jsonl data files"):
        load_outcomes("hf://datasets/tester/cards-only")
    fake_hub.seed("tester/not-results", {"data/train.jsonl": '{"text": "hello"}\n'})
    with pytest.raises(LoadError, match=r"not-results: row 1 has no test_case_uid, task_id, agent_type, model"):
        load_outcomes("hf://datasets/tester/not-results")
    fake_hub.seed("tester/revs", {"data/train.jsonl": ""})
    with pytest.raises(LoadError, match=r"tester/revs@0123456789abcdef: could not download .*(revision|rev)"):
        load_outcomes("hf://datasets/tester/revs@0123456789abcdef")


def test_load_outcomes_says_when_the_hub_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with hub_environment(f"http://127.0.0.1:{port}", home=tmp_path), pytest.raises(LoadError) as caught:
        load_outcomes("hf://datasets/tester/smoltrace-results-x")
    assert f"could not download the Hub dataset tester/smoltrace-results-x from http://127.0.0.1:{port}" in str(
        caught.value
    )
    assert "the Hub could not be reached" in str(caught.value)
