"""The ``transformers`` provider end to end on a tiny randomly initialised causal LM built in the test.

Its answers are nonsense, so the assertions are about the pipeline (records, verdict shape), not about success.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}{{ c['text'] }}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tiny_model(path: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    corpus = ["Thought: I will call the tool.", "final_answer(42)", "<code>print(1)</code>", "The weather is sunny."]
    tok.train_from_iterator(corpus * 20, trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(fast),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


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
