"""``smoltrace-eval``: SMOLTRACE's command line, run by pytest.

Every flag that stands for a plugin option is derived from the one option table
(:data:`pytest_smoltrace.options.OPTIONS`): an option's ``smoltrace_flag`` is its SMOLTRACE spelling, and an option
without one is offered as ``--<name>`` (our extension, e.g. ``--api-base``). Only flags that are not plugin options
live here (:data:`OWN_FLAGS`), and SMOLTRACE flags we deliberately do not support are refused with the reason
(:data:`UNSUPPORTED`). The run is ``pytest.main`` on benchmark items only (see :func:`pytest_smoltrace.api.run_pytest`);
the exit code is pytest's (4 for a bad flag, as pytest's own usage errors).

``smoltrace-eval --help`` prints the mapping; :func:`translate` is the pure flags → pytest arguments function.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .options import OPTIONS, OPTIONS_BY_NAME, OptionSpec

if TYPE_CHECKING:
    from .hf_job import HfJob

__all__ = ["NOTES", "OWN_FLAGS", "UNSUPPORTED", "CliError", "Invocation", "main", "mapping_rows", "parse", "translate"]

log = logging.getLogger(__name__)

PROG = "smoltrace-eval"
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR (not imported: keeps `--help` cheap)


@dataclass(frozen=True)
class OwnFlag:
    """A ``smoltrace-eval`` flag that is not a plugin option."""

    flag: str
    metavar: str | None
    becomes: str
    help: str
    smoltrace: bool = True  # False: our extension


#: Flags that are not plugin options (everything else comes from the option table).
OWN_FLAGS: tuple[OwnFlag, ...] = (
    OwnFlag(
        "--parallel-workers",
        "N",
        "-n N --dist loadscope",
        "pytest-xdist worker processes (1, the default, adds no -n); loadscope hands each worker whole agent-type "
        "groups, so its queue is deep enough for in-process concurrency",
    ),
    OwnFlag("--quiet", None, "-q", "less output"),
    OwnFlag("--debug", None, "-v --log-cli-level=DEBUG", "verbose items and every log record, live"),
    OwnFlag(
        "--hf-token",
        "TOKEN",
        "HF_TOKEN in the run's environment",
        "Hugging Face token (deprecated in SMOLTRACE too: it shows in the process list; prefer HF_TOKEN or "
        "--hf-token-file). Never passed as an argument, written to a file or logged",
    ),
    OwnFlag("--hf-token-file", "FILE", "HF_TOKEN in the run's environment", "file holding the Hugging Face token"),
    OwnFlag(
        "--public",
        None,
        "(no --smoltrace-private)",
        "publish public Hub datasets; without it --output-format hub publishes privately, as SMOLTRACE did",
    ),
    OwnFlag("--disable-gpu-metrics", None, "--smoltrace-no-gpu-metrics", "no NVML GPU sampling"),
    OwnFlag(
        "--enable-otel",
        None,
        "(nothing; --smoltrace-otlp when OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set)",
        "traces are always recorded (traces.json); they are also exported over OTLP when an endpoint is configured",
    ),
    OwnFlag(
        "--allow-local-code-execution",
        None,
        "(ignored)",
        "accepted and ignored: SMOLTRACE parsed this flag but never read it",
    ),
    OwnFlag(
        "--dry-run",
        None,
        "(prints the pytest command)",
        "print the equivalent pytest command line and exit",
        smoltrace=False,
    ),
    OwnFlag(
        "--print-hf-job",
        None,
        "(prints the Hugging Face Job)",
        "print the `hf jobs run` command and the equivalent huggingface_hub.run_job(...) call that run this benchmark "
        "on Hugging Face Jobs, and exit (nothing is submitted; secrets by name only: docs/hf-jobs.md)",
        smoltrace=False,
    ),
    OwnFlag(
        "--hf-job-image", "IMAGE", "(with --print-hf-job)", "the job's container image (default: python:3.12)", False
    ),
    OwnFlag(
        "--hf-job-flavor",
        "FLAVOR",
        "(with --print-hf-job)",
        "the job's hardware, e.g. cpu-upgrade, a10g-small (`hf jobs hardware` lists them; default: HF's cpu-basic)",
        False,
    ),
    OwnFlag("--hf-job-timeout", "DURATION", "(with --print-hf-job)", "the job's time limit, e.g. 90m or 2h", False),
    OwnFlag(
        "--hf-job-secret",
        "NAME",
        "(with --print-hf-job)",
        "one more environment variable passed to the job as a secret, by name (repeatable; HF_TOKEN and the model "
        "provider's API key are passed already)",
        False,
    ),
    OwnFlag(
        "--hf-job-install",
        "SPEC",
        "(with --print-hf-job)",
        "what the job pip-installs (default: this pytest-smoltrace version with the extras the benchmark needs)",
        False,
    ),
)
#: The flags that only shape ``--print-hf-job``'s output.
HF_JOB_FLAGS = ("--hf-job-image", "--hf-job-flavor", "--hf-job-timeout", "--hf-job-secret", "--hf-job-install")
OWN_BY_FLAG = {own.flag: own for own in OWN_FLAGS}

_LABELS = "leaderboard labels have no option yet (their leaderboard columns stay null)"
_OPENSEARCH = "OpenSearch export is not supported; use --output-format json (then load the run directory) or hub"

#: SMOLTRACE flags refused with the reason. A flag that gains a ``smoltrace_flag`` in the option table is supported
#: from then on (the option table wins over this list).
UNSUPPORTED: dict[str, str] = {
    "--model-args": "task variables (smolagents additional_args) are not supported; put the values in the prompt",
    "--mcp-transport": "the transport follows the URL: one ending in /sse uses SSE, anything else streamable HTTP",
    "--trust-remote-code": "remote model code (transformers trust_remote_code) is never executed",
    "--allow-test-fallback": "a dataset that cannot be loaded is an error, never silently replaced; "
    "use --dataset-name default for the bundled tasks",
    "--security-profile": "there are no security profiles: the tool sandbox and network policy always apply",
    "--request-timeout": "each model request is bounded by --task-timeout (the per-item limit)",
    "--use-case": _LABELS,
    "--team": _LABELS,
    "--purpose": _LABELS,
    "--suite-version": _LABELS,
    "--hardware-label": _LABELS,
    **{
        f"--opensearch-{name}": _OPENSEARCH
        for name in (
            "url",
            "host",
            "port",
            "user",
            "password",
            "password-file",
            "ssl",
            "no-verify-certs",
            "index-prefix",
            "allow-insecure-remote",
        )
    },
}

#: Values of supported flags that SMOLTRACE accepted and we refuse, with the reason.
UNSUPPORTED_VALUES: dict[str, dict[str, str]] = {
    "output": {"opensearch": _OPENSEARCH},
    "search-provider": {"tavily": "the tavily search provider is not supported (duckduckgo, serper, serpapi, brave)"},
}

#: SMOLTRACE defaults that differ here, by option name: (SMOLTRACE's default, ours or None for the table's, why).
DIFFERENT_DEFAULTS: dict[str, tuple[str, str | None, str]] = {
    "output": ("hub", None, "nothing leaves the machine unless asked for"),
    "dataset": (
        "kshitijthakkar/smoltrace-tasks",
        None,
        "the bundled tasks work offline; name a Hub dataset (with --dataset-revision) to use one",
    ),
    "tool-timeout": ("120", None, "a stuck tool should not eat the item's time"),
    "otlp": (
        "off, and then no traces, tokens or cost",
        "off, but traces are always recorded (traces.json)",
        "the flag adds OTLP export (OTEL_EXPORTER_OTLP_* variables)",
    ),
    "run-id": ("a uuid4", "YYYYmmdd-HHMMSS-<6 hex>", "sortable by time"),
    "private": (
        "private, but a public leaderboard",
        "private for hub output unless --public",
        "the leaderboard is private too",
    ),
}


_PER_PROVIDER = "per provider (or skipped with a warning that says why): docs/generation.md"

#: Notes on supported flags, by option name (the mapping's third column).
NOTES: dict[str, str] = {
    "temperature": "0 is greedy decoding; " + _PER_PROVIDER,
    "top-p": _PER_PROVIDER,
    "top-k": "native OpenAI has none; " + _PER_PROVIDER,
    "max-tokens": "sent as max_tokens, max_completion_tokens, num_predict or max_new_tokens; " + _PER_PROVIDER,
    "seed": "not in SMOLTRACE; " + _PER_PROVIDER,
    "reasoning-effort": _PER_PROVIDER,
    "enable-thinking": "true or false; " + _PER_PROVIDER,
}


class CliError(Exception):
    """A flag or value the command cannot honour; the message names the flag."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(message)


class _Refuse(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: str | None = None
    ) -> None:
        flag = option_string or self.option_strings[0]
        raise CliError(f"{flag} is not supported by {PROG}: {UNSUPPORTED[flag]}")


def cli_flag(spec: OptionSpec) -> str:
    """The ``smoltrace-eval`` spelling of an option: SMOLTRACE's flag, else ``--<name>``."""
    return spec.smoltrace_flag or f"--{spec.name}"


def _metavar(spec: OptionSpec) -> str:
    if spec.choices:
        return "{" + ",".join(spec.choices) + "}"
    return spec.metavar or spec.name.upper().replace("-", "_")


def _validator(spec: OptionSpec) -> Any:
    """argparse ``type=``: checks a value as the plugin would (choices, refused values, the option's type)."""

    def check(text: str) -> str:
        refused = UNSUPPORTED_VALUES.get(spec.name, {}).get(text)
        if refused:
            raise argparse.ArgumentTypeError(f"{text!r} is not supported: {refused}")
        if spec.choices and text not in spec.choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(spec.choices)}; got {text!r}")
        try:
            spec.type(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (got {text!r})") from None
        return text

    check.__name__ = spec.name
    return check


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1; got {value}")
    return value


def _option_help(spec: OptionSpec) -> str:
    text = f"→ {spec.flag}: {spec.help}"
    if spec.default not in (None, (), False):
        text += f" (default: {spec.default})"
    return text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark smolagents agents with SMOLTRACE's flags; runs pytest with the pytest-smoltrace "
        "plugin on benchmark items only. Arguments after '--' go to pytest unchanged.",
        epilog=mapping_text(),
    )
    group = parser.add_argument_group("SMOLTRACE flags and pytest-smoltrace options")
    for spec in OPTIONS:
        flag = cli_flag(spec)
        if flag in OWN_BY_FLAG:
            continue
        common: dict[str, Any] = {"dest": spec.dest, "default": None, "help": _option_help(spec)}
        if spec.kind == "list":
            group.add_argument(
                flag, action="extend", nargs="+", type=_validator(spec), metavar=_metavar(spec), **common
            )
        elif spec.kind in ("flag", "toggle"):
            group.add_argument(flag, action="store_const", const=True, **common)
            if spec.kind == "toggle":
                group.add_argument(
                    f"--no-{spec.name}", action="store_const", const=False, dest=spec.dest, help=f"turn {flag} off"
                )
        else:
            group.add_argument(flag, type=_validator(spec), metavar=_metavar(spec), **common)
    own = parser.add_argument_group("flags that are not plugin options")
    for entry in OWN_FLAGS:
        dest = "own_" + entry.flag.lstrip("-").replace("-", "_")
        help_text = f"→ {entry.becomes}: {entry.help}".replace("%", "%%")
        if entry.flag == "--disable-gpu-metrics":
            own.add_argument(
                entry.flag, action="store_const", const=False, dest="smoltrace_gpu_metrics", help=help_text
            )
        elif entry.flag == "--parallel-workers":
            own.add_argument(entry.flag, type=_positive_int, metavar=entry.metavar, dest=dest, help=help_text)
        elif entry.flag == "--hf-job-secret":
            own.add_argument(entry.flag, action="append", metavar=entry.metavar, dest=dest, help=help_text)
        elif entry.metavar:
            own.add_argument(entry.flag, metavar=entry.metavar, dest=dest, help=help_text)
        else:
            own.add_argument(entry.flag, action="store_true", dest=dest, help=help_text)
    for flag in UNSUPPORTED:
        if flag not in _supported_flags():
            parser.add_argument(flag, action=_Refuse, nargs="*", help=argparse.SUPPRESS)
    return parser


def _supported_flags() -> set[str]:
    flags = {cli_flag(spec) for spec in OPTIONS} | set(OWN_BY_FLAG)
    flags |= {f"--no-{spec.name}" for spec in OPTIONS if spec.kind == "toggle"}
    return flags


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the pytest arguments and what is done around the run (never a secret in ``repr``)."""

    pytest_args: tuple[str, ...]
    hf_token: str | None = field(default=None, repr=False)
    hf_token_file: Path | None = None
    debug: bool = False
    dry_run: bool = False
    #: ``--print-hf-job``: the Hugging Face Job to print instead of running (:mod:`.hf_job`).
    hf_job: HfJob | None = None

    def token(self) -> str | None:
        """The Hugging Face token to put into ``HF_TOKEN`` for the run, if one was given (file read now)."""
        if self.hf_token_file is not None:
            text = self.hf_token_file.expanduser().read_text(encoding="utf-8").strip()
            if not text:
                raise CliError(f"--hf-token-file {self.hf_token_file}: the file is empty")
            return text
        return self.hf_token


def _option_args(ns: argparse.Namespace) -> list[str]:
    args: list[str] = []
    for spec in OPTIONS:
        value = getattr(ns, spec.dest, None)
        if value is None:
            continue
        if spec.kind == "list":
            for item in value:
                args += [spec.flag, item]
        elif spec.kind in ("flag", "toggle"):
            if value:
                args.append(spec.flag)
            elif spec.kind == "toggle":
                args.append(f"--smoltrace-no-{spec.name}")
        else:
            args += [spec.flag, value]
    return args


def parse(argv: Sequence[str]) -> Invocation:
    """Parse ``smoltrace-eval`` arguments; :class:`CliError` names a bad or refused flag (``--help`` exits 0)."""
    argv = list(argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    ns = build_parser().parse_args(argv)
    model = OPTIONS_BY_NAME["model"]
    if getattr(ns, model.dest) is None:
        raise CliError(f"the following arguments are required: {cli_flag(model)}")
    private, output = OPTIONS_BY_NAME["private"], OPTIONS_BY_NAME["output"]
    if ns.own_public:
        if getattr(ns, private.dest):
            raise CliError(f"{cli_flag(private)} and --public contradict each other")
    elif getattr(ns, output.dest) == "hub" and getattr(ns, private.dest) is None:
        setattr(ns, private.dest, True)  # SMOLTRACE published privately unless --public
    if ns.own_hf_token is not None and ns.own_hf_token_file is not None:
        raise CliError("--hf-token and --hf-token-file: give one of them")
    args = _option_args(ns)
    if ns.own_parallel_workers is not None and ns.own_parallel_workers > 1:
        args += ["-n", str(ns.own_parallel_workers), "--dist", "loadscope"]
    if ns.own_enable_otel and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        args.append(OPTIONS_BY_NAME["otlp"].flag)
    if ns.own_quiet:
        args.append("-q")
    if ns.own_debug:
        args += ["-v", "--log-cli-level=DEBUG"]
    if ns.own_allow_local_code_execution:
        log.warning("--allow-local-code-execution is ignored (SMOLTRACE never read it either)")
    if ns.own_hf_token is not None:
        log.warning("--hf-token shows the token in the process list; prefer HF_TOKEN or --hf-token-file")
    return Invocation(
        pytest_args=(*args, *passthrough),
        hf_token=ns.own_hf_token,
        hf_token_file=Path(ns.own_hf_token_file) if ns.own_hf_token_file is not None else None,
        debug=ns.own_debug,
        dry_run=ns.own_dry_run,
        hf_job=_hf_job(ns, (*args, *passthrough)),
    )


def _hf_job(ns: argparse.Namespace, pytest_args: Sequence[str]) -> HfJob | None:
    """``--print-hf-job`` (the ``--hf-job-*`` flags shape it and mean nothing without it)."""
    if not ns.own_print_hf_job:
        given = [flag for flag in HF_JOB_FLAGS if getattr(ns, "own_" + flag.lstrip("-").replace("-", "_")) is not None]
        if given:
            raise CliError(f"{given[0]} goes with --print-hf-job")
        return None
    from .hf_job import HfJobError, render

    try:
        return render(
            pytest_args,
            values={spec.name: getattr(ns, spec.dest, None) for spec in OPTIONS},
            image=ns.own_hf_job_image,
            flavor=ns.own_hf_job_flavor,
            timeout=ns.own_hf_job_timeout,
            extra_secrets=ns.own_hf_job_secret or (),
            install=ns.own_hf_job_install,
        )
    except HfJobError as exc:
        raise CliError(str(exc)) from None


def translate(argv: Sequence[str]) -> list[str]:
    """The pytest arguments equivalent to ``smoltrace-eval`` arguments (no secret is ever among them).

    ``translate(["--model", "openai/gpt-4.1-nano", "--agent-type", "tool", "--parallel-workers", "4"])``
    → ``["--smoltrace-model", "openai/gpt-4.1-nano", "--smoltrace-agent-type", "tool", "-n", "4", "--dist",
    "loadscope"]``.
    The run adds ``-m smoltrace`` and an empty temporary rootdir (:func:`pytest_smoltrace.api.isolated_args`).
    """
    return list(parse(argv).pytest_args)


# ----------------------------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class MappingRow:
    section: str  # "smoltrace", "extension", "own", "unsupported"
    flag: str
    becomes: str
    note: str = ""


def _with_metavar(flag: str, spec: OptionSpec) -> str:
    if spec.kind in ("flag", "toggle"):
        return flag
    return f"{flag} {spec.metavar or spec.name.upper().replace('-', '_')}"


def _default_text(value: Any) -> str:
    return (
        {None: "none", False: "off", True: "on"}.get(value, str(value))
        if not isinstance(value, float)
        else f"{value:g}"
    )


def mapping_rows() -> list[MappingRow]:
    """Every ``smoltrace-eval`` flag and what it becomes (used by ``--help`` and ``docs/options.md``)."""
    rows: list[MappingRow] = []
    for spec in OPTIONS:
        flag = cli_flag(spec)
        if flag in OWN_BY_FLAG:
            continue
        section = "smoltrace" if spec.smoltrace_flag else "extension"
        note = NOTES.get(spec.name, "")
        if spec.name in DIFFERENT_DEFAULTS:
            theirs, ours, why = DIFFERENT_DEFAULTS[spec.name]
            note = f"default: {ours or _default_text(spec.default)} (SMOLTRACE: {theirs}); {why}"
        rows.append(MappingRow(section, _with_metavar(flag, spec), _with_metavar(spec.flag, spec), note))
        if spec.kind == "toggle":
            rows.append(MappingRow("extension", f"--no-{spec.name}", f"--smoltrace-no-{spec.name}"))
    for own in OWN_FLAGS:
        flag = f"{own.flag} {own.metavar}" if own.metavar else own.flag
        rows.append(MappingRow("own" if own.smoltrace else "extension", flag, own.becomes, own.help))
    supported = _supported_flags()
    rows += [MappingRow("unsupported", f, "error", why) for f, why in UNSUPPORTED.items() if f not in supported]
    return rows


_TITLES = {
    "smoltrace": "SMOLTRACE flag → pytest option (derived from the plugin's option table)",
    "own": "SMOLTRACE flags that are not plugin options",
    "extension": "pytest-smoltrace extensions (not in SMOLTRACE)",
    "unsupported": "SMOLTRACE flags refused (exit code 4), and why",
}


def mapping_text() -> str:
    """The mapping as aligned text blocks (the ``--help`` epilog)."""
    rows = mapping_rows()
    width = max(len(r.flag) for r in rows) + 2
    blocks: list[str] = []
    for section, title in _TITLES.items():
        lines = [title + ":"]
        for row in (r for r in rows if r.section == section):
            target = row.note if section == "unsupported" else row.becomes
            lines.append(f"  {row.flag.ljust(width)}{target}")
            if row.note and section == "smoltrace":
                lines += textwrap.wrap(
                    row.note, 116, initial_indent=" " * (width + 4), subsequent_indent=" " * (width + 4)
                )
        blocks.append("\n".join(lines))
    blocks.append(
        "The run: pytest -m smoltrace on benchmark items only (an empty temporary rootdir: the current directory's\n"
        "tests and conftest files are not collected); relative paths are taken from the current directory.\n"
        "Exit code: pytest's (0 all passed, 1 some item failed or errored, 4 usage error)."
    )
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------------------------- running


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def main(argv: Sequence[str] | None = None) -> int:
    """``smoltrace-eval``: parse SMOLTRACE's flags, run pytest on benchmark items, return pytest's exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        invocation = parse(arguments)
        token = invocation.token()
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except (CliError, OSError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n(see `{PROG} --help` for every flag and what it becomes)\n")
        return USAGE_ERROR
    if invocation.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    if invocation.hf_job is not None:
        sys.stdout.write(invocation.hf_job.text())
        return 0
    if invocation.dry_run:
        sys.stdout.write(shlex.join(["pytest", *invocation.pytest_args, "-m", "smoltrace"]) + "\n")
        return 0
    from .api import run_pytest

    with _environment({"HF_TOKEN": token} if token else {}):
        return run_pytest(invocation.pytest_args).exit_code


if __name__ == "__main__":
    sys.exit(main())
