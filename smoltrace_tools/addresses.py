"""The network address policy: which hosts a tool may connect to, decided once per connection.

:meth:`NetworkPolicy.pin` turns a URL host into ONE IP address that is then connected to directly (the HTTP
client sends the original name as ``Host``/SNI), so there is no second DNS lookup for a rebinding attacker to
answer differently. Every address the name resolves to must pass :func:`refusal_reason`:

* loopback (``127.0.0.0/8``, ``::1``), private (``10/8``, ``172.16/12``, ``192.168/16``, ``fc00::/7``),
  link-local (``169.254/16``, ``fe80::/10``), shared/CGNAT, reserved and documentation ranges are refused unless
  ``allow_private_network`` is set;
* cloud metadata addresses (``169.254.169.254``, ``169.254.170.2``, ``fd00:ec2::254``, ``100.100.100.200``),
  the unspecified address (``0.0.0.0``, ``::``) and multicast are refused always;
* IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, 6to4, Teredo,
  NAT64 ``64:ff9b::/96``) are judged by the embedded address as well;
* numeric spellings of IPv4 (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are parsed here with
  ``inet_aton`` rules, and ``localhost`` / ``*.localhost`` are refused without a DNS query.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import NetworkPolicyViolation

__all__ = [
    "METADATA_ADDRESSES",
    "IPAddress",
    "NetworkPolicy",
    "Resolver",
    "parse_ip_literal",
    "refusal_reason",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses`` as strings; the default asks the system resolver once.
Resolver = Callable[[str, int], list[str]]

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.123", "100.100.100.200", "fd00:ec2::254")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_NUMERIC_PART = re.compile(r"^(0[xX][0-9A-Fa-f]*|0[0-7]*|[1-9][0-9]*)$")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """IPv4 the way ``inet_aton`` reads it (1 to 4 parts; decimal, ``0`` octal or ``0x`` hex), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a literal host spells (IPv6 with or without brackets or zone, any IPv4 spelling), else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id does not change the address
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    return _inet_aton(text.rstrip(".")) if text else None


def _embedded(addr: IPAddress) -> list[IPAddress]:
    if not isinstance(addr, ipaddress.IPv6Address):
        return []
    found: list[IPAddress] = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    if addr in _NAT64 or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return found


def _reason(addr: IPAddress, allow_private: bool) -> str | None:
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    if not addr.is_global:
        return "a non-public address"
    return None


def refusal_reason(address: str | IPAddress, *, allow_private_network: bool = False) -> str | None:
    """Why a connection to ``address`` is refused (e.g. ``"a loopback address"``), or None when it is allowed."""
    addr = address if not isinstance(address, str) else parse_ip_literal(address)
    if addr is None:
        return "not an IP address"
    embedded = _embedded(addr)
    for candidate in embedded:  # the IPv4 address an IPv6 form carries decides first (it is where packets go)
        reason = _reason(candidate, allow_private_network)
        if reason is not None:
            return reason
    if (
        embedded
        and isinstance(addr, ipaddress.IPv6Address)
        and (addr.ipv4_mapped is not None or addr in _IPV4_COMPATIBLE)
    ):
        return None  # ::ffff:a.b.c.d and ::a.b.c.d are just spellings of the (allowed) IPv4 address
    return _reason(addr, allow_private_network)


def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host`` (TCP), deduplicated, in order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def _is_localhost_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"} or name.endswith(
        ".localhost"
    )


@dataclass(frozen=True)
class NetworkPolicy:
    """Where the network tools may connect. ``resolver`` is injectable for tests (no real DNS needed)."""

    allow_private_network: bool = False
    resolver: Resolver = field(default=system_resolver)

    def pin(self, host: str, port: int) -> str:
        """The one IP address to connect to for ``host``; :class:`NetworkPolicyViolation` when refused."""
        if not isinstance(host, str) or not host or "\x00" in host or any(c.isspace() for c in host):
            raise NetworkPolicyViolation(f"invalid host {host!r}")
        literal = parse_ip_literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            if not _HOSTNAME.match(host):
                raise NetworkPolicyViolation(f"invalid host name {host!r}")
            if _is_localhost_name(host) and not self.allow_private_network:
                raise NetworkPolicyViolation(
                    f"{host!r} is the local machine; requests to loopback, private, link-local and metadata "
                    "addresses are refused"
                )
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise ConnectionError(f"cannot resolve host {host!r}: {exc}") from None
            if not addresses:
                raise ConnectionError(f"cannot resolve host {host!r}: no address")
        for address in addresses:
            reason = refusal_reason(address, allow_private_network=self.allow_private_network)
            if reason is not None:
                shown = host if str(address) == host else f"{host!r} (resolves to {address})"
                raise NetworkPolicyViolation(
                    f"{shown} is {reason}; requests to loopback, private, link-local and metadata addresses are refused"
                )
        return str(addresses[0])
