"""pytest hook wiring only: options, hookspecs and — with a model — the plugins of this process's role (:mod:`.roles`).

Without a model (option, ini or ``SMOLTRACE_MODEL``) nothing but the options and the hookspecs is added and nothing
heavy is imported; with one, the controller plugin and/or the executor plugin are registered. The fixtures users'
tests get are a plugin of their own (:mod:`.fixtures`, entry point ``smoltrace_fixtures``)."""

from __future__ import annotations

import pytest

from . import hooks, options


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not options.is_active(config):
        return
    from .collect import FIXED_MARKERS
    from .roles import start
    from .settings import resolve

    settings = resolve(config)
    for name, text in FIXED_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    start(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    if not options.is_active(config):
        return
    from .roles import get_session

    session = get_session(config)
    if session is not None:
        session.close()
