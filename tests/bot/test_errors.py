"""Exceptions map to the runbook's codes; users always read a message that carries the code."""

from __future__ import annotations

import errno
from datetime import timedelta

import httpx
import httpx2
import openai
import psycopg
import psycopg_pool
import pytest
import telegram.error as tg

from bot.errors import CODES, USER_MESSAGES, BotError, classify, user_message

RUNBOOK_CODES = {"DB001", "DB002", "DB003", "DB004", "API001", "API002", "API003", "API004",
                 "APP001", "APP002", "APP003", "APP004"}


def openai_status(status: int, message: str = "error", body: object = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/openai/v1/chat/completions")
    response = httpx2.Response(status, request=request)
    cls = {401: openai.AuthenticationError, 403: openai.PermissionDeniedError, 429: openai.RateLimitError,
           500: openai.InternalServerError}.get(status, openai.APIStatusError)
    return cls(message, response=response, body=body)


def http_status(status: int, text: str = "") -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1/weather/data/2.5/weather")
    return httpx.HTTPStatusError("bad", request=request, response=httpx.Response(status, text=text,
                                                                                  request=request))


@pytest.mark.parametrize(("exc", "code"), [
    (BotError("DB003"), "DB003"),
    (psycopg.OperationalError("connection refused"), "DB001"),
    (psycopg_pool.PoolTimeout("couldn't get a connection after 3.00 sec"), "DB001"),
    (psycopg_pool.TooManyRequests("too many"), "DB003"),
    (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), "DB002"),
    (psycopg.errors.DeadlockDetected("deadlock detected"), "DB004"),
    (psycopg.errors.TooManyConnections("too many clients"), "DB003"),
    (openai_status(429, "Rate limit reached"), "API001"),
    (openai_status(429, "You exceeded your current quota", {"code": "insufficient_quota"}), "API004"),
    (openai_status(401), "API002"),
    (openai_status(403), "API002"),
    (openai_status(500), "API003"),
    (openai_status(402), "API004"),
    (openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1/")), "API003"),
    (openai.APITimeoutError(httpx2.Request("POST", "http://127.0.0.1/")), "API003"),
    (http_status(401), "API002"), (http_status(429), "API001"), (http_status(503), "API003"),
    (httpx.ConnectError("refused"), "API003"), (httpx.ReadTimeout("slow"), "API003"),
    (tg.RetryAfter(timedelta(seconds=5)), "API001"), (tg.InvalidToken(), "API002"), (tg.TimedOut(), "API003"),
    (tg.NetworkError("reset"), "API003"), (tg.Forbidden("bot was blocked by the user"), "APP003"),
    (tg.BadRequest("message text is empty"), "APP000"),
    (tg.BadRequest("Chat not found"), "APP003"),
    (tg.BadRequest("Bad Request: not enough rights to send text messages to the chat"), "APP003"),
    (ImportError("no module named yt_dlp"), "APP002"),
    (PermissionError(errno.EACCES, "denied"), "APP003"),
    (MemoryError(), "APP004"),
    (OSError(errno.ENOSPC, "No space left on device"), "APP004"),
    (TimeoutError(), "API003"),
    (ValueError("something else"), "APP000"),
])
def test_classify(exc: BaseException, code: str) -> None:
    assert classify(exc) == code


def test_every_runbook_code_has_a_description_and_a_user_message() -> None:
    assert RUNBOOK_CODES <= set(CODES)
    assert set(CODES) == set(USER_MESSAGES)


@pytest.mark.parametrize("code", sorted(RUNBOOK_CODES))
def test_user_message_carries_the_code(code: str) -> None:
    text = user_message(code)
    assert text.endswith(f"({code})") and len(text) < 200


def test_bot_error_rejects_unknown_codes_and_defaults_its_message() -> None:
    assert str(BotError("DB001")) == CODES["DB001"]
    assert BotError("API003", "weather down").code == "API003"
    with pytest.raises(ValueError):
        BotError("XYZ999")
