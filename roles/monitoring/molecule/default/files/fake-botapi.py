#!/usr/bin/env python3
"""Stand-in Telegram Bot API for the monitoring scenario: records every call, answers like Telegram.

POST/GET /bot<token>/<method> -> {"ok": true, "result": {...}}; each call appended as one JSON line
{"token", "method", "params"} to the log file. Tokens must look like Telegram's (<digits>:<35 chars>),
otherwise 401 like the real API; chat_id -1 is a chat the bot never saw (400 chat not found, as Telegram).
Also the alert webhook: POST /hooks/<anything> -> 200, recorded as {"webhook": path, "body": JSON};
/hooks/down/... answers 503 (a receiver that refuses).
"""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

TOKEN = re.compile(r"^/bot(\d+:[A-Za-z0-9_-]{35})/(\w+)$")


class Handler(BaseHTTPRequestHandler):
    def _answer(self, code: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self, params: dict) -> None:
        m = TOKEN.match(urlsplit(self.path).path)
        if not m:
            self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        params.update(parse_qsl(urlsplit(self.path).query))
        if str(params.get("chat_id")) == "-1":  # a chat the bot has never seen, as Telegram answers it
            self._answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
            return
        with open(self.server.log_path, "a") as f:  # type: ignore[attr-defined]
            f.write(json.dumps({"token": m.group(1), "method": m.group(2), "params": params}) + "\n")
        self._answer(200, {"ok": True, "result": {"message_id": 1, "chat": {"id": params.get("chat_id")}}})

    def do_GET(self) -> None:  # noqa: N802
        self._handle({})

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = urlsplit(self.path).path
        if path.startswith("/hooks/down/"):
            self._answer(503, {"error": "receiver down"})
            return
        if path.startswith("/hooks/"):
            with open(self.server.log_path, "a") as f:  # type: ignore[attr-defined]
                f.write(json.dumps({"webhook": path, "body": json.loads(raw or b"{}")}) + "\n")
            self._answer(200, {"ok": True})
            return
        if self.headers.get("Content-Type", "").startswith("application/json"):
            params = json.loads(raw or b"{}")
        else:
            params = dict(parse_qsl(raw.decode()))
        self._handle(params)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.log_path = sys.argv[2]  # type: ignore[attr-defined]
    server.serve_forever()
