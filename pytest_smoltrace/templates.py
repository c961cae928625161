"""smolagents' prompt templates, compiled once per process instead of once per use.

smolagents renders every prompt (the system prompt of each new agent, the task, the planning and final-answer
prompts) with ``smolagents.agents.populate_template``, which compiles the Jinja template from its source text on every
call. Compiling is most of the cost: in a concurrency-16 profile of the scripted benchmark it was half of all the CPU
spent inside agent runs (≈ 11 ms per model request), while rendering a compiled template takes a fraction of a
millisecond. A benchmark builds a fresh agent per item from the same few templates.

:func:`install` replaces ``populate_template`` in ``smolagents.agents`` with :func:`populate_template`, which keeps
the compiled ``jinja2.Template`` per source text (bounded: :data:`CACHE_SIZE` templates) and renders it with the same
``StrictUndefined`` rule and the same error message. A compiled template's ``render`` is thread-safe, so the agents of
one process share them. Installed once per process by :func:`pytest_smoltrace.models.build_model`.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = ["CACHE_SIZE", "install", "installed", "populate_template"]

#: Distinct template sources kept compiled (smolagents' packaged prompts need a dozen; users' prompt files add a few).
CACHE_SIZE = 256

_installed = False
_lock = threading.Lock()


@functools.lru_cache(maxsize=CACHE_SIZE)
def compiled(template: str) -> Template:
    from jinja2 import StrictUndefined, Template

    return Template(template, undefined=StrictUndefined)


def populate_template(template: str, variables: dict[str, Any]) -> str:
    """smolagents' ``populate_template``, with the template compiled once."""
    compiled_template = compiled(template)  # a syntax error is raised as it is, as smolagents does
    try:
        return compiled_template.render(**variables)
    except Exception as e:  # smolagents' own wording: callers and users see the same error either way
        raise Exception(f"Error during jinja template rendering: {type(e).__name__}: {e}") from e


def installed() -> bool:
    return _installed


def install() -> None:
    """Replace ``smolagents.agents.populate_template`` (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from smolagents import agents

        agents.populate_template = populate_template
        _installed = True
