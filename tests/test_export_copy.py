"""smoltrace-copy-datasets against the local Hub stand-in: pinned copies, privacy, refusal to overwrite."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_smoltrace.testing.hub import FakeHub
from smoltrace_export.cli import copy_main
from smoltrace_export.copy_datasets import copy_standard_datasets

# huggingface_hub's own LFS upload (the non-Xet path the stand-in speaks) passes bytes as `data=`
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")

SOURCE = "kshitijthakkar"
SOURCE_TOKEN = "hf_source_user"
TASKS = [
    {"id": "add", "prompt": "What is 2 + 3?", "agent_type": "both", "expected_answer": "5", "difficulty": "easy"},
    {
        "id": "wx",
        "prompt": "Weather in Oslo?",
        "agent_type": "tool",
        "expected_tool": "get_weather",
        "difficulty": None,
    },
]
BENCHMARK = [{"id": f"b{i}", "prompt": f"Task {i}", "agent_type": "code", "difficulty": "medium"} for i in range(5)]


def push_source(name: str, rows: list[dict[str, Any]]) -> str:
    import datasets

    datasets.Dataset.from_list(rows).push_to_hub(f"{SOURCE}/{name}", token=SOURCE_TOKEN)
    from huggingface_hub import HfApi

    return str(HfApi().dataset_info(f"{SOURCE}/{name}", token=SOURCE_TOKEN).sha)


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_user(SOURCE, SOURCE_TOKEN)
    return fake_hub


def load(repo_id: str) -> list[dict[str, Any]]:
    import datasets

    return list(datasets.load_dataset(repo_id, split="train").to_list())


def test_copies_are_pinned_to_the_source_revision(hub: FakeHub) -> None:
    tasks_sha = push_source("smoltrace-tasks", TASKS)
    bench_sha = push_source("smoltrace-benchmark-v1", BENCHMARK)
    report = copy_standard_datasets(private=True)
    assert report.ok
    by_dest = {c.destination: c for c in report.copied}
    assert set(by_dest) == {"tester/smoltrace-tasks", "tester/smoltrace-benchmark-v1"}
    assert by_dest["tester/smoltrace-tasks"].revision == tasks_sha and by_dest["tester/smoltrace-tasks"].rows == 2
    assert by_dest["tester/smoltrace-benchmark-v1"].revision == bench_sha
    assert load("tester/smoltrace-tasks") == load(f"{SOURCE}/smoltrace-tasks")
    assert len(load("tester/smoltrace-benchmark-v1")) == 5
    assert hub.repos.private("tester/smoltrace-tasks") and hub.repos.private("tester/smoltrace-benchmark-v1")
    # the source's files were read at the pinned commit, not at a moving branch
    reads = hub.requests_matching(rf"^/datasets/{SOURCE}/smoltrace-tasks/resolve/", "GET")
    assert reads and all(f"/resolve/{tasks_sha}/" in r.path for r in reads)
    card = hub.repos.read("tester/smoltrace-tasks", "README.md").decode()
    assert f"`{SOURCE}/smoltrace-tasks`" in card and tasks_sha in card
    assert "configs:" in card  # the data-file configuration written by push_to_hub is kept


def test_refuses_to_overwrite_unless_asked(hub: FakeHub, capsys: Any) -> None:
    push_source("smoltrace-tasks", TASKS)
    assert copy_main(["--only", "tasks"]) == 0
    assert "copied kshitijthakkar/smoltrace-tasks@" in capsys.readouterr().out
    commits = len(hub.repos.commits("tester/smoltrace-tasks"))

    new_sha = push_source("smoltrace-tasks", [*TASKS, {"id": "new", "prompt": "One more?", "agent_type": "code"}])
    assert copy_main(["--only", "tasks"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert len(hub.repos.commits("tester/smoltrace-tasks")) == commits and len(load("tester/smoltrace-tasks")) == 2
    assert not hub.repos.private("tester/smoltrace-tasks")

    report = copy_standard_datasets(only="tasks", overwrite=True)
    assert report.ok and report.copied[0].revision == new_sha and len(load("tester/smoltrace-tasks")) == 3


def test_missing_source_is_a_failure(hub: FakeHub) -> None:
    report = copy_standard_datasets(only="benchmark")
    assert not report.ok and report.failed[0][0] == f"{SOURCE}/smoltrace-benchmark-v1"
    assert not hub.repos.exists("tester/smoltrace-benchmark-v1")
    with pytest.raises(ValueError):
        copy_standard_datasets(only="everything")  # type: ignore[arg-type]
