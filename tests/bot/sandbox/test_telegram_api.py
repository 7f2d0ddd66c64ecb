"""The fake Bot API through python-telegram-bot itself (real HTTP to the sandbox)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
import requests
import telegram
from telegram import Bot, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.sandbox import telegram_api
from bot.sandbox.files import STATIC_DIR
from bot.sandbox.server import SANDBOX_BOT_TOKEN

BOT_ID = int(SANDBOX_BOT_TOKEN.split(":")[0])


@pytest_asyncio.fixture(loop_scope="function")
async def bot(sandbox):
    async with Bot(SANDBOX_BOT_TOKEN, base_url=f"{sandbox.url}/bot") as tg_bot:
        yield tg_bot


async def test_get_me_returns_a_bot_user(bot, sandbox):
    me = await bot.get_me()
    assert isinstance(me, telegram.User)
    assert me.is_bot and me.id == BOT_ID
    assert me.username == sandbox.client.health()["bot_username"]
    assert me.can_read_all_group_messages is True


async def test_pushed_message_arrives_through_get_updates_with_entities(bot, sandbox):
    pushed = sandbox.client.push(
        "😀 /weather Kyiv https://x.com/a/status/1", chat_id=-100555, user_id=7, username="alice"
    )
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [pushed["update_id"]]
    message = updates[0].message
    assert message.message_id == pushed["message_id"]
    assert message.chat.type == "supergroup" and message.chat.id == -100555
    assert message.from_user.username == "alice"
    parsed = {e.type: text for e, text in message.parse_entities().items()}
    assert parsed == {"bot_command": "/weather", "url": "https://x.com/a/status/1"}


async def test_offset_confirms_updates(bot, sandbox):
    first = sandbox.client.push("one")
    second = sandbox.client.push("two")
    assert len(await bot.get_updates(timeout=0)) == 2
    remaining = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)
    assert [u.update_id for u in remaining] == [second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1, timeout=0) == ()
    assert sandbox.client.health()["pending_updates"] == 0


async def test_long_poll_returns_as_soon_as_an_update_is_pushed(bot, sandbox):
    calls = sandbox.client.health()["get_updates_calls"]
    poll = asyncio.create_task(bot.get_updates(timeout=50, read_timeout=60))
    for _ in range(400):  # until the sandbox holds the long poll
        if sandbox.client.health()["get_updates_calls"] > calls:
            break
        await asyncio.sleep(0.01)
    assert not poll.done()
    pushed = await asyncio.to_thread(sandbox.client.push, "wake up")
    # far below the 50 s poll timeout: the answer came because of the push
    updates = await asyncio.wait_for(poll, 20)
    assert [u.update_id for u in updates] == [pushed["update_id"]]


async def test_a_second_poller_ends_the_first_with_conflict(bot, sandbox):
    calls = sandbox.client.health()["get_updates_calls"]
    first = asyncio.create_task(bot.get_updates(timeout=30, read_timeout=40))
    for _ in range(400):
        if sandbox.client.health()["get_updates_calls"] > calls:
            break
        await asyncio.sleep(0.01)
    async with Bot(SANDBOX_BOT_TOKEN, base_url=f"{sandbox.url}/bot") as other:
        second = asyncio.create_task(other.get_updates(timeout=1))
        with pytest.raises(Conflict, match="only one bot instance"):
            await asyncio.wait_for(first, 20)
        assert await second == ()


async def test_send_message_returns_a_message_and_is_recorded(bot, sandbox):
    pushed = sandbox.client.push("hi", user_id=55)
    sent = await bot.send_message(
        55, "<b>Hello</b> &amp; welcome", parse_mode=ParseMode.HTML, reply_to_message_id=pushed["message_id"]
    )
    assert isinstance(sent, telegram.Message)
    assert sent.text == "Hello & welcome"
    assert sent.from_user.id == BOT_ID and sent.chat.id == 55
    assert sent.reply_to_message.message_id == pushed["message_id"]
    assert sent.message_id == pushed["message_id"] + 1
    [item] = sandbox.client.sent(chat_id=55)
    assert item["method"] == "sendMessage" and item["message_id"] == sent.message_id
    assert item["text"] == "<b>Hello</b> &amp; welcome" and item["params"]["parse_mode"] == "HTML"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"chat_id": 999_999, "text": "x"}, "chat not found"),
        ({"text": "x" * 4097}, "message is too long"),
        ({"text": "   "}, "message text is empty"),
        ({"text": "<b>unclosed", "parse_mode": ParseMode.HTML}, "Can't find end tag"),
        ({"text": "<script>x</script>", "parse_mode": ParseMode.HTML}, "Unsupported start tag"),
        ({"text": "1 + 1 = 2.", "parse_mode": ParseMode.MARKDOWN_V2}, "is reserved"),
        ({"text": "x", "reply_to_message_id": 424242}, "message to be replied not found"),
    ],
)
async def test_send_message_bad_requests_are_telegram_errors(bot, sandbox, kwargs, error):
    sandbox.client.push("hi", user_id=56)
    with pytest.raises(BadRequest, match=f"(?i){error}"):
        await bot.send_message(**({"chat_id": 56} | kwargs))
    assert sandbox.client.sent(method="all") == []


async def test_escaped_markdown_v2_is_accepted(bot, sandbox):
    sandbox.client.push("hi", user_id=57)
    sent = await bot.send_message(57, r"1 \+ 1 \= 2\. *bold*", parse_mode=ParseMode.MARKDOWN_V2)
    assert sent.text == "1 + 1 = 2. bold"


async def test_send_video_upload_is_measured_not_stored(bot, sandbox):
    sandbox.client.push("video please", user_id=58)
    data = (STATIC_DIR / "sample.mp4").read_bytes()
    sent = await bot.send_video(58, data, caption="here", filename="clip.mp4", supports_streaming=True)
    assert sent.video.width == 16 and sent.video.file_size == len(data)
    assert sent.caption == "here"
    [item] = sandbox.client.sent(chat_id=58)
    assert item["method"] == "sendVideo"
    assert item["params"]["video"]["size"] == len(data)
    assert item["params"]["video"]["is_mp4"] is True
    assert item["params"]["supports_streaming"] is True


async def test_upload_over_the_limit_is_413(bot, sandbox, monkeypatch):
    monkeypatch.setattr(telegram_api, "MAX_UPLOAD_BYTES", 1000)
    sandbox.client.push("video please", user_id=59)
    with pytest.raises(NetworkError, match="Request Entity Too Large"):
        await bot.send_video(59, (STATIC_DIR / "sample.mp4").read_bytes(), filename="clip.mp4")
    assert sandbox.client.sent(chat_id=59) == []


async def test_photo_action_edit_delete(bot, sandbox):
    sandbox.client.push("hi", user_id=60)
    photo = await bot.send_photo(60, "https://example.invalid/cat.jpg", caption="cat")
    assert photo.photo[0].file_id
    assert await bot.send_chat_action(60, "typing") is True
    with pytest.raises(BadRequest, match="(?i)wrong parameter action"):
        await bot.send_chat_action(60, "dancing")
    msg = await bot.send_message(60, "draft")
    edited = await bot.edit_message_text("final", chat_id=60, message_id=msg.message_id)
    assert edited.text == "final" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("final", chat_id=60, message_id=msg.message_id)
    assert await bot.delete_message(60, msg.message_id) is True
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(60, msg.message_id)
    default = [i["method"] for i in sandbox.client.sent(chat_id=60)]
    assert default == ["sendPhoto", "sendMessage", "editMessageText", "deleteMessage"]
    assert [i["method"] for i in sandbox.client.sent(chat_id=60, method="sendChatAction")] == [
        "sendChatAction"
    ]


async def test_chat_members_and_administrators(bot, sandbox):
    sandbox.client.push("hi", chat_id=-100777, user_id=61)
    sandbox.client.set_member(-100777, 61, "administrator")
    sandbox.client.set_member(-100777, 62, "creator")
    sandbox.client.set_member(-100777, 63, "restricted")
    admin = await bot.get_chat_member(-100777, 61)
    assert isinstance(admin, telegram.ChatMemberAdministrator) and admin.can_delete_messages
    assert isinstance(await bot.get_chat_member(-100777, 62), telegram.ChatMemberOwner)
    assert isinstance(await bot.get_chat_member(-100777, 63), telegram.ChatMemberRestricted)
    assert isinstance(await bot.get_chat_member(-100777, 64), telegram.ChatMemberMember)
    admins = await bot.get_chat_administrators(-100777)
    assert sorted(m.user.id for m in admins) == [61, 62]
    sandbox.client.push("hi", user_id=65)
    with pytest.raises(BadRequest, match="(?i)private chat"):
        await bot.get_chat_administrators(65)


async def test_commands_callback_and_service_methods(bot, sandbox):
    assert await bot.set_my_commands([("start", "Start"), ("ask", "Ask GPT")]) is True
    assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
        ("start", "Start"),
        ("ask", "Ask GPT"),
    ]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad Command", "x")])
    assert await bot.answer_callback_query("cb-1", text="done") is True
    assert await bot.delete_webhook(drop_pending_updates=False) is True
    assert await bot.close() is True
    assert await bot.log_out() is True


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_rate_limit_is_retry_after(bot, sandbox):
    sandbox.client.push("hi", user_id=66)
    sandbox.client.fail("sendMessage", error_code=429, retry_after=3, count=1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(66, "x")
    assert "Retry in 3 seconds" in str(caught.value)
    assert (await bot.send_message(66, "x")).text == "x"


async def test_bad_token_is_401_and_unknown_method_404(sandbox):
    async with Bot("123456789:" + "x" * 35, base_url=f"{sandbox.url}/bot") as good_shape:
        assert (await good_shape.get_me()).id == 123456789
    with pytest.raises(InvalidToken):
        await Bot("not-a-token", base_url=f"{sandbox.url}/bot").get_me()


def test_error_envelopes_are_telegrams(sandbox):
    response = requests.get(f"{sandbox.url}/botnot-a-token/getMe", timeout=10)
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    response = requests.post(f"{sandbox.url}/bot{SANDBOX_BOT_TOKEN}/noSuchMethod", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


def test_json_get_and_form_requests_are_all_understood(sandbox):
    sandbox.client.push("hi", user_id=67)
    base = f"{sandbox.url}/bot{SANDBOX_BOT_TOKEN}"
    as_json = requests.post(f"{base}/sendMessage", json={"chat_id": 67, "text": "json"}, timeout=10).json()
    as_form = requests.post(f"{base}/sendMessage", data={"chat_id": "67", "text": "123"}, timeout=10).json()
    as_get = requests.get(f"{base}/sendMessage", params={"chat_id": "67", "text": "get"}, timeout=10).json()
    assert [r["result"]["text"] for r in (as_json, as_form, as_get)] == ["json", "123", "get"]
    assert all(r["ok"] is True for r in (as_json, as_form, as_get))


async def test_ptb_application_polls_the_sandbox_and_replies(sandbox):
    """A whole PTB Application (long polling, handlers) against the sandbox."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(f"started {update.effective_user.first_name}")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text(update.message.text)

    app = Application.builder().token(SANDBOX_BOT_TOKEN).base_url(f"{sandbox.url}/bot").build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=5, drop_pending_updates=True)
        try:
            after = sandbox.client.last_sent_id()
            await asyncio.to_thread(sandbox.client.push, "/start", user_id=70, first_name="Ann")
            await asyncio.to_thread(sandbox.client.push, "echo me", chat_id=-100070, user_id=70)
            first = await asyncio.to_thread(sandbox.client.wait_for, 70, 1, 20, after)
            second = await asyncio.to_thread(sandbox.client.wait_for, -100070, 1, 20, after)
        finally:
            await app.updater.stop()
            await app.stop()
    assert first[0]["text"] == "started Ann"
    assert second[0]["text"] == "echo me"
    assert second[0]["params"]["reply_parameters"]["message_id"] > 0
