"""The plugins by role (issue 12): which process gets the controller and the executor, and the one run-and-judge path
that task items and the ``smoltrace_run`` fixture share."""

from __future__ import annotations

import json
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from pytest_smoltrace.testing import ScriptedModelServer

WEATHER = {
    "tool": [
        {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
        {"final_answer": "It is 20°C and partly cloudy."},
    ]
}

#: A conftest that writes, per process, which smoltrace plugins it has (workers and the controller alike).
ROLE_PROBE = """
import json, os

def pytest_sessionfinish(session):
    pm = session.config.pluginmanager
    name = getattr(session.config, "workerinput", {}).get("workerid", "main")
    with open(f"roles-{name}.json", "w") as f:
        json.dump({
            "controller": pm.has_plugin("smoltrace-controller"),
            "executor": pm.has_plugin("smoltrace-executor"),
            "fixtures": pm.has_plugin("smoltrace_fixtures") or pm.has_plugin("pytest_smoltrace.fixtures"),
        }, f)
"""


def _roles(directory: Path) -> dict[str, dict[str, bool]]:
    return {p.stem.removeprefix("roles-"): json.loads(p.read_text()) for p in sorted(directory.glob("roles-*.json"))}


@pytest.mark.parametrize(
    ("xdist", "expected"),
    [
        ((), {"main": {"controller": True, "executor": True, "fixtures": True}}),
        (
            ("-n", "2"),
            {
                "main": {"controller": True, "executor": False, "fixtures": True},
                "gw0": {"controller": False, "executor": True, "fixtures": True},
                "gw1": {"controller": False, "executor": True, "fixtures": True},
            },
        ),
    ],
    ids=["one-process", "xdist"],
)
def test_each_process_gets_the_plugins_of_its_role(
    pytester: pytest.Pytester, server: ScriptedModelServer, xdist: tuple[str, ...], expected: dict[str, object]
) -> None:
    server.add_script("Weather", WEATHER)
    tasks = [{"id": f"w{i}", "prompt": f"Weather in Paris {i}?", "agent_type": "tool"} for i in range(4)]
    (pytester.path / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    pytester.makeconftest(ROLE_PROBE)
    result = pytester.runpytest_subprocess(
        "--smoltrace-model", "openai/scripted", "--smoltrace-api-base", server.base_url,
        "--smoltrace-dataset", "tasks.json", "--smoltrace-run-id", "r", "-p", "no:randomly", *xdist,
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    assert _roles(pytester.path) == expected
    rows = json.loads((pytester.path / "smoltrace_results" / "r" / "results.json").read_text())
    assert sorted(r["task_id"] for r in rows) == ["w0", "w1", "w2", "w3"]  # the controller got every result


def test_an_inactive_session_has_neither_role(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROLE_PROBE)
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert _roles(pytester.path) == {"main": {"controller": False, "executor": False, "fixtures": True}}


def test_settings_are_the_option_table() -> None:
    """One definition of each option: every Settings field is an option of the table, and every option a field."""
    from pytest_smoltrace.options import OPTIONS
    from pytest_smoltrace.settings import Settings

    names = [spec.dest.removeprefix("smoltrace_") for spec in OPTIONS]
    assert len(set(names)) == len(names)
    assert sorted(f.name for f in fields(Settings)) == sorted(names)


def test_items_and_the_fixture_are_judged_by_one_path(pytester: pytest.Pytester, server: ScriptedModelServer) -> None:
    """The same task as a collected item and through ``smoltrace_run``: the same checks (a user judge returning a
    tuple of checks included), a trace with the same root span and the same cost rule."""
    server.add_script("Weather", WEATHER)
    (pytester.path / "tasks.json").write_text(
        json.dumps([{"id": "w", "prompt": "Weather in Paris?", "agent_type": "tool", "expected_tool": "get_weather"}]),
        encoding="utf-8",
    )
    pytester.makeconftest(
        """
        from pytest_smoltrace.records import Check

        def pytest_smoltrace_judge(task, record):
            return (Check("one", True, "x", "x"), Check("two", record.action_steps >= 1, ">= 1", record.action_steps))
        """
    )
    pytester.makepyfile(
        test_fixture=textwrap.dedent(
            """
            import json

            def test_same(smoltrace_run):
                run = smoltrace_run("Weather in Paris?", agent_type="tool", expected_tool="get_weather", id="w")
                root = [s for s in run.trace["spans"] if s["span_id"] == run.trace["root_span_id"]]
                with open("fixture.json", "w") as f:
                    json.dump({"checks": [[c.name, c.passed] for c in run.verdict.checks],
                               "root": root[0]["name"], "trace_id": run.record.trace_id,
                               "trace_doc_id": run.trace["trace_id"], "cost": run.record.cost_usd}, f)
                assert run.passed, run.explain()
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "--smoltrace-model", "openai/scripted", "--smoltrace-api-base", server.base_url,
        "--smoltrace-dataset", "tasks.json", "--smoltrace-run-id", "r", "-p", "no:randomly",
        "--smoltrace-price-input", "1", "--smoltrace-price-output", "2",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    fixture = json.loads((pytester.path / "fixture.json").read_text())
    run_dir = pytester.path / "smoltrace_results" / "r"
    (row,) = json.loads((run_dir / "results.json").read_text())
    (trace,) = json.loads((run_dir / "traces.json").read_text())
    item_root = [s for s in trace["spans"] if s["span_id"] == trace["root_span_id"]]
    assert fixture["checks"] == [[c["name"], c["passed"]] for c in row["checks"]]
    assert [name for name, _ in fixture["checks"]] == ["final_answer", "tool_called", "expected_tool", "one", "two"]
    assert fixture["root"] == item_root[0]["name"] == "tool w"
    assert fixture["trace_id"] == fixture["trace_doc_id"] and fixture["trace_id"] != row["trace_id"]
    assert fixture["cost"] == pytest.approx(row["cost_usd"]) and fixture["cost"] > 0
