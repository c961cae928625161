"""One run's shared tool state: the sandboxed working directory, the spawned processes, the environment overlay
and the network policy. :func:`smoltrace_tools.get_tools` makes one per call and gives it to every tool it
returns (``tool.context``), so the tools of one item share it and two items never do.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

from .addresses import NetworkPolicy
from .environment import EnvOverlay
from .processes import ProcessRegistry
from .sandbox import Sandbox

__all__ = ["ToolContext"]

logger = logging.getLogger(__name__)


class ToolContext:
    """Shared by the tools of one ``get_tools`` call. ``close()`` kills processes the tools left running."""

    def __init__(
        self,
        *,
        working_dir: str | os.PathLike[str] | None = None,
        timeout_s: float = 30.0,
        allow_private_network: bool = False,
        network: NetworkPolicy | None = None,
        search_provider: str = "duckduckgo",
        user_input_answer: str | None = None,
        additional_imports: Sequence[str] = (),
    ) -> None:
        self.working_dir = Path(os.getcwd() if working_dir is None else os.fspath(working_dir))
        self.timeout_s = float(timeout_s)
        self.network = network if network is not None else NetworkPolicy(allow_private_network=allow_private_network)
        self.search_provider = search_provider
        self.user_input_answer = user_input_answer
        self.additional_imports = tuple(additional_imports)
        self.processes = ProcessRegistry()
        self.env = EnvOverlay()
        self._finalizer = weakref.finalize(self, self.processes.terminate_all)

    @functools.cached_property
    def sandbox(self) -> Sandbox:
        """The working directory as a :class:`Sandbox` (built on first use; raises if it does not exist)."""
        return Sandbox(self.working_dir)

    def close(self) -> None:
        """Kill the processes the tools started that still run. Idempotent."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"ToolContext(working_dir={str(self.working_dir)!r}, network={self.network!r})"
