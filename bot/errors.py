"""Error codes from the runbook and the mapping of exceptions to them."""

from __future__ import annotations

import asyncio
import errno

CODES: dict[str, str] = {
    "DB001": "database connection timeout",
    "DB002": "database query timeout",
    "DB003": "database connection pool exhausted",
    "DB004": "database deadlock detected",
    "API001": "external API rate limit exceeded",
    "API002": "external API authentication failed",
    "API003": "external API unavailable",
    "API004": "external API quota exceeded",
    "APP001": "configuration error",
    "APP002": "module import error",
    "APP003": "permission denied",
    "APP004": "resource exhausted",
    "APP000": "unexpected error",
}

# What a chat user reads when a code hits them; short and actionable.
USER_MESSAGES: dict[str, str] = {
    "DB001": "The database is unavailable right now, please try again in a minute.",
    "DB002": "The database took too long to answer, please try again.",
    "DB003": "The bot is busy right now, please try again shortly.",
    "DB004": "A database conflict happened, please try again.",
    "API001": "The service is rate-limiting us, please try again in a minute.",
    "API002": "The service rejected our credentials; an admin needs to check the API key.",
    "API003": "The service is unavailable right now, please try again later.",
    "API004": "The service quota is exhausted; an admin needs to check the account.",
    "APP001": "This feature is not configured on this bot.",
    "APP002": "This feature is not available on this bot.",
    "APP003": "You are not allowed to do that.",
    "APP004": "The bot is out of resources right now, please try again later.",
    "APP000": "Something went wrong on our side.",
}


class BotError(Exception):
    """An error that already knows its runbook code."""

    def __init__(self, code: str, message: str = "") -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message or CODES[code])
        self.code = code


def user_message(code: str) -> str:
    """The chat reply for an error code, always carrying the code."""
    return f"⚠️ {USER_MESSAGES.get(code, USER_MESSAGES['APP000'])} ({code})"


_NO_ACCESS = ("chat not found", "bot was kicked", "not enough rights", "have no rights",
              "need administrator rights", "chat_write_forbidden", "user is deactivated")


def _status_code(status: int, body: str = "") -> str | None:
    if status == 429:
        return "API004" if "quota" in body.lower() else "API001"
    if status in (401, 403):
        return "API002"
    if status == 402:
        return "API004"
    if status >= 500 or status in (404, 408):
        return "API003"
    return None


def classify(exc: BaseException) -> str:
    """Map an exception to a runbook error code ("APP000" when nothing fits)."""
    if isinstance(exc, BotError):
        return exc.code
    code = _classify_db(exc) or _classify_api(exc)
    if code:
        return code
    if isinstance(exc, ImportError):
        return "APP002"
    if isinstance(exc, PermissionError):
        return "APP003"
    if isinstance(exc, MemoryError):
        return "APP004"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM):
        return "APP004"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "API003"
    return "APP000"


def _classify_db(exc: BaseException) -> str | None:
    import psycopg
    import psycopg_pool

    if isinstance(exc, psycopg_pool.TooManyRequests):
        return "DB003"
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return "DB001"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "DB002"
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        return "DB004"
    if isinstance(exc, psycopg.errors.TooManyConnections):
        return "DB003"
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolClosed):
        return "DB001"
    return None


def _classify_api(exc: BaseException) -> str | None:
    import httpx
    import openai
    import telegram.error as tg

    if isinstance(exc, openai.RateLimitError):
        body = str(getattr(exc, "body", "") or "") + str(exc)
        return "API004" if "quota" in body.lower() else "API001"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "API002"
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return "API003"
    if isinstance(exc, openai.APIStatusError):
        return _status_code(exc.status_code, str(exc)) or "API003"
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_code(exc.response.status_code, exc.response.text[:500]) or "API003"
    if isinstance(exc, httpx.TransportError):
        return "API003"
    if isinstance(exc, tg.RetryAfter):
        return "API001"
    if isinstance(exc, tg.InvalidToken):
        return "API002"
    if isinstance(exc, tg.Forbidden):
        return "APP003"
    if isinstance(exc, tg.BadRequest):  # we may not write there any more, or our request was wrong
        return "APP003" if any(p in str(exc).lower() for p in _NO_ACCESS) else "APP000"
    if isinstance(exc, tg.NetworkError):  # includes TimedOut
        return "API003"
    return None
