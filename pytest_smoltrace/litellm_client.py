"""litellm's process-wide setup: offline and quiet before its first import, and its async HTTP clients released at
exit while the interpreter is whole (see :func:`release_litellm_clients`)."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)


def prepare_litellm() -> None:
    """Keep litellm offline and quiet; must run before the first ``import litellm``.

    Also arranges for litellm's async HTTP clients to be released at exit (:func:`release_litellm_clients`)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    global _release_registered
    with _release_lock:
        if not _release_registered:
            atexit.register(release_litellm_clients)
            _release_registered = True


_release_registered = False
_release_lock = threading.Lock()


def release_litellm_clients() -> None:
    """Close litellm's async HTTP clients while the interpreter is still whole (registered with ``atexit``).

    litellm keeps async clients (one at module level, more in its client cache) even when only its sync API is
    used. Left to the garbage collector at interpreter exit, their ``__del__`` imports a module while the import
    system is being torn down — after a Ctrl-C, with an abandoned agent thread still alive, the process then hung
    in ``importlib._get_module_lock`` until a second Ctrl-C. Here they are closed explicitly (litellm's own
    ``close_litellm_async_clients``) and marked as no longer owning their clients, so their ``__del__`` has
    nothing left to do.
    """
    litellm = sys.modules.get("litellm")
    if litellm is None:
        return
    try:
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler
    except ImportError:  # pragma: no cover - litellm without these modules: nothing of ours to release
        return
    try:
        asyncio.run(asyncio.wait_for(close_litellm_async_clients(), timeout=5))
    except Exception:  # best effort at exit: never turn a clean exit into a traceback
        log.debug("closing litellm's async clients failed", exc_info=True)
    cache = getattr(getattr(litellm, "in_memory_llm_clients_cache", None), "cache_dict", None) or {}
    handlers = [getattr(litellm, "module_level_aclient", None), *list(cache.values())]
    for handler in handlers:
        if isinstance(handler, AsyncHTTPHandler) and hasattr(handler, "_owns_client"):
            handler._owns_client = False
