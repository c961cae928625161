"""What a person and a CI UI see per item (issue 15, item 5): the run so far on each verbose line, and the item's
figures as JUnit XML properties — each checked against results.json."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from typing import Any

TASKS = [
    {"id": f"t{i}", "prompt": f"[p-t{i}] What is six times seven?", "expected_answer": "42", "agent_type": "tool"}
    for i in range(4)
]
SCRIPTS = {f"[p-t{i}]": [{"final_answer": "42" if i != 2 else "41"}] for i in range(4)}
LINE = re.compile(r"^(\S+) (PASSED|FAILED|ERROR) · (\d+) done · (\d+)% passed · ([\d,]+) tokens · \$([\d.]+)")


def test_verbose_lines_show_the_run_so_far_and_junit_carries_each_items_figures(bench: Any) -> None:
    run = bench(TASKS, SCRIPTS, "-v", "--junitxml", "junit.xml", model="openai/gpt-4o-mini", subprocess=True)
    run.result.assert_outcomes(passed=3, failed=1)
    rows = {r["test_case_uid"]: r for r in run.rows}
    lines = [m for m in map(LINE.match, run.stdout.splitlines()) if m]
    assert [m[1] for m in lines] == list(rows), run.stdout  # one progress line per item, in order
    tokens = cost = 0.0
    for done, match in enumerate(lines, start=1):
        row = rows[match[1]]
        tokens += row["total_tokens"]
        cost += row["cost_usd"]
        passed = sum(rows[m[1]]["success"] for m in lines[:done])
        assert (int(match[3]), int(match[4]), int(match[5].replace(",", ""))) == (
            done,
            round(100 * passed / done),
            tokens,
        )
        assert float(match[6]) == round(cost, 4)
    assert lines[-1][4] == "75"
    # the short summary's FAILED line is pytest's own, without the progress
    (short,) = [line for line in run.stdout.splitlines() if line.startswith("FAILED ")]
    assert "done" not in short and short.startswith("FAILED smoltrace/tasks.json::tool::t2 - ")

    cases = ElementTree.parse(run.run_dir.parents[1] / "junit.xml").getroot().iter("testcase")
    seen = 0
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        row = rows[f"smoltrace/tasks.json::tool::{case.get('name')}"]
        assert props == {
            "smoltrace.model": row["model"],
            "smoltrace.agent_type": "tool",
            "smoltrace.repeat": "0",
            "smoltrace.tokens": str(row["total_tokens"]),
            "smoltrace.cost_usd": str(row["cost_usd"]),
            "smoltrace.steps": str(row["steps"]),
            "smoltrace.stop_reason": row["stop_reason"],
            "smoltrace.trace_id": row["trace_id"],
        }
        seen += 1
    assert seen == 4
    # and the run directory has its page, naming every item
    page = (run.run_dir / "report.html").read_text(encoding="utf-8")
    assert all(nodeid in page for nodeid in rows)
