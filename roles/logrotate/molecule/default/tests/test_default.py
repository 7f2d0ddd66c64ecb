"""Role logrotate on the converged lab host: the runbook's drop-in, checked by logrotate itself, and real
forced rotations of sample logs (new files' owner/mode, compression, the postrotate reload)."""

import shlex

import pytest

CONF = "/etc/logrotate.d/psychochauffeur-bot"
LOGS = "/opt/psychochauffeur-bot/logs"
HUPS = "/run/psychochauffeur-bot-standin/hups"
UNIT = "/etc/systemd/system/psychochauffeur-bot.service"
NAMES = ("general", "error", "chat")

RUNBOOK_BLOCK = """/opt/psychochauffeur-bot/logs/*.log {
    daily
    rotate 30
    compress
    delaycompress
    missingok
    notifempty
    create 644 psychochauffeur psychochauffeur
    postrotate
        if systemctl is-active --quiet psychochauffeur-bot; then systemctl reload psychochauffeur-bot; fi
    endscript
}
"""


def hups(host) -> int:
    out = host.run(f"cat {HUPS} 2>/dev/null | wc -l")
    return int(out.stdout.strip())


def write_samples(host, tag: str) -> None:
    """Fresh sample logs, written the way the bot writes them (as the service user, umask 077)."""
    host.run_test(f"rm -f {LOGS}/*.log {LOGS}/*.log.* /root/logrotate-test.state")
    for name in NAMES:
        line = shlex.quote(f'{{"msg": "{tag} {name}"}}')
        script = f"umask 077; echo {line} >> {LOGS}/{name}.log"
        host.run_test("runuser -u psychochauffeur -- sh -c %s", script)


def force_rotate(host):
    return host.run(f"logrotate -v -f -s /root/logrotate-test.state {CONF}")


def test_dropin_is_the_runbook_block(host):
    conf = host.file(CONF)
    assert conf.user == "root" and conf.group == "root" and conf.mode == 0o644
    body = conf.content_string
    assert body.splitlines()[0].startswith("#"), "first line is the ansible_managed comment"
    assert body.split("\n", 1)[1] == RUNBOOK_BLOCK


def test_logrotate_parses_the_dropin(host):
    out = host.run(f"logrotate -d {CONF}")
    assert out.rc == 0, out.stderr
    assert "error" not in out.stderr.lower()
    assert f"rotating pattern: {LOGS}/*.log" in out.stderr
    assert "30 rotations" in out.stderr


def test_forced_rotation_creates_new_files_and_reloads_the_service(host):
    assert host.service("psychochauffeur-bot").is_running
    write_samples(host, "first")
    before = hups(host)
    out = force_rotate(host)
    assert out.rc == 0, out.stderr
    for name in NAMES:
        rotated = host.file(f"{LOGS}/{name}.log.1")
        assert rotated.exists and f"first {name}" in rotated.content_string, "delaycompress: .1 stays plain"
        fresh = host.file(f"{LOGS}/{name}.log")
        assert fresh.exists and fresh.size == 0
        assert (fresh.user, fresh.group, fresh.mode) == ("psychochauffeur", "psychochauffeur", 0o644)
    # no sharedscripts (as in the runbook): postrotate runs once per rotated log, each a SIGHUP to the bot
    assert hups(host) - before == len(NAMES)
    assert host.service("psychochauffeur-bot").is_running


def test_second_rotation_compresses_the_previous_one(host):
    write_samples(host, "old")
    assert force_rotate(host).rc == 0
    for name in NAMES:
        host.run_test(f"echo new {name} >> {LOGS}/{name}.log")
    out = force_rotate(host)
    assert out.rc == 0, out.stderr
    for name in NAMES:
        assert host.file(f"{LOGS}/{name}.log.1").contains(f"new {name}")
        gz = f"{LOGS}/{name}.log.2.gz"
        assert host.file(gz).exists
        assert f"old {name}" in host.check_output(f"zcat {gz}")


def test_empty_logs_are_not_rotated(host):
    write_samples(host, "x")
    assert force_rotate(host).rc == 0
    before = hups(host)
    out = force_rotate(host)  # the fresh files are empty: notifempty
    assert out.rc == 0, out.stderr
    assert not host.file(f"{LOGS}/general.log.2.gz").exists
    assert hups(host) == before


@pytest.mark.parametrize("state", ["stopped", "absent"])
def test_rotation_succeeds_when_the_service_is_not_running(host, state):
    host.run_test("systemctl stop psychochauffeur-bot")
    if state == "absent":
        host.run_test(f"mv {UNIT} {UNIT}.away && systemctl daemon-reload")
    try:
        write_samples(host, state)
        before = hups(host)
        out = force_rotate(host)
        assert out.rc == 0, out.stderr
        assert host.file(f"{LOGS}/general.log.1").contains(state)
        assert hups(host) == before, "no reload of a service that does not run"
    finally:
        if state == "absent":
            host.run_test(f"mv {UNIT}.away {UNIT} && systemctl daemon-reload")
        host.run_test("systemctl start psychochauffeur-bot")
    assert host.service("psychochauffeur-bot").is_running


def test_logrotate_rejects_a_broken_config(host):
    """The role's `validate: logrotate -d %s` relies on a non-zero exit for a bad file."""
    bad = "/root/x.log {\n    create 644 no-such-user no-such-group\n}\n"
    host.run_test("printf %s > /root/bad.logrotate", bad)
    assert host.run("logrotate -d /root/bad.logrotate").rc != 0
