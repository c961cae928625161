"""``smoltrace-eval --print-hf-job``: the rendered ``huggingface_hub.run_job(...)`` call binds to the installed
huggingface_hub's real ``run_job`` signature, the ``hf jobs run`` argv parses with the installed ``hf`` CLI's own
parser (and its ``--dry-run``, offline), and no secret value appears anywhere. No job is started: the Hub is
unreachable here (``HF_ENDPOINT`` points at a closed port on 127.0.0.1)."""

from __future__ import annotations

import inspect
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import huggingface_hub
import pytest

from pytest_smoltrace.cli import main, parse, translate
from pytest_smoltrace.hf_job import HfJob
from pytest_smoltrace.version import __version__

HF_SECRET = "hf_SECRET_value_never_printed"
OPENAI_SECRET = "sk-SECRET-openai-never-printed"
REDIS_PASSWORD = "redis-pw-never-printed"
BENCH = ["--model", "openai/gpt-4.1-nano", "--agent-type", "tool", "--max-rpm", "60", "--parallel-workers", "4"]
JOB = ["--print-hf-job", "--hf-job-flavor", "cpu-upgrade", "--hf-job-timeout", "2h"]


def job_of(argv: list[str]) -> HfJob:
    job = parse(argv).hf_job
    assert job is not None
    return job


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    monkeypatch.setenv("SMOLTRACE_LIMITS_URL", f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0")


def assert_no_secret(text: str) -> None:
    for secret in (HF_SECRET, OPENAI_SECRET, REDIS_PASSWORD):
        assert secret not in text


def test_the_python_call_binds_to_huggingface_hubs_run_job(monkeypatch: pytest.MonkeyPatch, secrets_env: None) -> None:
    job = job_of([*BENCH, *JOB, "--hf-token", HF_SECRET])
    source = job.python_text()
    assert_no_secret(source)
    signature = inspect.signature(huggingface_hub.run_job)
    bound: list[inspect.BoundArguments] = []

    class Submitted:
        url = "https://huggingface.co/jobs/me/1"

    def run_job(*args: Any, **kwargs: Any) -> Submitted:  # the real signature decides; nothing is submitted
        bound.append(signature.bind(*args, **kwargs))
        return Submitted()

    monkeypatch.setattr(huggingface_hub, "run_job", run_job)
    exec(compile(source, "<print-hf-job>", "exec"), {"print": lambda *a: None})
    (call,) = bound
    assert call.arguments["image"] == "python:3.12"
    assert call.arguments["command"] == ["bash", "-c", job.command[2]]
    assert call.arguments["flavor"] == "cpu-upgrade" and call.arguments["timeout"] == "2h"
    # the values come from the environment of whoever runs the script, never from the printed text
    assert call.arguments["secrets"] == {"HF_TOKEN": HF_SECRET, "OPENAI_API_KEY": OPENAI_SECRET}


def hf_jobs_run() -> click.Command:
    """``hf jobs run`` of the installed hf CLI, found from its top-level app as the CLI finds it."""
    from huggingface_hub.cli.hf import app

    command: click.Command = app
    for name in ("jobs", "run"):
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
    return command


def test_the_hf_argv_parses_with_the_installed_hf_cli() -> None:
    job = job_of([*BENCH, *JOB, "--hf-job-secret", "WANDB_API_KEY"])
    argv = job.cli_argv()
    assert argv[:3] == ["hf", "jobs", "run"] and shlex.split(job.cli_text()) == argv
    params = hf_jobs_run().make_context("run", argv[3:]).params
    assert params["image"] == "python:3.12" and list(params["command"]) == list(job.command)
    assert params["flavor"] == "cpu-upgrade" and params["timeout"] == "2h"
    assert list(params["secrets"]) == ["HF_TOKEN", "OPENAI_API_KEY", "WANDB_API_KEY"]  # names only
    # the job runs what --dry-run prints, after installing this version
    install, _, run = job.command[2].partition(" && ")
    assert install == f"pip install -q pytest-smoltrace=={__version__}"
    assert shlex.split(run) == ["pytest", "-p", "no:cacheprovider", *translate(BENCH), "-m", "smoltrace"]


def test_a_password_in_a_url_moves_to_a_secret_by_name(secrets_env: None) -> None:
    url = f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"
    job = job_of([*BENCH, "--limits-url", url, "--print-hf-job"])
    assert_no_secret(job.text())
    assert "SMOLTRACE_LIMITS_URL" in job.secrets and "--smoltrace-limits-url" not in job.command[2]
    assert "pytest-smoltrace[redis]==" in job.command[2]  # the store's client is installed in the job
    params = hf_jobs_run().make_context("run", job.cli_argv()[3:]).params
    assert "SMOLTRACE_LIMITS_URL" in params["secrets"]


def test_the_local_and_transformers_extras_and_provider_keys() -> None:
    job = job_of(["--model", "Qwen/Qwen2.5-1.5B-Instruct", "--provider", "transformers", "--print-hf-job"])
    assert "pytest-smoltrace[transformers]==" in job.command[2] and job.secrets == ("HF_TOKEN",)
    job = job_of(["--model", "anthropic/claude-x", "--search-provider", "serper", "--print-hf-job"])
    assert job.secrets == ("HF_TOKEN", "ANTHROPIC_API_KEY", "SERPER_API_KEY")
    job = job_of(["--model", "openai/x", "--api-base", "http://127.0.0.1:8000/v1", "--print-hf-job"])
    assert job.secrets == ("HF_TOKEN",)  # a loopback server needs no key


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hf-job-flavor", "a10g-small"], "--hf-job-flavor goes with --print-hf-job"),
        (["--print-hf-job", "--hf-job-timeout", "two hours"], "--hf-job-timeout: expected seconds or a number"),
        (["--print-hf-job", "--hf-job-secret", "NOT A NAME"], "--hf-job-secret: expected an environment variable"),
        (
            ["--print-hf-job", "--mcp-server-url", "https://user:pw@mcp.example/sse"],
            "--smoltrace-mcp-server-url: the URL carries credentials",
        ),
    ],
)
def test_bad_hf_job_flags_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model", "openai/x", *argv]) == 4
    err = capsys.readouterr().err
    assert message in err and "pw@" not in err


def test_smoltrace_eval_prints_both_forms_and_runs_nothing(tmp_path: Path) -> None:
    """The console script, in a fresh interpreter: exit 0, both forms printed, nothing run (no run directory)."""
    script = Path(sys.executable).with_name("smoltrace-eval")
    env = {**os.environ, "HF_TOKEN": HF_SECRET, "OPENAI_API_KEY": OPENAI_SECRET, "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [str(script), *BENCH, *JOB, "--hf-token", HF_SECRET, "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hf jobs run --flavor cpu-upgrade --timeout 2h --secrets HF_TOKEN" in proc.stdout
    assert "job = run_job(" in proc.stdout and "'HF_TOKEN': os.environ['HF_TOKEN']," in proc.stdout
    assert_no_secret(proc.stdout + proc.stderr)
    assert not (tmp_path / "out").exists()


def test_hf_jobs_run_dry_run_accepts_it_offline(tmp_path: Path) -> None:
    """The installed ``hf`` itself, ``--dry-run``: it resolves the configuration and submits nothing (the endpoint is a
    closed port); secrets show as ``***``."""
    hf = shutil.which("hf") or str(Path(sys.executable).with_name("hf"))
    if not Path(hf).exists():
        pytest.skip("the hf CLI (huggingface_hub's console script) is not installed")
    job = job_of([*BENCH, *JOB])
    env = {
        **os.environ,
        "HF_TOKEN": HF_SECRET,
        "OPENAI_API_KEY": OPENAI_SECRET,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    argv = [hf, *job.cli_argv()[1:3], "--dry-run", *job.cli_argv()[3:]]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "(dry run) Job not submitted." in out and "flavor   cpu-upgrade" in out and "timeout  2h" in out
    assert "HF_TOKEN=***" in out and "OPENAI_API_KEY=***" in out
    assert "--smoltrace-model openai/gpt-4.1-nano" in out
    assert_no_secret(proc.stdout + proc.stderr)
