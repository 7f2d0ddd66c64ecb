"""python -m bot.sandbox: run the offline Telegram/OpenAI/weather/files sandbox."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
from pathlib import Path

from bot.sandbox.server import serve
from bot.sandbox.state import BOT_USERNAME, SandboxState
from bot.sandbox.store import SandboxStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox",
        description="Offline sandbox: fake Telegram Bot API (/bot<token>/<method>), control API (/control/), "
        "fake OpenAI (/openai/v1), fake OpenWeatherMap (/weather) and test files (/files/). "
        "Prints the environment variables that point the bot at it. The keys the fake APIs accept come "
        "from the environment (OPENAI_API_KEY, WEATHER_API_KEY; a command line is visible to every user "
        "of the host), and only whether they are set is printed.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=0, help="port; 0 lets the OS choose (default: %(default)s)"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="write {url, host, port, pid, env} as JSON here once listening (removed on exit)",
    )
    parser.add_argument(
        "--data-file",
        type=Path,
        help="SQLite file that keeps the update queue, update/message ids, chats and users across restarts "
        "(default: in memory only)",
    )
    parser.add_argument("--bot-username", default=BOT_USERNAME, help="username getMe reports")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    state = SandboxState(
        openai_key=os.environ.get("OPENAI_API_KEY") or SandboxState.openai_key,
        weather_key=os.environ.get("WEATHER_API_KEY") or SandboxState.weather_key,
        bot_username=args.bot_username,
    )
    if args.data_file is not None:
        try:
            state.store = SandboxStore(args.data_file)
            state.store.load(state)
        except (RuntimeError, ValueError, KeyError, sqlite3.Error) as exc:
            parser.exit(1, f"python -m bot.sandbox: {exc}\n")
    try:
        asyncio.run(serve(args.host, args.port, state, args.state_file, args.access_log))
    except OSError as exc:
        parser.exit(1, f"python -m bot.sandbox: cannot listen on {args.host}:{args.port}: {exc}\n")
    finally:
        if args.state_file is not None:
            args.state_file.unlink(missing_ok=True)
        if state.store is not None:
            state.store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
