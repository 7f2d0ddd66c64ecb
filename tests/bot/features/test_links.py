"""Link rewrite: x.com/twitter.com -> fxtwitter.com etc., from the config table, switchable per chat."""

from __future__ import annotations

from botproc import Bot, unhandled

from bot.features.links import rewritten


def GLOBAL_CONFIG(sandbox) -> dict:  # noqa: N802 - read by conftest
    # no video downloads here: links only (the x.com video attempt has its own tests)
    return {"video": {"allowed_domains": []}, "link_rewrites": {"example.org": "alt.example.org"}}


def test_x_and_twitter_links_are_rewritten(bot: Bot) -> None:
    reply = bot.say("lol https://x.com/user/status/123?s=20 and https://twitter.com/u/status/9",
                    chat_id=-8001, user_id=8001)
    assert reply == "🔗 https://fxtwitter.com/user/status/123?s=20\nhttps://fxtwitter.com/u/status/9"


def test_instagram_and_config_entries(bot: Bot) -> None:
    assert bot.say("https://www.instagram.com/reel/Cabc/", chat_id=-8002, user_id=8002) == (
        "🔗 https://ddinstagram.com/reel/Cabc/")
    assert bot.say("www.example.org/page", chat_id=-8002, user_id=8002) == "🔗 https://alt.example.org/page"


def test_other_links_and_lookalikes_are_left_alone(bot: Bot) -> None:
    for text in ("https://example.com/x", "https://notx.com/a", "https://x.com.evil.net/a", "x.com/no-scheme",
                 "ftp://x.com/a", "\u202ehttps://x.com\u200b"):
        assert bot.quiet_after(text, chat_id=-8003, user_id=8003) == [], text
    assert not unhandled(bot)


def test_switched_off_per_chat(bot: Bot) -> None:
    assert bot.say("/config set link_rewrite_enabled false", user_id=8004).startswith("✅")
    assert bot.quiet_after("https://x.com/user/status/1", user_id=8004) == []
    assert bot.say("/config reset link_rewrite_enabled", user_id=8004).startswith("✅")
    assert bot.say("https://x.com/user/status/1", user_id=8004).startswith("🔗")


def test_rewritten_is_deduplicated() -> None:
    table = {"x.com": "fxtwitter.com", "twitter.com": "fxtwitter.com"}
    assert rewritten("https://x.com/a https://twitter.com/a https://x.com/a", table) == ["https://fxtwitter.com/a"]
