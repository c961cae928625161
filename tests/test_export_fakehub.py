"""The local Hub stand-in, exercised with the real ``huggingface_hub`` client (no mocks), and proof that the
Hub tests stay on 127.0.0.1 and out of ``~/.cache``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_export_rows import write_sample_run

from pytest_smoltrace.testing.hub import DEFAULT_TOKEN, FakeHub, hub_environment
from smoltrace_export.hub import publish_run_dir

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any socket connection to anything but 127.0.0.1 (and record every connection)."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    yield seen


def test_publish_and_load_stay_on_loopback_and_in_tmp(
    loopback_only: list[Any], fake_hub: FakeHub, tmp_path: Path
) -> None:
    import datasets
    from huggingface_hub import constants

    result = publish_run_dir(write_sample_run(tmp_path), private=True)
    assert len(datasets.load_dataset(result.leaderboard.repo_id, split="train")) == 2
    assert loopback_only and all(addr[0] == "127.0.0.1" for addr in loopback_only)
    # caches and the token file are in the fixture's temporary home, not ~/.cache
    home = Path(constants.HF_HOME)
    assert home != Path.home() / ".cache" / "huggingface" and home.name.startswith("hf_home")
    assert Path(constants.HF_HUB_CACHE).is_relative_to(home) and Path(constants.HF_TOKEN_PATH).is_relative_to(home)
    assert Path(str(datasets.config.HF_DATASETS_CACHE)).is_relative_to(home)
    assert any((home / "datasets").iterdir())  # load_dataset's cache landed there
    assert constants.HF_HUB_DISABLE_XET and constants.HF_HUB_DISABLE_TELEMETRY


def test_environment_is_restored(tmp_path: Path) -> None:
    import datasets
    from huggingface_hub import constants

    before = (constants.ENDPOINT, datasets.config.HF_ENDPOINT, constants.HF_HUB_CACHE)
    with FakeHub() as hub, hub_environment(hub, home=tmp_path):
        assert constants.ENDPOINT == hub.endpoint == datasets.config.HF_ENDPOINT
    after = (constants.ENDPOINT, datasets.config.HF_ENDPOINT, constants.HF_HUB_CACHE)
    assert after == before


def test_repos_commits_and_reading(fake_hub: FakeHub) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    api = HfApi()
    assert api.whoami()["name"] == "tester"
    api.create_repo("tester/demo", repo_type="dataset", private=True)
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("tester/demo", repo_type="dataset")
    assert conflict.value.response.status_code == 409
    api.create_repo("tester/demo", repo_type="dataset", exist_ok=True)
    first = api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/x.csv", repo_id="tester/demo",
                            repo_type="dataset")  # fmt: skip
    api.upload_file(path_or_fileobj=b"\0binary" * 10, path_in_repo="blobs/y.bin", repo_id="tester/demo",
                    repo_type="dataset")  # fmt: skip
    assert api.list_repo_files("tester/demo", repo_type="dataset") == ["blobs/y.bin", "data/x.csv"]
    top = {e.path for e in api.list_repo_tree("tester/demo", repo_type="dataset")}
    assert top == {"blobs", "data"}  # directories, not files, when not recursive
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("tester/demo", path_in_repo="nope", repo_type="dataset"))
    (info,) = api.get_paths_info("tester/demo", ["blobs/y.bin"], repo_type="dataset")
    assert info.lfs is not None and info.size == 70  # binary content went through LFS
    # revisions: the first commit still reads the old tree
    old = api.dataset_info("tester/demo", revision=first.oid)
    assert old.sha == first.oid and [s.rfilename for s in old.siblings or []] == ["data/x.csv"]
    path = hf_hub_download("tester/demo", "data/x.csv", repo_type="dataset", revision=first.oid)
    assert Path(path).read_bytes() == b"a,b\n1,2\n"
    commits = fake_hub.repos.commits("tester/demo")
    assert commits[0].message == "initial commit" and commits[1].sha == first.oid and len(commits) == 3
    # ranged reads (HfFileSystem) and deletions (a deletedFile commit operation)
    from huggingface_hub import HfFileSystem

    with HfFileSystem().open("datasets/tester/demo/data/x.csv", "rb", block_size=4) as handle:
        handle.seek(4)
        assert handle.read(3) == b"1,2"
    assert any(r.status == 206 for r in fake_hub.requests_matching(r"/resolve/", "GET"))
    api.delete_file("data/x.csv", repo_id="tester/demo", repo_type="dataset")
    assert fake_hub.repos.files("tester/demo") == ["blobs/y.bin"]
    assert fake_hub.repos.files("tester/demo", revision=first.oid) == ["data/x.csv"]
    # privacy: listed for the owner, hidden from others, changeable through settings
    fake_hub.add_user("other", "hf_other")
    assert [d.id for d in api.list_datasets(author="tester")] == ["tester/demo"]
    assert list(api.list_datasets(author="tester", token="hf_other")) == []
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("tester/demo", token="hf_other")
    api.update_repo_settings("tester/demo", repo_type="dataset", private=False)
    assert not fake_hub.repos.private("tester/demo")
    assert [d.id for d in api.list_datasets(search="dem", token="hf_other")] == ["tester/demo"]
    with pytest.raises(HfHubHTTPError) as forbidden:
        api.delete_repo("tester/demo", repo_type="dataset", token="hf_other")
    assert forbidden.value.response.status_code == 403
    api.delete_repo("tester/demo", repo_type="dataset")
    api.delete_repo("tester/demo", repo_type="dataset", missing_ok=True)
    assert not fake_hub.repos.exists("tester/demo")


def test_fault_injection_and_token_switch(fake_hub: FakeHub) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    fake_hub.fail_next(2, status=429, path=r"^/api/whoami")
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as limited:
            api.whoami()
        assert limited.value.response.status_code == 429
    assert api.whoami()["name"] == "tester"
    fake_hub.require_token = True
    with pytest.raises(HfHubHTTPError) as anonymous:
        HfApi(token=False).list_datasets(author="tester").__iter__().__next__()
    assert anonymous.value.response.status_code == 401
    assert [r.status for r in fake_hub.requests_matching(r"^/api/whoami")] == [429, 429, 200]
    assert fake_hub.requests[-1].user is None and fake_hub.requests[-2].user == "tester"
    assert DEFAULT_TOKEN == "hf_fakehub_tester_token"
