"""The records of a run (tasks, tool calls, steps, retries, run records, checks, verdicts, item results).

They live in :mod:`smoltrace_export.records`, the bottom of the import graph that the plugin, the tools and the
exporters all import; this module re-exports them under the name users' conftests have always imported
(``from pytest_smoltrace.records import Check``).
"""

from __future__ import annotations

from smoltrace_export import records as _source
from smoltrace_export.records import *  # noqa: F403  (every public name, as listed by the source's __all__)

__all__ = list(_source.__all__)
