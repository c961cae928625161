"""Copy SMOLTRACE's standard task datasets (``smoltrace-benchmark-v1``, ``smoltrace-tasks``) into the user's namespace.

Each source is pinned to its current revision (``dataset_info(source).sha``, then ``load_dataset(source,
revision=sha)``), so the copy is exactly one commit of the source, which the copy's card names. An existing copy is
not overwritten unless ``overwrite=True``. ``datasets`` reads the Hub through ``HF_ENDPOINT``; both libraries are
imported when called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .http_errors import describe
from .hub import resolve_token

if TYPE_CHECKING:
    from huggingface_hub import HfApi

log = logging.getLogger(__name__)

DEFAULT_SOURCE_USER = "kshitijthakkar"
STANDARD_DATASETS: dict[str, str] = {"benchmark": "smoltrace-benchmark-v1", "tasks": "smoltrace-tasks"}


@dataclass(frozen=True)
class CopiedDataset:
    source: str
    #: The source commit the copy was made from.
    revision: str
    destination: str
    url: str
    rows: int


@dataclass(frozen=True)
class CopyReport:
    copied: tuple[CopiedDataset, ...] = ()
    #: (destination, reason): not copied on purpose (e.g. it exists and overwrite was not asked for).
    skipped: tuple[tuple[str, str], ...] = ()
    #: (source, error)
    failed: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def _card(name: str, source: str, revision: str, header: str) -> str:
    return (
        f"{header}\n# {name}\n\nA copy of [`{source}`](https://huggingface.co/datasets/{source}) at revision "
        f"`{revision}`, made with `smoltrace-copy-datasets` (pytest-smoltrace).\n\n"
        "## Usage\n\n"
        "```bash\n"
        f"pytest --smoltrace-model MODEL --smoltrace-dataset {{your user}}/{name}\n"
        "```\n"
    )


def _front_matter(text: str) -> str:
    """The YAML header (``---`` … ``---``) of a card, or an empty string."""
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            return text[: end + 4] + "\n"
    return ""


def copy_standard_datasets(
    *,
    only: Literal["benchmark", "tasks"] | None = None,
    private: bool = False,
    source_user: str = DEFAULT_SOURCE_USER,
    token: str | None = None,
    overwrite: bool = False,
    api: HfApi | None = None,
) -> CopyReport:
    """Copy the standard datasets (or ``only`` one) to the token user's namespace; see the module docstring."""
    if only is not None and only not in STANDARD_DATASETS:
        raise ValueError(f"only must be one of {sorted(STANDARD_DATASETS)}, not {only!r}")
    import datasets
    from huggingface_hub import HfApi

    token = resolve_token(token)
    api = api or HfApi(token=token)
    user = str(api.whoami(token=token)["name"])
    names = [STANDARD_DATASETS[only]] if only else list(STANDARD_DATASETS.values())
    copied: list[CopiedDataset] = []
    skipped: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for name in names:
        source, destination = f"{source_user}/{name}", f"{user}/{name}"
        if source == destination:
            skipped.append((destination, "the source and the destination are the same dataset"))
            continue
        try:
            revision = str(api.dataset_info(source, token=token).sha)
            if api.repo_exists(destination, repo_type="dataset", token=token) and not overwrite:
                skipped.append((destination, "it already exists (pass --yes / overwrite=True to replace it)"))
                continue
            log.info("copying %s@%s to %s", source, revision, destination)
            data = datasets.load_dataset(source, revision=revision, token=token)
            data.push_to_hub(destination, private=private, token=token, commit_message=f"Copy of {source}@{revision}")
            if private and api.dataset_info(destination, token=token).private is False:
                api.update_repo_settings(destination, repo_type="dataset", private=True, token=token)
            readme = api.hf_hub_download(destination, "README.md", repo_type="dataset", token=token)
            with open(readme, encoding="utf-8") as handle:
                header = _front_matter(handle.read())
            api.upload_file(
                path_or_fileobj=_card(name, source, revision, header).encode(),
                path_in_repo="README.md",
                repo_id=destination,
                repo_type="dataset",
                token=token,
                commit_message="Dataset card",
            )
        except Exception as exc:
            log.error("could not copy %s: %s", source, describe(exc))
            failed.append((source, describe(exc)))
            continue
        rows = sum(len(split) for split in data.values()) if isinstance(data, dict) else len(data)
        url = f"{api.endpoint.rstrip('/')}/datasets/{destination}"
        copied.append(CopiedDataset(source, revision, destination, url, rows))
    return CopyReport(tuple(copied), tuple(skipped), tuple(failed))
