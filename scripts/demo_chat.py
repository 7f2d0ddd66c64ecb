"""Talk to the bot through the sandbox on a lab host: push messages, print the replies.

Runs on the host with the live release's Python (scripts/demo.sh pipes it over SSH), so it uses the same
SandboxClient as the tests. Exits non-zero when the bot does not answer.
"""

import sys

from bot.sandbox.client import SandboxClient, SandboxTimeout

SANDBOX = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8081"
CHAT = 1001  # a private chat: chat id == user id
MESSAGES = [
    "/start",
    f"{SANDBOX}/files/sample.mp4",
    "/ask hi",
    "/weather Kyiv",
]
REPLIES = "sendMessage,sendVideo,sendPhoto"


def main() -> int:
    client = SandboxClient(SANDBOX)
    failed = 0
    for text in MESSAGES:
        after = client.last_sent_id()
        client.push(text, chat_id=CHAT, user_id=CHAT, chat_type="private", username="demo")
        print(f"\n> {text}")
        try:
            items = client.wait_for(CHAT, count=1, timeout=60, after=after, method=REPLIES)
        except SandboxTimeout:
            print("  (no answer within 60 s)")
            failed += 1
            continue
        for item in items:
            body = item.get("text") or item["params"].get("caption") or ""
            label = "video" if item["method"] == "sendVideo" else item["method"]
            print(f"< [{label}] {body}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
