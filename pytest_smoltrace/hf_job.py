"""``smoltrace-eval --print-hf-job``: the Hugging Face Jobs invocation of a benchmark, as an ``hf jobs run`` command
line and as the equivalent ``huggingface_hub.run_job(...)`` call. Nothing is submitted.

The job installs pytest-smoltrace (this version, with the extras the benchmark needs) in the image and runs the same
pytest command as ``smoltrace-eval --dry-run`` prints. Secrets travel by name only: ``hf jobs run --secrets NAME``
reads the value from the submitting shell's environment, the Python call reads ``os.environ[NAME]`` when it runs;
no value is ever part of what is printed. An option whose URL carries credentials (a password in
``--limits-url redis://:PW@host``) is moved out of the command into the secret named by its environment variable.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .options import OPTIONS_BY_NAME
from .version import __version__

DEFAULT_IMAGE = "python:3.12"
#: The job's Hub access (private datasets, ``--output-format hub``): always passed.
HF_TOKEN = "HF_TOKEN"
#: ``--hf-job-timeout``: what ``hf jobs run --timeout`` accepts (a number of seconds, or with s, m, h or d).
TIMEOUT_PATTERN = re.compile(r"^\d+(\.\d+)?[smhd]?$")
#: URL options that may carry credentials, and the secret (their environment variable) they move to.
URL_OPTIONS = ("api-base", "judge-api-base", "limits-url", "mcp-server-url")


class HfJobError(Exception):
    """The job cannot be rendered as asked; the message names the flag."""


@dataclass(frozen=True)
class HfJob:
    """One Hugging Face Job: what ``run_job`` takes (secrets by name: their values are read when it is submitted)."""

    image: str
    command: tuple[str, ...]
    secrets: tuple[str, ...]
    flavor: str | None = None
    timeout: str | None = None

    def cli_argv(self) -> list[str]:
        """``hf jobs run …`` as an argument list."""
        argv = ["hf", "jobs", "run"]
        if self.flavor:
            argv += ["--flavor", self.flavor]
        if self.timeout:
            argv += ["--timeout", self.timeout]
        for name in self.secrets:
            argv += ["--secrets", name]
        return [*argv, self.image, *self.command]

    def cli_text(self) -> str:
        return shlex.join(self.cli_argv())

    def python_text(self) -> str:
        """A Python script that submits the job with ``huggingface_hub.run_job`` (the secrets from ``os.environ``)."""
        lines = ["import os", "", "from huggingface_hub import run_job", "", "job = run_job("]
        lines.append(f"    image={self.image!r},")
        lines.append("    command=[")
        lines += [f"        {part!r}," for part in self.command]
        lines.append("    ],")
        lines.append("    secrets={")
        lines += [f"        {name!r}: os.environ[{name!r}]," for name in self.secrets]
        lines.append("    },")
        if self.flavor:
            lines.append(f"    flavor={self.flavor!r},")
        if self.timeout:
            lines.append(f"    timeout={self.timeout!r},")
        lines += [")", "print(job.url)"]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        """What ``--print-hf-job`` prints: both forms."""
        return (
            "# Hugging Face Jobs (hf CLI: pip install huggingface_hub, then hf auth login); secrets are read from your "
            "environment\n"
            f"{self.cli_text()}\n\n"
            "# the same job from Python (huggingface_hub.run_job)\n"
            f"{self.python_text()}"
        )


def _credentialed(value: str) -> bool:
    from .settings import redact_url

    return redact_url(value) != value


def render(
    pytest_args: Sequence[str],
    *,
    values: dict[str, object],
    image: str | None = None,
    flavor: str | None = None,
    timeout: str | None = None,
    extra_secrets: Sequence[str] = (),
    install: str | None = None,
) -> HfJob:
    """The job running ``pytest -m smoltrace <pytest_args>``; ``values`` are the parsed option values by option name
    (what decides the extras to install and the secrets to pass)."""
    if timeout is not None and not TIMEOUT_PATTERN.match(timeout):
        raise HfJobError(f"--hf-job-timeout: expected seconds or a number with s, m, h or d (e.g. 2h); got {timeout!r}")
    for name in extra_secrets:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise HfJobError(f"--hf-job-secret: expected an environment variable name; got {name!r}")
    args = list(pytest_args)
    secrets = [HF_TOKEN]
    for option in URL_OPTIONS:
        spec = OPTIONS_BY_NAME[option]
        given = values.get(option)
        urls = list(given) if isinstance(given, list | tuple) else [given] if isinstance(given, str) else []
        if not any(_credentialed(u) for u in urls):
            continue
        if spec.env is None or len(urls) != 1:
            raise HfJobError(
                f"{spec.flag}: the URL carries credentials, which would show in the job's command; give the job a "
                "URL without them"
            )
        index = args.index(spec.flag)
        del args[index : index + 2]
        secrets.append(spec.env)
    secrets += _provider_secrets(values)
    secrets += extra_secrets
    extras = _extras(values)
    package = install or f"pytest-smoltrace{'[' + ','.join(extras) + ']' if extras else ''}=={__version__}"
    script = f"pip install -q {shlex.quote(package)} && " + shlex.join(
        ["pytest", "-p", "no:cacheprovider", *args, "-m", "smoltrace"]
    )
    return HfJob(
        image=image or DEFAULT_IMAGE,
        command=("bash", "-c", script),
        secrets=tuple(dict.fromkeys(secrets)),
        flavor=flavor,
        timeout=timeout,
    )


def _provider_secrets(values: dict[str, object]) -> list[str]:
    """The API keys the benchmark's providers read: ``<PREFIX>_API_KEY`` for a litellm model ``prefix/name`` on a
    remote API (litellm's convention), the search provider's key."""
    from .models import is_loopback

    names: list[str] = []
    provider = values.get("provider") or "litellm"
    models = values.get("model") or []
    api_base = values.get("api-base")
    if provider == "litellm" and not is_loopback(api_base if isinstance(api_base, str) else None):
        for model in models if isinstance(models, list | tuple) else [models]:
            prefix, sep, _ = str(model).partition("/")
            if sep and re.fullmatch(r"[A-Za-z0-9_]+", prefix):
                names.append(f"{prefix.upper()}_API_KEY")
    search = values.get("search-provider")
    if isinstance(search, str) and search != "duckduckgo":
        from smoltrace_tools.web import SEARCH_PROVIDERS

        key = SEARCH_PROVIDERS[search].api_key_env if search in SEARCH_PROVIDERS else None
        if key:
            names.append(key)
    return names


def _extras(values: dict[str, object]) -> list[str]:
    """The pytest-smoltrace extras the benchmark needs in the job's image."""
    extras: list[str] = []
    models = values.get("model") or []
    if values.get("provider") == "transformers":
        extras.append("transformers")
    if any(
        str(m) == "local" or str(m).startswith("local:")
        for m in (models if isinstance(models, list | tuple) else [models])
    ):
        extras.append("local")
    if values.get("mcp-server-url"):
        extras.append("mcp")
    limits = values.get("limits-url")
    if isinstance(limits, str) and limits.lower().startswith(("redis://", "rediss://")):
        extras.append("redis")
    return extras
