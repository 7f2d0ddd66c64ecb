"""python -m bot.sandbox.chat: be a chat user of a running sandbox from a shell (lab hosts, tests, operators).

    start CHAT           /start from private chat CHAT; prints the bot's reply (exit 1 if none came)
    say CHAT TEXT        a message from --user in chat CHAT; prints its message_id
    last                 the id of the newest thing the bot sent (use as `sent --after`)
    sent CHAT --after N  JSON list of the texts the bot sent to CHAT after id N

Like Telegram, the sandbox only delivers to chats it has seen, so a chat that should receive notices says
`start` first.
"""

from __future__ import annotations

import argparse
import json
import sys

from bot.sandbox.client import SandboxClient, SandboxError, SandboxTimeout

DEFAULT_URL = "http://127.0.0.1:8081"  # the sandbox's address on a lab host (roles/bot bot_sandbox_url)


def start(client: SandboxClient, chat: int, username: str, timeout: float) -> str:
    """/start from a private chat (chat id == user id); the text of the bot's reply."""
    after = client.last_sent_id()
    client.push("/start", chat_id=chat, user_id=chat, chat_type="private", username=username)
    [reply] = client.wait_for(chat, count=1, timeout=timeout, after=after, method="sendMessage")
    return reply.get("text") or ""


def sent_texts(client: SandboxClient, chat: int, after: int) -> list[str]:
    return [item.get("text") or "" for item in client.sent(chat_id=chat, after=after)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox.chat",
        description=__doc__.split(": ", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 done, 1 the bot did not answer in time, 2 bad input or no sandbox at --url.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="the sandbox (default: %(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a reply (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="/start from a private chat, print the reply")
    p.add_argument("chat", type=int)
    p.add_argument("--username", default="sandboxuser")
    p = sub.add_parser("say", help="a message in a chat, print its message_id")
    p.add_argument("chat", type=int, help="negative: a supergroup unless --chat-type says group")
    p.add_argument("text")
    p.add_argument("--user", type=int, default=1001, help="the sender's user id (default: %(default)s)")
    p.add_argument("--username", default=None)
    p.add_argument("--chat-type", choices=["private", "group", "supergroup"], default=None)
    sub.add_parser("last", help="the id of the newest message the bot sent")
    p = sub.add_parser("sent", help="JSON list of the texts the bot sent to a chat")
    p.add_argument("chat", type=int)
    p.add_argument("--after", type=int, default=0, help="only what came after this id (see `last`)")
    args = parser.parse_args(argv)

    client = SandboxClient(args.url, timeout=max(30.0, args.timeout))
    try:
        if args.command == "start":
            print(start(client, args.chat, args.username, args.timeout))
        elif args.command == "say":
            who = {"user_id": args.user, "username": args.username, "chat_type": args.chat_type}
            pushed = client.push(args.text, chat_id=args.chat, **who)
            print(pushed["message_id"])
        elif args.command == "last":
            print(client.last_sent_id())
        else:
            print(json.dumps(sent_texts(client, args.chat, args.after)))
    except SandboxTimeout as exc:
        print(f"no answer: {exc}", file=sys.stderr)
        return 1
    except SandboxError as exc:
        print(f"sandbox at {args.url}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
