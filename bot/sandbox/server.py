"""The sandbox aiohttp application and ways to run it (foreground or in a background thread)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.sandbox import control, files, openai_api, telegram_api, weather
from bot.sandbox.state import STATE, SandboxState

#: A well-formed token the sandbox accepts (any `<digits>:<35 chars>` token is accepted).
SANDBOX_BOT_TOKEN = "123456789:SandboxTokenNotARealSecret_01234567"  # noqa: S105 - fake, for the sandbox


async def index(request: web.Request) -> web.Response:
    return web.json_response(
        {"sandbox": "psychochauffeur", "env": sandbox_env(str(request.url.origin()), request.app[STATE])}
    )


def build_app(state: SandboxState | None = None) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = state or SandboxState()
    app.router.add_get("/", index)
    app.router.add_route("*", "/bot{token}/{method}", telegram_api.handle)
    control.add_routes(app)
    openai_api.add_routes(app)
    weather.add_routes(app)
    files.add_routes(app)
    return app


#: The keys the fake APIs accept: they may be real-looking values from the environment, never printed.
KEY_VARIABLES = ("OPENAI_API_KEY", "WEATHER_API_KEY")


def sandbox_env(url: str, state: SandboxState, keys: bool = True) -> dict[str, str]:
    """Environment variables that point the bot at a sandbox at `url` (keys=False: without the keys)."""
    env = {
        "BOT_TOKEN": SANDBOX_BOT_TOKEN,
        "TELEGRAM_BASE_URL": f"{url}/bot",
        "OPENAI_BASE_URL": f"{url}/openai/v1",
        "OPENAI_API_KEY": state.openai_key,
        "WEATHER_BASE_URL": f"{url}/weather",
        "WEATHER_API_KEY": state.weather_key,
        "BOT_SANDBOX": "1",
    }
    return env if keys else {k: v for k, v in env.items() if k not in KEY_VARIABLES}


async def start_site(
    app: web.Application, host: str, port: int, access_log: bool = False
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(
        app,
        access_log=None if not access_log else web.access_logger,
        handle_signals=False,
        shutdown_timeout=1.0,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound


def write_state_file(path: Path, host: str, port: int, state: SandboxState) -> None:
    url = f"http://{host}:{port}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(
            {"url": url, "host": host, "port": port, "pid": os.getpid(),
             "env": sandbox_env(url, state, keys=False)},
            indent=2,
        )
    )
    tmp.replace(path)


async def serve(
    host: str, port: int, state: SandboxState, state_file: Path | None = None, access_log: bool = False
) -> None:
    """Run until SIGTERM/SIGINT; print the environment to use."""
    runner, bound = await start_site(build_app(state), host, port, access_log)
    url = f"http://{host}:{bound}"
    if state_file is not None:
        write_state_file(state_file, host, bound, state)
    print(f"Sandbox listening on {url}", flush=True)
    for key, value in sandbox_env(url, state, keys=False).items():
        print(f"{key}={value}", flush=True)
    for key in KEY_VARIABLES:
        print(f"# {key} is set (the value the sandbox accepts is the one in its environment)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


class SandboxServer:
    """The sandbox in a background thread with its own event loop (for tests and scripts)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: SandboxState | None = None) -> None:
        self.host = host
        self.port = port
        self.state = state or SandboxState()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return sandbox_env(self.url, self.state)

    def start(self, timeout: float = 15.0) -> SandboxServer:
        self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"sandbox did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"sandbox failed to start: {self._error!r}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._runner, self.port = loop.run_until_complete(
                start_site(build_app(self.state), self.host, self.port)
            )
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
