"""Video from links: yt-dlp in a worker thread, size-capped, allow-listed, every hop SSRF-checked.

Links in messages are picked up when their host is on the allow-list; `/video <link>` does the same
explicitly and explains every refusal. Regular YouTube videos get a hashtag instead of a download.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.ext import Application, CommandHandler, MessageHandler, filters

from bot.egress import EgressProxy
from bot.features import Context, chat_settings, command_args, config, env, reply, within_quota
from bot.urls import (
    LOOPBACK_NAMES,
    UnresolvableHost,
    UnsafeURL,
    check_url,
    extract_urls,
    host_matches,
    is_loopback_host,
    is_regular_youtube,
    numeric_host,
    split_http_url,
)

log = logging.getLogger(__name__)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_semaphore: asyncio.Semaphore | None = None


class TooLarge(Exception):
    pass


class DownloadFailed(Exception):
    pass


@dataclass
class Download:
    path: Path
    title: str

    def cleanup(self) -> None:
        shutil.rmtree(self.path.parent, ignore_errors=True)


def allowed(url: str, domains: Iterable[str], sandbox: bool) -> bool:
    """On the allow-list (or, in sandbox mode only, a loopback host)."""
    try:
        host = split_http_url(url).hostname or ""
    except UnsafeURL:
        return False
    return host_matches(host, domains) or (sandbox and is_loopback_host(host))


class HasVideoLink(filters.MessageFilter):
    def __init__(self, domains: list[str], sandbox: bool) -> None:
        super().__init__(name="HasVideoLink")
        self.domains, self.sandbox = domains, sandbox

    def filter(self, message: Message) -> bool:
        urls = extract_urls(message.text or message.caption)
        return any(allowed(u, self.domains, self.sandbox) for u in urls)


def _reason(message: str) -> str:
    """yt-dlp's error line without colour codes, prefixes and the chained-cause tail (for the log only)."""
    text = _ANSI.sub("", message).removeprefix("ERROR: ").strip()
    return text.split(" (caused by", 1)[0][:200]


def plain_reason(raw: str, unreachable: bool) -> str:
    """What went wrong in words for the chat. yt-dlp's own text names hosts, ports and errno values: a
    port scanner for anyone, so it only goes to the log."""
    if unreachable:
        return "the site could not be reached"
    status = re.search(r"HTTP Error (\d{3})", raw)
    if status:
        return f"the site answered HTTP {status.group(1)}"
    if not raw or "Unsupported URL" in raw or "no video found" in raw:
        return "there is no video at that link"
    return "the site had no video I could download"


class _YtLogger:
    """Collects yt-dlp's messages so we can tell "too large" from "failed" and log the reason."""

    def __init__(self) -> None:
        self.too_large = False
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        if "larger than max-filesize" in msg:
            self.too_large = True

    info = debug

    def warning(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    def error(self, msg: str) -> None:
        self.errors.append(_reason(msg))


def ydl_options(workdir: Path, max_bytes: int, socket_timeout: float, proxy: str, extractors: list[str],
                cancelled: threading.Event, logger: _YtLogger) -> dict[str, Any]:
    """yt-dlp's options: every connection through the vetted proxy, only the listed extractors."""

    def check_progress(status: dict[str, Any]) -> None:
        if cancelled.is_set():
            raise DownloadFailed("cancelled")
        if (status.get("downloaded_bytes") or 0) > max_bytes:  # max_filesize needs a Content-Length
            raise TooLarge()

    return {
        "outtmpl": {"default": str(workdir / "video.%(ext)s")},
        "format": "b[ext=mp4]/b",  # a single file with audio and video: no ffmpeg merge needed
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": max_bytes,
        "buffersize": 64 * 1024,  # fixed read size: the progress hook (the size cap) runs every 64 KiB
        "noresizebuffer": True,
        "socket_timeout": socket_timeout,
        "proxy": proxy,
        "allowed_extractors": extractors,
        "retries": 1,
        "fragment_retries": 1,
        "extractor_retries": 0,
        "cachedir": False,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": logger,
        "progress_hooks": [check_progress],
        "restrictfilenames": True,
    }


def download(url: str, max_bytes: int, socket_timeout: float, cancelled: threading.Event, proxy: str,
             extractors: list[str]) -> Download:
    """Blocking: run yt-dlp on one URL (as data, never as an option). Raises TooLarge / DownloadFailed
    (with yt-dlp's text, for the log)."""
    import yt_dlp  # heavy import, only when a video is wanted

    workdir = Path(tempfile.mkdtemp(prefix="pc-video-"))
    logger = _YtLogger()
    options = ydl_options(workdir, max_bytes, socket_timeout, proxy, extractors, cancelled, logger)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True) or {}
        files = [p for p in workdir.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if logger.too_large or any(p.stat().st_size > max_bytes for p in files):
            raise TooLarge()
        if not files:
            raise DownloadFailed(logger.errors[-1] if logger.errors else "no video found at that link")
        return Download(max(files, key=lambda p: p.stat().st_size), str(info.get("title") or "")[:200])
    except yt_dlp.utils.DownloadError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        reason = logger.errors[-1] if logger.errors else _reason(str(exc))
        raise DownloadFailed(reason) from None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        if cancelled.is_set():
            shutil.rmtree(workdir, ignore_errors=True)


def extractors_for(cfg: dict[str, Any], sandbox: bool) -> list[str]:
    """The extractors of the supported sites; the generic one (any page with a video) only in sandbox mode."""
    names = [str(n) for n in cfg.get("extractors", [])] or ["default"]
    return [*names, "generic"] if sandbox and "default" not in names else names


async def _run(url: str, cfg: dict[str, Any], sandbox: bool, max_bytes: int,
               proxy: EgressProxy) -> Download:
    """The download in a worker thread, all its connections through `proxy`. On timeout the proxy cuts
    them, and this waits for the thread to end: the caller's slot stays taken until it has."""
    cancelled = threading.Event()
    proxy_url = await proxy.start()
    worker = asyncio.ensure_future(asyncio.to_thread(
        download, url, max_bytes, float(cfg.get("socket_timeout_seconds", 20)), cancelled, proxy_url,
        extractors_for(cfg, sandbox)))
    try:
        return await asyncio.wait_for(asyncio.shield(worker), timeout=float(cfg.get("timeout_seconds", 120)))
    except TimeoutError:
        cancelled.set()
        await proxy.close()
        with contextlib.suppress(Exception):
            (await worker).cleanup()  # finished just now after all: nobody sends it
        raise
    finally:
        await proxy.close()


def _where(update: Update) -> dict[str, Any]:
    return {"chat_id": update.effective_chat.id}


async def handle_url(update: Update, context: Context, url: str, explicit: bool) -> None:
    cfg = config(context).get("video", {})
    e = env(context)
    domains = list(cfg.get("allowed_domains", []))
    try:
        host = split_http_url(url).hostname or ""
        if numeric_host(host) is not None or host in LOOPBACK_NAMES:
            check_url(url, allow_loopback=e.sandbox)  # no DNS needed: say "private address" first
    except UnsafeURL as exc:
        log.warning("refused video link: %s", exc, extra={"code": "APP003", **_where(update)})
        await reply(update, f"🚫 I won't fetch that link: {exc}.")
        return
    if not allowed(url, domains, e.sandbox):
        if explicit:
            await reply(update, "🚫 I only download videos from: " + ", ".join(domains) + ".")
        return
    if is_regular_youtube(url):
        await reply(update, str(cfg.get("youtube_reply") or "#youtube"))
        return
    try:
        await asyncio.to_thread(check_url, url, allow_loopback=e.sandbox)
    except UnresolvableHost as exc:
        log.warning("video link not resolvable: %s", exc, extra={"code": "API003", **_where(update)})
        await reply(update, f"❌ I couldn't download that video: {exc}.")
        return
    except UnsafeURL as exc:
        log.warning("refused video link: %s", exc, extra={"code": "APP003", **_where(update)})
        await reply(update, f"🚫 I won't fetch that link: {exc}.")
        return
    global _semaphore
    if _semaphore is None:
        _semaphore = asyncio.Semaphore(int(cfg.get("max_parallel_downloads", 2)))
    max_bytes = int(cfg.get("max_bytes", 50 * 1024 * 1024))
    where = _where(update)
    await context.bot.send_chat_action(update.effective_chat.id, ChatAction.UPLOAD_VIDEO)
    await asyncio.to_thread(importlib.import_module, "yt_dlp")  # a slow first import is not the site's fault
    proxy = EgressProxy(allow_loopback=e.sandbox)
    try:
        async with _semaphore:
            result = await _run(url, cfg, e.sandbox, max_bytes, proxy)
    except TooLarge:
        await reply(update, f"📦 That video is too large: I can send at most {max_bytes // 2**20} MB.")
        return
    except DownloadFailed as exc:
        log.warning("video download failed: %s", exc, extra={"code": "API003", **where})
        if proxy.refused:
            await reply(update, f"🚫 I won't fetch that link: {proxy.refused}.")
        else:
            reason = plain_reason(str(exc), proxy.unreachable)
            await reply(update, f"❌ I couldn't download that video: {reason}.")
        return
    except TimeoutError:
        log.warning("video download timed out", extra={"code": "API003", **where})
        await reply(update, "⏱ Downloading that video took too long, I gave up.")
        return
    try:
        # Disk work off the event loop: the file is up to max_file_size_mb, its folder is removed after.
        data = await asyncio.to_thread(result.path.read_bytes)
        await update.effective_message.reply_video(data, filename=result.path.name,
                                                   caption=result.title or None, do_quote=True,
                                                   supports_streaming=True)
    finally:
        await asyncio.to_thread(result.cleanup)


async def on_link(update: Update, context: Context) -> None:
    message = update.effective_message
    settings = await chat_settings(context, update.effective_chat.id)
    if not settings.video_enabled:
        return
    cfg = config(context).get("video", {})
    urls = [u for u in extract_urls(message.text or message.caption)
            if allowed(u, cfg.get("allowed_domains", []), env(context).sandbox)]
    if urls and not await within_quota(update, context, "video"):
        return
    for url in urls[:2]:
        await handle_url(update, context, url, explicit=False)


async def video_command(update: Update, context: Context) -> None:
    args = command_args(context)
    if len(args) != 1:
        await reply(update, "Usage: /video <link> — for example: /video https://vimeo.com/76979871")
        return
    if not (await chat_settings(context, update.effective_chat.id)).video_enabled:
        await reply(update, "🎬 Video downloads are switched off in this chat (video_enabled = false).")
        return
    if not await within_quota(update, context, "video"):
        return
    await handle_url(update, context, args[0], explicit=True)


def register(app: Application) -> None:
    cfg = app.bot_data["config"].get("video", {})
    links = HasVideoLink(list(cfg.get("allowed_domains", [])), app.bot_data["env"].sandbox)
    # New messages only: an edited message must not download (and post) the video again.
    app.add_handler(CommandHandler("video", video_command, filters=filters.UpdateType.MESSAGE, block=False))
    new_links = filters.UpdateType.MESSAGE & ~filters.COMMAND & links
    app.add_handler(MessageHandler(new_links, on_link, block=False))
