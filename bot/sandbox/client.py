"""SandboxClient: a small synchronous client for the sandbox control API (tests, demo, Fabric)."""

from __future__ import annotations

from typing import Any

import requests


class SandboxError(RuntimeError):
    """The control API refused a request (bad input) or is unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox answered {status}: {message}")
        self.status = status
        self.message = message


class SandboxTimeout(TimeoutError):
    """wait_for() ran out of time; `.items` holds what had been sent by then."""

    def __init__(self, message: str, items: list[dict[str, Any]]) -> None:
        shown = "; ".join(f"#{i['id']} {i['method']} {str(i.get('text'))[:80]!r}" for i in items[-5:])
        super().__init__(f"{message} (last sent: {shown or 'nothing'})")
        self.items = items


class SandboxClient:
    """Control API of a sandbox at `base_url` (e.g. http://127.0.0.1:PORT)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never send loopback traffic through a proxy from the environment

    def _call(self, verb: str, path: str, timeout: float | None = None, **kwargs: Any) -> Any:
        try:
            response = self.session.request(
                verb, f"{self.base_url}{path}", timeout=timeout or self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise SandboxError(0, f"cannot reach the sandbox at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text[:500]}
            if response.status_code == 408 and "items" in body:
                raise SandboxTimeout(body.get("error", "timed out"), body["items"])
            raise SandboxError(response.status_code, body.get("error", str(body)))
        return response.json()

    def push(
        self,
        text: str,
        *,
        chat_id: int | None = None,
        user_id: int = 1001,
        chat_type: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        reply_to_message_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Push a text message update; returns {"update_id", "message_id", "ts"}.

        Without chat_id it is a private chat with the user; negative chat ids are supergroups unless
        chat_type says "group". Entities (commands, mentions, URLs) are detected like Telegram does.
        """
        spec: dict[str, Any] = {"text": text, "user_id": user_id, **extra}
        for key, value in (
            ("chat_id", chat_id),
            ("chat_type", chat_type),
            ("username", username),
            ("first_name", first_name),
            ("reply_to_message_id", reply_to_message_id),
            ("entities", entities),
        ):
            if value is not None:
                spec[key] = value
        return self._call("POST", "/control/updates", json=spec)

    def push_raw(self, update: dict[str, Any]) -> dict[str, Any]:
        """Push a full Update object (without update_id)."""
        return self._call("POST", "/control/updates", json={"raw": update})

    def push_many(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Push several update specs (as for push(), or {"raw": ...}) in one request, all or nothing."""
        return self._call("POST", "/control/updates", json=specs)

    @staticmethod
    def _filters(chat_id: int | None, after: int, method: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"after": after}
        if chat_id is not None:
            params["chat_id"] = chat_id
        if method:
            params["method"] = method
        return params

    def sent(
        self, chat_id: int | None = None, after: int = 0, method: str | None = None
    ) -> list[dict[str, Any]]:
        """What the bot sent: [{"id", "method", "chat_id", "params", "ts", "message_id", "text"}].

        method: None = everything but chat actions/command lists; "all"; or "sendMessage,sendVideo".
        """
        return self._call("GET", "/control/sent", params=self._filters(chat_id, after, method))

    def wait_for(
        self,
        chat_id: int | None = None,
        count: int = 1,
        timeout: float = 10.0,
        after: int = 0,
        method: str | None = None,
    ) -> list[dict[str, Any]]:
        """Block until `count` items were sent after id `after`; raises SandboxTimeout otherwise."""
        params = self._filters(chat_id, after, method) | {"count": count, "timeout": timeout}
        return self._call("GET", "/control/wait", params=params, timeout=timeout + 10)

    def last_sent_id(self) -> int:
        """Use as `after` to wait only for what comes next."""
        return int(self.health()["last_sent_id"])

    def set_member(self, chat_id: int, user_id: int, status: str) -> dict[str, Any]:
        """Set a user's status in a chat: creator, administrator, member, restricted, left, kicked."""
        return self._call(
            "POST", "/control/chat_member", json={"chat_id": chat_id, "user_id": user_id, "status": status}
        )

    def fail(
        self,
        method: str,
        error_code: int = 500,
        count: int = 1,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` calls of a Bot API method fail like Telegram would."""
        body: dict[str, Any] = {"method": method, "error_code": error_code, "count": count}
        if description is not None:
            body["description"] = description
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self._call("POST", "/control/fail", json=body)

    def openai_requests(self) -> list[dict[str, Any]]:
        """Chat-completion requests the fake OpenAI received (model, messages, temperature...)."""
        return self._call("GET", "/control/openai")

    def pending(self) -> list[dict[str, Any]]:
        return self._call("GET", "/control/updates")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/control/reset")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/control/health")

    def close(self) -> None:
        self.session.close()
