"""/config and /errors: who may do what, validation against ChatSettings, error counts by code."""

from __future__ import annotations

import pytest
from botproc import ADMIN_ID, Bot, unhandled

from bot.settings import setting_names


def chat_config(bot: Bot, chat_id: int) -> dict:
    rows = bot.query("SELECT config FROM chats WHERE chat_id = %s", (chat_id,))
    return rows[0][0] if rows else {}


def test_show_lists_every_setting_and_marks_chat_overrides(bot: Bot) -> None:
    chat = -9001
    assert bot.say("/config set gpt_temperature 0.2", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    shown = bot.say("/config", chat_id=chat, user_id=9001)  # anyone may look
    for key in setting_names():
        assert key in shown
    assert "* gpt_temperature = 0.2" in shown and "  gpt_enabled = true" in shown


def test_members_may_not_change_settings(bot: Bot) -> None:
    chat = -9002
    bot.client.set_member(chat, 9002, "member")
    reply = bot.say("/config set gpt_enabled false", chat_id=chat, user_id=9002)
    assert reply.startswith("⛔ Only chat admins can change settings") and reply.endswith("(APP003)")
    assert chat_config(bot, chat) == {}
    record = bot.wait_log("general.log", lambda r: r.get("code") == "APP003" and r.get("chat_id") == chat)
    assert record["user_id"] == 9002 and record["level"] == "WARNING"


@pytest.mark.parametrize("status", ["administrator", "creator"])
def test_telegram_chat_admins_may(bot: Bot, status: str) -> None:
    chat = -9003
    bot.client.set_member(chat, 9003, status)
    assert bot.say("/config set random_reply_probability 0.5", chat_id=chat, user_id=9003) == (
        "✅ random_reply_probability = 0.5")
    assert chat_config(bot, chat) == {"random_reply_probability": 0.5}
    assert bot.say("/config reset random_reply_probability", chat_id=chat, user_id=9003).startswith("✅")
    assert chat_config(bot, chat) == {}


@pytest.mark.parametrize(("args", "expected"), [
    ("set gpt_temperature 3", "❌ gpt_temperature: must be at most 2 (got '3'). Nothing was changed."),
    ("set gpt_enabled perhaps", "❌ gpt_enabled: must be true or false"),
    ("set nope 1", "❌ unknown setting 'nope'"),
    ("set gpt_model $(id)", "❌ gpt_model: may contain only"),
    ("set gpt_model -rf", "❌ gpt_model: may contain only"),
    ("set gpt_model o1-pro", "❌ gpt_model: must be one of the models this bot allows: gpt-4o-mini, gpt-4o;"),
    ("set random_reply_min_messages 1;DROP TABLE chats", "❌ random_reply_min_messages: must be an integer"),
    ("set gpt_system_prompt " + "p" * 5000, "❌ gpt_system_prompt: must be at most 2000 characters"),
    ("reset nope", "❌ unknown setting 'nope'"),
    ("set gpt_enabled", "Usage: /config"),
    ("frobnicate", "Usage: /config"),
    ("reset", "Usage: /config"),
])
def test_invalid_changes_are_refused_and_change_nothing(bot: Bot, args: str, expected: str) -> None:
    chat = -9004
    reply = bot.say(f"/config {args}", chat_id=chat, user_id=ADMIN_ID)
    assert reply.startswith(expected), reply
    assert chat_config(bot, chat) == {}
    assert bot.query("SELECT count(*) FROM chats WHERE chat_id = %s AND config <> '{}'", (chat,)) == [(0,)]


def test_unicode_system_prompt_round_trips(bot: Bot) -> None:
    prompt = "Відповідай українською \u202eRTL\u202c, коротко."
    assert bot.say(f"/config set gpt_system_prompt {prompt}", user_id=9005).startswith("✅")
    assert chat_config(bot, 9005) == {"gpt_system_prompt": prompt}


def test_errors_for_bot_admins_and_chat_admins(bot: Bot) -> None:
    chat = -9006
    bot.client.set_member(chat, 9006, "administrator")
    bot.client.set_member(chat, 9007, "member")
    bot.say("/ask [sandbox:429]", chat_id=chat, user_id=9007)
    bot.say("/ask [sandbox:429]", chat_id=chat, user_id=9007)
    bot.say("/ask [sandbox:500]", user_id=9008)  # another chat
    bot.wait_log("error.log", lambda r: r.get("code") == "API003" and r.get("chat_id") == 9008)
    mine = bot.say("/errors", chat_id=chat, user_id=9006)
    assert mine.startswith("🧾 Errors in the last 24 h (this chat, from database):")
    assert "API001: 2" in mine and "API003" not in mine
    everything = bot.say("/errors 48", chat_id=chat, user_id=ADMIN_ID)
    assert "(all chats, from database)" in everything
    assert "API001: 2" in everything and "API003: 1" in everything
    refused = bot.say("/errors", chat_id=chat, user_id=9007)
    assert refused.startswith("⛔ Only chat admins can see error counts")
    assert bot.say("/errors", chat_id=-9009, user_id=ADMIN_ID).startswith("🧾")


@pytest.mark.parametrize("args", ["0", "721", "-1", "1 2", "abc", "$(id)", "２"])
def test_errors_rejects_bad_hours(bot: Bot, args: str) -> None:
    assert bot.say(f"/errors {args}", user_id=ADMIN_ID).startswith("Usage: /errors")


def test_chat_member_lookup_failure_is_reported(bot: Bot) -> None:
    chat = -9010
    bot.client.fail("getChatMember", error_code=500, count=1)
    reply = bot.say("/config set gpt_enabled false", chat_id=chat, user_id=9010)
    assert reply.startswith("⚠️") and reply.endswith("(API003)"), reply
    assert chat_config(bot, chat) == {}
    assert not unhandled(bot)


def test_a_change_applies_to_the_very_next_message(bot: Bot) -> None:
    """The built settings are cached per chat: /config set and reset must not leave a stale copy."""
    chat, member = -9020, 9020
    assert bot.quiet_after("warming the settings cache", chat_id=chat, user_id=member) == []
    for setting in ("random_reply_min_messages 1", "random_reply_probability 1", "random_reply_enabled true"):
        assert bot.say(f"/config set {setting}", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    answer = bot.say("anyone here", chat_id=chat, user_id=member)
    assert answer.startswith("Sandbox answer:") and answer.endswith("anyone here")
    assert bot.say("/config set gpt_enabled false", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    assert bot.quiet_after("still anyone here", chat_id=chat, user_id=member) == []
    assert bot.say("/config reset gpt_enabled", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    assert bot.say("and now", chat_id=chat, user_id=member).endswith("and now")
    assert not unhandled(bot)
