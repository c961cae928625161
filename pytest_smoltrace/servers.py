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
from .settings import Settings

if TYPE_CHECKING:
    from .localmodel import LocalServer
    from .testing import ScriptedModelServer

log = logging.getLogger(__name__)


class ModelServers:
    """The servers this process started; :meth:`close` stops them."""

    def __init__(self) -> None:
        self.scripted: ScriptedModelServer | None = None
        self.local: LocalServer | None = None

    def start(self, config: pytest.Config, settings: Settings, local: Endpoint | None) -> Endpoint | None:
        """Start what ``settings.model`` needs and return where the model is then reached (None: as the options say).

        ``local``: the local model's server another process already started (an xdist worker's controller's).
        A local model that cannot start is a usage error; ``--collect-only`` starts none."""
        from .localmodel import is_local

        model = settings.model
        if model == SCRIPTED_MODEL:
            return self._start_scripted()
        if not is_local(model):
            return None
        assert model is not None
        if local is not None:
            return local
        if config.option.collectonly:  # nothing runs: the spec names the model, no server
            return Endpoint(model, "local", None)
        from .localmodel import LocalModelError, start_local_server

        try:
            server = start_local_server(model, api_base=settings.api_base)
        except LocalModelError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.local = server
        return Endpoint(server.label, "local", server.base_url)

    def _start_scripted(self) -> Endpoint:
        from .testing import ScriptedModelServer

        scripts = json.loads(
            resources.files("pytest_smoltrace.data").joinpath("default.script.json").read_text("utf-8")
        )
        self.scripted = ScriptedModelServer(scripts)
        self.scripted.start()
        log.info("scripted model server on %s", self.scripted.base_url)
        return Endpoint("openai/scripted", "litellm", self.scripted.base_url)

    def close(self) -> None:
        if self.scripted is not None:
            self.scripted.stop()
            self.scripted = None
        if self.local is not None:
            self.local.stop()
            self.local = None
