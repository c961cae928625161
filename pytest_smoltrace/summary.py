"""Per-agent-type summaries of a run: they live in :mod:`smoltrace_export.summary` (the exporters build the
leaderboard rows from them); this module re-exports them under their old name."""

from __future__ import annotations

from smoltrace_export import summary as _source
from smoltrace_export.summary import *  # noqa: F403  (every public name, as listed by the source's __all__)

__all__ = list(_source.__all__)
