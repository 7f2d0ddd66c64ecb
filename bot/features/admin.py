"""/config (show for everyone; set/reset for chat admins) and /errors (admins)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

from telegram import ChatMember, Update
from telegram.constants import ChatType
from telegram.ext import Application, CommandHandler

from bot.errors import BotError, user_message
from bot.features import Context, command_args, config, db, env, reply
from bot.logs import read_records
from bot.settings import ChatSettings, allowed_models, setting_names, validate_setting

log = logging.getLogger(__name__)
USAGE = ("Usage: /config show | /config set <key> <value> | /config reset <key>\n"
         "Keys: " + ", ".join(setting_names()))


def is_bot_admin(update: Update, context: Context) -> bool:
    user = update.effective_user
    return user is not None and user.id in env(context).admin_ids


async def is_chat_admin(update: Update, context: Context) -> bool:
    """BOT_ADMIN_IDS, the owner of a private chat, or a Telegram admin of the group."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return False
    if is_bot_admin(update, context):
        return True
    if chat.type == ChatType.PRIVATE:
        return chat.id == user.id
    member = await context.bot.get_chat_member(chat.id, user.id)
    return member.status in (ChatMember.OWNER, ChatMember.ADMINISTRATOR)


async def _refuse(update: Update, what: str) -> None:
    user, chat = update.effective_user, update.effective_chat
    log.warning("permission denied: %s by user %s in chat %s", what, user.id if user else None, chat.id,
                extra={"code": "APP003", "chat_id": chat.id, "user_id": user.id if user else None})
    await reply(update, f"⛔ Only chat admins can {what}. {user_message('APP003')}")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value).lower()


async def config_command(update: Update, context: Context) -> None:
    args = command_args(context)
    action = args[0].lower() if args else "show"
    chat = update.effective_chat
    if action == "show" and len(args) <= 1:
        layer = await db(context).chat_config(chat.id)
        current = ChatSettings.from_layers(config(context), layer)
        lines = ["⚙️ Settings of this chat (* = set for this chat):"]
        for key, value in current.as_dict().items():
            lines.append(f"{'*' if key in layer else ' '} {key} = {_show(value)[:300]}")
        await reply(update, "\n".join(lines))
        return
    well_formed = (action == "set" and len(args) >= 3) or (action == "reset" and len(args) == 2)
    if not well_formed:
        await reply(update, USAGE)
        return
    if not await is_chat_admin(update, context):
        await _refuse(update, "change settings")
        return
    key = args[1]
    if action == "reset":
        if key not in setting_names():
            await reply(update, f"❌ unknown setting {key[:40]!r}. {USAGE}")
            return
        await db(context).set_chat_config(chat.id, chat.type, key, None)
        await reply(update, f"✅ {key} is back to the global default.")
        return
    raw = " ".join(args[2:])
    try:
        value = validate_setting(key[:64], raw, allowed_models(config(context)))
    except ValueError as exc:
        await reply(update, f"❌ {exc}. Nothing was changed.")
        return
    await db(context).set_chat_config(chat.id, chat.type, key, value)
    log.info("chat setting changed: %s", key, extra={"chat_id": chat.id, "user_id": update.effective_user.id})
    await reply(update, f"✅ {key} = {_show(value)}")


async def errors_command(update: Update, context: Context) -> None:
    """Bot admins see all chats; chat admins see their chat. From the DB, or error.log when it is down."""
    args = command_args(context)
    if len(args) > 1 or (args and not (args[0].isascii() and args[0].isdigit() and 1 <= int(args[0]) <= 720)):
        await reply(update, "Usage: /errors [hours] — hours between 1 and 720 (default 24).")
        return
    hours = int(args[0]) if args else 24
    everywhere = is_bot_admin(update, context)
    if not everywhere and not await is_chat_admin(update, context):
        await _refuse(update, "see error counts")
        return
    chat_id = None if everywhere else update.effective_chat.id
    since = datetime.now(UTC) - timedelta(hours=hours)
    try:
        counts = await db(context).error_counts(since, chat_id)
        source = "database"
    except BotError:
        counts = Counter(r["code"] for r in read_records(env(context).log_dir / "error.log", since)
                         if r.get("code") and (chat_id is None or r.get("chat_id") == chat_id))
        source = "error.log (database unavailable)"
    scope = "all chats" if everywhere else "this chat"
    if not counts:
        await reply(update, f"✅ No errors in the last {hours} h ({scope}, from {source}).")
        return
    lines = [f"🧾 Errors in the last {hours} h ({scope}, from {source}):"]
    lines += [f"{code}: {n}" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    await reply(update, "\n".join(lines))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("config", config_command))
    app.add_handler(CommandHandler("errors", errors_command))
