"""A small HTTP(S) client for model-given URLs: one pinned address per hop, bounded in size and time.

Used by ``curl`` and ``visit_webpage``. For each hop (the URL and every redirect, at most
:data:`MAX_REDIRECTS`) it

1. accepts only ``http``/``https`` URLs without credentials, control characters or NUL bytes;
2. asks :meth:`~smoltrace_tools.addresses.NetworkPolicy.pin` for ONE checked address, then opens the TCP
   connection to exactly that address (``Host`` header and TLS SNI/certificate check use the URL's name), so
   DNS is consulted once and a rebinding answer cannot redirect the connection;
3. reads at most ``max_bytes`` of the body before a deadline shared by all hops (``timeout_s``).

No proxy settings, ``.netrc`` or cookies from the environment are used.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

from .addresses import NetworkPolicy
from .errors import NetworkPolicyViolation

__all__ = ["ALLOWED_METHODS", "MAX_REDIRECTS", "MAX_RESPONSE_BYTES", "HttpResponse", "fetch", "parse_http_url"]

ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH")
MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_URL_LENGTH = 8192
USER_AGENT = "pytest-smoltrace/0.1 (benchmark tool)"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class HttpResponse:
    """What a fetch got: the last hop's status, headers and (possibly truncated) body."""

    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool
    redirects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def text(self) -> str:
        """The body decoded with the ``charset`` of ``Content-Type`` (UTF-8 by default); bad bytes → U+FFFD."""
        charset = "utf-8"
        content_type = self.header("content-type") or ""
        for part in content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"' ")
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # without brackets
    port: int
    path: str
    explicit_port: bool


def parse_http_url(url: object) -> _Target:
    """Split an http(s) URL; :class:`NetworkPolicyViolation` for other schemes, credentials or odd characters."""
    if not isinstance(url, str):
        raise NetworkPolicyViolation(f"the URL must be a string, got {type(url).__name__}")
    if len(url) > MAX_URL_LENGTH:
        raise NetworkPolicyViolation(f"the URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise NetworkPolicyViolation(f"the URL {url[:200]!r} contains whitespace, control characters or a NUL byte")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NetworkPolicyViolation(f"invalid URL {url[:200]!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise NetworkPolicyViolation(
            f"the URL scheme {scheme + ':' if scheme else '(none)'} is refused; "
            "only http:// and https:// URLs are allowed"
        )
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise NetworkPolicyViolation("URLs with credentials (user:password@host) are refused")
    host = parts.hostname
    if not host:
        raise NetworkPolicyViolation(f"the URL {url[:200]!r} has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if scheme == "https" else 80
    return _Target(scheme, host, port if port is not None else default, path, port is not None)


def _host_for_http_client(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, pinned: str, timeout: float) -> None:
        super().__init__(_host_for_http_client(host), port, timeout=timeout)
        self._pinned = pinned

    def connect(self) -> None:
        self.sock = socket.create_connection((self._pinned, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, pinned: str, timeout: float) -> None:
        super().__init__(_host_for_http_client(host), port, timeout=timeout, context=ssl.create_default_context())
        self._pinned = pinned

    def connect(self) -> None:
        sock = socket.create_connection((self._pinned, self.port), self.timeout)
        context: ssl.SSLContext = self._context  # type: ignore[attr-defined]
        self.sock = context.wrap_socket(sock, server_hostname=self.host)


def _open(target: _Target, pinned: str, timeout: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target.host, target.port, pinned, timeout)
    return _PinnedHTTPConnection(target.host, target.port, pinned, timeout)


def _check_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (headers or {}).items():
        name, text = str(key), str(value)
        if not name or any(c in name for c in ":\r\n\x00 ") or any(c in text for c in "\r\n\x00"):
            raise NetworkPolicyViolation(f"invalid header {name!r}")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise NetworkPolicyViolation(f"the header {name!r} may not be set; the client sets it")
        out[name] = text
    return out


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"{what} ran past its time limit")
    return left


def _read_body(
    response: http.client.HTTPResponse, conn: http.client.HTTPConnection, max_bytes: int, deadline: float
) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    total = 0
    while total <= max_bytes:
        if conn.sock is not None:
            conn.sock.settimeout(_remaining(deadline, "reading the response"))
        chunk = response.read(min(65536, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    body = b"".join(chunks)
    return body[:max_bytes], len(body) > max_bytes


def fetch(
    url: str,
    *,
    policy: NetworkPolicy,
    method: str = "GET",
    headers: Mapping[str, Any] | None = None,
    body: bytes | None = None,
    timeout_s: float = 30.0,
    follow_redirects: bool = True,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> HttpResponse:
    """Send one request (following up to :data:`MAX_REDIRECTS` re-checked redirects) and read the response."""
    verb = str(method or "GET").upper()
    if verb not in ALLOWED_METHODS:
        raise ValueError(f"method {method!r} is not supported; use one of {', '.join(ALLOWED_METHODS)}")
    sent_headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    sent_headers.update(_check_headers(headers))
    deadline = time.monotonic() + timeout_s
    redirects: list[str] = []
    current = url
    payload = body
    origin: tuple[str, str, int] | None = None
    for _hop in range(MAX_REDIRECTS + 1):
        target = parse_http_url(current)
        here = (target.scheme, target.host, target.port)
        if origin is not None and here != origin:
            sent_headers = {k: v for k, v in sent_headers.items() if k.lower() not in _SENSITIVE_HEADERS}
        origin = here
        pinned = policy.pin(target.host, target.port)
        conn = _open(target, pinned, _remaining(deadline, "the request"))
        try:
            conn.request(verb, target.path, body=payload if verb not in ("GET", "HEAD") else None, headers=sent_headers)
            response = conn.getresponse()
            location = response.getheader("Location")
            if follow_redirects and response.status in _REDIRECTS and location:
                response.read(65536)  # drain a little; the connection is closed below anyway
                next_url = urljoin(current, location.strip())
                redirects.append(next_url)
                if response.status == 303 or (response.status in (301, 302) and verb == "POST"):
                    verb, payload = "GET", None
                current = next_url
                continue
            data, truncated = (b"", False) if verb == "HEAD" else _read_body(response, conn, max_bytes, deadline)
            return HttpResponse(
                url=current,
                status=response.status,
                reason=response.reason,
                headers=list(response.getheaders()),
                body=data,
                truncated=truncated,
                redirects=redirects,
            )
        except TimeoutError:  # socket timeouts and the shared deadline
            raise TimeoutError(f"the request to {current[:200]} did not finish within {timeout_s:g} s") from None
        finally:
            conn.close()
    raise ConnectionError(f"more than {MAX_REDIRECTS} redirects (last: {current[:200]})")
