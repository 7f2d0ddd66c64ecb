"""Video links: download through yt-dlp from the sandbox, size cap, allow-list, SSRF refusals, #youtube."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from botproc import Bot, private_sandbox, start_bot, unhandled

from bot.features.video import extractors_for, ydl_options
from bot.settings import default_global_config

MAX_MB = 8


def GLOBAL_CONFIG(sandbox) -> dict:  # noqa: N802 - read by conftest
    return {"video": {"timeout_seconds": 5, "socket_timeout_seconds": 15, "max_bytes": MAX_MB * 2**20,
                      "max_parallel_downloads": 1}}


def stream(bot: Bot, tag: str) -> dict:
    return bot.client.health()["streams"].get(tag, {"open": 0, "max": 0, "bytes": 0})


def wait_closed(bot: Bot, tag: str, seconds: float) -> dict:
    """The sandbox's view of the tagged responses once none is open (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    while stream(bot, tag)["open"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return stream(bot, tag)


def test_a_link_in_a_message_is_downloaded_and_sent_as_video(bot: Bot) -> None:
    items = bot.send(f"look at this {bot.sandbox.url}/files/sample.mp4 !", chat_id=-4001, user_id=4001,
                     method="sendVideo,sendMessage")
    assert items[0]["method"] == "sendVideo", items[0]
    assert items[0]["params"]["reply_parameters"]["message_id"] > 0
    assert not list(bot.app_dir.parent.glob("pc-video-*"))


def test_video_command_downloads_through_the_generic_extractor(bot: Bot) -> None:
    url = f"{bot.sandbox.url}/files/video.html"
    items = bot.send(f"/video {url}", user_id=4002, method="sendVideo,sendMessage")
    assert items[0]["method"] == "sendVideo", items[0]


def test_oversized_video_gets_too_large(bot: Bot) -> None:
    assert "too large" in bot.say(f"/video {bot.sandbox.url}/files/big.mp4", user_id=4003)


def test_slow_download_times_out_with_a_reply(bot: Bot) -> None:
    assert "took too long" in bot.say(f"/video {bot.sandbox.url}/files/slow.mp4?delay=8", user_id=4004)


def test_missing_video_is_a_clear_failure(bot: Bot) -> None:
    reply = bot.say(f"/video {bot.sandbox.url}/files/nothing-here.mp4", user_id=4005)
    assert reply.startswith("❌ I couldn't download that video") and "404" in reply


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/video.mp4", "http://169.254.169.254/latest/meta-data/", "http://192.168.1.1/x.mp4",
    "http://167772161/x.mp4",  # 10.0.0.1 as a decimal number
    "http://[fe80::1]/x", "http://[::ffff:10.0.0.1]/x", "file:///etc/passwd", "ftp://10.0.0.1/x",
    "gopher://127.0.0.1:25/", "http://user:pw@127.0.0.1/x",
])
def test_ssrf_urls_are_refused(bot: Bot, url: str) -> None:
    reply = bot.say(f"/video {url}", user_id=4006)
    assert reply.startswith("🚫 I won't fetch that link"), reply


def test_youtube_gets_a_hashtag_and_shorts_are_downloaded(bot: Bot) -> None:
    assert bot.say("https://www.youtube.com/watch?v=dQw4w9WgXcQ", chat_id=-4007, user_id=4007) == "#youtube"
    # a Short is a download attempt (this machine has no internet: a clear failure, not the hashtag)
    reply = bot.say("/video https://youtube.com/shorts/abc123", user_id=4007)
    assert reply.startswith("❌ I couldn't download that video"), reply


def test_non_allowed_domains(bot: Bot) -> None:
    assert "I only download videos from" in bot.say("/video https://example.com/clip.mp4", user_id=4008)
    assert bot.quiet_after("see https://example.com/clip.mp4", chat_id=-4008, user_id=4008) == []


@pytest.mark.parametrize("args", ["", "-o /tmp/pwned http://x.com/1", "--exec id", "$(id)", "; id",
                                  "http://127.0.0.1:1/$(id).mp4; touch /tmp/pwned"])
def test_options_and_shell_syntax_are_data_not_commands(bot: Bot, args: str) -> None:
    reply = bot.say(f"/video {args}", user_id=4009)
    assert reply.startswith(("Usage: /video", "🚫", "❌")), reply
    assert not any(p.name == "pwned" for p in bot.app_dir.iterdir())


def test_video_disabled_per_chat(bot: Bot) -> None:
    assert bot.say("/config set video_enabled false", user_id=4010).startswith("✅")
    assert bot.quiet_after(f"{bot.sandbox.url}/files/sample.mp4", user_id=4010) == []
    url = f"{bot.sandbox.url}/files/sample.mp4"
    reply = bot.say(f"/video {url}", user_id=4010, method="sendVideo,sendMessage")
    assert reply == "🎬 Video downloads are switched off in this chat (video_enabled = false).", reply
    assert not unhandled(bot)


@pytest.mark.parametrize("text", ["{url}", "/video {url}"])
def test_an_edited_message_does_not_download_again(bot: Bot, text: str) -> None:
    url = f"{bot.sandbox.url}/files/sample.mp4"
    chat = -4018
    assert bot.quiet_after(text.format(url=url), chat_id=chat, user_id=4018, edited=True) == []
    # a new link as a barrier: one download at a time, so an edit (dispatched first) would be sent first
    after = bot.client.last_sent_id()
    barrier = bot.client.push(url, chat_id=chat, user_id=4018)["message_id"]
    sent = bot.client.wait_for(chat_id=chat, count=1, timeout=30, after=after, method="sendVideo,sendMessage")
    assert sent[0]["params"]["reply_parameters"]["message_id"] == barrier, sent


def test_without_sandbox_mode_loopback_is_refused(pg_server, tmp_path) -> None:
    dsn = pg_server.create_db("video_no_sandbox")
    with private_sandbox() as sandbox:
        strict = start_bot(sandbox, dsn, tmp_path / "app", {"video": {"allowed_domains": ["localhost"]}},
                           BOT_SANDBOX="0")
        try:
            for url in (f"{sandbox.url}/files/sample.mp4", "http://localhost/x.mp4", "http://[::1]/x",
                        "http://2130706433/x", "http://0x7f.1/x"):
                reply = strict.say(f"/video {url}", user_id=4011)
                assert reply.startswith("🚫 I won't fetch that link"), (url, reply)
            # passive links to loopback are not even picked up outside sandbox mode
            assert strict.quiet_after(f"{sandbox.url}/files/sample.mp4", chat_id=-4011, user_id=4011) == []
        finally:
            strict.stop()
            pg_server.drop_db("video_no_sandbox")


@pytest.mark.parametrize("target", ["http://10.0.0.1/x.mp4", "http://169.254.169.254/latest/meta-data/",
                                    "http://[fd00::1]/x.mp4", "http://0x7f000001.example/x"])
def test_a_redirect_to_a_private_address_is_refused(bot: Bot, target: str) -> None:
    """Every hop of a download is checked, not only the link in the message."""
    url = f"{bot.sandbox.url}/files/redirect?to={quote(target, safe='')}"
    reply = bot.say(f"/video {url}", user_id=4012, timeout=40)
    if target.endswith(".example/x"):  # no such host: a plain failure, still no detail of the network
        assert reply == "❌ I couldn't download that video: the site could not be reached.", reply
    else:
        assert reply == ("🚫 I won't fetch that link: the link points to a private, local or reserved "
                         "address."), reply


def test_download_errors_are_plain_messages(bot: Bot) -> None:
    """yt-dlp's own error text (errno, extractor names, URLs) never reaches the chat: no port scanner."""
    closed = bot.say("/video http://127.0.0.1:1/x.mp4", user_id=4013, timeout=40)
    assert closed == "❌ I couldn't download that video: the site could not be reached.", closed
    page = bot.say(f"/video {bot.sandbox.url}/files/page.html", user_id=4013, timeout=40)
    assert page == "❌ I couldn't download that video: there is no video at that link.", page


def test_size_cap_holds_while_streaming_a_chunked_reply(bot: Bot) -> None:
    url = f"{bot.sandbox.url}/files/chunked.mp4?mib=64&tag=cap"
    assert "too large" in bot.say(f"/video {url}", user_id=4014, timeout=40)
    sent = wait_closed(bot, "cap", 10)["bytes"]
    assert sent < 32 * 2**20, f"{sent / 2**20:.1f} MiB of 64 streamed against a {MAX_MB} MiB cap"
    assert not list(bot.app_dir.parent.glob("pc-video-*"))


def test_a_timed_out_download_is_really_stopped(bot: Bot) -> None:
    url = f"{bot.sandbox.url}/files/drip.mp4?seconds=40&tag=stop"
    assert "took too long" in bot.say(f"/video {url}", user_id=4015, timeout=30)
    assert wait_closed(bot, "stop", 3)["open"] == 0, "the download kept reading after its timeout"


def test_a_timed_out_download_keeps_its_slot_until_it_stopped(bot: Bot) -> None:
    """max_parallel_downloads=1: the second download starts only once the first one has stopped."""
    after = bot.client.last_sent_id()
    for user in (4016, 4017):
        bot.client.push(f"/video {bot.sandbox.url}/files/drip.mp4?seconds=40&tag=slot", user_id=user)
    for user in (4016, 4017):
        items = bot.client.wait_for(chat_id=user, count=1, timeout=40, after=after)
        assert "took too long" in items[0]["params"]["text"], items
    # one download at a time: its page request and its file request, never a second download's
    assert wait_closed(bot, "slot", 3)["max"] <= 2, stream(bot, "slot")


@pytest.mark.parametrize("sandbox_mode", [False, True])
def test_only_the_supported_sites_extractors_are_loaded(tmp_path, sandbox_mode: bool) -> None:
    """Link posts and unknown pages reach yt-dlp's generic extractor only in sandbox mode."""
    import threading

    import yt_dlp

    from bot.features.video import _YtLogger

    extractors = extractors_for(default_global_config()["video"], sandbox_mode)
    proxy = "http://127.0.0.1:9"
    options = ydl_options(tmp_path, 2**20, 5, proxy, extractors, threading.Event(), _YtLogger())
    with yt_dlp.YoutubeDL(options) as ydl:
        loaded = {name.lower() for name in ydl._ies}
    assert {"youtube", "tiktok", "instagram", "twitter", "facebook", "vimeo", "reddit"} <= loaded
    assert ("generic" in loaded) is sandbox_mode
    assert not {"bandcamp", "soundcloud", "dailymotion"} & loaded, loaded
    assert options["proxy"] == proxy
