"""``smoltrace-eval``: SMOLTRACE flags map onto the plugin's options, refused flags say why, runs are pytest runs."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace import api, cli
from pytest_smoltrace.options import OPTIONS, OPTIONS_BY_NAME
from pytest_smoltrace.testing import ScriptedModelServer

MODEL = ["--model", "m"]
MODEL_ARGS = ["--smoltrace-model", "m"]
HAS_HF_INFERENCE_PROVIDER = any(s.smoltrace_flag == "--hf-inference-provider" for s in OPTIONS)

#: (smoltrace-eval arguments besides --model m, the pytest arguments after --smoltrace-model m). Written out by
#: hand on purpose: a test derived from the option table would agree with any mistake in it.
CASES: list[Any] = [
    (["--provider", "ollama"], ["--smoltrace-provider", "ollama"]),
    (["--api-base", "http://127.0.0.1:8000/v1"], ["--smoltrace-api-base", "http://127.0.0.1:8000/v1"]),
    (["--agent-type", "code"], ["--smoltrace-agent-type", "code"]),
    (["--dataset-name", "tasks.jsonl"], ["--smoltrace-dataset", "tasks.jsonl"]),
    (["--split", "test"], ["--smoltrace-split", "test"]),
    (["--dataset-revision", "abc123"], ["--smoltrace-revision", "abc123"]),
    (["--difficulty", "hard"], ["--smoltrace-difficulty", "hard"]),
    (["--enable-tools", "read_file", "grep"], ["--smoltrace-tools", "read_file", "--smoltrace-tools", "grep"]),
    (["--enable-tools", "a,b", "--enable-tools", "c"], ["--smoltrace-tools", "a,b", "--smoltrace-tools", "c"]),
    (["--search-provider", "brave"], ["--smoltrace-search-provider", "brave"]),
    (["--working-directory", "/srv/w"], ["--smoltrace-working-dir", "/srv/w"]),
    (["--tool-timeout", "5"], ["--smoltrace-tool-timeout", "5"]),
    (["--allow-private-network"], ["--smoltrace-allow-private-network"]),
    (
        ["--mcp-server-url", "http://a/mcp", "--mcp-server-url", "b=http://b/sse"],
        ["--smoltrace-mcp-server-url", "http://a/mcp", "--smoltrace-mcp-server-url", "b=http://b/sse"],
    ),
    (["--prompt-yml", "p.yml"], ["--smoltrace-prompt-yml", "p.yml"]),
    (
        ["--additional-imports", "numpy", "pandas"],
        ["--smoltrace-additional-imports", "numpy", "--smoltrace-additional-imports", "pandas"],
    ),
    (["--max-steps", "3"], ["--smoltrace-max-steps", "3"]),
    # generation settings (SMOLTRACE 0.2.11's flags, mapped onto the options; see docs/generation.md)
    (["--temperature", "0.2"], ["--smoltrace-temperature", "0.2"]),
    (["--temperature", "0"], ["--smoltrace-temperature", "0"]),
    (["--top-p", "0.9"], ["--smoltrace-top-p", "0.9"]),
    (["--top-k", "40"], ["--smoltrace-top-k", "40"]),
    (["--max-new-tokens", "512"], ["--smoltrace-max-tokens", "512"]),
    (["--seed", "7"], ["--smoltrace-seed", "7"]),  # not in SMOLTRACE: our extension
    (["--reasoning-effort", "low"], ["--smoltrace-reasoning-effort", "low"]),
    (["--enable-thinking", "false"], ["--smoltrace-enable-thinking", "false"]),
    (
        ["--enable-thinking", "true", "--temperature", "0.7", "--max-new-tokens", "64"],
        ["--smoltrace-temperature", "0.7", "--smoltrace-max-tokens", "64", "--smoltrace-enable-thinking", "true"],
    ),
    # several models, repeats, comparison (issue 13)
    (["--models", "models.yml"], ["--smoltrace-models", "models.yml"]),
    (["--judge-model", "openai/gpt-4.1"], ["--smoltrace-judge-model", "openai/gpt-4.1"]),
    (["--judge-provider", "ollama"], ["--smoltrace-judge-provider", "ollama"]),
    (["--judge-api-base", "http://127.0.0.1:9/v1"], ["--smoltrace-judge-api-base", "http://127.0.0.1:9/v1"]),
    (["--task-preset", "gaia"], ["--smoltrace-task-preset", "gaia"]),
    (["--field-map", "q=prompt"], ["--smoltrace-field-map", "q=prompt"]),
    (["--record-mode", "none"], ["--smoltrace-record-mode", "none"]),
    (["--cassette-dir", "cassettes"], ["--smoltrace-cassette-dir", "cassettes"]),
    (["--repeats", "3"], ["--smoltrace-repeats", "3"]),
    (["--baseline", "smoltrace_results/r0"], ["--smoltrace-baseline", "smoltrace_results/r0"]),
    (["--fail-on-regression"], ["--smoltrace-fail-on-regression"]),
    (["--task-timeout", "60"], ["--smoltrace-timeout", "60"]),
    (["--concurrency", "2"], ["--smoltrace-concurrency", "2"]),
    (["--retries", "0"], ["--smoltrace-retries", "0"]),
    (["--max-rpm", "30"], ["--smoltrace-max-rpm", "30"]),
    (["--limits-url", "redis://127.0.0.1:6379/0"], ["--smoltrace-limits-url", "redis://127.0.0.1:6379/0"]),
    (["--shard", "2/4"], ["--smoltrace-shard", "2/4"]),
    (["--enable-otel"], []),  # traces are always recorded; OTLP export needs an endpoint (see the next test)
    (["--otlp"], ["--smoltrace-otlp"]),
    (
        ["--price-output", "2", "--price-input", "1"],
        ["--smoltrace-price-input", "1", "--smoltrace-price-output", "2"],
    ),
    (["--gpu-metrics"], ["--smoltrace-gpu-metrics"]),
    (["--no-gpu-metrics"], ["--smoltrace-no-gpu-metrics"]),
    (["--disable-gpu-metrics"], ["--smoltrace-no-gpu-metrics"]),
    (["--sample-interval", "0.5"], ["--smoltrace-sample-interval", "0.5"]),
    (["--grid-intensity", "300"], ["--smoltrace-grid-intensity", "300"]),
    (["--energy-price", "0.2"], ["--smoltrace-energy-price", "0.2"]),
    (["--output-format", "json"], ["--smoltrace-output", "json"]),
    (["--output-format", "none"], ["--smoltrace-output", "none"]),
    # SMOLTRACE published privately unless --public
    (["--output-format", "hub"], ["--smoltrace-output", "hub", "--smoltrace-private"]),
    (["--output-format", "hub", "--public"], ["--smoltrace-output", "hub"]),
    (["--private"], ["--smoltrace-private"]),
    (["--output-dir", "out"], ["--smoltrace-output-dir", "out"]),
    (["--run-id", "r1"], ["--smoltrace-run-id", "r1"]),
    (["--resume", "r0"], ["--smoltrace-resume", "r0"]),
    (["--resume-force"], ["--smoltrace-resume-force"]),
    (["--parallel-workers", "4"], ["-n", "4", "--dist", "loadscope"]),
    (["--parallel-workers", "1"], []),
    (["--quiet"], ["-q"]),
    (["--debug"], ["-v", "--log-cli-level=DEBUG"]),
    (["--hf-token", "hf_secret"], []),
    (["--hf-token-file", "token.txt"], []),
    (["--allow-local-code-execution"], []),
    (["--dry-run"], []),
    (  # prints the Hugging Face Job (tests/test_hf_job.py): its flags add nothing to the pytest command
        [
            *("--print-hf-job", "--hf-job-image", "python:3.12", "--hf-job-flavor", "cpu-upgrade"),
            *("--hf-job-timeout", "1h", "--hf-job-secret", "WANDB_API_KEY", "--hf-job-install", "pytest-smoltrace"),
        ],
        [],
    ),
    (["--run-id", "r", "--", "-k", "weather", "-x"], ["--smoltrace-run-id", "r", "-k", "weather", "-x"]),
    (
        ["--debug", "--parallel-workers", "2", "--agent-type", "tool"],
        ["--smoltrace-agent-type", "tool", "-n", "2", "--dist", "loadscope", "-v", "--log-cli-level=DEBUG"],
    ),
    pytest.param(
        ["--hf-inference-provider", "together"],
        ["--smoltrace-hf-inference-provider", "together"],
        marks=pytest.mark.skipif(not HAS_HF_INFERENCE_PROVIDER, reason="no option for it yet (refused, tested below)"),
    ),
]
if any(s.name == "max-cost" for s in OPTIONS):
    CASES.append((["--max-cost", "1.5"], ["--smoltrace-max-cost", "1.5"]))


@pytest.mark.parametrize(("argv", "expected"), CASES)
def test_flag_mapping(argv: list[str], expected: list[str]) -> None:
    assert cli.translate([*MODEL, *argv]) == [*MODEL_ARGS, *expected]


def test_enable_otel_exports_only_to_a_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert "--smoltrace-otlp" not in cli.translate(["--model", "m", "--enable-otel"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert "--smoltrace-otlp" in cli.translate(["--model", "m", "--enable-otel"])  # the signal-specific one counts
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert "--smoltrace-otlp" in cli.translate(["--model", "m", "--enable-otel"])


def test_every_flag_has_a_mapping_case() -> None:
    """A new option (or own flag) without a case above fails here."""
    covered = {arg for argv, _ in (c.values if hasattr(c, "values") else c for c in CASES) for arg in argv}
    parser = cli.build_parser()
    flags = {
        flag
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help" and action.help != "==SUPPRESS=="
    }
    assert flags - covered - {"--model"} == set()


def test_option_table_is_the_source() -> None:
    """Every plugin option is reachable, under its SMOLTRACE flag when it has one, else as --<name>."""
    rows = {r.becomes.split()[0]: r for r in cli.mapping_rows()}
    for spec in OPTIONS:
        row = rows[spec.flag]
        assert row.flag.split()[0] == (spec.smoltrace_flag or f"--{spec.name}")
        assert row.section == ("smoltrace" if spec.smoltrace_flag else "extension")


def test_secrets_never_reach_the_arguments(tmp_path: Path) -> None:
    invocation = cli.parse([*MODEL, "--hf-token", "hf_secret"])
    assert "hf_secret" not in repr(invocation) and "hf_secret" not in invocation.pytest_args
    assert invocation.token() == "hf_secret"
    (tmp_path / "token.txt").write_text("hf_from_file\n")
    assert cli.parse([*MODEL, "--hf-token-file", str(tmp_path / "token.txt")]).token() == "hf_from_file"


def test_hf_token_is_set_for_the_run_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(args: list[str], plugins: Any = ()) -> api.RunSummary:
        seen["args"], seen["token"] = list(args), os.environ.get("HF_TOKEN")
        return api.RunSummary(run_id="r", run_dir=None, exit_code=3, agents=(), results=())

    monkeypatch.setattr(api, "run_pytest", fake_run)
    monkeypatch.setenv("HF_TOKEN", "before")
    assert cli.main([*MODEL, "--hf-token", "hf_secret", "--agent-type", "tool"]) == 3  # pytest's exit code
    assert seen == {"args": [*MODEL_ARGS, "--smoltrace-agent-type", "tool"], "token": "hf_secret"}
    assert os.environ["HF_TOKEN"] == "before"
    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "t").write_text("hf_file\n")
    assert cli.main([*MODEL, "--hf-token-file", str(tmp_path / "t")]) == 3
    assert seen["token"] == "hf_file" and "HF_TOKEN" not in os.environ
    assert cli.main([*MODEL, "--hf-token-file", str(tmp_path / "missing")]) == 4
    assert "hf_secret" not in capsys.readouterr().err


def test_dry_run_prints_the_pytest_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*MODEL, "--agent-type", "tool", "--hf-token", "hf_secret", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "pytest --smoltrace-model m --smoltrace-agent-type tool -m smoltrace"


@pytest.mark.parametrize("flag", [f for f in cli.UNSUPPORTED if f not in cli._supported_flags()])
def test_unsupported_flags_are_refused_with_the_reason(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(cli.CliError, match=f"^{flag} is not supported by smoltrace-eval: .+"):
        cli.translate([*MODEL, flag, "0.2"])
    assert cli.main([flag, "x", *MODEL]) == 4
    err = capsys.readouterr().err
    assert flag in err and cli.UNSUPPORTED[flag] in err


def test_generation_flags_reach_the_dry_run_command(capsys: pytest.CaptureFixture[str]) -> None:
    """SMOLTRACE's generation flags are no longer refused: the printed pytest command carries the options."""
    argv = [*MODEL, "--temperature", "0.2", "--top-p", "0.9", "--top-k", "40", "--max-new-tokens", "512"]
    argv += ["--reasoning-effort", "high", "--enable-thinking", "false", "--dry-run"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == (
        "pytest --smoltrace-model m --smoltrace-temperature 0.2 --smoltrace-top-p 0.9 --smoltrace-top-k 40 "
        "--smoltrace-max-tokens 512 --smoltrace-reasoning-effort high --smoltrace-enable-thinking false -m smoltrace"
    )
    for flag in ("--temperature", "--top-p", "--top-k", "--max-new-tokens", "--reasoning-effort", "--enable-thinking"):
        assert flag not in cli.UNSUPPORTED


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--temperature", "-0.5"], "argument --temperature:"),
        (["--top-p", "0"], "argument --top-p: must be in (0, 1]"),
        (["--top-k", "0"], "argument --top-k: must be ≥ 1"),
        (["--max-new-tokens", "many"], "argument --max-new-tokens: invalid literal"),
        (["--reasoning-effort", "extreme"], "argument --reasoning-effort: expected one of none, minimal, low"),
        (["--enable-thinking", "maybe"], "argument --enable-thinking: expected true or false"),
        (["--output-format", "opensearch"], "argument --output-format: 'opensearch' is not supported: OpenSearch"),
        (["--search-provider", "tavily"], "argument --search-provider: 'tavily' is not supported"),
        (["--agent-type", "all"], "argument --agent-type: expected one of tool, code, both; got 'all'"),
        (["--task-timeout", "-1"], "argument --task-timeout: must be > 0"),
        (["--max-steps", "x"], "argument --max-steps: invalid literal"),
        (["--parallel-workers", "0"], "argument --parallel-workers: must be ≥ 1"),
        (["--private", "--public"], "--private and --public contradict each other"),
        (["--hf-token", "a", "--hf-token-file", "b"], "give one of them"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--output", "json"], "unrecognized arguments: --output"),  # no abbreviations of --output-format
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(cli.CliError) as excinfo:
        cli.translate([*MODEL, *argv])
    assert message in str(excinfo.value)


def test_model_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--agent-type", "tool"]) == 4
    assert "required: --model" in capsys.readouterr().err


def test_help_lists_the_mapping(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    for row in cli.mapping_rows():
        target = row.note if row.section == "unsupported" else row.becomes
        assert f"{row.flag} {target}" in lines, row
    for expected in (
        "--dataset-name NAME_OR_PATH --smoltrace-dataset NAME_OR_PATH",
        "--task-timeout S --smoltrace-timeout S",
        "--enable-otel (nothing; --smoltrace-otlp when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set)",
        "--parallel-workers N -n N --dist loadscope",
        "--api-base URL --smoltrace-api-base URL",
    ):
        assert expected in lines
    assert "SMOLTRACE flags refused (exit code 4), and why:" in out
    assert "default: json (SMOLTRACE: hub)" in " ".join(lines)
    refused = out[out.index("SMOLTRACE flags refused") :]
    assert "--opensearch-url" in refused
    for flag in ("--temperature", "--top-p", "--top-k", "--max-new-tokens", "--reasoning-effort", "--enable-thinking"):
        assert flag not in refused  # mapped onto the generation options now
    assert "--temperature T --smoltrace-temperature T" in lines
    assert "--max-new-tokens N --smoltrace-max-tokens N" in lines
    assert "--enable-thinking BOOL --smoltrace-enable-thinking BOOL" in lines


def test_cli_run_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: ScriptedModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real run against the scripted server; the current directory's own tests and task files are not collected."""
    server.add_script(
        "[c-weather]",
        {
            "tool": [
                {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
                {"final_answer": "20°C"},
            ]
        },
    )
    server.add_script("[c-wrong]", {"tool": [{"final_answer": "no idea"}]})
    tasks = [
        {
            "id": "weather",
            "prompt": "Weather in Paris? [c-weather]",
            "expected_tool": "get_weather",
            "agent_type": "tool",
        },
        {"id": "wrong", "prompt": "Compute 2+2 [c-wrong]", "expected_answer": 4, "agent_type": "code"},
    ]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (tmp_path / "test_mine.py").write_text("def test_not_a_benchmark():\n    raise AssertionError('collected')\n")
    (tmp_path / "conftest.py").write_text("raise RuntimeError('conftest loaded')\n")
    (tmp_path / "smoltrace_local.jsonl").write_text('{"id": "local", "prompt": "p"}\n')
    monkeypatch.chdir(tmp_path)
    code = cli.main(
        [
            "--model",
            "openai/scripted",
            "--api-base",
            server.base_url,
            "--dataset-name",
            "tasks.json",  # relative to the current directory
            "--agent-type",
            "tool",
            "--run-id",
            "cli-run",
            "--disable-gpu-metrics",
            "--",
            "-p",
            "no:randomly",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 passed" in out and "test_not_a_benchmark" not in out and "conftest loaded" not in out
    run_dir = tmp_path / "smoltrace_results" / "cli-run"
    rows = json.loads((run_dir / "results.json").read_text())
    assert [(r["test_case_uid"], r["outcome"]) for r in rows] == [("smoltrace/tasks.json::tool::weather", "passed")]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["options"]["gpu_metrics"] is False and meta["options"]["agent_type"] == "tool"
    assert not (tmp_path / ".pytest_cache").exists()
    # the same tasks for both agent types: the code item fails, and the exit code is pytest's
    assert cli.main(["--model", "openai/scripted", "--api-base", server.base_url, "--dataset-name", "tasks.json",
                     "--run-id", "cli-run-2", "--quiet"]) == 1  # fmt: skip
    rows = json.loads((tmp_path / "smoltrace_results" / "cli-run-2" / "results.json").read_text())
    assert {r["test_case_uid"]: r["outcome"] for r in rows} == {
        "smoltrace/tasks.json::tool::weather": "passed",
        "smoltrace/tasks.json::code::wrong": "failed",
    }
    assert OPTIONS_BY_NAME["output"].default == "json"  # the run directory above exists because of this default


def test_docs_options_md_is_up_to_date() -> None:
    """docs/options.md is generated from the option table: regenerate with ``python docs/gen_options.py``."""
    path = Path(__file__).resolve().parents[1] / "docs" / "gen_options.py"
    spec = importlib.util.spec_from_file_location("gen_options", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for option in OPTIONS:
        assert f"`{option.flag}`" in text
    assert module.TARGET.read_text(encoding="utf-8") == text, "docs/options.md is stale: run python docs/gen_options.py"
