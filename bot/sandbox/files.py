"""Static files under /files/ for the video feature.

Fixture files live in bot/sandbox/static/:
- sample.mp4: a tiny real H.264 MP4 (16x16, one second at 10 fps).
- big.mp4: announces 60 MiB (over Telegram's 50 MB bot upload limit) and streams an MP4 header
  followed by zeros; the body is bounded by that length and stops when the client goes away.
- slow.mp4?delay=N: sample.mp4 after N seconds (N <= 60), for download timeouts.
- video.html: an HTML page embedding sample.mp4 (<video> + og:video), for yt-dlp's generic extractor.
- cat.jpg: a tiny real JPEG (32x32 baseline JFIF) for /cat.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from aiohttp import web

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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/files/sample.mp4", sample)
    app.router.add_get("/files/big.mp4", big)
    app.router.add_get("/files/slow.mp4", slow)
    app.router.add_get("/files/video.html", video_page)
    app.router.add_get("/files/cat.jpg", cat)
