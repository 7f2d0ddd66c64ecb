"""Static files under /files/ for the video feature.

Fixture files live in bot/sandbox/static/:
- sample.mp4: a tiny real H.264 MP4 (16x16, one second at 10 fps).
- big.mp4: announces 60 MiB (over Telegram's 50 MB bot upload limit) and streams an MP4 header
  followed by zeros; the body is bounded by that length and stops when the client goes away.
- slow.mp4?delay=N: sample.mp4 after N seconds (N <= 60), for download timeouts.
- chunked.mp4?mib=N&tag=T: an MP4 header and zeros, N MiB (<= 64) with chunked transfer (no
  Content-Length), for the size cap while streaming.
- drip.mp4?seconds=N&tag=T: announces 1 MiB, then sends a byte every 0.2 s for up to N seconds (<= 60):
  a download stuck in a read.
  Both count under their tag in health()["streams"]: responses open now, the most open at once,
  the most bytes one of them sent.
- redirect?to=URL: a 302 to any URL (default: itself, a loop), for checks on every hop of a download.
- page.html: an HTML page without any video.
- video.html: an HTML page embedding sample.mp4 (<video> + og:video), for yt-dlp's generic extractor.
- cat.json?to=URL: thecatapi-style [{"url": URL}] (default: itself, a loop), for /cat's address checks.
- cat.jpg: a tiny real JPEG (32x32 baseline JFIF) for /cat.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from aiohttp import web

from bot.sandbox.state import STATE

STATIC_DIR = Path(__file__).parent / "static"

BIG_SIZE = 60 * 1024 * 1024
CHUNK = 256 * 1024
MAX_DELAY = 60.0


async def sample(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "sample.mp4", headers={"Content-Type": "video/mp4"})


async def big(request: web.Request) -> web.StreamResponse:
    headers = {"Content-Type": "video/mp4", "Content-Length": str(BIG_SIZE), "Accept-Ranges": "none"}
    if request.method == "HEAD":
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    head = (STATIC_DIR / "sample.mp4").read_bytes()[:32]
    sent = 0
    zeros = bytes(CHUNK)
    try:
        await response.write(head)
        sent = len(head)
        while sent < BIG_SIZE:
            chunk = zeros[: min(CHUNK, BIG_SIZE - sent)]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass  # the client stopped reading: that is the point of this file
    return response


async def slow(request: web.Request) -> web.StreamResponse:
    try:
        delay = float(request.query.get("delay", "10"))
    except ValueError:
        return web.json_response({"error": "delay must be a number of seconds"}, status=400)
    if not 0 <= delay <= MAX_DELAY:
        return web.json_response({"error": f"delay must be between 0 and {MAX_DELAY:g}"}, status=400)
    await asyncio.sleep(delay)
    return await sample(request)


def _bounded(request: web.Request, name: str, default: float, high: float) -> float:
    try:
        value = float(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None
    if not 0 <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between 0 and {high:g}")
    return value


class _Stream:
    """Counts one streamed response under its ?tag= in the sandbox state (what the tests read)."""

    def __init__(self, request: web.Request) -> None:
        tag = request.query.get("tag") or request.path
        self.entry = request.app[STATE].streams.setdefault(tag, {"open": 0, "max": 0, "bytes": 0})
        request.app[STATE].streams[tag] = self.entry  # most recent last (the dict is bounded)

    def __enter__(self) -> _Stream:
        self.count = 0
        self.entry["open"] += 1
        self.entry["max"] = max(self.entry["max"], self.entry["open"])
        return self

    def sent(self, count: int) -> None:
        self.count += count
        self.entry["bytes"] = max(self.entry["bytes"], self.count)

    def __exit__(self, *exc: object) -> bool:
        self.entry["open"] -= 1
        return isinstance(exc[1], (ConnectionError, asyncio.CancelledError))  # the client went away


async def chunked(request: web.Request) -> web.StreamResponse:
    size = int(_bounded(request, "mib", 5, 64) * 2**20)
    response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Accept-Ranges": "none"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    head = (STATIC_DIR / "sample.mp4").read_bytes()[:32]
    with _Stream(request) as stream:
        await response.write(head)
        sent = len(head)
        stream.sent(sent)
        while sent < size:
            chunk = bytes(min(CHUNK, size - sent))
            await response.write(chunk)
            sent += len(chunk)
            stream.sent(len(chunk))
        await response.write_eof()
    return response


async def drip(request: web.Request) -> web.StreamResponse:
    seconds = _bounded(request, "seconds", 30, MAX_DELAY)
    headers = {"Content-Type": "video/mp4", "Content-Length": str(2**20), "Accept-Ranges": "none"}
    if request.method == "HEAD":
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    with _Stream(request) as stream:
        await response.write((STATIC_DIR / "sample.mp4").read_bytes()[:32])
        stream.sent(32)
        for tick in range(int(seconds / 0.02)):
            # A client that went away is noticed within 20 ms, not at the next byte: the open-stream
            # counts of health() must not lag behind a download that was cut.
            await asyncio.sleep(0.02)
            if request.transport is None or request.transport.is_closing():
                break
            if tick % 10 == 9:
                await response.write(b"\0")
                stream.sent(1)
    return response


async def redirect(request: web.Request) -> web.Response:
    target = request.query.get("to") or str(request.url)
    if not target.startswith(("http://", "https://")) or len(target) > 2048:
        return web.json_response({"error": "to must be an absolute http(s) URL"}, status=400)
    raise web.HTTPFound(target)


async def plain_page(request: web.Request) -> web.Response:
    body = "<!DOCTYPE html><html><head><title>No video</title></head><body>Just text.</body></html>"
    return web.Response(text=body, content_type="text/html")


async def video_page(request: web.Request) -> web.Response:
    url = html.escape(str(request.url.with_path("/files/sample.mp4").with_query(None)))
    body = f"""<!DOCTYPE html>
<html><head><title>Sandbox video</title>
<meta property="og:title" content="Sandbox video">
<meta property="og:video" content="{url}">
<meta property="og:video:type" content="video/mp4">
</head><body><video controls src="{url}"></video></body></html>
"""
    return web.Response(text=body, content_type="text/html")


async def cat(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "cat.jpg", headers={"Content-Type": "image/jpeg"})


async def cat_json(request: web.Request) -> web.Response:
    target = request.query.get("to") or str(request.url)
    return web.json_response([{"id": "sandbox", "url": target}])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/files/sample.mp4", sample)
    app.router.add_get("/files/big.mp4", big)
    app.router.add_get("/files/slow.mp4", slow)
    app.router.add_get("/files/chunked.mp4", chunked)
    app.router.add_get("/files/drip.mp4", drip)
    app.router.add_get("/files/redirect", redirect)
    app.router.add_get("/files/page.html", plain_page)
    app.router.add_get("/files/video.html", video_page)
    app.router.add_get("/files/cat.jpg", cat)
    app.router.add_get("/files/cat.json", cat_json)
