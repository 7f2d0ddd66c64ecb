"""/analyze: summaries of stored messages through the fake OpenAI, cached per (chat, period, content)."""

from __future__ import annotations

from datetime import date

import pytest
from botproc import ADMIN_ID, Bot, unhandled

from bot.features.analyze import USAGE, content_hash, parse_period


def test_today_is_summarized_then_served_from_cache(bot: Bot) -> None:
    chat = -6001
    for text in ("we meet at five", "bring the maps", "/roll@dice_bot"):  # a command for another bot
        bot.client.push(text, chat_id=chat, user_id=6001, first_name="Lea")
    first = bot.say("/analyze", chat_id=chat, user_id=6002)
    assert first.startswith("📝 Summary of today (2 messages):")
    assert "Lea: we meet at five" in first  # the fake OpenAI echoes the transcript it got
    transcript = bot.client.openai_requests()[-1]["messages"][-1]["content"]
    assert "bring the maps" in transcript and "/roll" not in transcript and "/analyze" not in transcript
    calls = len(bot.client.openai_requests())
    again = bot.say("/analyze today", chat_id=chat, user_id=6002)
    assert again.startswith("📝 Summary of today (2 messages, cached):")
    assert len(bot.client.openai_requests()) == calls
    rows = bot.query("SELECT period, content_hash FROM analysis_cache WHERE chat_id = %s", (chat,))
    assert len(rows) == 1 and rows[0][0].startswith("today:")
    bot.client.push("a new message changes the content", chat_id=chat, user_id=6001)
    assert "(3 messages):" in bot.say("/analyze today", chat_id=chat, user_id=6002)
    assert len(bot.query("SELECT 1 FROM analysis_cache WHERE chat_id = %s", (chat,))) == 2


def test_no_cached_summary_when_the_ai_is_off(bot: Bot) -> None:
    chat = -6010
    bot.client.push("the cache must not outlive the switch", chat_id=chat, user_id=6010)
    assert bot.say("/analyze", chat_id=chat, user_id=6010).startswith("📝 Summary of today (1 messages):")
    assert bot.say("/config set gpt_enabled false", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    reply = bot.say("/analyze", chat_id=chat, user_id=6010)
    assert "cached" not in reply and "APP001" in reply, reply
    assert bot.quiet_after("/analyze", chat_id=chat, user_id=6010, edited=True) == []


def test_last_n_and_date(bot: Bot) -> None:
    chat = -6003
    for i in range(5):
        bot.client.push(f"message number {i}", chat_id=chat, user_id=6003)
    reply = bot.say("/analyze last 2", chat_id=chat, user_id=6003)
    assert reply.startswith("📝 Summary of the last 2 messages (2 messages):")
    transcript = bot.client.openai_requests()[-1]["messages"][-1]["content"]
    assert "message number 3" in transcript and "message number 4" in transcript
    assert "message number 2" not in transcript
    assert "No messages to analyze for 2001-09-11" in bot.say("/analyze date 2001-09-11", chat_id=chat,
                                                              user_id=6003)


def test_empty_chat(bot: Bot) -> None:
    assert bot.say("/analyze", chat_id=-6004, user_id=6004).startswith("📭 No messages to analyze for today")


@pytest.mark.parametrize("args", ["yesterday", "last", "last 0", "last -5", "last 1001", "last ５",
                                  "date 2024-13-45", "date 24-01-01", "date", "; DROP TABLE messages",
                                  "$(id)", "x" * 5000, "today extra"])
def test_bad_arguments_show_usage_and_change_nothing(bot: Bot, args: str) -> None:
    before = bot.query("SELECT count(*) FROM analysis_cache")[0][0]
    assert bot.say(f"/analyze {args}", chat_id=-6005, user_id=6005) == USAGE
    assert bot.query("SELECT count(*) FROM analysis_cache")[0][0] == before
    assert bot.query("SELECT count(*) FROM messages")[0][0] > 0
    assert not unhandled(bot)


def test_ai_failure_is_reported_and_not_cached(bot: Bot) -> None:
    chat = -6006
    bot.client.push("please [sandbox:503] now", chat_id=chat, user_id=6006)
    assert bot.say("/analyze", chat_id=chat, user_id=6006).endswith("(API003)")
    assert bot.query("SELECT 1 FROM analysis_cache WHERE chat_id = %s", (chat,)) == []


def test_parse_period_and_hash_are_pure() -> None:
    today = date(2025, 1, 31)
    assert parse_period([], today).key == "today:2025-01-31"
    assert parse_period(["LAST", "7"], today).last == 7
    assert parse_period(["date", "2024-02-29"], today).day == date(2024, 2, 29)
    rows = [{"message_id": 1, "text": "a"}, {"message_id": 2, "text": "b"}]
    assert content_hash(rows) != content_hash(rows[:1]) != content_hash([{"message_id": 1, "text": "A"}])
    assert content_hash(rows) == content_hash([dict(r) for r in rows])
