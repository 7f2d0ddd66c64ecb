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
# Telegram bot tokens wherever they appear (URLs, reprs): bot<digits>:<secret>, or a bare <digits>:<secret>.
_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])(bot)?(\d{5,}):[A-Za-z0-9_-]{30,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+|api[_-]?key[=:]\s*|appid=)[^\s&\"',]+")
_EXTRA_FIELDS = ("code", "chat_id", "user_id")
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # json.dumps would build one per line


class Redactor:
    """Replace configured secret values and token-looking strings by '***'."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        if ":" in text:  # every token has one; most chat lines do not, and the regex scan is not free
            text = _TOKEN_RE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}:***", text)
        return _BEARER_RE.sub(lambda m: m.group(1) + "***", text)


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
    redact = RedactingFilter(Redactor(secrets))
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
            handler.addFilter(redact)
            _handlers.append(handler)
        root = logging.getLogger()
        root.setLevel(level)
        for handler in list(root.handlers):
            handler.addFilter(redact)  # e.g. a console handler somebody added: redact there too
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
