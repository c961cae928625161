"""pytest-smoltrace: benchmark Hugging Face smolagents agents with pytest — every task is a test item.

Importing this package is cheap: litellm, smolagents and datasets are imported only when a model is configured.
``pytest_smoltrace.run(model=…, **options)`` runs a benchmark from Python (see :mod:`pytest_smoltrace.api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import RunSummary, run

from .version import __version__

__all__ = ["RunSummary", "__version__", "run"]


def __getattr__(name: str) -> Any:
    if name in ("run", "RunSummary"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
