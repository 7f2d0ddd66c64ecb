"""Every message lands in PostgreSQL and chat.log; /stats reports per chat."""

from __future__ import annotations

import time

from botproc import Bot, unhandled

GROUP = -3001


def stored(bot: Bot, chat_id: int) -> list[tuple]:
    return bot.query("SELECT message_id, user_id, text FROM messages WHERE chat_id = %s ORDER BY message_id",
                     (chat_id,))


def stored_soon(bot: Bot, chat_id: int, count: int, timeout: float = 30) -> list[tuple]:
    """The chat's rows once there are at least `count` (or whatever is there at the timeout)."""
    deadline = time.monotonic() + timeout
    while len(rows := stored(bot, chat_id)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


def test_group_messages_are_stored_with_chat_and_user(bot: Bot) -> None:
    texts = ["first", "x" * 5000, "RTL \u202eabc\u202c zero\u200bwidth", "$(id); rm -rf / --help", "-n 5"]
    for i, text in enumerate(texts):
        bot.client.push(text, chat_id=GROUP, user_id=3001 + i % 2, username=f"user{i % 2}", title="Storage")
    bot.quiet_after("barrier", chat_id=GROUP, user_id=3001, username="user0", title="Storage")
    rows = stored_soon(bot, GROUP, len(texts) + 1)  # the writer stores in batches, after the replies
    assert [r[2] for r in rows[:5]] == texts
    assert {r[1] for r in rows} == {3001, 3002}
    chat = bot.query("SELECT chat_type, title, config FROM chats WHERE chat_id = %s", (GROUP,))
    assert chat == [("supergroup", "Storage", {})]
    users = dict(bot.query("SELECT user_id, username FROM users WHERE user_id IN (3001, 3002)"))
    assert users == {3001: "user0", 3002: "user1"}
    chat_lines = [r for r in bot.records("chat.log") if r.get("chat_id") == GROUP]
    assert [r["msg"] for r in chat_lines][:5] == texts
    assert all(r["user_id"] in (3001, 3002) for r in chat_lines)


def test_raw_updates_edits_and_non_text(bot: Bot) -> None:
    chat = {"id": -3002, "type": "group", "title": "Raw"}
    user = {"id": 3003, "is_bot": False, "first_name": "Raw"}
    bot.client.push_raw({"message": {"message_id": 900, "date": 1_700_000_000, "chat": chat, "from": user,
                                     "text": "original"}})
    bot.client.push_raw({"edited_message": {"message_id": 900, "date": 1_700_000_000,
                                            "edit_date": 1_700_000_100, "chat": chat, "from": user,
                                            "text": "edited"}})
    bot.client.push_raw({"message": {"message_id": 901, "date": 1_700_000_000, "chat": chat, "from": user,
                                     "sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular",
                                                 "width": 1, "height": 1, "is_animated": False,
                                                 "is_video": False}}})
    bot.client.push_raw({"message": {"message_id": 902, "date": 1_700_000_000, "chat": chat, "from": user,
                                     "photo": [], "caption": "a caption"}})
    bot.quiet_after("barrier", chat_id=-3002, user_id=3003, chat_type="group")
    rows = stored_soon(bot, -3002, 4)
    assert rows[:3] == [(900, 3003, "edited"), (901, 3003, None), (902, 3003, "a caption")]
    assert any(r["msg"] == "<sticker>" for r in bot.records("chat.log") if r.get("chat_id") == -3002)


def test_stats(bot: Bot) -> None:
    chat = -3003
    assert bot.say("/stats", chat_id=chat, user_id=3010) .startswith("📊 Chat statistics")  # counts itself
    for i in range(3):
        bot.client.push(f"hello {i}", chat_id=chat, user_id=3011, username="alice")
    text = bot.say("/stats", chat_id=chat, user_id=3010, username="bob")
    assert "Messages: 5 (last 24 h: 5)" in text
    assert "Users: 2" in text
    assert "1. alice — 3" in text and "2. bob — 2" in text


def test_stats_in_an_empty_private_chat_counts_the_command(bot: Bot) -> None:
    assert "Messages: 1" in bot.say("/stats", user_id=3020)
    assert not unhandled(bot)


def test_a_lone_surrogate_from_telegram_is_stored_cleaned_and_later_messages_too(bot: Bot) -> None:
    chat = {"id": -3004, "type": "group", "title": "Surrogate \ud800"}
    user = {"id": 3020, "is_bot": False, "first_name": "Lone \udfff"}
    bot.client.push_raw({"message": {"message_id": 950, "date": 1_700_000_000, "chat": chat, "from": user,
                                     "text": "broken \ud83d emoji"}})
    bot.client.push_raw({"message": {"message_id": 951, "date": 1_700_000_001, "chat": chat, "from": user,
                                     "text": "after it"}})
    bot.quiet_after("barrier", chat_id=-3004, user_id=3020, chat_type="group")
    deadline = time.monotonic() + 15  # the writer stores in the background
    while len(rows := stored(bot, -3004)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rows[:2] == [(950, 3020, "broken \ufffd emoji"), (951, 3020, "after it")]
    assert not unhandled(bot)
