"""The checks before a run (issue 11, part 7 and the first half of part 4).

What would fail every item — a missing API key, a model server that is not there, a dataset that does not exist, an
output directory that cannot be written — is one usage error (exit code 4) naming the option, before any item runs,
before litellm/smolagents/datasets are imported, and with no run directory left behind. Before these checks a
missing key became ``ERROR (3 retries: HTTP 500)`` on every item, a dataset typo a collection error after the heavy
imports (with an empty run directory), and a read-only or full output directory an INTERNALERROR.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_smoltrace import preflight
from pytest_smoltrace.preflight import CREDENTIALS, HF_TOKEN_ENV, required_credentials

#: Modules that must not be imported before the checks have spoken (litellm alone takes seconds).
HEAVY = ("litellm", "smolagents", "datasets", "torch", "transformers", "openinference")
#: A conftest that records, at interpreter exit, which heavy modules the process had imported.
HEAVY_CONFTEST = f"""
import atexit, json, sys

def _record():
    with open("heavy.json", "w") as handle:
        json.dump(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})), handle)

atexit.register(_record)
"""
ALL_KEYS = sorted({name for names in CREDENTIALS.values() for name in names} | set(HF_TOKEN_ENV))


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL_KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.delenv("SMOLTRACE_API_BASE", raising=False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[str]]:
    """``pytest ARGS`` in a fresh interpreter; also the heavy modules that process had imported when it exited."""
    pytester.makeconftest(HEAVY_CONFTEST)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)
    heavy = json.loads((pytester.path / "heavy.json").read_text())
    return result, heavy


def assert_refused(pytester: pytest.Pytester, result: pytest.RunResult, heavy: list[str], *messages: str) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: {messages[0]}", *messages[1:]], output
    assert heavy == [], f"imported before the usage error: {heavy}"
    assert not (pytester.path / "smoltrace_results").exists(), "a usage error left a run directory"
    assert "Traceback" not in output and "INTERNALERROR" not in output


# ── credentials ───────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("openai/gpt-4.1-nano", "OPENAI_API_KEY"),
        ("anthropic/claude-3-5-haiku-latest", "ANTHROPIC_API_KEY"),
        ("mistral/mistral-small-latest", "MISTRAL_API_KEY"),
    ],
)
def test_missing_api_key_is_a_usage_error_before_any_import(
    pytester: pytest.Pytester, no_keys: None, model: str, variable: str
) -> None:
    result, heavy = fresh_run(pytester, "--smoltrace-model", model)
    prefix = model.partition("/")[0]
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-model {model}: {variable} is not set (litellm reads the {prefix}/ API key from it); "
        "export it, or point --smoltrace-api-base at a local server (a loopback URL needs no key)",
    )


def test_inference_provider_without_a_token_is_a_usage_error(pytester: pytest.Pytester, no_keys: None) -> None:
    result, heavy = fresh_run(
        pytester, "--smoltrace-model", "Qwen/Qwen2.5-7B-Instruct", "--smoltrace-provider", "inference"
    )
    assert_refused(
        pytester,
        result,
        heavy,
        "--smoltrace-provider inference: HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) is not set and no Hugging Face token "
        "is stored; export HF_TOKEN=hf_… (or run `hf auth login`)",
    )


def test_which_credentials_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_keys: None) -> None:
    assert required_credentials("openai/gpt-4.1-nano", "litellm", None) == ("OPENAI_API_KEY",)
    assert required_credentials("anthropic/claude", "litellm", "https://proxy.example/v1") == ("ANTHROPIC_API_KEY",)
    assert required_credentials("gemini/gemini-2.0-flash", "litellm", None) == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    # a loopback server, an unknown prefix, no prefix, local and self-served models: nothing to check
    assert required_credentials("openai/x", "litellm", "http://127.0.0.1:8000/v1") == ()
    assert required_credentials("openai/x", "litellm", "http://localhost:8000/v1") == ()
    assert required_credentials("someprovider/x", "litellm", None) == ()
    assert required_credentials("gpt-4.1-nano", "litellm", None) == ()
    assert required_credentials("scripted", "litellm", None) == ()
    assert required_credentials("local", "litellm", None) == ()
    assert required_credentials("llama3.2", "ollama", None) == ()
    assert required_credentials("gpt2", "transformers", None) == ()
    assert required_credentials("Qwen/Qwen2.5", "inference", None) == HF_TOKEN_ENV
    assert required_credentials("Qwen/Qwen2.5", "inference", "https://tgi.example/v1") == ()  # the endpoint decides

    settings = _settings(model="Qwen/Qwen2.5", provider="inference")
    assert preflight.credential_problem(settings) is not None
    (tmp_path / "stored").write_text("hf_stored\n")  # `hf auth login` keeps the token in a file
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "stored"))
    assert preflight.credential_problem(settings) is None
    monkeypatch.setenv("OPENAI_API_KEY", "  ")  # blank is not a key
    assert preflight.credential_problem(_settings(model="openai/x")) is not None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert preflight.credential_problem(_settings(model="openai/x")) is None


# ── the model server ──────────────────────────────────────────────────────────────────────────────────────────────


def test_unreachable_model_server_is_a_usage_error(pytester: pytest.Pytester, no_keys: None) -> None:
    port = closed_port()
    base = f"http://127.0.0.1:{port}/v1"
    result, heavy = fresh_run(pytester, "--smoltrace-model", "openai/m", "--smoltrace-api-base", base)
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-api-base {base}: cannot connect to 127.0.0.1:{port} (Connection refused); "
        "expected a running model server there",
    )
    # --collect-only runs no item: neither the server nor the key is checked (nor a run directory made)
    listed, _ = fresh_run(pytester, "--smoltrace-model", "openai/m", "--smoltrace-api-base", base, "--co", "-q")
    assert listed.ret == pytest.ExitCode.OK, listed.stdout.str() + listed.stderr.str()
    assert not (pytester.path / "smoltrace_results").exists()


def test_server_check_connects_directly_or_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert preflight.connect_error("127.0.0.1", port) is None
        assert preflight.server_problem(_settings(model="openai/m", api_base=f"http://127.0.0.1:{port}/v1")) is None
        # a remote server reached through a proxy: the proxy is what must answer
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
        assert preflight.server_problem(_settings(model="openai/m", api_base="http://models.invalid/v1")) is None
    closed = closed_port()
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed}")
    assert preflight.server_problem(_settings(model="openai/m", api_base="http://models.invalid/v1")) == (
        f"--smoltrace-api-base http://models.invalid/v1: cannot connect to 127.0.0.1:{closed} through the proxy "
        f"http://127.0.0.1:{closed} (Connection refused); expected a running model server there"
    )
    monkeypatch.setenv("no_proxy", "models.invalid")
    problem = preflight.server_problem(_settings(model="openai/m", api_base="http://models.invalid/v1"))
    assert problem is not None and ("cannot resolve models.invalid" in problem or "no answer within 1 s" in problem)
    # no server to check: the scripted model (its own server), transformers, no base URL for litellm
    assert preflight.server_address(_settings(model="scripted", api_base="http://127.0.0.1:9/v1")) is None
    assert preflight.server_address(_settings(model="gpt2", provider="transformers", api_base="http://x:1")) is None
    assert preflight.server_address(_settings(model="openai/m")) is None
    assert preflight.server_address(_settings(model="llama3.2", provider="ollama")) == "http://localhost:11434"
    assert preflight.server_problem(_settings(model="openai/m", api_base="127.0.0.1:8000")) == (
        "--smoltrace-api-base 127.0.0.1:8000: expected an http:// or https:// URL with a host "
        "(e.g. http://127.0.0.1:8000/v1)"
    )


# ── the dataset ───────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("taks.jsonl", "file not found: {path}/taks.jsonl; expected an existing .json/.jsonl file"),
        ("./data/tasks", "no such file or directory: {path}/data/tasks; expected an existing .json/.jsonl file"),
    ],
)
def test_missing_dataset_file_is_a_usage_error(pytester: pytest.Pytester, dataset: str, expected: str) -> None:
    result, heavy = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-dataset", dataset)
    detail = expected.format(path=pytester.path)
    assert_refused(pytester, result, heavy, f"--smoltrace-dataset {dataset}: {detail}")


def test_dataset_kinds(tmp_path: Path) -> None:
    (tmp_path / "tasks.jsonl").write_text("{}\n")
    (tmp_path / "tasks.csv").write_text("id,prompt\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "loop.jsonl").symlink_to("loop.jsonl")
    kinds = {
        spec: preflight.dataset_kind(spec, tmp_path)
        for spec in ("default", "none", "tasks.jsonl", "missing.json", "tasks.csv", "./x", "dir", "loop.jsonl")
    }
    assert kinds == {
        "default": "bundled",
        "none": "none",
        "tasks.jsonl": "file",
        "missing.json": "file",
        "tasks.csv": "file",
        "./x": "file",
        "dir": "directory",
        "loop.jsonl": "file",
    }
    assert preflight.dataset_kind("user/name", tmp_path) == "hub"
    assert preflight.dataset_kind("defualt", tmp_path) == "hub"  # a typo of a bundled name: the Hub is asked
    problem = preflight.dataset_problem(_settings(dataset="tasks.csv"), tmp_path)
    assert problem == (
        "--smoltrace-dataset tasks.csv: task files must end in .json or .jsonl; got 'tasks.csv' "
        "(other formats load from a dataset directory)"
    )
    assert preflight.dataset_problem(_settings(dataset="tasks.jsonl"), tmp_path) is None
    loop = preflight.dataset_problem(_settings(dataset="loop.jsonl"), tmp_path)
    assert loop is not None and f"cannot resolve {tmp_path / 'loop.jsonl'}: a symbolic link loop" in loop


def test_unknown_hub_dataset_is_a_usage_error(pytester: pytest.Pytester, fake_hub: Any) -> None:
    fake_hub.seed("tester/tasks", {"data.jsonl": '{"id": "a", "prompt": "p", "agent_type": "tool"}\n'})
    result, heavy = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-dataset", "tester/nope")
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-dataset tester/nope: no dataset 'tester/nope' on the Hugging Face Hub ({fake_hub.endpoint}; "
        "or it is private and the token in use cannot read it); expected a bundled set (default), a .json/.jsonl "
        "file, a dataset directory or a Hugging Face dataset name (user/name)",
    )
    revision, heavy = fresh_run(
        pytester, "--smoltrace-model", "scripted", "--smoltrace-dataset", "tester/tasks", "--smoltrace-revision", "v9"
    )
    assert_refused(
        pytester,
        revision,
        heavy,
        f"--smoltrace-revision v9: dataset 'tester/tasks' has no revision 'v9' on the Hugging Face Hub "
        f"({fake_hub.endpoint}); expected one of its branches, tags or commit shas",
    )
    # a dataset the Hub has passes the check and is collected
    known, _ = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-dataset", "tester/tasks", "--co", "-q")
    assert known.ret == pytest.ExitCode.OK, known.stdout.str() + known.stderr.str()
    known.stdout.fnmatch_lines(["smoltrace/tester/tasks::tool::a"])


def test_hub_lookup_outcomes(fake_hub: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from huggingface_hub import constants

    fake_hub.seed("tester/tasks", {"data.jsonl": '{"id": "a", "prompt": "p"}\n'})
    assert preflight.hub_problem("tester/tasks", None) is None
    assert preflight.hub_problem("tester/nope", None) is not None
    assert "not a valid Hugging Face dataset name" in str(preflight.hub_problem("bad name!", None))
    # offline: not asked at all
    asked = len(fake_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert preflight.hub_problem("tester/nope", None) is None and len(fake_hub.requests) == asked
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # a Hub that answers 500, or cannot be reached: a warning, and the run goes on
    fake_hub.fail_next(1, status=500, path=r"/api/datasets/")
    with caplog.at_level(logging.WARNING, logger="pytest_smoltrace.preflight"):
        assert preflight.hub_problem("tester/nope", None) is None
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
        assert preflight.hub_problem("tester/nope", None) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "pytest_smoltrace.preflight"]
    assert len(warnings) == 2 and all("could not be asked whether the dataset exists" in w for w in warnings)
    assert "the run goes on" in warnings[1] and "HF_HUB_OFFLINE=1 skips this check" in warnings[1]


# ── the output directory ──────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(size, read_only=False)``: a fresh tmpfs mounted under tmp_path (skips where mounting is not allowed:
    it needs root with CAP_SYS_ADMIN — running as root is not enough for chmod to stop writes)."""
    mounted: list[Path] = []

    def mount(size: str = "64k", *, read_only: bool = False) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(target)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=False)


def fill(directory: Path) -> None:
    """Write to ``directory`` until its disk is full."""
    handle = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(handle, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(handle)


def test_output_dir_under_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "blocker").write_text("a file, not a directory")
    result, heavy = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-output-dir", "blocker/out")
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-output-dir {pytester.path / 'blocker' / 'out'}: {pytester.path / 'blocker'} is a file; "
        "expected a writable directory (or a path where one can be made)",
    )


def test_read_only_output_dir_is_a_usage_error(pytester: pytest.Pytester, tmpfs: Callable[..., Path]) -> None:
    mount = tmpfs("4m", read_only=True)
    result, heavy = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-output-dir", str(mount / "out"))
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-output-dir {mount / 'out'}: {mount} is on a read-only file system; "
        "expected a writable directory with free space",
    )


def test_full_output_dir_is_a_usage_error(pytester: pytest.Pytester, tmpfs: Callable[..., Path]) -> None:
    mount = tmpfs("64k")
    fill(mount)
    result, heavy = fresh_run(pytester, "--smoltrace-model", "scripted", "--smoltrace-output-dir", str(mount))
    assert_refused(
        pytester,
        result,
        heavy,
        f"--smoltrace-output-dir {mount}: no space left on the device of {mount} (the disk is full); "
        "expected a writable directory with free space",
    )
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]  # the probe file is gone again


def test_output_dir_checks(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    assert preflight.output_dir_problem(tmp_path / "out", tmp_path / "out" / "run") is None
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []  # the check makes nothing
    small = tmpfs("64k")  # writable, but less free than a run needs
    assert preflight.output_dir_problem(small, small / "run") == (
        f"--smoltrace-output-dir {small}: the disk is full (64 KiB free at {small}); "
        "expected at least 1.0 MiB free for the run's files"
    )
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert preflight.write_problem(Path("/o"), Path("/o"), quota) == (
        "--smoltrace-output-dir /o: the disk quota is exceeded at /o; expected a writable directory with free space"
    )


def test_every_problem_is_reported_at_once(pytester: pytest.Pytester, no_keys: None) -> None:
    result, heavy = fresh_run(pytester, "--smoltrace-model", "openai/gpt-4.1-nano", "--smoltrace-dataset", "t.json")
    assert_refused(
        pytester,
        result,
        heavy,
        "--smoltrace-model openai/gpt-4.1-nano: OPENAI_API_KEY is not set (litellm reads the openai/ API key from "
        "it); export it, or point --smoltrace-api-base at a local server (a loopback URL needs no key)",
        f"--smoltrace-dataset t.json: file not found: {pytester.path / 't.json'}; expected an existing .json/.jsonl "
        "file",
    )


def _settings(**values: Any) -> Any:
    """Settings with the defaults of the option table, overridden by ``values``."""
    from dataclasses import fields

    from pytest_smoltrace.options import OPTIONS
    from pytest_smoltrace.settings import Settings

    defaults = {spec.dest[len("smoltrace_") :]: spec.default for spec in OPTIONS}
    defaults.update(output_dir=Path("smoltrace_results"), working_dir=Path("."))
    defaults.update(values)
    return Settings(**{f.name: defaults[f.name] for f in fields(Settings)})


def test_a_failed_settings_write_leaves_no_directory(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    """The last step before the items: settings.json. Should the disk fill between the probe and this write, the
    usage error names the option and the directories the write made are removed again."""
    from pytest_smoltrace.identity import RunIdentity, model_spec
    from pytest_smoltrace.lineup import lineup
    from pytest_smoltrace.resume import write_run_settings

    mount = tmpfs("64k")
    fill(mount)  # a directory can still be made on a full tmpfs; the file cannot be written
    settings = _settings(output_dir=mount / "out", model=("openai/gpt-4.1-nano",))
    contenders = lineup(settings)
    specs = tuple(model_spec(settings, "r1", c) for c in contenders)
    identity = RunIdentity(settings=settings, run_id="r1", contenders=contenders, specs=specs)
    with pytest.raises(pytest.UsageError) as excinfo:
        write_run_settings(identity, None)
    assert str(excinfo.value) == (
        f"--smoltrace-output-dir {mount / 'out'}: no space left on the device of {mount} (the disk is full); "
        "expected a writable directory with free space"
    )
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]
