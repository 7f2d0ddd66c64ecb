"""URL handling for the link features: extraction, allow-lists, SSRF checks and link rewrites.

Pure functions (DNS resolution is injected), so they can be property-tested without a network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import SplitResult, urlsplit, urlunsplit

Resolver = Callable[[str], list[str]]
_URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`]+")
_TRAILING = ".,;:!?)]}'\"»…"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class UnsafeURL(ValueError):
    """The URL must not be fetched; the message says why, in words fit for a chat reply."""


class UnresolvableHost(UnsafeURL):
    """DNS gave no address: not an attack, just nothing to fetch."""


def extract_urls(text: str | None, limit: int = 5) -> list[str]:
    """http(s) links found in free text, in order, without trailing punctuation, at most `limit`."""
    found: list[str] = []
    for match in _URL_RE.finditer(text or ""):
        url = match.group(0).rstrip(_TRAILING)
        if url.lower().startswith("www."):
            url = "https://" + url
        if url not in found:
            found.append(url)
        if len(found) >= limit:
            break
    return found


def split_http_url(url: str) -> SplitResult:
    """Parse a URL that must be absolute http(s) with a host; raise UnsafeURL otherwise."""
    if any(ord(c) < 33 or c == "\x7f" for c in url) or len(url) > 2048:
        raise UnsafeURL("the link contains spaces or control characters, or is too long")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UnsafeURL("the link is malformed") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURL("only http and https links are supported")
    if not host:
        raise UnsafeURL("the link has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("links with credentials are not supported")
    return parts


def host_of(url: str) -> str:
    host = split_http_url(url).hostname or ""
    return host.rstrip(".").lower()


def host_matches(host: str, domains: Iterable[str]) -> bool:
    """True when host is one of the domains or a subdomain of one (label boundary, case-insensitive)."""
    host = host.rstrip(".").lower()
    for domain in domains:
        domain = domain.strip().rstrip(".").lower()
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def numeric_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a numeric host means, including inet_aton forms like 2130706433 or 0x7f.1."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_forbidden_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool = False) -> bool:
    """Anything that is not a public unicast address (loopback only if allowed)."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return is_forbidden_ip(mapped, allow_loopback)
        if ip.teredo:
            return True
    if ip.is_loopback:
        return not allow_loopback
    return (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or not ip.is_global)


def system_resolver(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0] for info in infos})


def check_url(url: str, resolve: Resolver = system_resolver, allow_loopback: bool = False) -> str:
    """Raise UnsafeURL unless every address the host resolves to is public (or loopback when allowed).

    Returns the lower-cased host. DNS rebinding between this check and the fetch is out of scope.
    """
    host = host_of(url)
    if host in LOOPBACK_NAMES and not allow_loopback:
        raise UnsafeURL("the link points to this machine")
    literal = numeric_host(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = resolve(host)
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"cannot resolve the host {host!r}") from exc
    if not addresses:
        raise UnresolvableHost(f"cannot resolve the host {host!r}")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise UnsafeURL(f"the host {host!r} resolved to something odd") from None
        if is_forbidden_ip(ip, allow_loopback):
            raise UnsafeURL("the link points to a private, local or reserved address")
    return host


def is_loopback_host(host: str) -> bool:
    if host.rstrip(".").lower() in LOOPBACK_NAMES:
        return True
    ip = numeric_host(host)
    return ip is not None and ip.is_loopback


def is_regular_youtube(url: str) -> bool:
    """A YouTube video that is not a Short: those get a hashtag reply instead of a download."""
    try:
        parts = split_http_url(url)
    except UnsafeURL:
        return False
    host = (parts.hostname or "").lower()
    if host_matches(host, ["youtu.be"]):
        return True
    if not host_matches(host, ["youtube.com"]):
        return False
    return not parts.path.lower().startswith("/shorts/")


def rewrite_url(url: str, table: Mapping[str, str]) -> str | None:
    """Replace the host by its alternative front-end (x.com -> fxtwitter.com), keeping path and query.

    Subdomains like www./mobile. are dropped; returns None when the host is not in the table.
    """
    try:
        parts = split_http_url(url)
    except UnsafeURL:
        return None
    host = (parts.hostname or "").lower()
    for domain, target in table.items():
        if host_matches(host, [domain]) and target:
            return urlunsplit(("https", target.lower(), parts.path, parts.query, parts.fragment))
    return None
