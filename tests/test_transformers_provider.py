"""The ``transformers`` provider end to end on a tiny randomly initialised causal LM built in the test.

Its answers are nonsense, so the assertions are about the pipeline (records, verdict shape), not about success.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import tiny_llama

pytest.importorskip("torch")
pytest.importorskip("transformers")


def make_tiny_model(path: Path) -> Path:
    corpus = ["Thought: I will call the tool.", "final_answer(42)", "<code>print(1)</code>", "The weather is sunny."]
    return tiny_llama(path, corpus, max_position_embeddings=8192)


def test_transformers_provider_runs_the_real_pipeline(pytester: pytest.Pytester) -> None:
    model_dir = make_tiny_model(pytester.path / "tiny-lm")
    (pytester.path / "tasks.json").write_text(
        json.dumps(
            [
                {"id": "tiny", "prompt": "What is 6*7?", "expected_answer": 42, "expected_tool": "calculator"},
            ]
        )
    )
    result = pytester.runpytest(
        "--smoltrace-model",
        str(model_dir),
        "--smoltrace-provider",
        "transformers",
        "--smoltrace-dataset",
        "tasks.json",
        "--smoltrace-max-steps",
        "1",
        "--smoltrace-run-id",
        "tiny",
    )
    rows = json.loads((pytester.path / "smoltrace_results" / "tiny" / "results.json").read_text())
    assert {r["agent_type"] for r in rows} == {"tool", "code"}
    for row in rows:
        assert row["provider"] == "transformers" and row["model"] == str(model_dir)
        assert row["success"] is False  # a random model cannot solve it; the point is the pipeline
        assert row["stop_reason"] in ("max_steps", "error")
        assert row["prompt_tokens"] > 0, row["error"]  # the real model really ran and reported usage
        assert {c["name"] for c in row["checks"]} == {"final_answer", "tool_called", "expected_tool", "expected_answer"}
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 2
