"""Repeats, several models in one session, statistics and the regression gate, as a user runs them (issue 13).

Every run is a fresh interpreter against the scripted model server, whose per-attempt outcomes are fixed
(``{"attempts": [...]}`` scripts: each new conversation of a task takes the next answer), so every statistic is
checked against its closed form.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace.testing import ScriptedModelServer

RIGHT = [{"final_answer": "42"}]
WRONG = [{"final_answer": "41"}]
#: Per task, the outcome of each of its 4 attempts (True: the right answer).
PLAN = {
    "t0": [True, True, True, True],
    "t1": [True, False, True, False],
    "t2": [False, False, False, False],
    "t3": [True, False, False, False],
}
Z = 1.959963984540054  # the 97.5 % quantile of the standard normal


def tasks(ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": i, "prompt": f"[q-{i}] What is six times seven?", "expected_answer": "42", "agent_type": "tool"}
        for i in ids
    ]


def attempts_script(outcomes: list[bool]) -> dict[str, Any]:
    return {"attempts": [RIGHT if ok else WRONG for ok in outcomes]}


def wilson(c: int, n: int) -> tuple[float, float]:
    p = c / n
    centre = p + Z * Z / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - spread) / (1 + Z * Z / n), (centre + spread) / (1 + Z * Z / n)


def pass_at(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat(n: int, c: int, k: int) -> float:
    return math.comb(c, k) / math.comb(n, k)


def read(run_dir: Path, name: str) -> Any:
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def test_repeats_give_one_item_per_attempt_and_closed_form_statistics_through_a_resume_and_lf(bench: Any) -> None:
    scripts = {f"[q-{t}]": attempts_script(outcomes) for t, outcomes in PLAN.items()}
    first = bench(
        tasks(list(PLAN)),
        scripts,
        "--smoltrace-repeats",
        "4",
        "-k",
        "repeat-0 or repeat-1",
        subprocess=True,
    )
    first.result.assert_outcomes(passed=4, failed=4, deselected=8)
    # the rest of the repeats, in the same run: the statistics cover all 16 attempts
    run = bench(tasks(list(PLAN)), None, "--smoltrace-repeats", "4", "--smoltrace-resume", "test-run", subprocess=True)
    run.result.assert_outcomes(passed=3, failed=5)
    rows = run.rows
    assert sorted(r["test_case_uid"] for r in rows) == sorted(
        f"smoltrace/tasks.json::tool::{t}[repeat-{r}]" for t in PLAN for r in range(4)
    )
    assert all(r["test_case_uid"].endswith(f"[repeat-{r['repeat']}]") for r in rows)
    by_task = {t: sorted(r["success"] for r in rows if r["task_id"] == t) for t in PLAN}
    assert by_task == {t: sorted(outcomes) for t, outcomes in PLAN.items()}

    (stats,) = read(run.run_dir, "statistics.json")
    n, successes = 16, sum(sum(o) for o in PLAN.values())
    assert (stats["model"], stats["agent_type"], stats["tasks"], stats["repeats"]) == ("openai/scripted", "tool", 4, 4)
    assert (stats["attempts"], stats["successes"]) == (n, successes) == (16, 7)
    assert stats["success_rate"] == pytest.approx(7 / 16, abs=1e-6)
    assert stats["success_rate_ci95"] == pytest.approx(list(wilson(7, 16)), abs=1e-6)
    for k in range(1, 5):
        expected_at = sum(pass_at(4, sum(o), k) for o in PLAN.values()) / 4
        expected_hat = sum(pass_hat(4, sum(o), k) for o in PLAN.values()) / 4
        assert stats["pass_at_k"][str(k)] == pytest.approx(expected_at, abs=1e-6), k
        assert stats["pass_hat_k"][str(k)] == pytest.approx(expected_hat, abs=1e-6), k
    assert stats["pass_at_k"]["1"] == pytest.approx(7 / 16, abs=1e-6)  # pass@1 is the mean success
    assert stats["pass_hat_k"]["4"] == pytest.approx(0.25, abs=1e-6)  # only t0 passes every attempt
    assert stats["per_task"] == [{"task_id": t, "attempts": 4, "successes": sum(o)} for t, o in PLAN.items()]
    assert stats["flaky_tasks"] == ["t1", "t3"]

    (board,) = read(run.run_dir, "leaderboard_row.json")
    assert board["repeats"] == 4 and board["flaky_task_count"] == 2 and board["model_label"] is None
    assert board["pass_at_k"] == stats["pass_at_k"] and board["pass_hat_k"] == stats["pass_hat_k"]
    assert board["success_rate_ci95"] == stats["success_rate_ci95"]
    # the terminal shows the same figures: 7/16 passed, pass@1 with its interval, pass^4
    low, high = stats["success_rate_ci95"]
    table = [line for line in run.stdout.splitlines() if line.startswith("openai/scripted  tool")]
    assert len(table) == 1 and "7/16" in table[0] and f"[{low:.3f}, {high:.3f}]" in table[0], run.stdout
    assert f"{stats['pass_hat_k']['4']:.3f}" in table[0]

    # --lf reruns exactly the failed attempts (the node ids name the repeat)
    failed = {r["test_case_uid"] for r in rows if not r["success"]}
    again = bench(tasks(list(PLAN)), None, "--smoltrace-repeats", "4", "--lf", run_id="lf", subprocess=True)
    assert {r["test_case_uid"] for r in again.rows} == failed and len(failed) == 9


def _models_file(path: Path, a: ScriptedModelServer, b: ScriptedModelServer) -> Path:
    path.write_text(
        f"""
- id: openai/model-a
  label: model-a
  api_base: {a.base_url}
  temperature: 0.2
- id: openai/model-b
  label: model-b
  api_base: {b.base_url}
  seed: 3
""",
        encoding="utf-8",
    )
    return path


SIX = [f"t{i}" for i in range(6)]


def test_two_models_in_one_session_under_xdist_each_with_its_own_settings_and_k_selects_one(
    pytester: pytest.Pytester,
) -> None:
    with ScriptedModelServer() as a, ScriptedModelServer() as b:
        for t in SIX:
            a.add_script(f"[q-{t}]", RIGHT)
            b.add_script(f"[q-{t}]", WRONG)
        (pytester.path / "tasks.json").write_text(json.dumps(tasks(SIX)), encoding="utf-8")
        models = _models_file(pytester.path / "models.yaml", a, b)
        common = ("-p", "no:randomly", "--smoltrace-models", models.name, "--smoltrace-dataset", "tasks.json")
        result = pytester.runpytest_subprocess(
            *common, "--smoltrace-temperature", "0.7", "--smoltrace-run-id", "two", "-n", "2"
        )
        result.assert_outcomes(passed=6, failed=6)
        run_dir = pytester.path / "smoltrace_results" / "two"
        rows = read(run_dir, "results.json")
        assert {(r["model_label"], r["model"], r["success"]) for r in rows} == {
            ("model-a", "openai/model-a", True),
            ("model-b", "openai/model-b", False),
        }
        assert sorted(r["test_case_uid"] for r in rows) == sorted(
            f"smoltrace/tasks.json::{m}::tool::{t}" for m in ("model-a", "model-b") for t in SIX
        )
        # each model's items reached its own server, with its own generation settings (the file over the options)
        assert {r.body["model"] for r in a.requests} == {"model-a"} and len(a.requests) == 6
        assert {r.body["model"] for r in b.requests} == {"model-b"} and len(b.requests) == 6
        assert all(r.body["temperature"] == 0.2 and "seed" not in r.body for r in a.requests)
        assert all(r.body["temperature"] == 0.7 and r.body["seed"] == 3 for r in b.requests)
        meta = read(run_dir, "metadata.json")
        assert [(m["label"], m["generation"]["applied"]) for m in meta["models"]] == [
            ("model-a", {"temperature": 0.2}),
            ("model-b", {"temperature": 0.7, "seed": 3}),
        ]
        board = read(run_dir, "leaderboard_row.json")
        assert [(r["model"], r["model_label"], r["agent_type"], r["successful_tests"]) for r in board] == [
            ("openai/model-a", "model-a", "tool", 6),
            ("openai/model-b", "model-b", "tool", 0),
        ]
        stats = read(run_dir, "statistics.json")
        assert [(s["model"], s["successes"], s["attempts"]) for s in stats] == [("model-a", 6, 6), ("model-b", 0, 6)]
        # the models are compared with each other (the first is the reference): 6 tasks all worse, p = 2 * 0.5**6
        (row,) = read(run_dir, "comparison.json")
        assert (row["kind"], row["model"], row["baseline_model"], row["paired_tasks"]) == (
            "models",
            "model-b",
            "model-a",
            6,
        )
        assert row["p_value"] == pytest.approx(2 * 0.5**6) and row["verdict"] == "regressed"
        assert row["difference"] == pytest.approx(-1.0)
        out = result.stdout.str()
        assert "model model-a:" in out and "model model-b:" in out
        # a worse model of the same session is a comparison, not a regression: the gate is about the baseline
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        # -k <label> selects one model's items
        a.reset_log()
        b.reset_log()
        only_b = pytester.runpytest_subprocess(*common, "--smoltrace-run-id", "only-b", "-k", "model-b")
        only_b.assert_outcomes(failed=6, deselected=6)
        assert not a.requests and len(b.requests) == 6


def test_the_gate_fails_a_regressed_model_with_exit_status_6_and_passes_the_same_model_renamed(
    bench: Any, server: ScriptedModelServer
) -> None:
    good = {f"[q-{t}]": RIGHT for t in SIX}
    baseline = bench(tasks(SIX), good, run_id="baseline", subprocess=True)
    baseline.result.assert_outcomes(passed=6)
    gate = ("--smoltrace-baseline", str(baseline.run_dir), "--smoltrace-fail-on-regression")

    # the same model under another name: paired against the baseline's only model, nothing changed
    renamed = bench(tasks(SIX), good, *gate, run_id="renamed", model="openai/renamed", subprocess=True)
    assert renamed.result.ret == pytest.ExitCode.OK, renamed.stdout
    (row,) = renamed.read("comparison.json")
    assert (row["kind"], row["model"], row["baseline_model"], row["paired_tasks"]) == (
        "baseline",
        "openai/renamed",
        "openai/scripted",
        6,
    )
    assert row["verdict"] == "no significant change" and row["p_value"] == 1.0

    # a clearly worse model: 5 of 6 tasks now fail; exact McNemar on the 5 discordant tasks: p = 2 * 0.5**5 > 0.05
    worse = {f"[q-{t}]": (RIGHT if t == "t0" else WRONG) for t in SIX}
    not_enough = bench(tasks(SIX), worse, *gate, run_id="five-worse", subprocess=True)
    assert not_enough.result.ret == pytest.ExitCode.TESTS_FAILED, not_enough.stdout
    assert not_enough.read("comparison.json")[0]["verdict"] == "no significant change"
    # all 6 fail: p = 2 * 0.5**6 = 0.03125 < 0.05 → regressed, exit status 6 (not 1)
    regressed = bench(tasks(SIX), {f"[q-{t}]": WRONG for t in SIX}, *gate, run_id="regressed", subprocess=True)
    assert regressed.result.ret == 6, regressed.stdout
    (row,) = regressed.read("comparison.json")
    assert row["verdict"] == "regressed" and row["p_value"] == pytest.approx(0.03125)
    assert (row["baseline_rate"], row["rate"]) == (1.0, 0.0)
    out = regressed.stdout
    assert "regressed" in out and "exit status 6 (--smoltrace-fail-on-regression)" in out
    # without the gate the same run is an ordinary failed session
    plain = bench(tasks(SIX), None, "--smoltrace-baseline", str(baseline.run_dir), run_id="no-gate", subprocess=True)
    assert plain.result.ret == pytest.ExitCode.TESTS_FAILED
    assert "add --smoltrace-fail-on-regression" in plain.stdout


def test_a_baseline_that_cannot_be_read_is_a_usage_error_before_any_item(bench: Any, tmp_path: Path) -> None:
    run = bench(tasks(SIX), None, "--smoltrace-baseline", str(tmp_path / "nowhere"), subprocess=True)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--smoltrace-baseline" in run.result.stderr.str() and str(tmp_path / "nowhere") in run.result.stderr.str()
    assert not run.run_dir.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- id: openai/a\n  colour: red\n", "models.yaml: row 1: unknown field 'colour'"),
        ("- label: a\n", "models.yaml: row 1: field 'id' is required"),
        ("- id: openai/a\n- id: openai/b\n  label: 'x y'\n", "row 2: field 'label': expected letters"),
        ("- id: openai/a\n  label: a\n- id: openai/b\n  label: a\n", "label 'a' is already used by models.yaml row 1"),
        ("- id: openai/a\n  temperature: hot\n", "row 1: field 'temperature': could not convert"),
        ("models: 3\n", "expected a non-empty list of models"),
        ("- id: [\n", "not valid YAML"),
    ],
)
def test_a_bad_models_file_names_the_file_row_and_field(pytester: pytest.Pytester, text: str, message: str) -> None:
    (pytester.path / "models.yaml").write_text(text, encoding="utf-8")
    result = pytester.runpytest_subprocess("--smoltrace-models", "models.yaml", "--smoltrace-dataset", "none")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str(), result.stderr.str()


def test_repeats_publish_to_the_hub_and_a_published_results_dataset_is_a_baseline(bench: Any, fake_hub: Any) -> None:
    def twice_each(answer: list[dict[str, str]], *options: str, run_id: str) -> Any:
        """Run the six tasks two repeats each, every one answered ``answer``."""
        return bench(
            tasks(SIX),
            {f"[q-{t}]": answer for t in SIX},
            "--smoltrace-repeats",
            "2",
            *options,
            run_id=run_id,
            subprocess=True,
        )

    good = twice_each(RIGHT, "--smoltrace-output", "hub", run_id="hub-base")
    assert good.result.ret == pytest.ExitCode.OK, good.stdout
    (results_repo,) = [r for r in fake_hub.repos.ids() if "-results-" in r]
    import datasets

    board = datasets.load_dataset("tester/smoltrace-leaderboard", split="train").to_list()
    assert [(r["repeats"], r["pass_hat_k"], r["flaky_task_count"]) for r in board] == [(2, '{"1": 1.0, "2": 1.0}', 0)]
    # the Hub's results dataset as the baseline (USER/NAME): every task now fails both repeats
    worse = twice_each(WRONG, "--smoltrace-baseline", results_repo, "--smoltrace-fail-on-regression", run_id="vs-hub")
    assert worse.result.ret == 6, worse.stdout
    (row,) = worse.read("comparison.json")
    assert (row["kind"], row["paired_tasks"], row["test"], row["verdict"]) == (
        "baseline",
        6,
        "paired permutation",
        "regressed",
    )
    assert row["p_value"] == pytest.approx(2 * 0.5**6)  # six tasks all worse: the most extreme of 2**6 sign patterns


def test_smoltrace_eval_runs_repeats_and_writes_the_statistics(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "smoltrace-eval"
    proc = subprocess.run(
        [
            str(script),
            *("--model", "scripted", "--agent-type", "tool", "--difficulty", "easy", "--repeats", "2"),
            *("--output-dir", str(tmp_path / "out"), "--run-id", "eval"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    (stats,) = read(tmp_path / "out" / "eval", "statistics.json")
    assert (stats["model"], stats["agent_type"], stats["tasks"], stats["repeats"], stats["attempts"]) == (
        "openai/scripted",
        "tool",
        5,
        2,
        10,
    )
    rows = read(tmp_path / "out" / "eval", "results.json")
    assert stats["successes"] == sum(r["success"] for r in rows)
    assert "pass^N" in proc.stdout


def test_one_task_that_moved_with_repeats_is_insufficient_data_not_a_crash() -> None:
    from smoltrace_export.comparison import compare_models
    from smoltrace_export.statistics import Outcome

    outcomes = [Outcome("a", "tool", "t", r, True) for r in range(2)] + [
        Outcome("b", "tool", "t", r, False) for r in range(2)
    ]
    (row,) = compare_models(outcomes)
    assert (row.paired_tasks, row.p_value, row.verdict) == (1, 1.0, "insufficient data")
