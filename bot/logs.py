"""JSON-lines logging into general.log, error.log and chat.log, with secret redaction and SIGHUP reopen."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHAT_LOGGER = "chat"
#: The one Telegram bot token pattern (logs, stderr, the audit's scan): [bot]<digits>:<secret>.
TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])(bot)?(\d{5,}):[A-Za-z0-9_-]{30,}")
# Credentials by their label: Authorization headers, query parameters (?appid=, &api_key=, &token=) and
# libpq keyword DSNs (password=...).
_LABELLED_RE = re.compile(
    r"(?i)(bearer\s+|api[_-]?key[=:]\s*|(?<![A-Za-z0-9_])(?:appid|key|access[_-]?token|token|password|secret)=)"
    r"[^\s&\"',;]+")
# The password of a URL's userinfo (postgresql://user:password@host/db).
_URL_PASSWORD_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
_EXTRA_FIELDS = ("code", "chat_id", "user_id")
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps would build one per line


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """The one redaction of the bot, for log lines, error_events rows and stderr alike.

    Removes the given secret values, Telegram tokens, labelled credentials (bearer, api_key=, appid=,
    token=, password=) and URL passwords; each becomes '***' so the shape stays recognisable.
    """
    for secret in _longest_first(secrets):
        if secret in text:
            text = text.replace(secret, "***")
    if ":" in text:  # every token and URL has one; most chat lines do not, and the regex scan is not free
        text = TOKEN_RE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}:***", text)
        text = _URL_PASSWORD_RE.sub(lambda m: m.group(1) + "***@", text)
    return _LABELLED_RE.sub(lambda m: m.group(1) + "***", text)


def _longest_first(secrets: Iterable[str | None]) -> list[str]:
    """Longer first, so a secret containing another is removed whole; short values are too common."""
    return sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)


class Redactor:
    """`redact` bound to the configured secret values (what the logging filter holds)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = _longest_first(secrets)

    def __call__(self, text: str) -> str:
        return redact(text, self.secrets)


class RedactingFilter(logging.Filter):
    """Bake the message (and traceback) into the record with secrets removed, before any handler formats."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        record._redacted = True
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return _ENCODER.encode(data)


class ReopenableFileHandler(logging.FileHandler):
    """A FileHandler whose file can be reopened after logrotate moved it (on SIGHUP)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


_handlers: list[ReopenableFileHandler] = []
_lock = threading.Lock()


def setup_logging(log_dir: Path, secrets: Iterable[str] = (), level: int = logging.INFO) -> None:
    """Install the three JSON files on the root and chat loggers (idempotent: replaces earlier setup)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    redacting = RedactingFilter(Redactor(secrets))
    fmt = JsonFormatter()
    with _lock:
        close_logging()
        general = ReopenableFileHandler(log_dir / "general.log", encoding="utf-8")
        general.setLevel(logging.INFO)
        errors = ReopenableFileHandler(log_dir / "error.log", encoding="utf-8")
        errors.setLevel(logging.ERROR)
        chat = ReopenableFileHandler(log_dir / "chat.log", encoding="utf-8")
        for handler in (general, errors, chat):
            handler.setFormatter(fmt)
            handler.addFilter(redacting)
            _handlers.append(handler)
        root = logging.getLogger()
        root.setLevel(level)
        for handler in list(root.handlers):
            handler.addFilter(redacting)  # e.g. a console handler somebody added: redact there too
        root.addHandler(general)
        root.addHandler(errors)
        chat_logger = logging.getLogger(CHAT_LOGGER)
        chat_logger.propagate = False  # chat lines go to chat.log only, keeping general.log readable
        chat_logger.setLevel(logging.INFO)
        chat_logger.addHandler(chat)
        # Polling libraries log every HTTP request at INFO: too noisy for general.log.
        for noisy in ("httpx", "httpcore", "apscheduler", "openai._base_client"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def reopen_logs() -> None:
    """Called on SIGHUP so logrotate's postrotate `systemctl reload` starts fresh files."""
    for handler in list(_handlers):
        handler.reopen()
    logging.getLogger(__name__).info("log files reopened")


def close_logging() -> None:
    for handler in _handlers:
        for name in ("", CHAT_LOGGER):
            logging.getLogger(name or None).removeHandler(handler)
        handler.close()
    _handlers.clear()


def read_records(path: Path | str, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Parse a JSON-lines log, skipping malformed lines; `since` keeps records with ts >= since."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if since is not None:
                try:
                    ts = datetime.fromisoformat(str(record.get("ts")))
                except ValueError:
                    continue
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                if ts < (since if since.tzinfo else since.replace(tzinfo=UTC)):
                    continue
            yield record
