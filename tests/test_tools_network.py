"""curl / visit_webpage / the address policy.

Traffic only ever goes to test servers on 127.0.0.1 (with ``allow_private_network``). Private, link-local and
metadata ranges are checked by calling the policy directly; where a request would leave loopback, the socket
factory is replaced so that nothing connects."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smoltrace_tools import fetch as fetch_module
from smoltrace_tools import get_tools
from smoltrace_tools.addresses import NetworkPolicy, parse_ip_literal, refusal_reason
from smoltrace_tools.errors import NetworkPolicyViolation
from smoltrace_tools.fetch import fetch, parse_http_url
from smoltrace_tools.web import VisitWebpageTool

# ----------------------------------------------------------------------------------------------- address policy

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "::1": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "fd00::1": "private",
    "fc00::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "169.254.169.254": "metadata",
    "169.254.170.2": "metadata",
    "fd00:ec2::254": "metadata",
    "100.100.100.200": "metadata",
    "100.64.0.1": "non-public",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "metadata",
    "::ffff:10.0.0.1": "private",
    "::ffff:0.0.0.0": "unspecified",
    "64:ff9b::7f00:1": "loopback",
    "64:ff9b::a9fe:a9fe": "metadata",
    "2002:7f00:1::": "loopback",
    "2002:a9fe:a9fe::": "metadata",
    "::127.0.0.1": "loopback",
    "192.0.2.1": "",  # documentation, benchmarking and future-use ranges: refused, whatever the label
    "198.18.0.1": "",
    "240.0.0.1": "",
}


@pytest.mark.parametrize(("address", "kind"), REFUSED.items())
def test_refused_addresses(address: str, kind: str) -> None:
    reason = refusal_reason(address)
    assert reason is not None and kind in reason, reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(address) is None


def test_allow_private_network_still_refuses_metadata_unspecified_and_multicast() -> None:
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "169.254.1.1", "fd00::1", "100.64.0.1"):
        assert refusal_reason(address, allow_private_network=True) is None
    for address in ("169.254.169.254", "fd00:ec2::254", "0.0.0.0", "::", "224.0.0.1", "::ffff:169.254.169.254"):
        assert refusal_reason(address, allow_private_network=True) is not None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("017700000001", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_numeric_spellings_are_parsed_like_inet_aton(host: str, address: str) -> None:
    parsed = parse_ip_literal(host)
    assert parsed is not None and str(parsed) == address


@pytest.mark.parametrize("host", ["example.com", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x", "1..1"])
def test_names_and_invalid_numbers_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None or host == "0x"


def test_pin_resolves_once_and_checks_every_address() -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return {"one.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.7"]}[host]

    policy = NetworkPolicy(resolver=resolver)
    assert policy.pin("one.test", 80) == "93.184.216.34"
    with pytest.raises(NetworkPolicyViolation, match=r"'mixed.test' \(resolves to 10.0.0.7\) is a private address"):
        policy.pin("mixed.test", 80)
    with pytest.raises(NetworkPolicyViolation, match="local machine"):
        policy.pin("LOCALHOST.", 80)
    assert calls == ["one.test", "mixed.test"]  # localhost never reached the resolver
    with pytest.raises(NetworkPolicyViolation, match="invalid host"):
        policy.pin("bad host", 80)
    with pytest.raises(ConnectionError, match="cannot resolve"):
        NetworkPolicy(resolver=lambda h, p: []).pin("nothing.test", 80)


def test_the_connection_goes_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once and the socket connects to exactly that IP (nothing connects)."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    lookups: list[str] = []
    connects: list[tuple[str, int]] = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return next(answers)

    def no_connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connects.append(address)
        raise ConnectionRefusedError("test: no real connection")

    monkeypatch.setattr(fetch_module.socket, "create_connection", no_connect)
    with pytest.raises(ConnectionRefusedError):
        fetch("http://rebind.test:8080/x", policy=NetworkPolicy(resolver=rebinding_resolver))
    assert lookups == ["rebind.test"] and connects == [("93.184.216.34", 8080)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme file:"),
        ("ftp://example.com/", "scheme ftp:"),
        ("javascript:alert(1)", "scheme javascript:"),
        ("//example.com/", r"scheme \(none\)"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://user@example.com/", "credentials"),
        ("http://example.com:99999/", "invalid URL"),
        ("http:///path", "no host"),
        ("http://exa mple.com/", "whitespace"),
    ],
)
def test_url_refusals(url: str, message: str) -> None:
    with pytest.raises(NetworkPolicyViolation, match=message):
        parse_http_url(url)


def test_url_parts() -> None:
    target = parse_http_url("https://Example.COM/a/b?q=1#frag")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "example.com", 443, "/a/b?q=1")
    assert parse_http_url("http://[::1]:8080").port == 8080


# ---------------------------------------------------------------------------------------- a loopback test server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server.log.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        if self.path == "/echo":
            info = {"method": self.command, "host": self.headers["Host"], "x": self.headers.get("X-Test")}
            self._reply(200, json.dumps({**info, "body": body.decode()}).encode(), {"Content-Type": "application/json"})
        elif self.path.startswith("/redirect-to?"):
            self._reply(302, b"", {"Location": self.path.split("?", 1)[1]})
        elif self.path == "/loop":
            self._reply(302, b"", {"Location": "/loop"})
        elif self.path == "/big":
            self._reply(200, b"x" * (2 * 1024 * 1024))
        elif self.path == "/html":
            page = b"<html><body><h1>Title</h1><p>Some <b>bold</b> text.</p></body></html>"
            self._reply(200, page, {"Content-Type": "text/html"})
        elif self.path == "/missing":
            self._reply(404, b"nope")
        else:
            self._reply(200, "héllo".encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stops reading (the size cap) breaks the pipe: expected


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    httpd: Any = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.log = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _base(server: Any) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def local_tools(tmp_path: Path) -> dict[str, Any]:
    """Tools that may reach loopback (the test server) — and only loopback, by construction of the tests."""
    tools = get_tools(["curl"], working_dir=tmp_path, allow_private_network=True, timeout_s=10)
    return {"curl": tools[0], "visit_webpage": VisitWebpageTool(tools[0].context)}


def test_curl_get(local_tools: dict[str, Any], server: Any) -> None:
    out = local_tools["curl"](url=_base(server) + "/")
    assert out.startswith("HTTP 200 OK\nContent-Type: text/plain; charset=utf-8\nContent-Length: 6\n\n")
    assert out.endswith("\n\nhéllo")


def test_curl_methods_headers_body(local_tools: dict[str, Any], server: Any) -> None:
    out = local_tools["curl"](url=_base(server) + "/echo", method="post", headers='{"X-Test": "yes"}', body="ping")
    payload = json.loads(out.split("\n\n", 1)[1])
    assert payload == {"method": "POST", "host": f"127.0.0.1:{server.server_address[1]}", "x": "yes", "body": "ping"}
    head = local_tools["curl"](url=_base(server) + "/", method="HEAD")
    assert head.startswith("HTTP 200 OK") and head.endswith("\n\n")
    with pytest.raises(ValueError, match="method must be one of"):
        local_tools["curl"](url=_base(server) + "/", method="TRACE")
    with pytest.raises(ValueError, match="JSON object"):
        local_tools["curl"](url=_base(server) + "/", headers="X-Test: yes")
    with pytest.raises(NetworkPolicyViolation, match="'Host' may not be set"):
        local_tools["curl"](url=_base(server) + "/", headers='{"Host": "internal"}')
    with pytest.raises(ValueError, match="between 1 and 60"):
        local_tools["curl"](url=_base(server) + "/", timeout=600)


def test_curl_follows_redirects_and_rechecks_them(local_tools: dict[str, Any], server: Any) -> None:
    out = local_tools["curl"](url=_base(server) + "/redirect-to?/echo")
    assert "Redirected to: " + _base(server) + "/echo" in out and '"method": "GET"' in out
    raw = local_tools["curl"](url=_base(server) + "/redirect-to?/echo", follow_redirects=False)
    assert raw.startswith("HTTP 302") and "Location: /echo" in raw
    with pytest.raises(NetworkPolicyViolation, match="scheme file:"):
        local_tools["curl"](url=_base(server) + "/redirect-to?file:///etc/passwd")
    with pytest.raises(NetworkPolicyViolation, match="credentials"):
        local_tools["curl"](url=_base(server) + "/redirect-to?http://u:p@127.0.0.1/")
    with pytest.raises(ConnectionError, match="more than 5 redirects"):
        local_tools["curl"](url=_base(server) + "/loop")


def test_redirect_to_metadata_is_refused_before_connecting(
    local_tools: dict[str, Any], server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_connect = fetch_module.socket.create_connection
    connects: list[tuple[str, int]] = []

    def loopback_only(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        connects.append(address)
        assert address[0] == "127.0.0.1", f"test tried to connect to {address}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(fetch_module.socket, "create_connection", loopback_only)
    for target in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://0.0.0.0:1/"):
        with pytest.raises(NetworkPolicyViolation):
            local_tools["curl"](url=_base(server) + "/redirect-to?" + target)
    assert all(address[0] == "127.0.0.1" for address in connects)


def test_redirect_from_public_to_private_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public page redirecting to 10.x: the second hop is re-checked (no real connection is made)."""
    policy = NetworkPolicy(resolver=lambda host, port: {"public.test": ["93.184.216.34"]}[host])
    hops: list[str] = []

    class FakeResponse:
        status, reason = 302, "Found"

        def getheader(self, name: str) -> str | None:
            return "http://10.0.0.5/admin" if name == "Location" else None

        def read(self, n: int = -1) -> bytes:
            return b""

    class FakeConnection:
        sock = None

        def __init__(self, target: Any, pinned: str, timeout: float) -> None:
            hops.append(pinned)

        def request(self, *args: Any, **kwargs: Any) -> None:
            pass

        def getresponse(self) -> FakeResponse:
            return FakeResponse()

        def close(self) -> None:
            pass

    monkeypatch.setattr(fetch_module, "_open", FakeConnection)
    with pytest.raises(NetworkPolicyViolation, match=r"10\.0\.0\.5 is a private address"):
        fetch("http://public.test/", policy=policy)
    assert hops == ["93.184.216.34"]


def test_curl_caps_the_response(local_tools: dict[str, Any], server: Any) -> None:
    out = local_tools["curl"](url=_base(server) + "/big")
    assert "output cut" in out and len(out) < 6000
    response = fetch(_base(server) + "/big", policy=NetworkPolicy(allow_private_network=True), max_bytes=1000)
    assert response.truncated and len(response.body) == 1000


def test_curl_refuses_loopback_by_default(tmp_path: Path, server: Any) -> None:
    (curl,) = get_tools(["curl"], working_dir=tmp_path)
    before = len(server.log)
    for host in ("127.0.0.1", "localhost", "[::1]", "0x7f000001", "127.1"):
        with pytest.raises(NetworkPolicyViolation):
            curl(url=f"http://{host}:{server.server_address[1]}/")
    assert len(server.log) == before


def test_visit_webpage_converts_html(local_tools: dict[str, Any], server: Any) -> None:
    if importlib.util.find_spec("markdownify") is None:
        pytest.skip("the web extra (markdownify) is not installed")
    out = local_tools["visit_webpage"](url=_base(server) + "/html")
    assert "Title" in out and "**bold**" in out and "<p>" not in out
    with pytest.raises(ConnectionError, match="HTTP 404"):
        local_tools["visit_webpage"](url=_base(server) + "/missing")


def test_visit_webpage_refuses_loopback_by_default(tmp_path: Path, server: Any) -> None:
    (curl,) = get_tools(["curl"], working_dir=tmp_path)
    visit = VisitWebpageTool(curl.context)
    before = len(server.log)
    with pytest.raises(NetworkPolicyViolation):
        visit(url=_base(server) + "/html")
    assert len(server.log) == before


def test_slow_server_hits_the_deadline(tmp_path: Path) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection but never answers
    try:
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.5 s"):
            fetch(
                f"http://127.0.0.1:{listener.getsockname()[1]}/",
                policy=NetworkPolicy(allow_private_network=True),
                timeout_s=0.5,
            )
    finally:
        listener.close()


def test_curl_method_argument_survives_openinference_tracing(
    local_tools: dict[str, Any], server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openinference wraps Tool.__call__ with _get_input_value(method, *args, **kwargs): curl's ``method`` argument
    would collide with it (TypeError) if passed as a keyword."""
    wrappers = pytest.importorskip("openinference.instrumentation.smolagents._wrappers")
    from smolagents import Tool

    original = Tool.__call__

    def traced(self: Tool, *args: Any, **kwargs: Any) -> Any:
        bound = original.__get__(self)
        wrappers._get_input_value(bound, *args, **kwargs)  # what the instrumentation does first
        return bound(*args, **kwargs)

    monkeypatch.setattr(Tool, "__call__", traced)
    out = local_tools["curl"](url=_base(server) + "/echo", method="PUT", body="x")
    assert '"method": "PUT"' in out
    assert '"method": "GET"' in local_tools["curl"](_base(server) + "/echo", "GET")
