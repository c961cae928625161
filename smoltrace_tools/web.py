"""Web tools by SMOLTRACE's names: ``google_search`` / ``duckduckgo_search`` (both reach the agent as
``web_search``), ``visit_webpage`` and ``wikipedia_search``.

The search tools are smolagents' own classes (they talk to fixed API endpoints). ``visit_webpage`` is ours: the
same interface as smolagents' ``VisitWebpageTool`` but fetched through :func:`~smoltrace_tools.fetch.fetch`, so
model-given URLs get the network policy (no loopback/private/metadata addresses, pinned DNS, size/time caps)
that smolagents' plain ``requests.get`` lacks. They all need the internet to work and the ``web`` extra
(``pip install 'pytest-smoltrace[web]'``: ddgs, markdownify, wikipedia-api) to be built.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .base import ContextTool, clip
from .errors import WEB_EXTRA, ToolUnavailableError, require_module
from .fetch import fetch

if TYPE_CHECKING:
    from smolagents import Tool


__all__ = [
    "SEARCH_PROVIDERS",
    "WEB_EXTRA",
    "SearchProvider",
    "VisitWebpageTool",
    "build_search_tool",
    "build_wikipedia_tool",
    "search_provider",
]

VISIT_MAX_CHARS = 40_000
VISIT_MAX_BYTES = 5 * 1024 * 1024
WIKIPEDIA_USER_AGENT = "pytest-smoltrace (https://pypi.org/project/pytest-smoltrace/)"


@dataclass(frozen=True)
class SearchProvider:
    """One ``--search-provider`` choice: what it needs and how it is built."""

    name: str
    api_key_env: str | None
    module: str | None  # an optional dependency (importable module name), None when smolagents has all it needs


#: The providers of ``google_search`` (and of the ``web_search`` alias); ``duckduckgo_search`` is always duckduckgo.
SEARCH_PROVIDERS: dict[str, SearchProvider] = {
    "duckduckgo": SearchProvider("duckduckgo", None, "ddgs"),
    "serper": SearchProvider("serper", "SERPER_API_KEY", None),
    "serpapi": SearchProvider("serpapi", "SERPAPI_API_KEY", None),
    "brave": SearchProvider("brave", "BRAVE_API_KEY", None),
}


def search_provider(name: str) -> SearchProvider:
    """The provider called ``name`` (case-insensitive); :class:`ToolUnavailableError` listing the choices."""
    key = (name or "").strip().lower()
    if key not in SEARCH_PROVIDERS:
        raise ToolUnavailableError(
            f"unknown search provider {name!r}; choose one of {', '.join(sorted(SEARCH_PROVIDERS))}"
        )
    return SEARCH_PROVIDERS[key]


def check_search_provider(name: str) -> SearchProvider:
    """:func:`search_provider` plus its API key (by environment variable) and optional dependency."""
    provider = search_provider(name)
    if provider.api_key_env and not os.environ.get(provider.api_key_env):
        raise ToolUnavailableError(
            f"the {provider.name} search provider needs an API key: set the environment variable "
            f"{provider.api_key_env}, or choose another search provider (duckduckgo needs none)"
        )
    if provider.module:
        require_module(provider.module, WEB_EXTRA, f"the {provider.name} search provider")
    return provider


def build_search_tool(name: str) -> Tool:
    """A fresh smolagents ``web_search`` tool for the provider ``name``."""
    provider = check_search_provider(name)
    if provider.name == "duckduckgo":
        from smolagents import DuckDuckGoSearchTool

        return DuckDuckGoSearchTool()
    if provider.name in ("serper", "serpapi"):
        from smolagents import GoogleSearchTool

        return GoogleSearchTool(provider=provider.name)
    from smolagents import ApiWebSearchTool

    assert provider.api_key_env is not None
    return ApiWebSearchTool(api_key=os.environ[provider.api_key_env], api_key_name=provider.api_key_env)


def build_wikipedia_tool() -> Tool:
    from smolagents import WikipediaSearchTool

    return WikipediaSearchTool(user_agent=WIKIPEDIA_USER_AGENT, content_type="summary")


class VisitWebpageTool(ContextTool):
    """smolagents' ``visit_webpage`` interface, fetched under the network policy."""

    name = "visit_webpage"
    description = (
        "Visits a webpage at the given url and reads its content as a markdown string. Use this to browse webpages."
    )
    inputs = {"url": {"type": "string", "description": "The url of the webpage to visit."}}  # noqa: RUF012
    output_type = "string"

    def forward(self, url: str) -> str:
        response = fetch(
            url, policy=self.context.network, timeout_s=min(20.0, self.context.timeout_s), max_bytes=VISIT_MAX_BYTES
        )
        if response.status >= 400:
            raise ConnectionError(f"{url} answered HTTP {response.status} {response.reason}")
        text = response.text()
        content_type = (response.header("content-type") or "").lower()
        if "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            from markdownify import markdownify

            text = markdownify(text).strip()
        text = re.sub(r"\n{3,}", "\n\n", text)
        return clip(text, VISIT_MAX_CHARS)
