"""Fake OpenAI chat completions at /openai/v1 (OPENAI_BASE_URL=http://HOST:PORT/openai/v1).

The answer is derived from the last user message: "Sandbox answer: <first 200 chars>".
Markers in the last user message trigger failures for tests:
[sandbox:401], [sandbox:429] (rate limit), [sandbox:quota] (429 insufficient_quota),
[sandbox:500], [sandbox:503], [sandbox:slow=N] (answer after N <= 30 seconds).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from aiohttp import web

from bot.sandbox.state import STATE

MAX_SLOW = 30.0


def openai_error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers={"x-request-id": f"req_sandbox_{time.time_ns()}"})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


MARKER_ERRORS = {
    "[sandbox:401]": (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    "[sandbox:429]": (429, "Rate limit reached for requests (sandbox).", "requests", "rate_limit_exceeded"),
    "[sandbox:quota]": (
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    "[sandbox:500]": (
        500,
        "The server had an error while processing your request (sandbox).",
        "server_error",
        None,
    ),
    "[sandbox:503]": (503, "The engine is currently overloaded (sandbox).", "server_error", None),
}


async def chat_completions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        return openai_error(
            401,
            "You didn't provide an API key. Provide it in an Authorization header using Bearer auth.",
            "invalid_request_error",
        )
    if auth[7:].strip() != state.openai_key:
        return openai_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    try:
        body = await request.json()
    except ValueError:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if not isinstance(body, dict):
        return openai_error(400, "The body must be a JSON object.", "invalid_request_error")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        return openai_error(400, "you must provide a model parameter", "invalid_request_error", param="model")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        return openai_error(
            400,
            "'messages' must be a non-empty array of {role, content} objects",
            "invalid_request_error",
            param="messages",
        )
    if body.get("stream"):
        return openai_error(
            400, "the sandbox does not support stream=true", "invalid_request_error", param="stream"
        )
    state.openai_requests.append(
        {
            "ts": time.time(),
            "model": model,
            "messages": messages,
            **{
                k: body[k]
                for k in ("temperature", "max_tokens", "max_completion_tokens", "top_p")
                if k in body
            },
        }
    )
    last_user = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    for marker, (status, message, kind, code) in MARKER_ERRORS.items():
        if marker in last_user:
            return openai_error(status, message, kind, code)
    slow = re.search(r"\[sandbox:slow=(\d+(?:\.\d+)?)\]", last_user)
    if slow:
        await asyncio.sleep(min(float(slow.group(1)), MAX_SLOW))
    answer = f"Sandbox answer: {last_user[:200]}"
    prompt_tokens = sum(_tokens(_text(m.get("content"))) for m in messages)
    completion_tokens = _tokens(answer)
    return web.json_response(
        {
            "id": f"chatcmpl-sandbox-{len(state.openai_requests)}-{time.time_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_sandbox",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
        headers={"x-request-id": f"req_sandbox_{time.time_ns()}"},
    )


async def list_models(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "sandbox"}
                for name in ("gpt-4o-mini", "gpt-4o")
            ],
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/openai/v1/chat/completions", chat_completions)
    app.router.add_get("/openai/v1/models", list_models)
