"""Inside the lab host: drive stop-test.sh against the sandbox there (127.0.0.1 only).

env: the sandbox's variables as `systemd-run -E` options; load: a 30 s GPT answer in flight and a burst of
1,500 group messages, partly fetched; check: JSON counts, "fetched_not_stored" must be 0 (every update the
bot took from the Bot API, and so confirmed at shutdown, is in the database)."""
import json
import sys
import time

import psycopg

from bot.sandbox.client import SandboxClient
from bot.sandbox.state import SandboxState

state = json.load(open("/run/pc-sandbox.json"))
client = SandboxClient(state["url"])
GROUP = -5001
step = sys.argv[1]


def until(cond, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting: {what}")
        time.sleep(0.05)


if step == "env":
    env = dict(state["env"])  # the sandbox keeps its keys out of its state file: these are its defaults
    env.setdefault("OPENAI_API_KEY", SandboxState.openai_key)
    env.setdefault("WEATHER_API_KEY", SandboxState.weather_key)
    print(" ".join(f"-E {k}={v}" for k, v in env.items()))
elif step == "load":
    until(lambda: client.health()["get_updates_calls"] > 0, "the bot polls")
    client.push("/ask [sandbox:slow=30] take your time", user_id=5000)
    until(lambda: len(client.openai_requests()) >= 1, "the GPT call is under way")
    burst = [{"text": f"burst {i}", "chat_id": GROUP, "user_id": 5001 + i % 7} for i in range(1500)]
    pushed = client.push_many(burst)
    json.dump([p["message_id"] for p in pushed], open("/run/pc-pushed.json", "w"))
    until(lambda: len(client.pending()) < 1500, "the bot fetches the burst")
    print("loaded: pending", len(client.pending()))
elif step == "check":
    pushed = set(json.load(open("/run/pc-pushed.json")))
    unconfirmed = {u["message"]["message_id"] for u in client.pending() if "message" in u}
    with psycopg.connect("postgresql://bot:botpw@127.0.0.1/bot") as conn:
        stored = {r[0] for r in conn.execute("SELECT message_id FROM messages WHERE chat_id = %s", (GROUP,))}
    fetched = pushed - unconfirmed
    print(json.dumps({"pushed": len(pushed), "fetched": len(fetched), "stored": len(stored),
                      "fetched_not_stored": len(fetched - stored)}))
