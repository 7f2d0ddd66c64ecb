"""Control API: validation (400 and nothing changes), batches, waiting, reset, failure injection."""

from __future__ import annotations

import pytest
import requests

from bot.sandbox.client import SandboxError, SandboxTimeout
from bot.sandbox.control import detect_entities


def _state(sandbox) -> tuple[int, int, int]:
    health = sandbox.client.health()
    return health["pending_updates"], health["last_update_id"], health["last_sent_id"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"text": ""}, "text must be a non-empty string"),
        ({"text": 5}, "text must be a non-empty string"),
        ({"text": "x" * 100_001}, "at most 100000"),
        ({"text": "hi", "colour": "red"}, "unknown field"),
        ({"text": "hi", "user_id": True}, "user_id must be an integer"),
        ({"text": "hi", "user_id": -5}, "user_id must be a positive integer"),
        ({"text": "hi", "chat_id": "-100"}, "chat_id must be an integer"),
        ({"text": "hi", "chat_id": 5, "user_id": 6}, "must equal user_id"),
        ({"text": "hi", "chat_id": 5, "chat_type": "group"}, "must be negative"),
        ({"text": "hi", "chat_type": "channel"}, "chat_type must be one of"),
        ({"text": "hi", "chat_type": "group"}, "chat_id is required"),
        ({"text": "hi", "reply_to_message_id": 999}, "not a known message"),
        ({"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 3}]}, "bad entity"),
        ({"text": "hi", "username": "x" * 40}, "username must be"),
        ({"raw": {"message": {"text": "no chat"}}}, "not a valid Telegram Update"),
        ({"raw": {"update_id": 5, "message": {}}}, "must not carry update_id"),
        ({"raw": [1, 2]}, "raw must be a JSON object"),
        ({"raw": {}, "text": "x"}, "only the key 'raw'"),
        ([], "between 1 and"),
        ([{"text": "good"}, {"text": ""}], "text must be a non-empty string"),
    ],
)
def test_bad_pushes_are_400_and_change_nothing(sandbox, body, error):
    before = _state(sandbox)
    response = requests.post(f"{sandbox.url}/control/updates", json=body, timeout=10)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert _state(sandbox) == before


def test_non_json_body_is_400(sandbox):
    response = requests.post(f"{sandbox.url}/control/updates", data=b"{not json", timeout=10)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("/control/chat_member", {"chat_id": -1, "user_id": 2, "status": "boss"}, "status must be one of"),
        ("/control/chat_member", {"chat_id": -1, "status": "member"}, "required"),
        ("/control/chat_member", [1], "JSON object"),
        ("/control/fail", {"method": "sendSpam"}, "Bot API method"),
        ("/control/fail", {"method": "sendMessage", "error_code": 418}, "error_code must be one of"),
        ("/control/fail", {"method": "sendMessage", "count": 0}, "count must be between"),
        ("/control/fail", {"method": "sendMessage", "retry_after": 999}, "retry_after must be between"),
    ],
)
def test_bad_setup_requests_are_400(sandbox, path, body, error):
    response = requests.post(f"{sandbox.url}{path}", json=body, timeout=10)
    assert response.status_code == 400
    assert error in response.json()["error"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("after=abc", "after must be an integer"),
        ("after=-1", "after must be between"),
        ("chat_id=x", "chat_id must be an integer"),
        ("method=send;Message", "method must be"),
    ],
)
def test_bad_sent_queries_are_400(sandbox, query, error):
    response = requests.get(f"{sandbox.url}/control/sent?{query}", timeout=10)
    assert response.status_code == 400
    assert error in response.json()["error"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("timeout=soon", "timeout must be a number"),
        ("timeout=500", "timeout must be between"),
        ("count=0", "count must be between"),
    ],
)
def test_bad_wait_queries_are_400(sandbox, query, error):
    response = requests.get(f"{sandbox.url}/control/wait?{query}", timeout=10)
    assert response.status_code == 400
    assert error in response.json()["error"]


def test_client_raises_sandbox_error_with_the_message(sandbox):
    with pytest.raises(SandboxError, match="must equal user_id") as caught:
        sandbox.client.push("hi", chat_id=1, user_id=2)
    assert caught.value.status == 400


def test_batch_push_numbers_updates_in_order(sandbox):
    results = sandbox.client.push_many(
        [{"text": f"m{i}", "chat_id": -100200, "user_id": 9} for i in range(50)]
    )
    assert [r["update_id"] for r in results] == list(
        range(results[0]["update_id"], results[0]["update_id"] + 50)
    )
    assert [r["message_id"] for r in results] == list(
        range(results[0]["message_id"], results[0]["message_id"] + 50)
    )
    pending = sandbox.client.pending()
    assert [u["message"]["text"] for u in pending] == [f"m{i}" for i in range(50)]


def test_raw_update_is_delivered_as_given(sandbox):
    raw = {
        "callback_query": {
            "id": "cb1",
            "chat_instance": "ci",
            "data": "yes",
            "from": {"id": 11, "is_bot": False, "first_name": "Cb"},
        }
    }
    pushed = sandbox.client.push_raw(raw)
    [update] = sandbox.client.pending()
    assert update == {**raw, "update_id": pushed["update_id"]}
    assert pushed["message_id"] is None


def test_reply_to_a_pushed_message(sandbox):
    first = sandbox.client.push("original", chat_id=-100300, user_id=12)
    sandbox.client.push("reply", chat_id=-100300, user_id=13, reply_to_message_id=first["message_id"])
    reply = sandbox.client.pending()[-1]["message"]
    assert reply["reply_to_message"]["text"] == "original"


def test_wait_times_out_with_408_and_what_was_sent(sandbox):
    with pytest.raises(SandboxTimeout, match="timed out") as caught:
        sandbox.client.wait_for(chat_id=123, count=1, timeout=0.2)
    assert caught.value.items == []
    response = requests.get(f"{sandbox.url}/control/wait?chat_id=123&timeout=0", timeout=10)
    assert response.status_code == 408


def test_reset_forgets_data_but_keeps_counters(sandbox):
    pushed = sandbox.client.push("before reset")
    sandbox.client.reset()
    assert sandbox.client.pending() == []
    assert sandbox.client.push("after reset")["update_id"] == pushed["update_id"] + 1


def test_entities_use_utf16_offsets():
    text = "😀 /start@some_bot see www.example.com/x, #tag @someone"
    entities = detect_entities(text)
    encoded = text.encode("utf-16-le")
    found = {
        e["type"]: encoded[e["offset"] * 2 : (e["offset"] + e["length"]) * 2].decode("utf-16-le")
        for e in entities
    }
    assert found == {
        "bot_command": "/start@some_bot",
        "url": "www.example.com/x",
        "hashtag": "#tag",
        "mention": "@someone",
    }


def test_no_entities_in_plain_text_and_paths():
    assert detect_entities("just words, a/b/c and 3.14") == []


def test_get_updates_can_answer_409_conflict_like_a_second_poller(sandbox):
    from bot.sandbox.server import SANDBOX_BOT_TOKEN

    sandbox.client.fail("getUpdates", error_code=409, count=1)
    url = f"{sandbox.url}/bot{SANDBOX_BOT_TOKEN}/getUpdates"
    first = requests.post(url, json={"timeout": 0}, timeout=10)
    assert first.status_code == 409
    assert first.json() == {"ok": False, "error_code": 409, "description": "Conflict: terminated by other "
                            "getUpdates request; make sure that only one bot instance is running"}
    assert requests.post(url, json={"timeout": 0}, timeout=10).json()["ok"] is True  # count=1: then normal
