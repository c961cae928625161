"""Test doubles for what cannot run here, for this project's tests and for users' own: the scripted model server
(:mod:`.server`, OpenAI- and Ollama-compatible, over real HTTP on 127.0.0.1).

Their fixtures (``smoltrace_model_server``, ``fake_hub``) come with the installed plugin
(:mod:`pytest_smoltrace.fixtures`); ``python -m pytest_smoltrace.testing`` serves a scripted model from the command
line.
"""

from __future__ import annotations

from .server import (
    DEFAULT_SUMMARY,
    FAULTS,
    USAGE_DETAIL_KEYS,
    USAGE_KEYS,
    RequestLog,
    Script,
    ScriptedModelServer,
    Turn,
)

__all__ = [
    "DEFAULT_SUMMARY",
    "FAULTS",
    "USAGE_DETAIL_KEYS",
    "USAGE_KEYS",
    "RequestLog",
    "Script",
    "ScriptedModelServer",
    "Turn",
]
