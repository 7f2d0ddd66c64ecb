"""Start-time benchmark: `python -m bench start`. How long `python -m bot run` takes from exec to its first
getUpdates, the floor of every restart's downtime (kill -9, update, rollback), split by the bot's own log:
exec -> "starting long polling" (imports, build_application) -> "bot @... started" (post_init: database pool
and migration check, setMyCommands) -> the sandbox's first getUpdates.

With --baseline DIR (the bot/ tree of another commit, e.g. `git archive COMMIT bot | tar -x -C DIR`) the two
alternate in one run and the medians' ratio is printed: this machine's speed drifts too much for figures of
separate runs to compare. Every start gets a fresh database; every wait is bounded. Figures are printed, not
written: the notes in docs/PERFORMANCE.md quote them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from bench.pipeline import READY_TIMEOUT, child_env, log, positive, sandbox_process, stop_process, tail
from bot.sandbox.client import SandboxClient
from bot.sandbox.pg import PgServer
from bot.sandbox.server import SANDBOX_BOT_TOKEN

PHASES = ("starting long polling", "started", "first getUpdates")


def _log_time(app_dir: Path, prefix: str) -> float | None:
    path = app_dir / "logs" / "general.log"
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        record = json.loads(line)
        if record["msg"].startswith(prefix):
            return datetime.fromisoformat(record["ts"]).timestamp()
    return None


def _phases(figures: list[float] | tuple[float, ...]) -> str:
    return ", ".join(f"{phase} {s:.2f} s" for phase, s in zip(PHASES, figures, strict=True))


def one_start(client: SandboxClient, dsn: str, app_dir: Path, source: Path | None) -> tuple[float, ...]:
    """Seconds from exec to each of PHASES; `source`: import the bot from there (PYTHONPATH, cwd app_dir)."""
    app_dir.mkdir(parents=True)
    env = {
        "BOT_TOKEN": SANDBOX_BOT_TOKEN,
        "TELEGRAM_BASE_URL": f"{client.base_url}/bot",
        "OPENAI_API_KEY": "sk-sandbox",  # as in production: the OpenAI client is set up at start
        "OPENAI_BASE_URL": f"{client.base_url}/openai/v1",
        "DATABASE_URL": dsn,
        "BOT_APP_DIR": str(app_dir),
        "BOT_LOG_DIR": str(app_dir / "logs"),
        "BOT_SANDBOX": "1",
        "PYTHONPATH": str(source or ""),
    }
    before = client.health()["get_updates_calls"]
    output = app_dir / "bot.out"
    with output.open("wb") as out:
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(env), cwd=app_dir)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while client.health()["get_updates_calls"] == before:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start polling:\n{tail(output)}")
            time.sleep(0.02)
        polled = time.time() - started
        marks = [_log_time(app_dir, "starting long polling"), _log_time(app_dir, "bot @")]
        if None in marks:
            raise RuntimeError(f"log lines missing:\n{tail(app_dir / 'logs' / 'general.log')}")
        return (*(mark - started for mark in marks if mark is not None), polled)
    finally:
        stop_process(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=positive, default=5, help="starts per tree (default %(default)s)")
    parser.add_argument("--baseline", type=Path, help="a bot/ source tree to compare with, alternating")
    args = parser.parse_args(argv)
    if args.baseline is not None and not (args.baseline / "bot" / "app.py").is_file():
        parser.error(f"--baseline {args.baseline}: no bot/app.py in it; make one with"
                     " `git archive COMMIT bot | tar -x -C DIR`")
    trees: dict[str, Path | None] = {"this tree": None}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in trees}
    pg = PgServer()
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        try:
            pg.init().start()
            with sandbox_process(Path(tmp)) as client:
                for i in range(args.starts):
                    for name in list(trees)[:: 1 if i % 2 == 0 else -1]:  # alternate who goes first
                        dsn = pg.create_db(f"start_{uuid.uuid4().hex[:12]}")
                        figures = one_start(client, dsn, Path(tmp) / f"{i}-{len(results[name])}-{name[0]}",
                                            trees[name])
                        results[name].append(figures)
                        log(f"{name}: {_phases(figures)}")
        finally:
            pg.destroy()
    medians = {name: [statistics.median(f[j] for f in rows) for j in range(len(PHASES))]
               for name, rows in results.items()}
    for name, values in medians.items():
        print(f"{name} (median of {args.starts}): exec -> {_phases(values)}")
    if "baseline" in medians:
        print("ratio this tree / baseline, exec -> first getUpdates: "
              f"{medians['this tree'][-1] / medians['baseline'][-1]:.2f}")
    return 0
