"""The model servers a session starts itself: the bundled scripted server, the embedded local model's server.

``--smoltrace-model scripted`` starts a scripted server in each process that needs one; ``--smoltrace-model local``
starts the local model's server once per run, on the controller (workers reach it through what the controller sent).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import TYPE_CHECKING

import pytest

from .identity import SCRIPTED_MODEL, Endpoint

if TYPE_CHECKING:
    from .lineup import Contender
    from .localmodel import LocalServer
    from .testing import ScriptedModelServer

log = logging.getLogger(__name__)


class ModelServers:
    """The servers this process started; :meth:`close` stops them."""

    def __init__(self) -> None:
        self.scripted: ScriptedModelServer | None = None
        self.local: LocalServer | None = None

    def start(self, config: pytest.Config, contender: Contender, local: Endpoint | None) -> Endpoint | None:
        """Start what ``contender`` needs and return where the model is then reached (None: as it was given).

        ``local``: the local model's server another process already started (an xdist worker's controller's).
        A local model that cannot start is a usage error; ``--collect-only`` starts none. The scripted server is
        started once and serves every scripted model of the session; one embedded local model per session."""
        from .localmodel import is_local

        model = contender.model
        if model == SCRIPTED_MODEL:
            return self._start_scripted()
        if not is_local(model):
            return None
        if local is not None:
            return local
        if self.local is not None:
            raise pytest.UsageError(
                f"{contender.origin}: {model}: one embedded local model per session (another is already running); "
                "benchmark the other in a session of its own"
            )
        if config.option.collectonly:  # nothing runs: the spec names the model, no server
            return Endpoint(model, "local", None)
        from .localmodel import LocalModelError, start_local_server

        try:
            server = start_local_server(model, api_base=contender.api_base)
        except LocalModelError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.local = server
        return Endpoint(server.label, "local", server.base_url)

    def _start_scripted(self) -> Endpoint:
        if self.scripted is not None:
            return Endpoint("openai/scripted", "openai", self.scripted.base_url)
        from .testing import ScriptedModelServer

        scripts = json.loads(
            resources.files("pytest_smoltrace.data").joinpath("default.script.json").read_text("utf-8")
        )
        self.scripted = ScriptedModelServer(scripts)
        self.scripted.start()
        log.info("scripted model server on %s", self.scripted.base_url)
        return Endpoint("openai/scripted", "openai", self.scripted.base_url)

    def close(self) -> None:
        if self.scripted is not None:
            self.scripted.stop()
            self.scripted = None
        if self.local is not None:
            self.local.stop()
            self.local = None
