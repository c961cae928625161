"""Comparing runs and models (smoltrace_export.comparison) and the after-the-fact CLI ``smoltrace-compare``.

The p-values are checked against their closed forms: scipy's exact binomial test of the discordant tasks (McNemar) and,
for repeats, the exact sign-flip distribution enumerated here by hand. Run directories are real files (results.json
from the rows' own builder); the Hub reference goes to the local Hub stand-in over HTTP.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_bad_rows_files_refused
from scipy.stats import binomtest
from test_statistics import attempt, outcomes, repeated, write_run

from pytest_smoltrace.testing.hub import FakeHub
from smoltrace_export.compare_cli import main
from smoltrace_export.comparison import (
    IMPROVED,
    INSUFFICIENT,
    MCNEMAR,
    NO_CHANGE,
    NO_TEST,
    PERMUTATION,
    REGRESSED,
    REGRESSION_EXIT_STATUS,
    ComparisonRow,
    any_regressed,
    compare,
    compare_models,
    comparison_document,
    comparison_table,
    minimum_paired_tasks,
    read_comparison,
    write_comparison,
)
from smoltrace_export.hub import DATA_FILE
from smoltrace_export.records import ItemResult
from smoltrace_export.rows import result_rows
from smoltrace_export.statistics import Outcome

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")


def tasks(n: int, passing: set[int] | range, *, repeats: int = 1) -> dict[str, list[bool]]:
    return {f"t{i}": [i in passing] * repeats for i in range(n)}


def exact_sign_flip_p(differences: list[Fraction]) -> float:
    """The two-sided p of the paired permutation test, by enumerating every sign pattern: P(|mean| ≥ |observed|)."""
    moved = [d for d in differences if d != 0]
    observed = abs(sum(moved))
    extreme = sum(
        abs(sum(s * d for s, d in zip(signs, moved, strict=True))) >= observed
        for signs in itertools.product((1, -1), repeat=len(moved))
    )
    return extreme / 2 ** len(moved)


# -- one attempt per task: exact McNemar ---------------------------------------------------------------------------


def test_a_clear_regression_is_regressed_with_mcnemars_p() -> None:
    baseline = outcomes(tasks(10, range(10)), model="m")
    current = outcomes(tasks(10, {8, 9}), model="m")
    (row,) = compare(current, baseline)
    assert (row.kind, row.model, row.baseline_model, row.agent_type) == ("baseline", "m", "m", "tool")
    assert (row.paired_tasks, row.tasks_worse, row.tasks_better) == (10, 8, 0)
    assert (row.baseline_rate, row.rate, row.difference) == (1.0, 0.2, -0.8)
    assert row.test == MCNEMAR and row.verdict == REGRESSED
    assert row.p_value == pytest.approx(binomtest(8, 8, 0.5).pvalue) == 2 * 0.5**8
    assert row.difference_ci95 is not None
    low, high = row.difference_ci95
    assert -1.0 <= low <= -0.8 <= high < 0
    assert any_regressed([row])
    # the other way round: improved, the same p
    (back,) = compare(baseline, current)
    assert back.verdict == IMPROVED and back.difference == 0.8 and back.p_value == row.p_value


def test_discordant_pairs_in_both_directions() -> None:
    # 12 tasks: 5 got worse, 1 got better, 6 unchanged (3 pass on both, 3 fail on both)
    baseline = outcomes(tasks(12, {0, 1, 2, 3, 4, 6, 7, 8}), model="m")
    current = outcomes(tasks(12, {5, 6, 7, 8}), model="m")
    (row,) = compare(current, baseline)
    assert (row.tasks_worse, row.tasks_better) == (5, 1)
    assert row.p_value == pytest.approx(binomtest(5, 6, 0.5).pvalue, abs=1e-9) == pytest.approx(0.21875)
    assert row.verdict == NO_CHANGE and row.difference == pytest.approx(-4 / 12, abs=1e-6)


def test_the_same_outcomes_under_another_model_name_are_compared_and_not_regressed() -> None:
    per_task = tasks(10, {0, 2, 3, 5, 7})
    (row,) = compare(outcomes(per_task, model="openai/gpt-4.1-nano"), outcomes(per_task, model="nano"))
    assert row.model == "openai/gpt-4.1-nano" and row.baseline_model == "nano" and row.paired_tasks == 10
    assert row.verdict == NO_CHANGE and row.p_value == 1.0 and row.difference == 0.0
    assert row.difference_ci95 == (0.0, 0.0) and row.rate == row.baseline_rate == 0.5
    assert not any_regressed([row])


def test_too_few_paired_tasks_is_insufficient_data() -> None:
    assert minimum_paired_tasks(0.05) == 6 and minimum_paired_tasks(0.01) == 8 and minimum_paired_tasks(0.1) == 5
    # 5 tasks, all lost: the smallest possible p is 2 · 0.5⁵ = 0.0625, so no verdict at 0.05
    (five,) = compare(outcomes(tasks(5, set())), outcomes(tasks(5, range(5))))
    assert five.verdict == INSUFFICIENT and five.p_value == 0.0625 and five.paired_tasks == 5
    (six,) = compare(outcomes(tasks(6, set())), outcomes(tasks(6, range(6))))
    assert six.verdict == REGRESSED and six.p_value == 0.03125
    (strict,) = compare(outcomes(tasks(7, set())), outcomes(tasks(7, range(7))), alpha=0.01)
    assert strict.verdict == INSUFFICIENT and strict.alpha == 0.01
    (forced,) = compare(outcomes(tasks(5, set())), outcomes(tasks(5, range(5))), min_tasks=3)
    assert forced.verdict == NO_CHANGE  # p = 0.0625 ≥ 0.05
    with pytest.raises(ValueError, match="alpha"):
        minimum_paired_tasks(1.5)


def test_every_pair_tied_is_p_1_and_no_significant_change() -> None:
    per_task = tasks(8, {1, 2, 3})
    (row,) = compare(outcomes(per_task), outcomes(per_task))
    assert (row.verdict, row.p_value, row.test, row.tasks_worse, row.tasks_better) == (NO_CHANGE, 1.0, MCNEMAR, 0, 0)


def test_pairing_is_on_shared_tasks_only() -> None:
    baseline = outcomes({**tasks(10, range(10)), "only-in-baseline": [False]})
    current = outcomes({**tasks(10, range(10)), "new-1": [False], "new-2": [False]})
    (row,) = compare(current, baseline)
    assert row.paired_tasks == 10 and row.rate == row.baseline_rate == 1.0 and row.verdict == NO_CHANGE
    # an agent type the baseline did not run has nothing to pair
    code = outcomes(tasks(10, range(10)), agent_type="code")
    rows = compare(current + code, baseline)
    assert [(r.agent_type, r.paired_tasks, r.verdict, r.test) for r in rows] == [
        ("tool", 10, NO_CHANGE, MCNEMAR),
        ("code", 0, INSUFFICIENT, NO_TEST),
    ]
    assert rows[1].rate is None and rows[1].p_value is None and rows[1].difference_ci95 is None


def test_baseline_models_are_matched_by_name_and_a_single_one_is_everyones_baseline() -> None:
    base = outcomes(tasks(10, range(10)), model="a") + outcomes(tasks(10, set()), model="b")
    current = outcomes(tasks(10, range(10)), model="b") + outcomes(tasks(10, range(10)), model="c")
    rows = compare(current, base)
    assert [(r.model, r.baseline_model, r.verdict) for r in rows] == [("b", "b", IMPROVED), ("c", None, INSUFFICIENT)]
    # one baseline model: every current model is compared with it
    rows = compare(current, outcomes(tasks(10, set()), model="old"))
    assert [(r.model, r.baseline_model, r.verdict) for r in rows] == [("b", "old", IMPROVED), ("c", "old", IMPROVED)]


# -- repeats: the paired permutation test ---------------------------------------------------------------------------


def per_task(table: str) -> dict[str, list[bool]]:
    """Repeat outcomes per task from one string: a word per task (``t0``, ``t1``, …), ``1`` passed, ``0`` failed."""
    return {f"t{i}": [c == "1" for c in word] for i, word in enumerate(table.split())}


REPEATED_BASELINE = per_task("1111 1110 1101 1111 0111 1001 1111 0000 1111 1111")
REPEATED_CURRENT = per_task("1001 0010 1101 0000 0100 1001 1101 0000 0110 1011")


def rates(per_task: dict[str, list[bool]]) -> dict[str, Fraction]:
    return {t: Fraction(sum(f), len(f)) for t, f in per_task.items()}


def test_repeats_use_the_paired_permutation_test_with_its_exact_p() -> None:
    (row,) = compare(outcomes(REPEATED_CURRENT), outcomes(REPEATED_BASELINE))
    now, then = rates(REPEATED_CURRENT), rates(REPEATED_BASELINE)
    differences = [now[t] - then[t] for t in now]
    assert row.test == PERMUTATION and row.paired_tasks == 10
    assert (row.tasks_worse, row.tasks_better) == (7, 0)
    assert row.rate == pytest.approx(float(sum(now.values()) / 10), abs=1e-6)
    assert row.baseline_rate == pytest.approx(float(sum(then.values()) / 10), abs=1e-6)
    assert row.difference == pytest.approx(float(sum(differences) / 10), abs=1e-6) == -0.35
    assert row.p_value == pytest.approx(exact_sign_flip_p(differences), rel=1e-5) == pytest.approx(2 / 2**7)
    assert row.verdict == REGRESSED
    assert row.difference_ci95 is not None and row.difference_ci95[0] <= row.difference <= row.difference_ci95[1] < 0
    # reproducible: the bootstrap is seeded
    assert compare(outcomes(REPEATED_CURRENT), outcomes(REPEATED_BASELINE)) == [row]


def test_permutation_p_with_mixed_signs_and_ties_against_the_enumeration() -> None:
    current = {**REPEATED_CURRENT, "t7": [True, True, False, False], "t10": [True] * 4, "t11": [False] * 4}
    baseline = {**REPEATED_BASELINE, "t10": [True, False, False, False], "t11": [False] * 4}
    (row,) = compare(outcomes(current), outcomes(baseline))
    now, then = rates(current), rates(baseline)
    differences = [now[t] - then[t] for t in now]
    assert (row.tasks_worse, row.tasks_better) == (7, 2)
    assert row.p_value == pytest.approx(exact_sign_flip_p(differences), rel=1e-5)
    assert row.verdict == NO_CHANGE and row.p_value >= 0.05


def test_the_permutation_test_is_mcnemars_on_all_or_nothing_tasks() -> None:
    # two attempts a task (so the permutation test), each task all-pass or all-fail: the same p as McNemar
    baseline = outcomes(tasks(12, range(12), repeats=2))
    current = outcomes(tasks(12, {0, 1, 2, 3, 5}, repeats=2))
    (row,) = compare(current, baseline)
    assert row.test == PERMUTATION and (row.tasks_worse, row.tasks_better) == (7, 0)
    assert row.p_value == pytest.approx(binomtest(7, 7, 0.5).pvalue, abs=1e-9)
    (single,) = compare(outcomes(tasks(12, {0, 1, 2, 3, 5})), outcomes(tasks(12, range(12))))
    assert single.test == MCNEMAR and single.p_value == row.p_value and single.verdict == row.verdict == REGRESSED


def test_many_moved_tasks_use_a_seeded_monte_carlo_permutation_test() -> None:
    import random

    rng = random.Random(7)
    baseline = {f"t{i}": [rng.random() < 0.8 for _ in range(3)] for i in range(40)}
    current = {f"t{i}": [rng.random() < 0.6 for _ in range(3)] for i in range(40)}
    first = compare(outcomes(current), outcomes(baseline))
    assert first == compare(outcomes(current), outcomes(baseline))  # reproducible
    (row,) = first
    assert row.test == PERMUTATION and row.tasks_worse + row.tasks_better > 16  # beyond exact enumeration
    assert row.p_value is not None and 0 < row.p_value <= 1


# -- models of one session ----------------------------------------------------------------------------------------


def test_compare_models_pairs_every_model_with_the_earlier_ones() -> None:
    session = (
        outcomes(tasks(10, range(10)), model="small")
        + outcomes(tasks(10, range(10)), model="small", agent_type="code")
        + outcomes(tasks(10, {0}), model="big")
        + outcomes(tasks(10, range(10)), model="big", agent_type="code")
    )
    rows = compare_models(session)
    assert [(r.kind, r.model, r.baseline_model, r.agent_type, r.verdict) for r in rows] == [
        ("models", "big", "small", "tool", REGRESSED),
        ("models", "big", "small", "code", NO_CHANGE),
    ]
    assert rows[0].p_value == pytest.approx(binomtest(9, 9, 0.5).pvalue)
    three = compare_models(session + outcomes(tasks(10, range(10)), model="tiny"))
    assert [(r.baseline_model, r.model, r.agent_type) for r in three] == [
        ("small", "big", "tool"),
        ("small", "big", "code"),
        ("small", "tiny", "tool"),
        ("small", "tiny", "code"),
        ("big", "tiny", "tool"),
        ("big", "tiny", "code"),
    ]
    assert three[3].paired_tasks == 0 and three[3].verdict == INSUFFICIENT  # tiny ran no code agent
    assert compare_models(outcomes(tasks(10, range(10)))) == []


def test_compare_models_from_records_with_labels() -> None:
    results: list[ItemResult] = []
    for i in range(8):
        results += repeated(f"t{i}", [True, True, True], label="small")
        results += repeated(f"t{i}", [i % 2 == 0, False, True], label="big")
    from smoltrace_export.statistics import outcomes_from_results

    (row,) = compare_models(outcomes_from_results(results))
    assert (row.model, row.baseline_model, row.test, row.tasks_worse) == ("big", "small", PERMUTATION, 8)
    assert row.p_value == pytest.approx(2 / 2**8) and row.verdict == REGRESSED


# -- documents and the table --------------------------------------------------------------------------------------


def test_comparison_rows_round_trip_through_json(tmp_path: Path) -> None:
    rows = compare(outcomes(REPEATED_CURRENT), outcomes(REPEATED_BASELINE)) + compare(
        outcomes(tasks(3, set()), agent_type="code", model="x"), outcomes(tasks(3, set()))
    )
    rows += compare_models(outcomes(tasks(8, range(8)), model="a") + outcomes(tasks(8, {1}), model="b"))
    assert [r.kind for r in rows] == ["baseline", "baseline", "models"]
    doc = comparison_document(rows)
    assert set(doc[0]) >= {
        "model",
        "baseline_model",
        "agent_type",
        "paired_tasks",
        "baseline_rate",
        "rate",
        "difference",
        "difference_ci95",
        "test",
        "p_value",
        "verdict",
        "kind",
    }
    assert isinstance(doc[0]["difference_ci95"], list) and doc[1]["difference_ci95"] is None
    assert [ComparisonRow.from_dict(d) for d in json.loads(json.dumps(doc))] == rows
    path = write_comparison(tmp_path / "comparison.json", rows)
    assert read_comparison(path) == rows
    assert_bad_rows_files_refused(
        read_comparison, tmp_path, "comparison", {**doc[0], "verdict": "worse"}, ".*verdict must be one of"
    )


def test_comparison_table_lines() -> None:
    rows = compare(outcomes(tasks(10, {8, 9}), model="m"), outcomes(tasks(10, range(10)), model="m"))
    rows += compare(outcomes(tasks(3, set()), model="m", agent_type="code"), outcomes(tasks(10, range(10))))
    low, high = rows[0].difference_ci95 or (0.0, 0.0)
    assert comparison_table(rows) == [
        "model  vs  agent  tasks  worse/better  rate           Δ [95% CI]               p       test           verdict",
        f"m      m   tool      10  8/0           1.000 → 0.200  -0.800 [{low:+.3f}, {high:+.3f}]  0.0078  "
        "exact McNemar  regressed",
        "m      m   code       0  0/0           — → —          —                        —       none           "
        "insufficient data",
    ]


# -- smoltrace-compare ------------------------------------------------------------------------------------------


def run_results(per_task: dict[str, list[bool]], **kwargs: Any) -> list[ItemResult]:
    results = []
    for task_id, flags in per_task.items():
        results += repeated(task_id, flags, **kwargs)
    return results


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    return {
        "baseline": write_run(tmp_path, run_results(tasks(10, range(10), repeats=2)), "baseline"),
        "same": write_run(tmp_path, run_results(tasks(10, range(10), repeats=2)), "same"),
        "worse": write_run(tmp_path, run_results(tasks(10, {9}, repeats=2)), "worse"),
    }


def test_cli_prints_both_statistics_and_the_comparison(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(runs["same"]), str(runs["baseline"]), "--fail-on-regression"]) == 0
    out = capsys.readouterr().out
    assert f"statistics of {runs['same']}:" in out and f"statistics of the baseline {runs['baseline']}:" in out
    assert f"{runs['same']} against {runs['baseline']} (alpha 0.05):" in out
    assert "openai/scripted  tool   10×2           20/20" in out
    (line,) = [ln for ln in out.splitlines() if "paired permutation" in ln]
    assert line.split()[:5] == ["openai/scripted", "openai/scripted", "tool", "10", "0/0"]
    assert line.endswith("no significant change") and "regressed" not in out


def test_cli_exit_status_6_on_a_regression_with_fail_on_regression(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(runs["worse"]), str(runs["baseline"])]) == 0  # reported, not failed
    out = capsys.readouterr().out
    assert "regressed: openai/scripted (tool)" in out
    report = tmp_path / "out" / "comparison.json"
    status = main([str(runs["worse"]), str(runs["baseline"]), "--fail-on-regression", "--json", str(report)])
    assert status == REGRESSION_EXIT_STATUS == 6
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("openai/scripted  openai/scripted")]
    assert "1.000 → 0.100" in line and "-0.900 [" in line and line.endswith("regressed")
    assert f"comparison written to {report}" in out
    (row,) = read_comparison(report)
    assert row.verdict == REGRESSED and row.p_value == pytest.approx(2 / 2**9) and row.test == PERMUTATION
    # a stricter alpha: 9 tasks all worse, p = 0.0039 ≥ 0.001 → no verdict of regression
    assert main([str(runs["worse"]), str(runs["baseline"]), "--fail-on-regression", "--alpha", "0.001"]) == 0


def test_cli_bad_input_is_status_2_with_a_message_naming_it(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-run"
    assert main([str(runs["same"]), str(missing)]) == 2
    err = capsys.readouterr().err
    assert (
        f"smoltrace-compare: error: BASELINE {missing}: no such file or directory; expected a pytest-smoltrace" in err
    )
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), str(runs["baseline"])]) == 2
    assert "RUN " + str(tmp_path / "empty") + ": no results.json in this directory" in capsys.readouterr().err
    cancelled = write_run(tmp_path, [attempt("t1", error_type="Cancelled")], "cancelled")
    assert main([str(cancelled), str(runs["baseline"])]) == 2
    assert "no finished items" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs["same"]), str(runs["baseline"]), "--alpha", "2"])
    assert exit_info.value.code == 2 and "not between 0 and 1" in capsys.readouterr().err


def test_cli_as_a_module_without_a_traceback(runs: dict[str, Path], tmp_path: Path) -> None:
    command = [sys.executable, "-m", "smoltrace_export.compare_cli"]
    done = subprocess.run(
        [*command, str(runs["worse"]), str(runs["baseline"]), "--fail-on-regression"], capture_output=True, text=True
    )
    assert done.returncode == 6 and "regressed" in done.stdout, done.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("[{")
    done = subprocess.run([*command, str(bad), str(runs["baseline"])], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"error: RUN {bad / 'results.json'}: not a readable JSON file" in done.stderr


def test_cli_baseline_from_the_hub(
    fake_hub: FakeHub, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from test_statistics import parquet

    rows = result_rows(run_results(tasks(10, range(10), repeats=2)))
    fake_hub.seed("tester/smoltrace-results-20260921_000000_abcdef12", {DATA_FILE: parquet(rows)})
    ref = "hf://datasets/tester/smoltrace-results-20260921_000000_abcdef12"
    assert main([str(runs["worse"]), ref, "--fail-on-regression"]) == REGRESSION_EXIT_STATUS
    out = capsys.readouterr().out
    assert f"statistics of the baseline {ref}:" in out and "regressed: openai/scripted (tool)" in out
    assert main([str(runs["same"]), "tester/smoltrace-results-20260921_000000_abcdef12"]) == 0
    assert main([str(runs["same"]), "tester/smoltrace-results-missing"]) == 2
    err = capsys.readouterr().err
    assert "BASELINE tester/smoltrace-results-missing: no such run directory here, and could not download" in err


def test_outcome_records_are_what_compare_takes() -> None:
    row = Outcome("m", "tool", "t1", 2, True)
    assert Outcome.from_dict(row.to_dict()) == row
