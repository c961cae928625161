"""``--smoltrace-shard I/N``: one of N deterministic parts of the benchmark items, whole tasks at a time.

Every shard collects every item (as every xdist worker does) and keeps those of its own tasks; the rest are
deselected (:func:`.collect.drop_other_shards`, through pytest's ``pytest_deselected``, as the items a resumed run had
finished are). This module imports nothing of the plugin: the option table parses the flag with it.

A *task* is ``(source, task id)``: all its repeats, all models (labels) and both agent types land in the same
shard, so the statistics of the merged run (pass^k over repeats, paired comparisons between models and agent types)
stay paired.

The assignment is balanced, not a bare hash modulo N: the tasks are ordered by the SHA-256 digest of their key
(stable across machines, processes and Python versions, unlike ``hash()``; it also spreads a source's neighbours,
often of the same difficulty, over the shards), then each task goes to the shard that holds the fewest items so far
(ties: the lowest index), tasks with more items first. Shards are then within one task's items of each other and
none is empty while there are at least N tasks, where ``sha256 % N`` can leave a shard of a small suite empty (a CI
job that collects nothing, exit status 5). The price: adding a task to the source may move other tasks to other
shards, which does not matter, since one shard set is one run. Items that are not benchmark items (the session's own
tests) are not split: every shard runs them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: What the option expects, for its error messages.
SHARD_FORM = "I/N with 1 ≤ I ≤ N (this job's shard of N, e.g. 2/4)"
_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_dict(cls, data: Any) -> Shard | None:
        """The shard of a settings or metadata entry (``{"index", "count"}`` or ``"I/N"``); None when there is none."""
        if data is None:
            return None
        if isinstance(data, str):
            return parse_shard(data)
        if isinstance(data, dict):
            return cls(int(data["index"]), int(data["count"]))
        raise ValueError(f"expected {{'index', 'count'}} or 'I/N', got {data!r}")


def parse_shard(text: str) -> Shard:
    """``"2/4"`` → ``Shard(2, 4)``; a :class:`ValueError` saying the expected form otherwise."""
    match = _SHARD_RE.match(text)
    if not match:
        raise ValueError(f"expected {SHARD_FORM}; got {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected {SHARD_FORM}; got {text!r}")
    return Shard(index, count)


TaskKey = tuple[str, str]


def _digest(key: TaskKey) -> str:
    return hashlib.sha256(f"{key[0]}\0{key[1]}".encode()).hexdigest()


def assign(sizes: dict[TaskKey, int], count: int) -> dict[TaskKey, int]:
    """Each task's shard (1-based) for ``count`` shards: ``sizes`` maps each task to its number of items."""
    loads = [0] * count
    shards: dict[TaskKey, int] = {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], _digest(k))):
        lightest = min(range(count), key=lambda s: (loads[s], s))
        loads[lightest] += sizes[key]
        shards[key] = lightest + 1
    return shards


def split(keys: Sequence[TaskKey | None], shard: Shard) -> tuple[list[int], list[int]]:
    """The positions this shard keeps and those it leaves to the others, given each item's task key (``None``: not a
    benchmark item, kept). The items of :mod:`.collect` (``drop_other_shards``) are its caller."""
    sizes: dict[TaskKey, int] = {}
    for key in keys:
        if key is not None:
            sizes[key] = sizes.get(key, 0) + 1
    shards = assign(sizes, shard.count)
    keep: list[int] = []
    drop: list[int] = []
    for position, key in enumerate(keys):
        (keep if key is None or shards[key] == shard.index else drop).append(position)
    return keep, drop
