"""Control API under /control/: push updates, read what the bot sent, set up chats.

Every input is validated before anything changes; bad input answers 400 {"error": "..."}.
"""

from __future__ import annotations

import asyncio
import re
import time
from itertools import islice
from typing import Any

from aiohttp import web
from telegram import Update

from bot.sandbox.state import MAX_PENDING_UPDATES, STATE, Failure, SandboxState
from bot.sandbox.telegram_api import MEMBER_STATUSES, METHODS, utf16_len

MAX_PUSH_TEXT = 100_000
MAX_BATCH = 10_000
MAX_WAIT = 120.0
PUSH_FIELDS = frozenset(
    {
        "text",
        "chat_id",
        "user_id",
        "chat_type",
        "username",
        "first_name",
        "last_name",
        "title",
        "reply_to_message_id",
        "entities",
    }
)
CHAT_TYPES = ("private", "group", "supergroup")
FAIL_CODES = frozenset({400, 401, 403, 404, 409, 429, 500, 502})

ENTITY_PATTERNS = (
    ("bot_command", re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
    (
        "url",
        re.compile(
            r"(?<![\w@/.])(?:https?://[^\s<>\"]+|www\.[^\s<>\"]+|"
            r"(?:[a-z0-9-]+\.)+(?:com|org|net|io|be|tv|me|ly|ua|co|uk|de|ru|app|dev|gg)(?:/[^\s<>\"]*)?)",
            re.IGNORECASE,
        ),
    ),
)


class ControlError(Exception):
    """Bad control-API input: answered as 400 {"error": message}."""


def _error(message: str, status: int = 400, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def detect_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram's servers would attach (offsets and lengths in UTF-16 units)."""
    found: list[tuple[int, int, str]] = []
    for kind, pattern in ENTITY_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if kind == "url":
                end = start + len(match.group().rstrip(".,;:!?)'\""))
            if any(s < end and start < e for s, e, _ in found):
                continue
            found.append((start, end, kind))
    found.sort()
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        for start, end, kind in found
    ]


def _int_field(spec: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = spec.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"{name} must be an integer, got {value!r}")
    if abs(value) >= 2**52:
        raise ControlError(f"{name} is out of range")
    return value


def _str_field(spec: dict[str, Any], name: str, max_len: int = 256) -> str | None:
    value = spec.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ControlError(f"{name} must be a non-empty string of at most {max_len} characters")
    return value


def check_message_spec(spec: Any) -> dict[str, Any]:
    """Normalise one {"text", "chat_id", ...} push; raise ControlError on bad input."""
    if not isinstance(spec, dict):
        raise ControlError("each update must be a JSON object")
    unknown = sorted(set(spec) - PUSH_FIELDS)
    if unknown:
        raise ControlError(f"unknown field(s) {unknown}; allowed: {sorted(PUSH_FIELDS)} or {{'raw': update}}")
    text = spec.get("text")
    if not isinstance(text, str) or not text or len(text) > MAX_PUSH_TEXT:
        raise ControlError(f"text must be a non-empty string of at most {MAX_PUSH_TEXT} characters")
    user_id = _int_field(spec, "user_id", 1001)
    if user_id is None or user_id <= 0:
        raise ControlError("user_id must be a positive integer")
    chat_id = _int_field(spec, "chat_id")
    chat_type = spec.get("chat_type") or ("private" if chat_id is None or chat_id > 0 else "supergroup")
    if chat_type not in CHAT_TYPES:
        raise ControlError(f"chat_type must be one of {list(CHAT_TYPES)}")
    if chat_id is None:
        if chat_type != "private":
            raise ControlError("chat_id is required for group and supergroup chats")
        chat_id = user_id
    if chat_type == "private" and chat_id != user_id:
        raise ControlError("a private chat's chat_id must equal user_id (as in Telegram)")
    if chat_type != "private" and chat_id >= 0:
        raise ControlError("group and supergroup chat_id must be negative (as in Telegram)")
    entities = spec.get("entities")
    if entities is not None:
        if not isinstance(entities, list):
            raise ControlError("entities must be a list of MessageEntity objects")
        total = utf16_len(text)
        for entity in entities:
            if (
                not isinstance(entity, dict)
                or not isinstance(entity.get("type"), str)
                or not isinstance(entity.get("offset"), int)
                or not isinstance(entity.get("length"), int)
                or entity["offset"] < 0
                or entity["length"] <= 0
                or entity["offset"] + entity["length"] > total
            ):
                raise ControlError(
                    f"bad entity {entity!r}: needs type, offset >= 0, length > 0 within the text"
                )
    return {
        "text": text,
        "user_id": user_id,
        "chat_id": chat_id,
        "chat_type": chat_type,
        "username": _str_field(spec, "username", 32),
        "first_name": _str_field(spec, "first_name") or f"User {user_id}",
        "last_name": _str_field(spec, "last_name"),
        "title": _str_field(spec, "title"),
        "reply_to_message_id": _int_field(spec, "reply_to_message_id"),
        "entities": entities,
    }


def check_raw(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ControlError("raw must be a JSON object (an Update without update_id)")
    if "update_id" in raw:
        raise ControlError("raw must not carry update_id: the sandbox numbers updates")
    try:
        Update.de_json({**raw, "update_id": 1}, None)
    except Exception as exc:  # PTB raises TypeError/KeyError/ValueError for malformed objects
        raise ControlError(f"raw is not a valid Telegram Update: {type(exc).__name__}: {exc}") from exc
    return raw


def _check_push(item: Any, state: SandboxState) -> dict[str, Any]:
    if isinstance(item, dict) and "raw" in item:
        if len(item) != 1:
            raise ControlError("a raw push has only the key 'raw'")
        return {"raw": check_raw(item["raw"])}
    spec = check_message_spec(item)
    reply = spec["reply_to_message_id"]
    if reply is not None and (spec["chat_id"], reply) not in state.messages:
        raise ControlError(f"reply_to_message_id {reply} is not a known message in chat {spec['chat_id']}")
    return spec


def _remember_message(state: SandboxState, message: Any) -> None:
    if not isinstance(message, dict):
        return
    chat, user = message.get("chat"), message.get("from")
    if isinstance(chat, dict):
        state.chats[chat["id"]] = chat
        mid = message.get("message_id")
        if isinstance(mid, int):
            state.messages[(chat["id"], mid)] = message
            state.message_ids[chat["id"]] = max(state.message_ids.get(chat["id"], 0), mid)
    if isinstance(user, dict):
        state.users[user["id"]] = user


def _apply_push(state: SandboxState, spec: dict[str, Any]) -> dict[str, Any]:
    state.last_update_id += 1
    now = time.time()
    if "raw" in spec:
        update = {**spec["raw"], "update_id": state.last_update_id}
        message = update.get("message") or update.get("edited_message") or update.get("channel_post")
        if message is None and isinstance(update.get("callback_query"), dict):
            message = update["callback_query"].get("message")
            user = update["callback_query"].get("from")
            if isinstance(user, dict):
                state.users[user["id"]] = user
        _remember_message(state, message)
        mid = message.get("message_id") if isinstance(message, dict) else None
    else:
        user = {"id": spec["user_id"], "is_bot": False, "first_name": spec["first_name"]}
        if spec["last_name"]:
            user["last_name"] = spec["last_name"]
        if spec["username"]:
            user["username"] = spec["username"]
        if spec["chat_type"] == "private":
            chat = {k: v for k, v in user.items() if k != "is_bot"} | {"type": "private"}
        else:
            title = spec["title"] or f"Sandbox {spec['chat_type']} {abs(spec['chat_id'])}"
            chat = {"id": spec["chat_id"], "type": spec["chat_type"], "title": title}
        chat = {**chat, "id": spec["chat_id"]}
        mid = state.next_message_id(spec["chat_id"])
        message = {"message_id": mid, "from": user, "chat": chat, "date": int(now), "text": spec["text"]}
        entities = spec["entities"] if spec["entities"] is not None else detect_entities(spec["text"])
        if entities:
            message["entities"] = entities
        if spec["reply_to_message_id"] is not None:
            original = state.messages[(spec["chat_id"], spec["reply_to_message_id"])]
            message["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
        _remember_message(state, message)
        update = {"update_id": state.last_update_id, "message": message}
    state.pending.append(update)
    return {"update_id": update["update_id"], "message_id": mid, "ts": now}


async def push_updates(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _error("body must be JSON: an update spec object or a list of them")
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > MAX_BATCH:
        return _error(f"push between 1 and {MAX_BATCH} updates per request")
    if len(state.pending) + len(items) > MAX_PENDING_UPDATES:
        return _error(
            f"update queue full ({len(state.pending)} pending, cap {MAX_PENDING_UPDATES}); "
            "is the bot polling?",
            status=429,
        )
    try:
        specs = [_check_push(item, state) for item in items]
    except ControlError as exc:
        return _error(str(exc))
    results = [_apply_push(state, spec) for spec in specs]
    if state.store is not None:
        state.store.pushed(state, list(islice(reversed(state.pending), len(results)))[::-1])
    await state.notify()
    return web.json_response(results if isinstance(body, list) else results[0])


def _query_int(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ControlError(f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise ControlError(f"{name} must be between {low} and {high}")
    return value


def _query_methods(request: web.Request) -> set[str] | None:
    raw = request.query.get("method")
    if not raw:
        return None
    if raw == "all":
        return set()
    names = {m.strip() for m in raw.split(",") if m.strip()}
    if not all(re.fullmatch(r"[A-Za-z]{2,40}", n) for n in names):
        raise ControlError("method must be 'all' or a comma-separated list of Bot API method names")
    return names


def _sent_query(request: web.Request) -> tuple[int | None, int, set[str] | None]:
    chat_id = _query_int(request, "chat_id", None, -(2**52), 2**52)
    after = _query_int(request, "after", 0, 0, 2**62) or 0
    return chat_id, after, _query_methods(request)


async def get_sent(request: web.Request) -> web.Response:
    try:
        chat_id, after, methods = _sent_query(request)
    except ControlError as exc:
        return _error(str(exc))
    return web.json_response(request.app[STATE].select_sent(chat_id, after, methods))


async def wait_sent(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        chat_id, after, methods = _sent_query(request)
        count = _query_int(request, "count", 1, 1, 10_000) or 1
        raw_timeout = request.query.get("timeout", "10")
        timeout = float(raw_timeout)
        if not 0 <= timeout <= MAX_WAIT:
            raise ControlError(f"timeout must be between 0 and {MAX_WAIT} seconds")
    except ValueError:
        return _error(f"timeout must be a number, got {raw_timeout!r}")
    except ControlError as exc:
        return _error(str(exc))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    cond = state.condition()
    async with cond:
        while True:
            items = state.select_sent(chat_id, after, methods)
            remaining = deadline - loop.time()
            if len(items) >= count:
                return web.json_response(items)
            if remaining <= 0:
                return _error(
                    f"timed out after {timeout:g}s waiting for {count} sent item(s) in chat {chat_id} "
                    f"after id {after}; got {len(items)}",
                    status=408,
                    items=items,
                )
            try:
                await asyncio.wait_for(cond.wait(), remaining)
            except TimeoutError:
                pass


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ControlError("body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise ControlError("body must be a JSON object")
    return body


async def set_chat_member(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await _json_object(request)
        unknown = sorted(set(body) - {"chat_id", "user_id", "status"})
        if unknown:
            raise ControlError(f"unknown field(s) {unknown}")
        chat_id, user_id = _int_field(body, "chat_id"), _int_field(body, "user_id")
        if chat_id is None or user_id is None or user_id <= 0:
            raise ControlError("chat_id (integer) and user_id (positive integer) are required")
        status = body.get("status")
        if status not in MEMBER_STATUSES:
            raise ControlError(f"status must be one of {sorted(MEMBER_STATUSES)}")
    except ControlError as exc:
        return _error(str(exc))
    if chat_id not in state.chats:
        kind = "private" if chat_id > 0 else "supergroup"
        state.chats[chat_id] = (
            {"id": chat_id, "type": kind, "first_name": f"User {chat_id}"}
            if kind == "private"
            else {"id": chat_id, "type": kind, "title": f"Sandbox supergroup {abs(chat_id)}"}
        )
    state.members[(chat_id, user_id)] = status
    return web.json_response({"chat_id": chat_id, "user_id": user_id, "status": status})


async def inject_failure(request: web.Request) -> web.Response:
    """Make the next `count` calls of a Bot API method fail with a Telegram error."""
    state = request.app[STATE]
    try:
        body = await _json_object(request)
        unknown = sorted(set(body) - {"method", "error_code", "description", "count", "retry_after"})
        if unknown:
            raise ControlError(f"unknown field(s) {unknown}")
        entry = METHODS.get(str(body.get("method", "")).lower())
        if entry is None:
            raise ControlError(
                f"method must be a Bot API method the sandbox serves, got {body.get('method')!r}"
            )
        code = _int_field(body, "error_code", 500)
        if code not in FAIL_CODES:
            raise ControlError(f"error_code must be one of {sorted(FAIL_CODES)}")
        count = _int_field(body, "count", 1)
        if count is None or not 1 <= count <= 1000:
            raise ControlError("count must be between 1 and 1000")
        retry_after = _int_field(body, "retry_after")
        if retry_after is not None and not 1 <= retry_after <= 60:
            raise ControlError("retry_after must be between 1 and 60")
        default = {
            429: f"Too Many Requests: retry after {retry_after or 1}",
            403: "Forbidden: bot was blocked by the user",
            409: "Conflict: terminated by other getUpdates request; "
                 "make sure that only one bot instance is running",  # a second poller on the token
            400: "Bad Request: injected failure",
            500: "Internal Server Error",
        }.get(code, f"Error {code}")
        description = _str_field(body, "description", 512) or default
    except ControlError as exc:
        return _error(str(exc))
    if code == 429 and retry_after is None:
        retry_after = 1
    state.failures[entry[0]] = Failure(code, description, count, retry_after)
    return web.json_response({"method": entry[0], "error_code": code, "count": count})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.reset()
    await state.notify()
    return web.json_response(
        {"ok": True, "last_update_id": state.last_update_id, "last_sent_id": state.last_sent_id}
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].health())


async def pending_updates(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE].pending))


async def confirmations(request: web.Request) -> web.Response:
    """[[time, offset], ...] of the getUpdates calls that confirmed updates, since ?since= (unix time)."""
    raw = request.query.get("since", "0")
    try:
        since = float(raw)
    except ValueError:
        return _error(f"since must be a unix time in seconds, got {raw!r}")
    return web.json_response([list(item) for item in request.app[STATE].confirmations if item[0] >= since])


async def openai_requests(request: web.Request) -> web.Response:
    """Chat-completion requests the fake OpenAI received (for asserting prompts/history/model)."""
    return web.json_response(list(request.app[STATE].openai_requests))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/control/updates", push_updates)
    app.router.add_get("/control/updates", pending_updates)
    app.router.add_get("/control/sent", get_sent)
    app.router.add_get("/control/wait", wait_sent)
    app.router.add_post("/control/chat_member", set_chat_member)
    app.router.add_post("/control/fail", inject_failure)
    app.router.add_post("/control/reset", reset)
    app.router.add_get("/control/health", health)
    app.router.add_get("/control/openai", openai_requests)
    app.router.add_get("/control/confirmations", confirmations)
