"""GPT: /ask, mentions, replies, private chats, history, per-chat settings, API errors, random replies."""

from __future__ import annotations

import pytest
from botproc import ADMIN_ID, Bot, unhandled

from bot.features import split_text

BOT_NAME = "psychochauffeur_sandbox_bot"


def last_request(bot: Bot) -> dict:
    requests = bot.client.openai_requests()
    assert requests, "the fake OpenAI saw no request"
    return requests[-1]


def test_ask_answers_with_default_settings(bot: Bot) -> None:
    reply = bot.say("/ask what is the capital of Ukraine?", user_id=5001, first_name="Taras")
    assert reply == "Sandbox answer: Taras: what is the capital of Ukraine?"
    request = last_request(bot)
    assert request["model"] == "gpt-4o-mini" and request["temperature"] == 0.7
    system = request["messages"][0]
    assert system["role"] == "system" and "PsychoChauffeur" in system["content"]


def test_ask_without_a_question_shows_usage(bot: Bot) -> None:
    assert bot.say("/ask", user_id=5002).startswith("Usage: /ask")
    assert bot.client.openai_requests() == []


def test_history_is_context_including_our_own_answers(bot: Bot) -> None:
    chat = -5003
    bot.client.push("the sky is green today", chat_id=chat, user_id=5003, first_name="Ann")
    bot.say("/ask what colour is the sky?", chat_id=chat, user_id=5004, first_name="Bob")
    bot.say("/ask are you sure?", chat_id=chat, user_id=5004, first_name="Bob")
    messages = last_request(bot)["messages"]
    assert {"role": "user", "content": "Ann: the sky is green today"} in messages
    assert any(m["role"] == "assistant" and m["content"].startswith("Sandbox answer") for m in messages)
    assert messages[-1] == {"role": "user", "content": "Bob: are you sure?"}
    assert sum(m["content"].endswith("are you sure?") for m in messages) == 1  # not twice


def test_private_chat_mentions_and_replies(bot: Bot) -> None:
    assert bot.say("hello there", user_id=5005, first_name="Ivy") == "Sandbox answer: Ivy: hello there"
    chat = -5006
    reply = bot.send(f"@{BOT_NAME} how are you?", chat_id=chat, user_id=5006, first_name="Max")[0]
    assert reply["text"] == "Sandbox answer: Max: how are you?"
    follow = bot.say("and tomorrow?", chat_id=chat, user_id=5006, first_name="Max",
                     reply_to_message_id=reply["message_id"])
    assert follow == "Sandbox answer: Max: and tomorrow?"
    assert bot.quiet_after("just chatting among humans", chat_id=chat, user_id=5006) == []


def test_per_chat_model_prompt_and_temperature(bot: Bot) -> None:
    user = 5007  # a private chat: its user may configure it
    assert bot.say("/config set gpt_model gpt-4o", user_id=user) == "✅ gpt_model = 'gpt-4o'"
    assert bot.say("/config set gpt_temperature 1.3", user_id=user) == "✅ gpt_temperature = 1.3"
    assert bot.say("/config set gpt_system_prompt Talk like a pirate.", user_id=user).startswith("✅")
    assert bot.say("/config set gpt_history_messages 0", user_id=user).startswith("✅")
    bot.say("/ask ahoy", user_id=user)
    request = last_request(bot)
    assert request["model"] == "gpt-4o" and request["temperature"] == 1.3
    assert request["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert len(request["messages"]) == 2  # no history
    assert bot.say("/config set gpt_enabled off", user_id=user).startswith("✅")
    assert "switched off" in bot.say("/ask anyone?", user_id=user)


@pytest.mark.parametrize(("marker", "code"), [
    ("[sandbox:429]", "API001"), ("[sandbox:401]", "API002"), ("[sandbox:500]", "API003"),
    ("[sandbox:503]", "API003"), ("[sandbox:quota]", "API004"),
])
def test_api_errors_reply_with_their_code_and_are_recorded(bot: Bot, marker: str, code: str) -> None:
    chat = -5008
    reply = bot.say(f"/ask please fail {marker}", chat_id=chat, user_id=5008)
    assert reply.startswith("⚠️") and reply.endswith(f"({code})"), reply
    bot.wait_log("error.log", lambda r: r.get("code") == code and r.get("chat_id") == chat)
    rows = bot.query("SELECT code FROM error_events WHERE chat_id = %s AND code = %s", (chat, code))
    assert rows
    assert bot.say("/ping", chat_id=chat, user_id=5008) == "pong"


def test_random_replies_follow_threshold_and_probability(bot: Bot) -> None:
    chat = -5009
    for key, value in (("random_reply_enabled", "true"), ("random_reply_min_messages", "3"),
                       ("random_reply_probability", "1")):
        assert bot.say(f"/config set {key} {value}", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    assert bot.quiet_after("one", chat_id=chat, user_id=5009) == []  # /ping is not text: counts "one" only
    assert bot.quiet_after("two", chat_id=chat, user_id=5009) == []
    assert bot.say("three", chat_id=chat, user_id=5009, first_name="Eve") == "Sandbox answer: Eve: three"
    assert bot.quiet_after("four", chat_id=chat, user_id=5009) == []  # the counter starts again
    assert bot.say("/config set random_reply_probability 0", chat_id=chat, user_id=ADMIN_ID).startswith("✅")
    for text in ("five", "six", "seven"):
        assert bot.quiet_after(text, chat_id=chat, user_id=5009) == []


@pytest.mark.parametrize("question", ["q" * 5000, "\u202eRTL\u202c \u200b זה בסדר?", "$(id); `id` -rf"])
def test_odd_questions_get_answers(bot: Bot, question: str) -> None:
    reply = bot.say(f"/ask {question}", user_id=5010, first_name="Zed")
    assert reply.startswith("Sandbox answer: Zed: ")
    sent = last_request(bot)["messages"][-1]["content"]
    assert len(sent) <= 4000 + len("Zed: ")
    assert not unhandled(bot)


def test_split_text_respects_the_telegram_limit() -> None:
    text = ("line of text\n" * 700) + "x" * 5000
    chunks = split_text(text)
    assert all(0 < len(c) <= 4096 for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")
    assert split_text("") == ["…"]


@pytest.mark.parametrize("text", ["/ask what is new?", "what is new?"])
def test_an_edited_message_gets_no_new_answer(bot: Bot, text: str) -> None:
    assert bot.quiet_after(text, user_id=5020, edited=True) == []  # a private chat: new text is answered
    # a new question as a barrier: the edit, dispatched first, would have asked the AI before it
    assert "barrier" in bot.say("/ask barrier", user_id=5020)
    asked = [r["messages"][-1]["content"] for r in bot.client.openai_requests()]
    assert asked == ["User 5020: barrier"], asked
