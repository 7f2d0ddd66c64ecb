"""python -m bot.sandbox.chat against the sandbox and the running bot: start, say, last, sent, errors."""

from __future__ import annotations

import json

from bot.sandbox.chat import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_start_prints_the_reply_and_sent_lists_what_came_after(running_bot, sandbox, capsys):
    code, before, _ = run(capsys, "--url", sandbox.url, "last")
    assert code == 0 and before.isdigit()
    code, reply, err = run(capsys, "--url", sandbox.url, "start", "4711", "--username", "probe")
    assert code == 0 and reply, err
    code, texts, _ = run(capsys, "--url", sandbox.url, "sent", "4711", "--after", before)
    assert code == 0 and json.loads(texts)[0].strip() == reply
    code, none, _ = run(capsys, "--url", sandbox.url, "sent", "4711", "--after", str(2**31))
    assert code == 0 and json.loads(none) == []


def test_say_pushes_a_group_message_and_prints_its_id(sandbox, capsys):
    code, message_id, _ = run(capsys, "--url", sandbox.url, "say", "-100777", "hello group", "--user", "77")
    assert code == 0 and int(message_id) > 0
    [update] = sandbox.client.pending()
    message = update["message"]
    assert message["text"] == "hello group" and message["chat"]["id"] == -100777
    assert message["chat"]["type"] == "supergroup" and message["from"]["id"] == 77


def test_no_answer_is_exit_1_and_no_sandbox_exit_2(sandbox, capsys):
    # no bot polls this sandbox: /start stays unanswered
    code, _, err = run(capsys, "--url", sandbox.url, "--timeout", "0.5", "start", "4712")
    assert code == 1 and "no answer" in err
    code, _, err = run(capsys, "--url", "http://127.0.0.1:9", "last")
    assert code == 2 and "cannot reach the sandbox" in err


def test_bad_input_is_refused_by_the_sandbox_and_nothing_is_queued(sandbox, capsys):
    code, _, err = run(capsys, "--url", sandbox.url, "say", "5", "hi", "--chat-type", "group")
    assert code == 2 and "must be negative" in err
    assert sandbox.client.pending() == []
