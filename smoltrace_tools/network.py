"""Network tools (SMOLTRACE's names and arguments): ``curl`` and ``ping``.

Both go through the run's :class:`~smoltrace_tools.addresses.NetworkPolicy`: the host is resolved once, every
address is checked (loopback, private, link-local and metadata addresses are refused unless the run allows the
private network), and the connection goes to the checked address. ``curl`` uses :func:`~smoltrace_tools.fetch.fetch`
(http/https only, no credentials in URLs, redirects re-checked, response capped); ``ping`` runs the system
``ping`` on the pinned IP address (never on a name) with a fixed environment, and registers the child so that
``kill`` can stop it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from .addresses import parse_ip_literal
from .base import ContextTool, as_bool, as_int, as_str, clip
from .errors import NetworkPolicyViolation
from .fetch import ALLOWED_METHODS, fetch

__all__ = ["CURL_OUTPUT_CHARS", "CurlTool", "PingTool"]

#: ``curl`` returns at most this many characters of the body (SMOLTRACE's 5000).
CURL_OUTPUT_CHARS = 5000
MAX_CURL_TIMEOUT = 60
MAX_BODY_CHARS = 1024 * 1024
MAX_PING_COUNT = 20
MAX_PING_TIMEOUT = 30


def _headers(value: object) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        parsed: object = value
    else:
        try:
            parsed = json.loads(str(value))
        except ValueError:
            raise ValueError('headers must be a JSON object, e.g. {"Accept": "application/json"}') from None
    if not isinstance(parsed, dict):
        raise ValueError('headers must be a JSON object, e.g. {"Accept": "application/json"}')
    if len(parsed) > 50:
        raise ValueError("at most 50 headers")
    return {str(k): v for k, v in parsed.items()}


class CurlTool(ContextTool):
    name = "curl"
    description = (
        "Makes an HTTP(S) request and returns the status line, the content type and the start of the body "
        "(5000 characters). method is GET (default), POST, PUT, DELETE, HEAD or PATCH; headers is a JSON object; "
        "body is sent for POST/PUT/PATCH/DELETE. Only public http:// and https:// URLs are allowed."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "url": {"type": "string", "description": "The http:// or https:// URL."},
        "method": {"type": "string", "description": "HTTP method (default GET).", "nullable": True},
        "headers": {
            "type": "string",
            "description": 'Headers as JSON, e.g. {"Accept": "text/html"}.',
            "nullable": True,
        },
        "body": {"type": "string", "description": "Request body.", "nullable": True},
        "timeout": {"type": "integer", "description": "Seconds (default 30, max 60).", "nullable": True},
        "follow_redirects": {"type": "boolean", "description": "Follow redirects (default true).", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        url: str,
        method: str | None = "GET",
        headers: str | None = None,
        body: str | None = None,
        timeout: int | None = 30,
        follow_redirects: bool | None = True,
    ) -> str:
        verb = as_str(method, "GET", "method").strip().upper() or "GET"
        if verb not in ALLOWED_METHODS:
            raise ValueError(f"method must be one of {', '.join(ALLOWED_METHODS)}, got {method!r}")
        seconds = as_int(timeout, 30, "timeout", low=1, high=MAX_CURL_TIMEOUT)
        payload = as_str(body, "", "body")
        if len(payload) > MAX_BODY_CHARS:
            raise ValueError(f"the body is {len(payload)} characters long; the limit is {MAX_BODY_CHARS}")
        response = fetch(
            as_str(url, "", "url"),
            policy=self.context.network,
            method=verb,
            headers=_headers(headers),
            body=payload.encode("utf-8") if payload else None,
            timeout_s=min(float(seconds), self.context.timeout_s),
            follow_redirects=as_bool(follow_redirects, True, "follow_redirects"),
        )
        lines = [f"HTTP {response.status} {response.reason}"]
        if response.redirects:
            lines.append(f"Redirected to: {response.url}")
        for name in ("Content-Type", "Content-Length", "Location"):
            value = response.header(name)
            if value is not None:
                lines.append(f"{name}: {value}")
        text = response.text()
        if response.truncated:
            text += "\n… [response body cut at the size limit]"
        return "\n".join(lines) + "\n\n" + clip(text, CURL_OUTPUT_CHARS)


class PingTool(ContextTool):
    name = "ping"
    description = (
        "Pings a public host with the system ping command (count echo requests, each waiting up to timeout "
        "seconds) and returns its output. Local and private addresses are refused."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "host": {"type": "string", "description": "Host name or IP address."},
        "count": {"type": "integer", "description": "Echo requests to send (default 4, max 20).", "nullable": True},
        "timeout": {"type": "integer", "description": "Seconds to wait for each reply (default 5).", "nullable": True},
    }
    output_type = "string"

    #: The ping executable (tests may point this at a stand-in); None → found on the evaluator's PATH.
    executable: str | None = None

    def forward(self, host: str, count: int | None = 4, timeout: int | None = 5) -> str:
        name = as_str(host, "", "host").strip()
        if not name or name.startswith("-"):
            raise NetworkPolicyViolation(f"invalid host {host!r}")
        n = as_int(count, 4, "count", low=1, high=MAX_PING_COUNT)
        wait = as_int(timeout, 5, "timeout", low=1, high=MAX_PING_TIMEOUT)
        address = self.context.network.pin(name, 0)
        executable = self.executable or shutil.which("ping")
        if executable is None:
            raise FileNotFoundError("the ping command is not installed on this machine")
        literal = parse_ip_literal(address)
        family = ["-6"] if literal is not None and literal.version == 6 else ["-4"]
        argv = [executable, *family, "-n", "-c", str(n), "-W", str(wait), address]
        child = self.context.processes.spawn(argv)
        try:
            output, _ = child.communicate(timeout=n * (wait + 1) + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            output, _ = child.communicate()
            raise TimeoutError(f"ping {address} did not finish in time") from None
        text = output.decode("utf-8", errors="replace").strip()
        return clip(f"$ ping -c {n} -W {wait} {address}  (exit code {child.returncode})\n{text}", 5000)
