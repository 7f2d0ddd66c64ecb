"""Rate limits and quotas for GPT, /analyze and downloads: the counters, and the bot saying "slow down"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botproc import ADMIN_ID, Bot, module_bot

from bot.quotas import MAX_KEYS, Quotas, slow_down_text
from bot.settings import default_global_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_user_limit_refuses_then_recovers_after_the_window() -> None:
    clock = Clock()
    quotas = Quotas({"gpt": {"per_user_per_minute": 2}}, clock)
    assert quotas.take("gpt", -1, 7) is None and quotas.take("gpt", -1, 7) is None
    refused = quotas.take("gpt", -2, 7)  # the same user in another chat
    assert refused is not None and refused.limit == "per_user_per_minute" and refused.first
    assert refused.retry_after == pytest.approx(60)
    clock.now += 30
    again = quotas.take("gpt", -1, 7)
    assert again is not None and not again.first  # one reply per run of refusals
    assert again.retry_after == pytest.approx(30)
    assert quotas.take("gpt", -1, 8) is None  # another user is not affected
    assert quotas.take("analyze", -1, 7) is None  # nor another kind
    clock.now += 30.5
    assert quotas.take("gpt", -1, 7) is None


def test_chat_limits_and_the_day_quota() -> None:
    clock = Clock()
    quotas = Quotas({"gpt": {"per_chat_per_minute": 3, "per_chat_per_day": 4}}, clock)
    assert all(quotas.take("gpt", -5, user) is None for user in (1, 2, 3))  # many users, one chat
    assert quotas.take("gpt", -5, 4).limit == "per_chat_per_minute"
    clock.now += 61
    assert quotas.take("gpt", -5, 4) is None
    day = quotas.take("gpt", -5, 5)
    assert day is not None and day.limit == "per_chat_per_day"
    assert day.retry_after == pytest.approx(86_400 - 61)
    assert "today's quota" in slow_down_text("gpt", day) and "Try again in 23 h" in slow_down_text("gpt", day)


def test_a_refused_call_is_not_counted_and_zero_means_no_limit() -> None:
    clock = Clock()
    quotas = Quotas({"video": {"per_user_per_minute": 1, "per_chat_per_minute": 0}}, clock)
    assert quotas.take("video", -1, 1) is None
    for _ in range(50):
        assert quotas.take("video", -1, 1) is not None
    clock.now += 60.5
    assert quotas.take("video", -1, 1) is None  # the 50 refusals did not push the window


def test_counters_stay_bounded() -> None:
    clock = Clock()
    quotas = Quotas({"gpt": {"per_user_per_minute": 5}}, clock)
    for user in range(MAX_KEYS + 10):
        quotas.take("gpt", None, user)
        if user == MAX_KEYS // 2:
            clock.now += 120  # the first half goes idle
    assert len(quotas._calls) <= MAX_KEYS


def test_the_shipped_defaults_limit_every_paid_kind() -> None:
    limits = default_global_config()["rate_limits"]
    for kind in ("gpt", "analyze", "video"):
        assert all(limits[kind][name] > 0 for name in ("per_user_per_minute", "per_chat_per_minute",
                                                        "per_chat_per_day")), kind


LIMITED = {"rate_limits": {"gpt": {"per_user_per_minute": 2}, "analyze": {"per_user_per_minute": 1},
                           "video": {"per_chat_per_minute": 1}}}


@pytest.fixture(scope="module")
def bot(pg_server, sandbox, tmp_path_factory) -> Iterator[Bot]:
    yield from module_bot(pg_server, sandbox, tmp_path_factory.mktemp("quotas"), LIMITED)


def test_gpt_says_slow_down_once_then_stays_quiet(bot: Bot) -> None:
    user = 8801
    calls = len(bot.client.openai_requests())
    assert not bot.say("/ask one", user_id=user).startswith("🐢")
    assert not bot.say("/ask two", user_id=user).startswith("🐢")
    third = bot.say("/ask three", user_id=user)
    assert third.startswith("🐢 Slow down: you are asking too often for the AI. Try again in ")
    assert bot.quiet_after("/ask four", user_id=user) == []  # no reply flood either
    assert len(bot.client.openai_requests()) == calls + 2  # the refused questions cost nothing
    assert not bot.say("/ask hi", user_id=user + 1).startswith("🐢")  # other users are not affected


def test_random_replies_count_against_the_limits_silently(bot: Bot) -> None:
    chat = -8802
    for setting in ("random_reply_min_messages 1", "random_reply_probability 1", "random_reply_enabled true"):
        assert bot.say(f"/config set {setting}", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    for text in ("chatter one", "chatter two"):  # the user's 2 a minute
        assert bot.say(text, chat_id=chat, user_id=8803).startswith("Sandbox answer:")
    after = bot.client.last_sent_id()
    bot.client.push("chatter three", chat_id=chat, user_id=8803)
    bot.wait_log("general.log", lambda r: r["msg"] == "rate limit gpt.per_user_per_minute reached"
                 and r.get("chat_id") == chat)
    assert bot.client.sent(chat_id=chat, after=after) == []  # skipped, and silently


def test_analyze_and_video_are_limited_too(bot: Bot) -> None:
    chat = -8804
    bot.client.push("something to summarize", chat_id=chat, user_id=8804)
    assert bot.say("/analyze", chat_id=chat, user_id=8805).startswith("📝")
    assert bot.say("/analyze", chat_id=chat, user_id=8805).startswith(
        "🐢 Slow down: you are asking too often for /analyze.")
    url = f"{bot.sandbox.url}/files/sample.mp4"
    first = bot.send(f"/video {url}", chat_id=chat, user_id=8806, method="sendVideo")
    assert first
    assert bot.say(f"/video {url}", chat_id=chat, user_id=8807).startswith(
        "🐢 Slow down: this chat is asking too often for video downloads.")


def test_the_weather_tip_counts_as_a_gpt_call_and_is_left_out_over_the_limit(bot: Bot) -> None:
    user = 8808
    for _ in range(2):
        assert "👕" in bot.say("/weather Paris", user_id=user)
    calls = len(bot.client.openai_requests())
    third = bot.say("/weather Paris", user_id=user)
    assert third.startswith("🌤 Paris") and "👕" not in third  # the weather alone, no "slow down"
    assert len(bot.client.openai_requests()) == calls
