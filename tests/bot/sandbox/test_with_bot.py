"""CORE's `python -m bot run` against the sandbox and a real database, through the running_bot fixture."""

from __future__ import annotations

import time

import psycopg


def test_start_gets_a_reply_and_the_bot_stops_cleanly(running_bot, sandbox):
    pushed = sandbox.client.push("/start", user_id=501, first_name="Eve")
    [reply] = sandbox.client.wait_for(chat_id=501, count=1, timeout=30)
    assert reply["method"] == "sendMessage" and reply["text"].strip()
    assert reply["ts"] >= pushed["ts"]
    assert running_bot.stop() == 0, running_bot.output_text()[-3000:]


def test_group_message_reaches_the_database(running_bot, sandbox, bot_env):
    pushed = sandbox.client.push("plain group chatter", chat_id=-100501, user_id=502, chat_type="supergroup")
    stored = None
    deadline = time.monotonic() + 30
    with psycopg.connect(bot_env["DATABASE_URL"], autocommit=True) as conn:
        while stored is None and time.monotonic() < deadline:
            with conn.cursor() as cur:
                cur.execute("select to_regclass('public.messages')")
                if cur.fetchone()[0] is not None:
                    cur.execute(
                        "select user_id, text from messages where chat_id = %s and message_id = %s",
                        (-100501, pushed["message_id"]),
                    )
                    stored = cur.fetchone()
            if stored is None:
                time.sleep(0.05)
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted(running_bot.log_dir.glob("*.log")))
    assert stored == (502, "plain group chatter"), running_bot.output_text()[-3000:] + logs
    # the bot confirms the update with the offset of its next getUpdates (which may follow the insert)
    while sandbox.client.health()["pending_updates"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.client.health()["pending_updates"] == 0
