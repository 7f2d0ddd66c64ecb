"""Thin operator tasks on the Ansible inventory (no second host list).

    fab status                       systemd state of the bot on every bot host
    fab logs [--errors] [--follow]   tail the bot's logs (general.log, or error.log with --errors)
    fab restart                      restart the service and wait until it is active
    fab health                       `psychochauffeur health` on every host (non-zero if one is critical)
    fab run <procedure> [--extra k=v,k2=v2]   playbooks/<procedure>.yml through ansible-runner

Every task takes --inventory (default: the one ansible.cfg names) and --limit (an Ansible host pattern
subset, comma-separated host or group names). Hosts, users, ports and keys come from
`ansible-inventory --list`; anything procedural lives in the playbooks.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fabric import Connection
from invoke import task
from invoke.exceptions import Exit

REPO = Path(__file__).resolve().parent
ANSIBLE_CFG = REPO / "ansible.cfg"
DEFAULT_INVENTORY = REPO / "inventories" / "lab"
DEFAULT_GROUP = "bot_hosts"
SERVICE = "psychochauffeur-bot"
APP_DIR = "/opt/psychochauffeur-bot"
RUNNER_DIR = REPO / ".cache" / "runner"


def _bin(name: str) -> str:
    """Prefer the tool next to the running interpreter (the repo's venv)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _inventory_list(inventory: str | os.PathLike) -> str:
    """`ansible-inventory --list`, read a second time if the first read fails: a dynamic inventory (the lab's)
    can change while it is read. A second failure stops the task with Ansible's own message.

    Without the fact cache: ansible-inventory reads every host's cached facts and prints none of them, and
    one it finds corrupt (a write that failed on a full disk) makes it delete the file and exit 1."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_CACHE_PLUGIN": "memory"}
    cmd = [_bin("ansible-inventory"), "-i", str(inventory), "--list"]
    for attempt in (1, 2):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode == 0:
            return res.stdout
        detail = res.stderr.strip() or res.stdout.strip() or "(no output)"
        if attempt == 1:
            print(
                f"ansible-inventory -i {inventory} failed ({res.returncode}), reading it again:\n{detail}",
                file=sys.stderr,
            )
    raise Exit(f"cannot read the inventory: `{' '.join(cmd)}` exited {res.returncode}:\n{detail}", code=2)


def inventory_hosts(
    inventory: str | os.PathLike = DEFAULT_INVENTORY, group: str = DEFAULT_GROUP, limit: str = ""
) -> dict[str, dict]:
    """Hostvars of every host in `group` (recursively), optionally narrowed to `limit` names."""
    data = json.loads(_inventory_list(inventory))
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(name: str, seen: set[str]) -> list[str]:
        if name in seen:
            return []
        seen.add(name)
        node = data.get(name, {})
        hosts = list(node.get("hosts", []))
        for child in node.get("children", []):
            hosts += members(child, seen)
        return hosts

    names = list(dict.fromkeys(members(group, set())))
    inv_dir = Path(inventory).resolve()
    inv_dir = inv_dir if inv_dir.is_dir() else inv_dir.parent
    if limit:
        wanted = {part.strip() for part in limit.split(",") if part.strip()}
        selected = []
        for item in wanted:
            selected += [item] if item in names else [h for h in members(item, set()) if h in names]
        unknown = [w for w in wanted if w not in names and not members(w, set())]
        if unknown:
            raise Exit(f"--limit: not in group {group} of {inventory}: {', '.join(sorted(unknown))}", code=2)
        names = [n for n in names if n in selected]
    if not names:
        raise Exit(f"no hosts in group {group} of {inventory}", code=2)
    return {name: render_vars(hostvars.get(name, {}), inv_dir) for name in names}


def render_vars(hv: dict, inventory_dir: Path) -> dict:
    """Render the Jinja2 in connection variables (`ansible-inventory --list` prints them raw). Only those
    (ansible_*): the others may need what only a play has (groups, hostvars) and Fabric does not use them."""
    templated = [k for k, v in hv.items() if k.startswith("ansible_") and isinstance(v, str) and "{{" in v]
    if not templated:
        return hv
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    init_plugin_loader()
    templar = Templar(loader=DataLoader(), variables={**hv, "inventory_dir": str(inventory_dir)})
    return {k: templar.template(trust_as_template(v)) if k in templated else v for k, v in hv.items()}


def connection(name: str, hv: dict) -> Connection:
    """A Fabric connection built from one host's Ansible variables."""
    connect_kwargs: dict = {}
    key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
    if key:
        connect_kwargs["key_filename"] = str(key)
    return Connection(
        host=str(hv.get("ansible_host", name)),
        user=str(hv.get("ansible_user", "root")),
        port=int(hv.get("ansible_port", 22)),
        connect_kwargs=connect_kwargs,
        connect_timeout=int(hv.get("ansible_timeout", 30)),
    )


def _remote(conn: Connection, hv: dict, command: str, **kwargs):
    """Run as root: directly when connected as root, else through sudo (like Ansible's become)."""
    if conn.user == "root":
        return conn.run(command, **kwargs)
    return conn.sudo(command, **kwargs)


def _app_dir(hv: dict) -> str:
    return str(hv.get("bot_app_dir", APP_DIR))


def _service(hv: dict) -> str:
    return str(hv.get("bot_service_name", SERVICE))


def _each(inventory: str, limit: str, command_for, hide: bool = False) -> dict[str, int]:
    """Run command_for(hostvars) on every selected host; print per-host output; return exit codes."""
    codes: dict[str, int] = {}
    for name, hv in inventory_hosts(inventory, limit=limit).items():
        print(f"=== {name}", flush=True)
        with connection(name, hv) as conn:
            result = _remote(conn, hv, command_for(hv), warn=True, hide=hide, pty=False)
        codes[name] = result.exited
    return codes


def _finish(codes: dict[str, int], what: str, ok_codes: tuple[int, ...] = (0,)) -> None:
    failed = {name: code for name, code in codes.items() if code not in ok_codes}
    if failed:
        raise Exit(f"{what} failed on: " + ", ".join(f"{n} (exit {c})" for n, c in failed.items()), code=1)


@task(help={"inventory": "Ansible inventory (default inventories/lab)", "limit": "host/group names"})
def status(c, inventory=str(DEFAULT_INVENTORY), limit=""):
    """systemd state of the bot service and the live release on every bot host."""
    codes = _each(
        inventory,
        limit,
        lambda hv: (
            f"systemctl --no-pager --lines=0 status {shlex.quote(_service(hv))}; rc=$?; "
            f'echo "release: $(readlink {shlex.quote(_app_dir(hv))}/current)"; exit $rc'
        ),
    )
    _finish(codes, "status")


@task(
    help={
        "errors": "error.log instead of general.log",
        "follow": "keep following (one host only)",
        "lines": "how many lines",
        "inventory": "Ansible inventory",
        "limit": "host/group names, comma-separated",
    }
)
def logs(c, errors=False, follow=False, lines=100, inventory=str(DEFAULT_INVENTORY), limit=""):
    """Last lines of the bot's logs (runbook: tail logs/general.log or logs/error.log)."""
    hosts = inventory_hosts(inventory, limit=limit)
    if follow and len(hosts) != 1:
        raise Exit(f"--follow needs exactly one host (use --limit); selected: {', '.join(hosts)}", code=2)
    name = "error.log" if errors else "general.log"
    flag = "-F" if follow else ""
    codes = _each(
        inventory,
        limit,
        lambda hv: f"tail -n {int(lines)} {flag} {shlex.quote(_app_dir(hv) + '/logs/' + name)}",
    )
    _finish(codes, "logs")


@task(help={"inventory": "Ansible inventory", "limit": "host/group names, comma-separated"})
def restart(c, inventory=str(DEFAULT_INVENTORY), limit=""):
    """Restart the bot (runbook: Service Outage — quick restart) and confirm it is active."""
    codes = _each(
        inventory,
        limit,
        lambda hv: (
            f"systemctl restart {shlex.quote(_service(hv))} && "
            f"systemctl is-active {shlex.quote(_service(hv))}"
        ),
    )
    _finish(codes, "restart")


@task(help={"inventory": "Ansible inventory", "limit": "host/group names, comma-separated"})
def health(c, inventory=str(DEFAULT_INVENTORY), limit=""):
    """`psychochauffeur health` on every host (runbook: Check System Health).

    Non-zero only when a host is critical (exit 2) or the check cannot run: a warning (exit 1) is printed,
    like daily.yml, which fails on a CRITICAL verdict only.
    """
    _finish(_each(inventory, limit, lambda hv: "psychochauffeur health"), "health", ok_codes=(0, 1))


def procedures() -> list[str]:
    """Playbooks an operator may run by name."""
    return sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))


def parse_extra(extra: str) -> dict[str, str]:
    """'a=1,b=x' → {'a': '1', 'b': 'x'}; a bad pair is a clear error."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in extra.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Exit(f"--extra: expected key=value, got {item!r}", code=2)
        pairs[key.strip()] = value.strip()
    return pairs


@task(
    name="run",
    positional=["procedure"],
    help={
        "procedure": "playbook name without .yml (e.g. daily, diagnose, update)",
        "extra": "extra vars: key=value,key2=value2",
        "check": "--check (dry run)",
        "inventory": "Ansible inventory",
        "limit": "host/group names, comma-separated",
    },
)
def run_procedure(c, procedure, extra="", check=False, inventory=str(DEFAULT_INVENTORY), limit=""):
    """Run playbooks/<procedure>.yml through ansible-runner (the engine AWX and cron use)."""
    import ansible_runner

    if procedure not in procedures():
        raise Exit(f"unknown procedure {procedure!r}; known: {', '.join(procedures())}", code=2)
    RUNNER_DIR.mkdir(parents=True, exist_ok=True)
    # ansible-runner stores extravars/cmdline in <dir>/env/ and reuses them when a later run passes none.
    shutil.rmtree(RUNNER_DIR / "env", ignore_errors=True)
    result = ansible_runner.run(
        private_data_dir=str(RUNNER_DIR),
        project_dir=str(REPO),
        playbook=f"playbooks/{procedure}.yml",
        inventory=str(Path(inventory).resolve()),
        extravars=parse_extra(extra),
        limit=limit or None,
        cmdline="--check --diff" if check else None,
        envvars={
            "ANSIBLE_CONFIG": str(ANSIBLE_CFG),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        rotate_artifacts=20,
    )
    print(f"procedure {procedure}: {result.status} (rc={result.rc}); artifacts: {result.config.artifact_dir}")
    if result.rc != 0:
        raise Exit(code=result.rc or 1)
