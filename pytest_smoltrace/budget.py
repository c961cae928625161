"""``--smoltrace-max-cost``: one spending total for the whole run, shared by every thread, xdist worker and host.

The total lives in the run's limits store (:mod:`.limits`: this machine's temporary directory by default, or the
store ``--smoltrace-limits-url`` names, shared by several machines). Each finished item adds its cost atomically; no
new item starts once the total reaches the limit (runs already in flight finish and are reported, so the total may
pass the limit by the cost of the runs in flight when it was reached: at most one item per run in flight).
"""

from __future__ import annotations

from .limits import COST, LimitsStore


class Budget:
    def __init__(self, limit_usd: float, store: LimitsStore) -> None:
        self.limit_usd = limit_usd
        self.store = store

    def start(self, spent_usd: float = 0.0) -> float:
        """Start the run's total at ``spent_usd`` (a shared store keeps the total another session of the run started);
        returns the total in force."""
        return self.store.start(COST, spent_usd)

    def spent(self) -> float:
        return self.store.total(COST)

    def add(self, cost_usd: float | None) -> float:
        return self.store.add(COST, cost_usd or 0.0)

    def exhausted(self) -> bool:
        return self.spent() >= self.limit_usd

    def reason(self) -> str:
        return f"budget reached: the run has spent ${self.spent():.4f} of --smoltrace-max-cost ${self.limit_usd:g}"
