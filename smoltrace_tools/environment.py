"""The per-run environment overlay behind the ``env`` tool, and the secret detector that hides values.

``env set`` writes into an :class:`EnvOverlay`, never into ``os.environ``: the evaluator's own settings
(``OPENAI_API_BASE``, ``HF_TOKEN``, ``PATH``…) cannot be rewritten by an agent, and nothing the agent sets reaches
a subprocess (children get a fixed environment, see :mod:`smoltrace_tools.processes`).

``env get`` / ``env list`` show a value only when neither the name nor the value looks secret
(:func:`secret_reason`): names containing TOKEN, KEY, SECRET, PASSWORD, CREDENTIAL, AUTH, COOKIE, SESSION,
PRIVATE, WEBHOOK, DSN…; values that look like API keys (``sk-``, ``hf_``, ``ghp_``, ``AKIA``, JWTs, PEM blocks),
long random-looking tokens (hex, base64), or URLs with credentials (``postgres://user:pass@host/db``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

__all__ = ["EnvOverlay", "secret_reason"]

_SECRET_NAME = re.compile(
    r"TOKEN|KEY|SECRET|PASS|PWD_|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|WEBHOOK|SIGNATURE|SALT|DSN|CERT|"
    r"BEARER|JWT|OAUTH|SSH|GPG|PGP",
    re.IGNORECASE,
)
_SECRET_PREFIX = re.compile(
    r"^(sk-|sk_|rk_|pk_live_|pk_test_|hf_|api_org_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abprs]-|"
    r"AKIA|ASIA|AIza|ya29\.|npm_|pypi-|SG\.|dop_v1_|shpat_|eyJ)[A-Za-z0-9_\-.=+/]{8,}"
)
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s@]+@")
_SCHEME_AUTH = re.compile(r"^(Bearer|Basic|Token)\s+\S{8,}", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[\s:;,/@?&#=]+")


def _looks_random(token: str) -> bool:
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    if len(token) >= 32 and re.fullmatch(r"[0-9A-Fa-f]+", token):
        return True
    if len(token) >= 32 and has_digit and has_alpha:
        return True
    return len(token) >= 20 and has_digit and any(c.isupper() for c in token) and any(c.islower() for c in token)


def secret_reason(name: str, value: str | None) -> str | None:
    """Why the value of ``name`` must be hidden (``"secret-looking name"`` / ``"secret-looking value"``), or None."""
    if _SECRET_NAME.search(name):
        return "the name looks like a secret"
    if not value:
        return None
    text = value.strip()
    if "-----BEGIN" in text or _SECRET_PREFIX.search(text) or _SCHEME_AUTH.match(text):
        return "the value looks like a key or token"
    if _URL_CREDENTIALS.search(text):
        return "the value is a URL with credentials"
    if any(_looks_random(token) or _SECRET_PREFIX.match(token) for token in _TOKEN_SPLIT.split(text)):
        return "the value looks like a key or token"
    return None


def environ_items() -> list[tuple[str, str]]:
    """``os.environ``'s items, read safely while other threads change it. pytest's main thread sets and deletes
    ``PYTEST_CURRENT_TEST`` around every item while agent threads run: iterating ``os.environ`` then can raise
    ``KeyError`` (a key deleted between listing and reading) or ``RuntimeError`` (the dict changed size)."""
    for _ in range(1000):
        try:
            keys = list(os.environ)
        except RuntimeError:  # changed while listed: list again
            continue
        return [(k, v) for k in keys if (v := os.environ.get(k)) is not None]
    raise RuntimeError("os.environ kept changing while it was read")


class EnvOverlay:
    """Environment variables as the agent sees them: ``os.environ`` (read live) plus the run's own ``set`` calls."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self._base = base
        self._own: dict[str, str] = {}
        self._lock = threading.Lock()

    def _base_env(self) -> Mapping[str, str]:
        return os.environ if self._base is None else self._base

    def get(self, name: str) -> str | None:
        with self._lock:
            if name in self._own:
                return self._own[name]
        return self._base_env().get(name)

    def set(self, name: str, value: str) -> None:
        with self._lock:
            self._own[name] = value

    def names(self) -> list[str]:
        with self._lock:
            own = set(self._own)
        base = {k for k, _ in environ_items()} if self._base is None else set(self._base)
        return sorted(own | base)

    @property
    def changes(self) -> dict[str, str]:
        """What this run set (the evaluator's environment is never changed)."""
        with self._lock:
            return dict(self._own)
