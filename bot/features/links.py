"""Link rewrite: x.com/twitter.com -> fxtwitter.com and friends (table in the global config)."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import Message, Update
from telegram.ext import Application, MessageHandler, filters

from bot.features import Context, chat_settings, config, reply
from bot.urls import extract_urls, rewrite_url


def rewritten(text: str | None, table: Mapping[str, str]) -> list[str]:
    out = []
    for url in extract_urls(text):
        new = rewrite_url(url, table)
        if new and new not in out:
            out.append(new)
    return out


class HasRewritableLink(filters.MessageFilter):
    def __init__(self, table: Mapping[str, str]) -> None:
        super().__init__(name="HasRewritableLink")
        self.table = dict(table)

    def filter(self, message: Message) -> bool:
        return bool(self.table) and bool(rewritten(message.text or message.caption, self.table))


async def rewrite(update: Update, context: Context) -> None:
    message = update.effective_message
    settings = await chat_settings(context, update.effective_chat.id)
    if not settings.link_rewrite_enabled:
        return
    urls = rewritten(message.text or message.caption, config(context).get("link_rewrites", {}))
    if urls:
        await reply(update, "🔗 " + "\n".join(urls))


def register(app: Application) -> None:
    table = app.bot_data["config"].get("link_rewrites", {})
    # Its own group: a rewritten link is useful next to a downloaded video or a GPT answer.
    app.add_handler(MessageHandler(~filters.COMMAND & HasRewritableLink(table), rewrite), group=1)
