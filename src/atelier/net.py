"""Which URLs Atelier may fetch from or deliver to on a user's behalf.

URL inputs and webhook targets come from requests, so they could point Atelier at its own
network (server-side request forgery). A URL is allowed only if every address its host
resolves to is public: not loopback, private, link-local (cloud metadata lives there),
multicast, reserved or unspecified. An allowlist of hosts or networks (settings) opens
exceptions, for example a webhook receiver on the same machine in a test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from atelier.errors import InvalidRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlNotAllowed(InvalidRequest):
    """This URL points somewhere Atelier will not go."""

    slug = "url-not-allowed"
    title = "URL not allowed"


def is_public(address: Address) -> bool:
    """Whether ``address`` is a public one; an IPv6 address that carries an IPv4 one
    (IPv4-mapped, 6to4, Teredo, NAT64) is judged by what it carries as well."""
    if any(not is_public(inner) for inner in embedded_ipv4(address)):
        return False
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address in network for network in _NOT_PUBLIC if network.version == address.version)
    )


_NOT_PUBLIC = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast (deprecated)
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by every embedding the standard
    library unwraps, plus the NAT64 well-known prefix (RFC 6052)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    inner: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)  # (server, client)
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return inner


def _allowed(host: str, addresses: Iterable[Address], allowlist: Iterable[str]) -> bool:
    for entry in allowlist:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if all(a in network for a in addresses):
            return True
    return False


async def check_url(
    url: str,
    *,
    field: str,
    allowlist: Iterable[str] = (),
    schemes: tuple[str, ...] = ("https", "http"),
) -> list[Address]:
    """Resolve ``url``'s host and refuse it unless every address is public or allowed.

    Returns the resolved addresses so that the caller can connect to exactly those (a
    second resolution could answer differently: DNS rebinding).
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # for example "Invalid IPv6 URL"
        raise UrlNotAllowed("the URL is not valid", field=field) from exc
    if parts.scheme not in schemes:
        raise UrlNotAllowed(f"URL scheme must be one of {', '.join(schemes)}", field=field)
    if not parts.hostname:
        raise UrlNotAllowed("URL has no host", field=field)
    if parts.username or parts.password:
        raise UrlNotAllowed("URLs with credentials are not accepted", field=field)
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlNotAllowed("URL has an invalid port", field=field) from exc
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid IDNA host name
        raise UrlNotAllowed(f"cannot resolve host {host!r}", field=field) from exc
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    allow = list(allowlist)
    if not all(is_public(a) for a in addresses) and not _allowed(host, addresses, allow):
        raise UrlNotAllowed(
            f"host {host!r} resolves to a non-public address; it is not allowed",
            field=field,
        )
    return addresses
