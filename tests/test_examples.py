"""CI runs ``examples/`` against the scripted model: every example item must pass (and the examples stay honest)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import scripted_args

from pytest_smoltrace.testing import ScriptedModelServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def calls(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def code(text: str) -> dict[str, Any]:
    return {"code": text}


#: What a good model would answer to each example prompt (keys: substrings of the prompts).
SCRIPTS: dict[str, Any] = {
    # examples/smoltrace_examples.jsonl
    "weather in Tokyo": {
        "tool": [calls("get_weather", location="Tokyo"), {"final_answer": "18°C and clear"}],
        "code": [code("print(get_weather(location='Tokyo'))"), {"final_answer": "18°C, Clear"}],
    },
    "234 multiplied by 67": {
        "tool": [calls("calculator", expression="234*67"), {"final_answer": "15678"}],
        "code": [code("print(calculator(expression='234*67'))"), {"final_answer": 15678}],
    },
    "capital of France": {"tool": [{"final_answer": "Paris"}]},
    # examples/conftest.py: pytest_smoltrace_tasks (with the custom tool and the custom judge)
    "marathon of 26.2 miles": {
        "tool": [calls("convert_units", value=26.2, from_unit="mi", to_unit="km"), {"final_answer": "42.2"}],
        "code": [code("print(convert_units(value=26.2, from_unit='mi', to_unit='km'))"), {"final_answer": 42.2}],
    },
    "metres are in one mile": {
        "tool": [calls("convert_units", value=1, from_unit="mi", to_unit="m"), {"final_answer": "1609.344"}],
    },
    # examples/test_ordinary.py: smoltrace_run tests
    "weather in Paris": {
        "tool": [calls("get_weather", location="Paris"), {"final_answer": "20°C, partly cloudy"}],
        "code": [code("print(get_weather(location='Paris'))"), {"final_answer": "20°C"}],
    },
    "Convert 10 km to miles": {
        "tool": [calls("convert_units", value=10, from_unit="km", to_unit="mi"), {"final_answer": "6.21"}],
    },
}


@pytest.fixture
def examples(pytester: pytest.Pytester) -> Path:
    shutil.copytree(EXAMPLES, pytester.path, dirs_exist_ok=True)
    return pytester.path


def test_examples_pass_against_the_scripted_model(
    pytester: pytest.Pytester, examples: Path, server: ScriptedModelServer
) -> None:
    for key, script in SCRIPTS.items():
        server.add_script(key, script)
    result = pytester.runpytest(
        *scripted_args(server.base_url, "none"),
        "--smoltrace-run-id",
        "examples",
        "-p",
        "no:randomly",
        "-v",
    )
    # 5 items from the task file, 3 from the tasks hook, 4 ordinary tests (one plain, three smoltrace_run)
    result.assert_outcomes(passed=12)
    rows = json.loads((examples / "smoltrace_results" / "examples" / "results.json").read_text())
    assert sorted(r["test_case_uid"] for r in rows) == [
        "smoltrace/conftest::code::marathon_km",
        "smoltrace/conftest::tool::marathon_km",
        "smoltrace/conftest::tool::mile_in_metres",
        "smoltrace_examples.jsonl::code::multiply",
        "smoltrace_examples.jsonl::code::weather_tokyo",
        "smoltrace_examples.jsonl::tool::multiply",
        "smoltrace_examples.jsonl::tool::no_tool_needed",
        "smoltrace_examples.jsonl::tool::weather_tokyo",
    ]
    # the custom judge ran on the conversion tasks, and the custom tool's calls were recorded
    marathon = next(r for r in rows if r["test_case_uid"] == "smoltrace/conftest::tool::marathon_km")
    checks = {c["name"]: c["passed"] for c in marathon["checks"]}
    assert checks["converted_from_miles"] is True and marathon["tools_used"] == ["convert_units"]
    # the strong_model marker switched the model of that smoltrace_run test (fixture override in the conftest)
    models = {
        report.nodeid: dict(report.user_properties)["smoltrace_run"]["model"]
        for report in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
        if report.when == "call" and "smoltrace_run" in dict(report.user_properties)  # task items carry their own
    }
    assert models == {
        "test_ordinary.py::test_weather_in_paris[tool]": "openai/scripted",
        "test_ordinary.py::test_weather_in_paris[code]": "openai/scripted",
        "test_ordinary.py::test_conversion_with_the_strong_model": "openai/gpt-4.1",
    }


def test_examples_without_a_model_run_only_ordinary_tests(pytester: pytest.Pytester, examples: Path) -> None:
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, skipped=3)


def test_a_wrong_answer_fails_the_custom_judge(
    pytester: pytest.Pytester, examples: Path, server: ScriptedModelServer
) -> None:
    """The custom check is not decorative: converting from kilometres fails it (and only it)."""
    server.add_script(
        "metres are in one mile",
        {"tool": [calls("convert_units", value=1.609344, from_unit="km", to_unit="m"), {"final_answer": "1609.344"}]},
    )
    result = pytester.runpytest(
        "--smoltrace-model", "openai/scripted", "--smoltrace-api-base", server.base_url, "--smoltrace-dataset",
        "none", "-p", "no:randomly", "-k", "mile_in_metres",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PASS  expected_answer*", "*FAIL  converted_from_miles*"])


def _journal(run_dir: Path, outcomes: dict[str, bool]) -> Path:
    run_dir.mkdir(parents=True)
    lines = [
        {
            "nodeid": nodeid,
            "record": {"task_id": nodeid.rsplit("::", 1)[-1], "agent_type": "tool"},
            "verdict": {"checks": [{"name": "final_answer", "passed": passed}]},
        }
        for nodeid, passed in outcomes.items()
    ]
    (run_dir / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run_dir


def test_check_regressions_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("check_regressions", EXAMPLES / "check_regressions.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    base = _journal(
        tmp_path / "base", {"s::tool::a": True, "s::tool::b": True, "s::tool::c": False, "s::tool::d": True}
    )
    now = _journal(tmp_path / "now", {"s::tool::a": True, "s::tool::b": False, "s::tool::c": True, "s::tool::e": False})
    assert script.compare(base, now) == (["s::tool::b", "s::tool::d"], ["s::tool::c"], ["s::tool::e"])
    assert script.main([str(base), str(now)]) == 1
    assert "regressed: s::tool::b" in capsys.readouterr().out
    assert script.main([str(base), str(now), "--allowed", "2"]) == 0
    assert script.main([str(tmp_path / "no-baseline"), str(now)]) == 0
