"""Fake Telegram Bot API at /bot<token>/<method>, faithful enough for python-telegram-bot.

Requests may be GET query strings, JSON bodies, url-encoded or multipart forms (PTB sends
forms whose non-string values are JSON-encoded). Answers use Telegram's envelopes:
{"ok": true, "result": ...} or {"ok": false, "error_code": N, "description": "..."}.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from aiohttp import web
from telegram import ChatMemberAdministrator, ChatMemberOwner, ChatMemberRestricted

from bot.sandbox.state import STATE, SandboxState

TOKEN_RE = re.compile(r"^(\d{1,20}):[A-Za-z0-9_-]{35}$")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_POLL_TIMEOUT = 60

#: Form values kept as strings (everything else is JSON-decoded when it parses).
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "action",
        "description",
        "short_description",
        "name",
        "emoji",
        "inline_message_id",
        "business_connection_id",
        "message_effect_id",
        "language_code",
        "video",
        "photo",
        "document",
        "animation",
        "audio",
        "voice",
        "sticker",
        "thumbnail",
        "secret_token",
        "ip_address",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
MDV2_RESERVED = frozenset("#+-=|{}.!")
COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})


class ApiError(Exception):
    """A Telegram-style error answer."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def error_response(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


# ---------------------------------------------------------------- request parsing


def _decode(name: str, value: str) -> Any:
    if name in STRING_PARAMS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, dict | list | int | float | bool) else value


async def _read_upload(part: Any) -> dict[str, Any]:
    """Stream an uploaded file, keeping only its size, hash and first bytes."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    while chunk := await part.read_chunk(256 * 1024):
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        if len(head) < 16:
            head += chunk[: 16 - len(head)]
        digest.update(chunk)
    return {
        "file_name": part.filename,
        "mime_type": part.headers.get("Content-Type"),
        "size": size,
        "sha256": digest.hexdigest(),
        "is_mp4": head[4:8] == b"ftyp",
    }


async def read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {k: _decode(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.body_exists:
        return params
    ctype = request.content_type
    if ctype == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise bad_request("can't parse JSON body") from exc
        if not isinstance(body, dict):
            raise bad_request("JSON body must be an object")
        params.update(body)
    elif ctype == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if part.name is None:
                continue
            if part.filename is not None:
                params[part.name] = await _read_upload(part)
            else:
                params[part.name] = _decode(
                    part.name, (await part.read(decode=True)).decode("utf-8", "replace")
                )
    elif ctype == "application/x-www-form-urlencoded":
        form = await request.post()
        params.update({k: _decode(k, v) for k, v in form.items() if isinstance(v, str)})
    return params


# ---------------------------------------------------------------- parameter helpers


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"invalid {name} specified")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if isinstance(value, int):
        return value
    raise bad_request(f"invalid {name} specified")


def _chat(state: SandboxState, params: dict[str, Any]) -> dict[str, Any]:
    raw = params.get("chat_id")
    if raw is None or raw == "":
        raise bad_request("chat_id is empty")
    if isinstance(raw, str) and not re.fullmatch(r"-?\d+", raw):
        raise bad_request("chat not found")
    chat = state.chats.get(_int(params, "chat_id"))
    if chat is None:
        raise bad_request("chat not found")
    return chat


def _json_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise bad_request(f"can't parse {name} JSON object") from exc
    return value


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_html(text: str) -> str:
    """Validate Telegram HTML like the real API; return the plain text."""
    stack: list[str] = []
    pos = 0
    for match in re.finditer(r"<", text):
        start = match.start()
        if start < pos:
            continue
        tag = re.match(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>", text[start:])
        offset = len(text[:start].encode())
        if tag is None:
            raise bad_request(f'can\'t parse entities: Unsupported start tag "" at byte offset {offset}')
        closing, name = tag.group(1), tag.group(2).lower()
        if name not in HTML_TAGS:
            kind = "end" if closing else "start"
            raise bad_request(
                f'can\'t parse entities: Unsupported {kind} tag "{name}" at byte offset {offset}'
            )
        if closing:
            if not stack or stack[-1] != name:
                expected = f'"</{stack[-1]}>"' if stack else "nothing"
                raise bad_request(
                    f"can't parse entities: Unmatched end tag at byte offset {offset}, "
                    f'expected {expected}, found "</{name}>"'
                )
            stack.pop()
        else:
            stack.append(name)
        pos = start + tag.end()
    if stack:
        raise bad_request(
            f"can't parse entities: Can't find end tag corresponding to start tag \"{stack[-1]}\""
        )
    return html.unescape(re.sub(r"<[^<>]+>", "", text))


def check_markdown_v2(text: str) -> str:
    """Reject unescaped reserved characters like Telegram's MarkdownV2 parser; return plain text."""
    i, in_code, in_url = 0, False, False
    plain: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            plain.append(text[i + 1])
            i += 2
            continue
        if ch == "`":
            in_code = not in_code
        elif in_code:
            plain.append(ch)
        elif in_url:
            in_url = ch != ")"
        elif ch == "(" and i > 0 and text[i - 1] == "]":
            in_url = True
        elif ch == ">" and (i == 0 or text[i - 1] == "\n"):
            pass
        elif ch in MDV2_RESERVED and not (
            ch == "|" and (text[i + 1 : i + 2] == "|" or text[i - 1 : i] == "|")
        ):
            raise bad_request(
                f"can't parse entities: Character '{ch}' is reserved "
                "and must be escaped with the preceding '\\'"
            )
        elif ch not in "*_~[]()|":
            plain.append(ch)
        i += 1
    return "".join(plain)


def render_text(text: str, parse_mode: Any) -> str:
    mode = parse_mode.lower() if isinstance(parse_mode, str) else None
    if mode == "html":
        return check_html(text)
    if mode == "markdownv2":
        return check_markdown_v2(text)
    if mode is not None and mode != "markdown":
        raise bad_request("unsupported parse_mode")
    return text


# ---------------------------------------------------------------- message construction


def _reply_to(state: SandboxState, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
    reply = _json_param(params, "reply_parameters")
    allow = bool(params.get("allow_sending_without_reply"))
    if isinstance(reply, dict):
        target = reply.get("message_id")
        allow = allow or bool(reply.get("allow_sending_without_reply"))
    else:
        target = params.get("reply_to_message_id")
    if target in (None, ""):
        return None
    try:
        key = (chat_id, int(target))
    except (TypeError, ValueError) as exc:
        raise bad_request("invalid reply_parameters specified") from exc
    original = state.messages.get(key)
    if original is None:
        if allow:
            return None
        raise bad_request("message to be replied not found")
    return {k: v for k, v in original.items() if k != "reply_to_message"}


def new_bot_message(
    state: SandboxState, bot_id: int, chat: dict[str, Any], params: dict[str, Any], content: dict[str, Any]
) -> dict[str, Any]:
    reply = _reply_to(state, chat["id"], params)
    message: dict[str, Any] = {
        "message_id": state.next_message_id(chat["id"]),
        "from": state.bot_user(bot_id),
        "chat": chat,
        "date": int(time.time()),
        **content,
    }
    if reply is not None:
        message["reply_to_message"] = reply
    markup = _json_param(params, "reply_markup")
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    state.messages[(chat["id"], message["message_id"])] = message
    return message


def member_object(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember JSON object with every field PTB requires for that status."""
    data: dict[str, Any] = {"status": status, "user": user}
    cls = {
        "creator": ChatMemberOwner,
        "administrator": ChatMemberAdministrator,
        "restricted": ChatMemberRestricted,
    }.get(status)
    if status == "kicked":
        data["until_date"] = 0
    if cls is not None:
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if "bool" in str(param.annotation) and name != "is_member":
                data[name] = status == "administrator" and name != "can_be_edited"
        if status == "restricted":
            data["until_date"] = 0
            data["is_member"] = True
    return data


def user_object(state: SandboxState, user_id: int) -> dict[str, Any]:
    return state.users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}


# ---------------------------------------------------------------- methods

Handler = Callable[[SandboxState, int, dict[str, Any]], Awaitable[Any]]
METHODS: dict[str, tuple[str, Handler]] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        METHODS[name.lower()] = (name, func)
        return func

    return register


@method("getMe")
async def get_me(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    return {
        **state.bot_user(bot_id),
        "can_join_groups": True,
        "can_read_all_group_messages": True,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("deleteWebhook")
async def delete_webhook(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    if params.get("drop_pending_updates") in (True, "true", "True", 1):
        state.pending.clear()
        if state.store is not None:
            state.store.kept_last(state)
    return True


@method("getWebhookInfo")
async def get_webhook_info(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    return {"url": "", "has_custom_certificate": False, "pending_update_count": len(state.pending)}


@method("getUpdates")
async def get_updates(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    offset = _int(params, "offset", 0) or 0
    limit = min(max(_int(params, "limit", 100) or 100, 1), 100)
    timeout = min(max(_int(params, "timeout", 0) or 0, 0), MAX_POLL_TIMEOUT)
    state.get_updates_calls += 1
    state.last_get_updates_at = time.time()
    if len(state.poll_generation) > 1000:  # bounded: one entry per bot id seen
        state.poll_generation.clear()
    generation = state.poll_generation.get(bot_id, 0) + 1
    state.poll_generation[bot_id] = generation
    await state.notify()  # an older long poll of this bot now ends with 409, like Telegram
    if offset > 0:
        dropped = 0
        while state.pending and state.pending[0]["update_id"] < offset:
            state.pending.popleft()
            dropped += 1
        if dropped:
            state.confirmations.append((time.time(), offset))
            if state.store is not None:
                state.store.confirmed(offset)
    elif offset < 0:
        while len(state.pending) > -offset:
            state.pending.popleft()
        if state.store is not None:
            state.store.kept_last(state)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    cond = state.condition()
    async with cond:
        while True:
            if state.poll_generation.get(bot_id) != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            if state.pending:
                return list(islice(state.pending, limit))
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            try:
                await asyncio.wait_for(cond.wait(), remaining)
            except TimeoutError:
                pass


@method("sendMessage")
async def send_message(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    chat = _chat(state, params)
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("message text is empty")
    plain = render_text(text, params.get("parse_mode"))
    if not plain.strip():
        raise bad_request("message text is empty")
    if len(plain) > MAX_TEXT:
        raise bad_request("message is too long")
    message = new_bot_message(state, bot_id, chat, params, {"text": plain})
    state.record_sent("sendMessage", chat["id"], params, message["message_id"])
    return message


def _media_object(kind: str, value: Any, sent_id: int) -> Any:
    meta = value if isinstance(value, dict) else {}
    ids = {"file_id": f"sandbox-{kind}-{sent_id}", "file_unique_id": f"sbx{kind[:2]}{sent_id}"}
    size = {"file_size": meta["size"]} if "size" in meta else {}
    if kind == "photo":
        return [{**ids, "width": 16, "height": 16, **size}]
    if kind in ("video", "animation"):
        return {**ids, "width": 16, "height": 16, "duration": 1, "mime_type": "video/mp4", **size}
    if kind in ("audio", "voice"):
        return {**ids, "duration": 1, **size}
    return {**ids, "file_name": meta.get("file_name") or "file", **size}


def _media_method(name: str, kind: str) -> None:
    async def send_media(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
        chat = _chat(state, params)
        value = params.get(kind)
        if value in (None, "") or not isinstance(value, str | dict):
            raise bad_request(f"there is no {kind} in the request")
        content: dict[str, Any] = {kind: _media_object(kind, value, state.last_sent_id + 1)}
        caption = params.get("caption")
        if isinstance(caption, str) and caption:
            plain = render_text(caption, params.get("parse_mode"))
            if len(plain) > MAX_CAPTION:
                raise bad_request("message caption is too long")
            content["caption"] = plain
        message = new_bot_message(state, bot_id, chat, params, content)
        state.record_sent(name, chat["id"], params, message["message_id"])
        return message

    method(name)(send_media)


for _name, _kind in (
    ("sendVideo", "video"),
    ("sendPhoto", "photo"),
    ("sendDocument", "document"),
    ("sendAnimation", "animation"),
    ("sendAudio", "audio"),
    ("sendVoice", "voice"),
):
    _media_method(_name, _kind)


@method("sendChatAction")
async def send_chat_action(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    chat = _chat(state, params)
    if params.get("action") not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    state.record_sent("sendChatAction", chat["id"], params)
    return True


def _own_message(state: SandboxState, params: dict[str, Any], what: str) -> dict[str, Any]:
    chat = _chat(state, params)
    message_id = _int(params, "message_id")
    if message_id is None:
        raise bad_request("message identifier is not specified")
    message = state.messages.get((chat["id"], message_id))
    if message is None:
        raise bad_request(f"message to {what} not found")
    return message


@method("editMessageText")
async def edit_message_text(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    message = _own_message(state, params, "edit")
    if not message["from"].get("is_bot"):
        raise bad_request("message can't be edited")
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request("message text is empty")
    plain = render_text(text, params.get("parse_mode"))
    if len(plain) > MAX_TEXT:
        raise bad_request("message is too long")
    markup = _json_param(params, "reply_markup")
    if plain == message.get("text") and markup == message.get("reply_markup"):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    message["text"] = plain
    message["edit_date"] = int(time.time())
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        message["reply_markup"] = markup
    state.record_sent("editMessageText", message["chat"]["id"], params, message["message_id"])
    return message


@method("deleteMessage")
async def delete_message(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    message = _own_message(state, params, "delete")
    key = (message["chat"]["id"], message["message_id"])
    del state.messages[key]
    state.record_sent("deleteMessage", key[0], params, key[1])
    return True


@method("answerCallbackQuery")
async def answer_callback_query(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    if not params.get("callback_query_id"):
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    state.record_sent("answerCallbackQuery", None, params)
    return True


@method("getChatMember")
async def get_chat_member(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    chat = _chat(state, params)
    user_id = _int(params, "user_id")
    if user_id is None:
        raise bad_request(
            "user_id is empty" if params.get("user_id") in (None, "") else "invalid user_id specified"
        )
    status = state.members.get((chat["id"], user_id), "member")
    user = state.bot_user(bot_id) if user_id == bot_id else user_object(state, user_id)
    return member_object(status, user)


@method("getChatAdministrators")
async def get_chat_administrators(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    chat = _chat(state, params)
    if chat["type"] == "private":
        raise bad_request("there are no administrators in the private chat")
    return [
        member_object(status, user_object(state, user_id))
        for (chat_id, user_id), status in state.members.items()
        if chat_id == chat["id"] and status in ("creator", "administrator")
    ]


@method("setMyCommands")
async def set_my_commands(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    commands = _json_param(params, "commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("commands must be a list of at most 100 BotCommand objects")
    for item in commands:
        if not isinstance(item, dict) or not COMMAND_RE.match(str(item.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        if not isinstance(item.get("description"), str) or not 1 <= len(item["description"]) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    state.commands = [{"command": c["command"], "description": c["description"]} for c in commands]
    state.record_sent("setMyCommands", None, params)
    return True


@method("getMyCommands")
async def get_my_commands(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    return list(state.commands)


@method("deleteMyCommands")
async def delete_my_commands(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    state.commands = []
    state.record_sent("deleteMyCommands", None, params)
    return True


@method("close")
async def close(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    return True


@method("logOut")
async def log_out(state: SandboxState, bot_id: int, params: dict[str, Any]) -> Any:
    return True


# ---------------------------------------------------------------- the route


async def handle(request: web.Request) -> web.Response:
    state: SandboxState = request.app[STATE]
    match = TOKEN_RE.match(request.match_info["token"])
    if match is None:
        return error_response(401, "Unauthorized")
    entry = METHODS.get(request.match_info["method"].lower())
    if entry is None:
        return error_response(404, "Not Found")
    name, func = entry
    state.calls[name] = state.calls.get(name, 0) + 1
    try:
        params = await read_params(request)
        failure = state.failures.get(name)
        if failure is not None:
            failure.count -= 1
            if failure.count <= 0:
                del state.failures[name]
            extra = {"retry_after": failure.retry_after} if failure.retry_after else None
            raise ApiError(failure.error_code, failure.description, extra)
        result = await func(state, int(match.group(1)), params)
    except ApiError as exc:
        return error_response(exc.code, exc.description, exc.parameters)
    if name not in ("getUpdates", "getMe", "getWebhookInfo", "getMyCommands"):
        await state.notify()
    return web.json_response({"ok": True, "result": result})
