"""``--smoltrace-max-cost``: one spending total for the whole run, shared by every thread and xdist worker.

The total lives in a file shared by every process (:mod:`.shared`, like the rate limiter). Each finished item adds its
cost; no new item starts once the total reaches the limit (runs already in flight finish and are reported).
"""

from __future__ import annotations

from pathlib import Path

from .shared import update_shared


class Budget:
    def __init__(self, limit_usd: float, path: Path) -> None:
        self.limit_usd = limit_usd
        self.path = path

    def reset(self, spent_usd: float = 0.0) -> None:
        update_shared(self.path, lambda _: spent_usd)

    def spent(self) -> float:
        return update_shared(self.path, lambda _: None)[1]

    def add(self, cost_usd: float | None) -> float:
        return update_shared(self.path, lambda total: total + cost_usd if cost_usd else None)[1]

    def exhausted(self) -> bool:
        return self.spent() >= self.limit_usd

    def reason(self) -> str:
        return f"budget reached: the run has spent ${self.spent():.4f} of --smoltrace-max-cost ${self.limit_usd:g}"
