"""bot.features.chat_settings: the typed settings are built once per chat and rebuilt when a source changes.

Against a real PostgreSQL (the chat layer comes from Database.chat_config); the context is the only
stand-in: chat_settings reads nothing from it but bot_data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from bot.db import Database
from bot.features import chat_settings
from bot.settings import ChatSettings, default_global_config

CHAT, OTHER = -100_321, -100_654


@pytest_asyncio.fixture(loop_scope="function")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await db.open()
    assert db.up
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The chat layers ChatSettings.from_layers was called with, in order."""
    calls: list[Any] = []
    real = ChatSettings.from_layers

    def counting(cls: type[ChatSettings], global_cfg: Any, chat_cfg: Any) -> ChatSettings:
        calls.append(chat_cfg)
        return real(global_cfg, chat_cfg)

    monkeypatch.setattr(ChatSettings, "from_layers", classmethod(counting))
    return calls


async def test_built_once_per_chat_and_rebuilt_after_a_change(database: Database, builds: list[Any]) -> None:
    context = SimpleNamespace(bot_data={"db": database, "config": default_global_config()})
    first = await chat_settings(context, CHAT)
    assert first.gpt_temperature == 0.7
    for _ in range(5):
        assert await chat_settings(context, CHAT) is first
    other = await chat_settings(context, OTHER)
    assert len(builds) == 2

    await database.set_chat_config(CHAT, "supergroup", "gpt_temperature", 1.2)  # /config set
    changed = await chat_settings(context, CHAT)
    assert changed.gpt_temperature == 1.2 and len(builds) == 3
    assert await chat_settings(context, CHAT) is changed
    assert await chat_settings(context, OTHER) is other  # another chat's change leaves this one alone

    await database.set_chat_config(CHAT, "supergroup", "gpt_temperature", None)  # /config reset
    assert (await chat_settings(context, CHAT)).gpt_temperature == 0.7
    assert len(builds) == 4


async def test_rebuilt_when_the_global_config_is_replaced(database: Database, builds: list[Any]) -> None:
    context = SimpleNamespace(bot_data={"db": database, "config": default_global_config()})
    before = await chat_settings(context, CHAT)
    replaced = default_global_config()
    replaced["chat_defaults"]["gpt_history_messages"] = 3
    context.bot_data["config"] = replaced
    after = await chat_settings(context, CHAT)
    assert before.gpt_history_messages == 10 and after.gpt_history_messages == 3
    assert await chat_settings(context, CHAT) is after and len(builds) == 2


async def test_a_load_that_overlaps_a_change_is_not_cached(database: Database,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat_config load that read the row before /config set, and finishes after it, must not be kept.

    The load is held after its SELECT (before it hands its connection back) until the change is done.
    """
    read, release = asyncio.Event(), asyncio.Event()
    real_connection = database.connection

    @asynccontextmanager
    async def holding_the_first(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        first = not read.is_set()
        async with real_connection(*args, **kwargs) as conn:
            yield conn
            if first:
                read.set()
                await release.wait()

    monkeypatch.setattr(database, "connection", holding_the_first)
    loading = asyncio.ensure_future(database.chat_config(CHAT))
    await asyncio.wait_for(read.wait(), 30)
    await database.set_chat_config(CHAT, "supergroup", "video_enabled", False)
    release.set()
    assert await loading == {}  # what it read before the change
    assert await database.chat_config(CHAT) == {"video_enabled": False}
    context = SimpleNamespace(bot_data={"db": database, "config": default_global_config()})
    assert (await chat_settings(context, CHAT)).video_enabled is False
