"""A vetted forward proxy for yt-dlp: every connection a download makes is checked, not just the first URL.

yt-dlp follows redirects, CDN links and URLs found in pages on its own. Pointed at this proxy (its
`proxy` option), each hop - plain http as an absolute-form request, https as CONNECT - is resolved once,
refused with 403 when any address is private, loopback (unless allowed), link-local or reserved, and
connected to the very address that was checked, so DNS cannot change between check and connect.
One proxy per download: `close()` cuts all its connections, which stops a download blocked in a read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from urllib.parse import urlsplit

from bot.urls import Resolver, UnresolvableHost, UnsafeURL, check_url, numeric_host, system_resolver

MAX_HEAD = 32 * 1024  # request line + headers
CHUNK = 64 * 1024
_HOP_HEADERS = ("proxy-", "connection:", "keep-alive:")


class EgressProxy:
    def __init__(self, allow_loopback: bool = False, resolve: Resolver = system_resolver,
                 connect_timeout: float = 10.0) -> None:
        self.allow_loopback = allow_loopback
        self.resolve = resolve
        self.connect_timeout = connect_timeout
        self.refused: str | None = None  # why the last hop was refused, fit for a chat reply
        self.unreachable = False  # a hop could not be resolved or connected (its details stay here)
        self.hops: list[str] = []  # hosts it connected to, for tests and debugging
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        """Listen on a free loopback port; return the proxy URL for yt-dlp."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_HEAD)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop listening and abort every open connection (client and upstream side)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def _vet(self, url: str) -> str:
        """Blocking (DNS): the address to connect to, or UnsafeURL."""
        seen: list[str] = []

        def remember(host: str) -> list[str]:
            seen.extend(self.resolve(host))
            return seen

        host = check_url(url, resolve=remember, allow_loopback=self.allow_loopback)
        literal = numeric_host(host)
        address = str(literal) if literal is not None else seen[0]
        return str(ipaddress.ip_address(address.split("%", 1)[0]))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.connect_timeout)
            request_line, *headers = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            if method.upper() == "CONNECT":
                url, first = f"https://{target}/", b""
            else:
                url = target
                parts = urlsplit(target)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                kept = [h for h in headers if h and not h.lower().startswith(_HOP_HEADERS)]
                lines = [f"{method} {path} {version}", *kept, "Connection: close", "", ""]
                first = "\r\n".join(lines).encode("latin-1")
            try:
                parts = urlsplit(url)
                port = parts.port or (443 if parts.scheme == "https" else 80)
                address = await asyncio.to_thread(self._vet, url)
            except UnresolvableHost:
                self.unreachable = True
                await _respond(writer, "502 Bad Gateway", "the site could not be reached")
                return
            except (UnsafeURL, ValueError) as exc:
                self.refused = str(exc) if isinstance(exc, UnsafeURL) else "the link is malformed"
                await _respond(writer, "403 Forbidden", self.refused)
                return
            try:
                up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(address, port),
                                                             self.connect_timeout)
            except (OSError, TimeoutError):
                self.unreachable = True
                await _respond(writer, "502 Bad Gateway", "the site could not be reached")
                return
            self._writers.add(upstream)
            self.hops.append(parts.hostname or "")
            if first:
                upstream.write(first)
            else:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a broken or hostile client: just close
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.close()


async def _respond(writer: asyncio.StreamWriter, status: str, text: str) -> None:
    body = text.encode()
    writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then close the other side too (the proxy speaks Connection: close only)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
