"""Dataset cards (``README.md``: YAML header, what the dataset holds, schema table, usage snippet).

Cards are deterministic functions of their inputs (no publish time in them), so republishing an unchanged run
or re-uploading the leaderboard card is a no-op on the Hub.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .schemas import SCHEMAS, schema_table

TAGS = ["smoltrace", "pytest-smoltrace", "smolagents", "evaluation", "benchmark", "agents", "llm"]

_PURPOSE = {
    "results": (
        "one row per attempt of each benchmark item (task × agent type; reruns are attempts): verdict, checks, "
        "tools used, steps, tokens, timing"
    ),
    "traces": "one row per traced item: the OpenTelemetry spans of its agent run",
    "metrics": "the run's resource figures (GPU/CPU time series and aggregates), each labelled measured, "
    "estimated or unavailable",
    "leaderboard": "one row per run and agent type: scores, efficiency, run status, environment and dataset links",
}


def _header(pretty_name: str, data_path: str) -> str:
    meta = {
        "license": "apache-2.0",
        "pretty_name": pretty_name,
        "tags": TAGS,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": data_path}]}],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _usage(repo_id: str, kind: str) -> str:
    json_cols = [name for name, (kind_, _) in SCHEMAS[kind].items() if kind_ == "json"]
    lines = [
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo_id}", split="train")',
    ]
    if json_cols:
        lines += [
            "",
            "import json",
            "",
            f'{json_cols[0]} = json.loads(ds[0]["{json_cols[0]}"])  # JSON columns are strings',
        ]
    lines.append("```")
    return "\n".join(lines)


def _footer() -> str:
    return (
        "\n---\n\nMade with pytest-smoltrace (benchmark smolagents agents with pytest); "
        "columns follow [SMOLTRACE](https://pypi.org/project/smoltrace/)'s where they apply.\n"
    )


def run_dataset_card(
    kind: str,
    repo_id: str,
    *,
    run_id: str,
    ts: str,
    leaderboard_rows: Sequence[Mapping[str, Any]],
    num_rows: int,
    related: Mapping[str, str | None],
) -> str:
    """The card of a run's ``results``/``traces``/``metrics`` dataset."""
    first = leaderboard_rows[0] if leaderboard_rows else {}
    model = first.get("model") or "unknown model"
    lines = [
        _header(f"smoltrace {kind} {ts}", "data/train-*.parquet"),
        f"# smoltrace {kind}: {model}",
        "",
        f"The {kind} of the pytest-smoltrace run `{run_id}`, {num_rows} rows: {_PURPOSE[kind]}.",
        "",
        f"- model: `{model}` (provider `{first.get('provider')}`)",
        f"- task source: `{first.get('dataset_used')}`"
        + (f" at revision `{first['dataset_revision']}`" if first.get("dataset_revision") else ""),
        f"- run started: {first.get('timestamp')}; status: {first.get('run_status')}",
    ]
    for row in leaderboard_rows:
        lines.append(
            f"- `{row.get('agent_type')}` agent: {row.get('successful_tests')}/{row.get('total_tests')} passed "
            f"({row.get('success_rate')}%)"
        )
    others = [f"- {name}: `{rid}`" for name, rid in related.items() if rid and rid != repo_id]
    if others:
        lines += ["", "Related datasets of this run:", "", *others]
    lines += ["", "## Usage", "", _usage(repo_id, kind), "", "## Schema", "", schema_table(SCHEMAS[kind]), _footer()]
    return "\n".join(lines)


def leaderboard_card(repo_id: str, data_path: str) -> str:
    """The leaderboard's card (the same for every run, so re-uploading it changes nothing)."""
    lines = [
        _header("smoltrace leaderboard", data_path),
        "# smoltrace leaderboard",
        "",
        f"This dataset holds {_PURPOSE['leaderboard']}. Each published run adds one file under "
        f"`{data_path.rsplit('/', 1)[0]}/` named after its run id, in a commit of its own; republishing a run "
        "replaces its file.",
        "",
        "## Usage",
        "",
        _usage(repo_id, "leaderboard"),
        "",
        "## Schema",
        "",
        schema_table(SCHEMAS["leaderboard"]),
        _footer(),
    ]
    return "\n".join(lines)
