"""/start, /help, /ping, /cat and unknown commands, end to end through the sandbox."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import httpx
import pytest
from botproc import Bot, unhandled

from bot.errors import BotError
from bot.features.basic import COMMANDS, _fetch_image
from bot.sandbox.files import STATIC_DIR


def GLOBAL_CONFIG(sandbox) -> dict:  # noqa: N802 - read by conftest
    return {"cat": {"url": f"{sandbox.url}/files/cat.jpg"}}


def test_start_help_ping(bot: Bot) -> None:
    assert bot.say("/start", user_id=2001, first_name="Олена").startswith("Hi Олена!")
    help_text = bot.say("/help", user_id=2001)
    for name, _ in COMMANDS:
        assert f"/{name}" in help_text
    assert bot.say("/ping", user_id=2001) == "pong"


def test_commands_registered_with_telegram(bot: Bot) -> None:
    # setMyCommands happened at startup, before the per-test reset: the bot answers /help from the same list
    assert bot.say("/help@psychochauffeur_sandbox_bot", user_id=2002).count("\n/") >= len(COMMANDS) - 1


@pytest.mark.parametrize("junk", [
    "x" * 5000, "\u202eRTL override\u202c \u200b\u200d zero width", "$(id); rm -rf / `id`", "-rf --help",
])
def test_bad_arguments_do_not_break_simple_commands(bot: Bot, junk: str) -> None:
    assert bot.say(f"/ping {junk}", user_id=2003) == "pong"
    assert bot.say(f"/start {junk}", user_id=2003).startswith("Hi ")


def test_unknown_command_answered_in_private_and_when_addressed_in_groups(bot: Bot) -> None:
    assert "Unknown command /frobnicate" in bot.say("/frobnicate now", user_id=2004)
    assert "Unknown command /x" in bot.say("/x@psychochauffeur_sandbox_bot", chat_id=-2004, user_id=2004)
    # in a group a bare unknown command may be meant for another bot: stay quiet
    assert bot.quiet_after("/otherbotcmd", chat_id=-2004, user_id=2004) == []
    assert bot.quiet_after("/cmd@some_other_bot", chat_id=-2004, user_id=2004) == []


def test_unknown_command_echo_is_bounded(bot: Bot) -> None:
    reply = bot.say("/" + "a" * 300, user_id=2005)
    assert reply.startswith("🤔 Unknown command /" + "a" * 32 + ".")


def test_cat_sends_a_photo(bot: Bot) -> None:
    item = bot.send("/cat", user_id=2006, method="sendPhoto,sendMessage")[0]
    assert item["method"] == "sendPhoto", item
    # the bot fetched the sandbox's cat.jpg (GLOBAL_CONFIG above) and uploaded exactly those bytes
    upload = item["params"]["photo"]
    assert upload["sha256"] == hashlib.sha256((STATIC_DIR / "cat.jpg").read_bytes()).hexdigest(), upload
    assert not unhandled(bot)


async def test_cat_fetch_failures_are_clear(sandbox) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(BotError, match="not a picture"):
            await _fetch_image(client, f"{sandbox.url}/files/sample.mp4", 10_000_000, 5, allow_loopback=True)
        with pytest.raises(BotError, match="too large") as info:
            await _fetch_image(client, f"{sandbox.url}/files/big.mp4", 10_000_000, 5, allow_loopback=True)
        assert info.value.code == "APP004"
        with pytest.raises(BotError, match="HTTP 404") as info:
            await _fetch_image(client, f"{sandbox.url}/files/no-such-cat.jpg", 10_000_000, 5,
                               allow_loopback=True)
        assert info.value.code == "API003"
        with pytest.raises(BotError, match="unreachable"):
            await _fetch_image(client, "http://127.0.0.1:9/cat", 10_000_000, 5, allow_loopback=True)


async def test_cat_checks_every_address_and_follows_json_once(sandbox) -> None:
    """The cat API names the picture's URL: that URL and every redirect get the video links' address check."""
    cat_json = f"{sandbox.url}/files/cat.json?to="
    async with httpx.AsyncClient() as client:
        assert await _fetch_image(client, cat_json + quote(f"{sandbox.url}/files/cat.jpg"), 10**7, 5,
                                  allow_loopback=True) == (STATIC_DIR / "cat.jpg").read_bytes()
        for target in ("http://10.0.0.1/cat.jpg", "http://169.254.169.254/latest/meta-data/",
                       f"{sandbox.url}/files/redirect?to=" + quote("http://192.168.1.1/c.jpg", safe="")):
            with pytest.raises(BotError, match="won't fetch: the link points to a private") as info:
                await _fetch_image(client, cat_json + quote(target, safe=""), 10**7, 5, allow_loopback=True)
            assert info.value.code == "APP003"
        # outside sandbox mode not even the start
        with pytest.raises(BotError, match="won't fetch: the link points to a private"):
            await _fetch_image(client, f"{sandbox.url}/files/cat.jpg", 10**7, 5)
        # a JSON naming itself is followed once, then it is just not a picture (it was 272 requests, then
        # RecursionError); a redirect loop ends after a few hops
        with pytest.raises(BotError, match="application/json, not a picture"):
            await _fetch_image(client, f"{sandbox.url}/files/cat.json", 10**7, 5, allow_loopback=True)
        with pytest.raises(BotError, match="redirected too often"):
            await _fetch_image(client, f"{sandbox.url}/files/redirect", 10**7, 5, allow_loopback=True)
