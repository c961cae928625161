"""``python -m pytest_smoltrace.testing``: serve a scripted OpenAI/Ollama-compatible model until interrupted."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence

from .server import Script, ScriptedModelServer

logger = logging.getLogger("pytest_smoltrace.testing")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve scripts from a JSON file (``{key: script}``) until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_smoltrace.testing", description="Serve a scripted OpenAI/Ollama-compatible model."
    )
    parser.add_argument("--scripts", metavar="FILE.json", help="JSON object mapping keys to scripts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds added to every response")
    parser.add_argument("--default-reply", default=None, help="text answered when no script matches")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    scripts: dict[str, Script] = {}
    if args.scripts:
        try:
            with open(args.scripts, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except (OSError, ValueError) as exc:
            logger.error("cannot read %s: %s", args.scripts, exc)
            return 2
        if not isinstance(loaded, dict):
            logger.error("%s must hold a JSON object mapping keys to scripts", args.scripts)
            return 2
        scripts = loaded
    try:
        server = ScriptedModelServer(
            scripts, latency_s=args.latency, default_reply=args.default_reply, host=args.host, port=args.port
        )
    except (TypeError, ValueError) as exc:
        logger.error("invalid scripts: %s", exc)
        return 2
    with server:
        logger.info("ScriptedModelServer: %d script(s), OpenAI base URL %s", len(scripts), server.base_url)
        logger.info("Ollama api_base %s; press Ctrl-C to stop", server.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            logger.info("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
