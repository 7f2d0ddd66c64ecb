"""Benchmark of the bot against the sandbox, side by side with a bare PTB echo bot.

In each round, our bot and the echo bot (bench/echo_bot.py) each run on their own fresh sandbox
(`python -m bot.sandbox` subprocess); the order alternates between rounds because this machine's
speed drifts. Per round:

(a) throughput, our bot only: N group messages pushed in one batch; messages stored in PostgreSQL
    per second, from the push until the last row is visible (fresh database per round);
(b) /start latency, both bots: push -> sendMessage arrival, on the sandbox's clock; p50/p95 over
    M sequential samples after a warm-up; the ratio ours/echo per pair.

Medians over rounds go to docs/PERFORMANCE.md between bench markers. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from bot.sandbox.client import SandboxClient
from bot.sandbox.pg import PgServer
from bot.sandbox.server import SANDBOX_BOT_TOKEN

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
READY_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
STORE_TIMEOUT = 300.0
STALL_TIMEOUT = 20.0  # no new row for this long (bot still running): the missing messages were dropped
GOAL_RATE = 1000.0
GOAL_RATIO = 1.5
GOAL_P95_MS = 50.0
DROP_ENV = (
    "BOT_",
    "OPENAI_",
    "WEATHER_",
    "TELEGRAM_",
    "DATABASE_URL",
    "PG",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP_ENV)}
    env.update(extra)
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


@contextlib.contextmanager
def sandbox_process(workdir: Path) -> Iterator[SandboxClient]:
    """A fresh `python -m bot.sandbox` on a free port."""
    state_file = workdir / "sandbox.json"
    output = workdir / "sandbox.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.sandbox", "--port", "0", "--state-file", str(state_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env({}),
            cwd=REPO,
        )
    client = None
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not state_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start:\n{tail(output)}")
            time.sleep(0.05)
        client = SandboxClient(json.loads(state_file.read_text())["url"])
        yield client
    finally:
        if client is not None:
            client.close()
        stop_process(proc)


@contextlib.contextmanager
def bot_process(kind: str, client: SandboxClient, workdir: Path, database_url: str | None) -> Iterator[None]:
    """Our bot (`python -m bot run`) or the echo bot, polling the sandbox; ready once it polled."""
    env = {
        "BOT_TOKEN": SANDBOX_BOT_TOKEN,
        "TELEGRAM_BASE_URL": f"{client.base_url}/bot",
        "BOT_POLL_TIMEOUT": "10",
    }
    if kind == "ours":
        app_dir = workdir / "app"
        app_dir.mkdir(exist_ok=True)
        env |= {
            "OPENAI_API_KEY": "sk-sandbox",
            "OPENAI_BASE_URL": f"{client.base_url}/openai/v1",
            "WEATHER_API_KEY": "sandbox-weather-key",
            "WEATHER_BASE_URL": f"{client.base_url}/weather",
            "DATABASE_URL": database_url or "",
            "BOT_APP_DIR": str(app_dir),
            "BOT_LOG_DIR": str(app_dir / "logs"),
            "BOT_SANDBOX": "1",
        }
        cmd = [sys.executable, "-m", "bot", "run"]
    else:
        cmd = [sys.executable, "-m", "bench.echo_bot"]
    output = workdir / f"{kind}.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(env), cwd=REPO)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while client.health()["get_updates_calls"] == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} bot did not start polling:\n{tail(output)}")
            time.sleep(0.05)
        yield
    finally:
        stop_process(proc)


def measure_latency(client: SandboxClient, samples: int, warmup: int, user_id: int) -> list[float]:
    """Sequential /start pushes; milliseconds from push to the reply's arrival (sandbox clock)."""
    latencies = []
    for i in range(warmup + samples):
        after = client.last_sent_id()
        pushed = client.push("/start", user_id=user_id, first_name="Bench")
        items = client.wait_for(
            chat_id=user_id, count=1, timeout=REPLY_TIMEOUT, after=after, method="sendMessage"
        )
        if i >= warmup:
            latencies.append((items[0]["ts"] - pushed["ts"]) * 1000)
    return latencies


def measure_throughput(
    client: SandboxClient, database_url: str, messages: int, chat_id: int
) -> dict[str, Any]:
    """Group messages stored per second: one batch push, then poll the row count (bounded).

    The rate is rows stored / seconds from the push to the last row seen. If the count stops growing
    for STALL_TIMEOUT seconds before every message is in, the rest count as lost (the bot dropped them)
    instead of failing the whole run, so the loss shows up in the report.
    """
    specs = [
        {
            "text": f"bench message {i} with a few words of ordinary chatter",
            "chat_id": chat_id,
            "chat_type": "supergroup",
            "user_id": 700_000 + i % 40,
            "first_name": f"Member {i % 40}",
        }
        for i in range(messages)
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        start = time.monotonic()
        for offset in range(0, messages, 5000):
            client.push_many(specs[offset : offset + 5000])
        deadline = start + STORE_TIMEOUT
        count, last_change = 0, start
        while count < messages:
            now = time.monotonic()
            if now > deadline or now - last_change > STALL_TIMEOUT:
                log(f"only {count}/{messages} messages stored; no new row for {now - last_change:.0f}s")
                break
            time.sleep(0.01)
            seen = conn.execute("SELECT count(*) FROM messages WHERE chat_id = %s", (chat_id,)).fetchone()[0]
            if seen != count:
                count, last_change = seen, time.monotonic()
        elapsed = last_change - start
    return {"stored_per_s": count / elapsed if count else 0.0, "stored": count, "lost": messages - count}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[index]


def run_round(number: int, args: argparse.Namespace, pg: PgServer, workroot: Path) -> dict[str, Any]:
    order = ("ours", "echo") if number % 2 == 0 else ("echo", "ours")
    result: dict[str, Any] = {"round": number + 1, "order": list(order)}
    for kind in order:
        workdir = workroot / f"round{number + 1}-{kind}"
        workdir.mkdir()
        db_name = f"bench_{uuid.uuid4().hex[:12]}" if kind == "ours" else None
        dsn = pg.create_db(db_name) if db_name else None
        try:
            with sandbox_process(workdir) as client, bot_process(kind, client, workdir, dsn):
                lat = measure_latency(client, args.samples, args.warmup, user_id=600_000 + number)
                result[kind] = {
                    "p50_ms": percentile(lat, 50),
                    "p95_ms": percentile(lat, 95),
                    "max_ms": max(lat),
                    "samples": len(lat),
                }
                if kind == "ours":
                    result |= measure_throughput(client, dsn, args.messages, chat_id=-1_009_000_000 - number)
        finally:
            if db_name:
                pg.drop_db(db_name)
    result["ratio_p50"] = result["ours"]["p50_ms"] / result["echo"]["p50_ms"]
    result["ratio_p95"] = result["ours"]["p95_ms"] / result["echo"]["p95_ms"]
    log(
        f"round {number + 1}: stored {result['stored_per_s']:.0f} msg/s ({result['lost']} lost); "
        f"/start p50/p95 ours "
        f"{result['ours']['p50_ms']:.1f}/{result['ours']['p95_ms']:.1f} ms, echo "
        f"{result['echo']['p50_ms']:.1f}/{result['echo']['p95_ms']:.1f} ms, "
        f"p95 ratio {result['ratio_p95']:.2f}"
    )
    return result


def summarize(rounds: list[dict[str, Any]]) -> dict[str, float]:
    med = statistics.median
    return {
        "stored_per_s": med(r["stored_per_s"] for r in rounds),
        "ours_p50_ms": med(r["ours"]["p50_ms"] for r in rounds),
        "ours_p95_ms": med(r["ours"]["p95_ms"] for r in rounds),
        "echo_p50_ms": med(r["echo"]["p50_ms"] for r in rounds),
        "echo_p95_ms": med(r["echo"]["p95_ms"] for r in rounds),
        "ratio_p50": med(r["ratio_p50"] for r in rounds),
        "ratio_p95": med(r["ratio_p95"] for r in rounds),
        "lost": sum(r["lost"] for r in rounds),
        "lossy_rounds": sum(1 for r in rounds if r["lost"]),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def environment(pg: PgServer) -> dict[str, str]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "?",
        "cpus": str(os.cpu_count()),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "ptb": _version("python-telegram-bot"),
        "psycopg": _version("psycopg"),
        "postgresql": pg_version,
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(
    args: argparse.Namespace, env: dict[str, str], rounds: list[dict[str, Any]], summary: dict[str, float]
) -> str:
    command = (
        f".venv/bin/python -m bench --rounds {args.rounds} --messages {args.messages} "
        f"--samples {args.samples} --warmup {args.warmup}" + (" --pg-fast" if args.pg_fast else "")
    )
    durability = (
        "fsync, synchronous_commit and full_page_writes OFF (--pg-fast)"
        if args.pg_fast
        else "its default durability settings (fsync and synchronous_commit on)"
    )
    lines = [
        BEGIN,
        "## Benchmark: pipeline throughput and /start latency (sandbox)",
        "",
        f"Produced by `{command}` (`make bench` runs the defaults) on {env['date']} "
        f"(commit {env['commit']}).",
        f"Machine: {env['cpus']} CPUs shared with other work (load average at start {env['load']}, "
        f"at the end {env.get('load_end', '?')}); "
        f"Python {env['python']}, python-telegram-bot {env['ptb']}, psycopg {env['psycopg']}, "
        f"PostgreSQL {env['postgresql']} with {durability}.",
        "",
        "Each bot runs on its own fresh sandbox (`python -m bot.sandbox` subprocess); our bot gets a fresh "
        "database per round; the order alternates between rounds. Latency is push to reply arrival on the "
        f"sandbox clock over {args.samples} sequential `/start` after {args.warmup} warm-up ones. "
        f"Throughput: {args.messages} supergroup messages pushed in one batch, "
        "until the last row is in PostgreSQL (messages still missing after "
        f"{STALL_TIMEOUT:g} s without a new row count as lost; the rate is then the rows stored "
        "until the last one arrived).",
        "",
        "Load caveat: the other work on this machine makes its speed drift by up to ±30 % within seconds, "
        "so absolute figures differ from run to run; the ratios compare the two bots within one round, "
        "measured back to back in the same run, and the medians damp single disturbed rounds.",
        "",
        "| round | order | stored msg/s | lost | ours p50 / p95 ms | echo p50 / p95 ms "
        "| ratio p50 | ratio p95 |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {' → '.join(r['order'])} | {r['stored_per_s']:.0f} | {r['lost']} | "
            f"{r['ours']['p50_ms']:.1f} / {r['ours']['p95_ms']:.1f} | "
            f"{r['echo']['p50_ms']:.1f} / {r['echo']['p95_ms']:.1f} | "
            f"{r['ratio_p50']:.2f} | {r['ratio_p95']:.2f} |"
        )
    s = summary
    lines += [
        f"| **median** | | **{s['stored_per_s']:.0f}** | {s['lost']} in total | "
        f"**{s['ours_p50_ms']:.1f} / {s['ours_p95_ms']:.1f}** | "
        f"**{s['echo_p50_ms']:.1f} / {s['echo_p95_ms']:.1f}** | "
        f"**{s['ratio_p50']:.2f}** | **{s['ratio_p95']:.2f}** |",
        "",
        "Goals (issue 3):",
        f"- stored messages ≥ {GOAL_RATE:.0f}/s: median {s['stored_per_s']:.0f}/s — "
        f"{verdict(s['stored_per_s'] >= GOAL_RATE)}",
        f"- every pushed message stored: {s['lost']} of {args.messages * len(rounds)} lost "
        f"({s['lossy_rounds']} of {len(rounds)} rounds) — {verdict(s['lost'] == 0)}",
        f"- `/start` p95 ≤ {GOAL_RATIO}× the echo bot's: median ratio {s['ratio_p95']:.2f} — "
        f"{verdict(s['ratio_p95'] <= GOAL_RATIO)}",
        f"- `/start` p95 ≤ {GOAL_P95_MS:.0f} ms: median {s['ours_p95_ms']:.1f} ms — "
        f"{verdict(s['ours_p95_ms'] <= GOAL_P95_MS)}",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_doc(section: str, path: Path) -> None:
    """Replace the bench section of docs/PERFORMANCE.md (or create the file); keep the rest."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + "\n\n" + section
    else:
        text = "# Performance\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=positive, default=5, help="alternating rounds (default %(default)s)")
    parser.add_argument(
        "--messages",
        type=positive,
        default=3000,
        help="group messages per throughput round (default %(default)s)",
    )
    parser.add_argument(
        "--samples", type=positive, default=100, help="/start samples per bot per round (default %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=10, help="unmeasured /start first (default %(default)s)"
    )
    parser.add_argument(
        "--output", type=Path, default=DOC, help="markdown file to update (default %(default)s)"
    )
    parser.add_argument(
        "--pg-fast",
        action="store_true",
        help="PostgreSQL without fsync/synchronous_commit (shows the cost of durability)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures only")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON here")
    args = parser.parse_args(argv)
    if args.messages > 50_000:
        parser.error("--messages must be at most 50000 (the sandbox's pending-update cap)")
    if not 0 <= args.warmup <= 1000:
        parser.error("--warmup must be between 0 and 1000")

    pg = PgServer(durable=not args.pg_fast)
    workroot = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        pg.init().start()
        env = environment(pg)
        log(f"PostgreSQL {env['postgresql']} on port {pg.port}; {args.rounds} rounds; work dir {workroot}")
        rounds = [run_round(i, args, pg, workroot) for i in range(args.rounds)]
        env["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        pg.destroy()
    summary = summarize(rounds)
    section = render(args, env, rounds, summary)
    print(section)
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rounds": rounds, "summary": summary}, indent=2))
    if not args.no_write:
        write_doc(section, args.output)
        log(f"wrote {args.output}")
    shutil.rmtree(workroot, ignore_errors=True)
    return 0
