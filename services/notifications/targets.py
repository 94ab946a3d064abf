"""Where a webhook may be sent: the public internet, never the service's own networks.

A webhook is a request the service makes to a URL an operator typed in, from inside the
network it runs in (server-side request forgery). So a subscription's URL is checked when
it is created, and every address its host resolves to is checked again at each delivery:
loopback, private (RFC 1918, unique local), link-local (the cloud metadata service at
169.254.169.254 and ``fd00:ec2::254``), shared (100.64/10), multicast, reserved and
unspecified addresses are refused, also when written as a decimal or hexadecimal number
or wrapped in an IPv6 address (IPv4-mapped, NAT64, 6to4), unless an allow-listed network
(``MEDCARD_WEBHOOK_ALLOWED_NETWORKS``, for development and tests) contains them. URLs with
a user name or password are refused.

The delivery then connects to the very address that was checked: the request goes to the
IP, with the ``Host`` header and the TLS server name (SNI, and so the certificate check)
of the URL's host, so a name that resolves to a public address when checked and to an
internal one a moment later (DNS rebinding) is never looked up a second time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
LOCAL_NAMES = ("localhost",)
"""Names that are loopback by definition (RFC 6761), whatever a resolver says."""
METADATA_NAMES = ("metadata.google.internal", "metadata.goog", "metadata", "instance-data")
"""Names cloud platforms give their metadata service inside an instance."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedTarget(ValueError):
    """The URL, or an address its host resolves to, is not a place webhooks may go."""


def parse_networks(text: str) -> Networks:
    """Comma-separated networks (``127.0.0.0/8, ::1``); ValueError naming a bad one."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP network (such as 127.0.0.0/8 or ::1)") from None
    return tuple(networks)


def _unwrapped(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv6 one that carries it (mapped, NAT64, 6to4), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` an internal target, or None for a public address."""
    for kind, flag in (("loopback", ip.is_loopback), ("link-local (cloud metadata)", ip.is_link_local),
                       ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return kind
    return None if ip.is_global else "non-public"


def refusal(address: str, allowed: Networks) -> str | None:
    """Why a webhook may not be sent to ``address`` (an IP), or None when it may."""
    ip = ipaddress.ip_address(address)
    inner = _unwrapped(ip)
    if any(candidate in network for candidate in {ip, inner} for network in allowed
           if candidate.version == network.version):
        return None
    kind = _kind(inner) or _kind(ip)
    return f"{address} is a {kind} address" if kind else None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _host_of(url: httpx.URL) -> str:
    """The URL's host, lower case, without IPv6 brackets or the root's trailing dot."""
    return url.host.strip("[]").rstrip(".").lower()


def check_url(url: str, allowed: Networks) -> None:
    """What can be told of a URL without resolving it: an http(s) URL without user or
    password whose host is not an internal address or name. RefusedTarget saying why."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise RefusedTarget("a webhook URL is http or https")
    if parsed.userinfo:
        raise RefusedTarget("a webhook URL carries no user name or password")
    host = _host_of(parsed)
    if not host:
        raise RefusedTarget("a webhook URL names a host")
    if host in METADATA_NAMES:
        raise RefusedTarget(f"{host} is a cloud metadata service")
    address = "127.0.0.1" if _is_local_name(host) else (str(ip) if (ip := _literal(host)) else None)
    if address is not None and (why := refusal(address, allowed)):
        raise RefusedTarget(f"{why}; webhooks go to public addresses only (MEDCARD_WEBHOOK_ALLOWED_NETWORKS)")


def _is_local_name(host: str) -> bool:
    return any(host == name or host.endswith("." + name) for name in LOCAL_NAMES)


async def resolve(host: str, port: int, allowed: Networks) -> str:
    """The address to connect to for ``host``: every address it resolves to must be allowed."""
    if _is_local_name(host):
        addresses = ["127.0.0.1"]
    elif (ip := _literal(host)) is not None:
        addresses = [str(ip)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise RefusedTarget(f"{host} does not resolve ({err.strerror or err})") from None
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    for address in addresses:
        if why := refusal(address, allowed):
            raise RefusedTarget(f"{host} resolves to {why}; webhooks go to public addresses only "
                                "(MEDCARD_WEBHOOK_ALLOWED_NETWORKS)")
    if not addresses:
        raise RefusedTarget(f"{host} does not resolve")
    return addresses[0]


@dataclass(frozen=True)
class Pinned:
    """A request to a URL, bound to one checked address of its host."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any] = field(default_factory=dict)


async def pinned(url: str, allowed: Networks) -> Pinned:
    """``url`` checked, resolved and rewritten to the checked address: the ``Host`` header and,
    for https, the TLS server name keep the original host (RefusedTarget when not allowed)."""
    check_url(url, allowed)
    parsed = httpx.URL(url)
    host = _host_of(parsed)
    address = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80), allowed)
    extensions: dict[str, Any] = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Pinned(parsed.copy_with(host=address), {"Host": parsed.netloc.decode("ascii")}, extensions)
