"""Disposable Debian 12 lab hosts (systemd-nspawn): python -m lab image|up|down|status|ssh|inventory."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from lab import host, image
from lab.common import SSH_KEY, LabError


def _table(states: list[dict]) -> str:
    rows = [("NAME", "IMAGE", "ADDRESS", "NET", "STATE", "UP")]
    for s in states:
        running = host.is_running(s)
        age = f"{int(time.time() - s['created'])}s" if running else "-"
        rows.append(
            (
                s["name"],
                s["image"],
                s["address"],
                s["link"]["mode"],
                "running" if running else ("starting" if not s.get("pid") else "stale"),
                age,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _status_entry(state: dict) -> dict:
    """State plus how to log in; the instance/address/user/port/identity_file keys are molecule's."""
    login = {"instance": state["name"], "address": state["address"], "user": "root", "port": 22,
             "identity_file": str(SSH_KEY)}  # fmt: skip
    return {**state, **login, "running": host.is_running(state)}


def inventory(host_name: str | None) -> dict:
    """Ansible dynamic-inventory JSON of the running hosts (SSH settings: inventories/lab/group_vars)."""
    states = [s for s in host.existing() if host.is_running(s)]
    hostvars = {
        s["name"]: {
            "ansible_host": s["address"],
            "lab_image": s["image"],
            "lab_gateway": s["gateway"],
            "lab_apt_proxy": f"http://{s['gateway']}:3142",
        }
        for s in states
    }
    if host_name is not None:
        return hostvars.get(host_name, {})
    inv: dict = {"_meta": {"hostvars": hostvars}, "lab": {"hosts": sorted(hostvars)}}
    for s in states:
        for g in s.get("groups", []):
            inv.setdefault(g, {"hosts": []})["hosts"].append(s["name"])
    return inv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("image", help="build the cached image tarball under .lab/images (once per recipe)")
    s.add_argument("--variant", default="base", choices=sorted(image.VARIANTS))
    s.add_argument("--force", action="store_true", help="rebuild even if cached")
    s = sub.add_parser("up", help="boot hosts and wait until systemd runs and SSH answers")
    s.add_argument("names", nargs="+", metavar="NAME")
    s.add_argument("--image", default="base", choices=sorted(image.VARIANTS))
    s.add_argument("--bridge", action="store_true", help="join the shared bridge so hosts reach each other")
    s.add_argument(
        "--group", action="append", default=[], help="inventory group (repeatable; default bot_hosts)"
    )
    s.add_argument(
        "--reuse", action="store_true", help="keep a host of that name if it runs, replace it if stale"
    )
    s = sub.add_parser("down", help="power hosts off and remove every trace of them")
    s.add_argument("names", nargs="*", metavar="NAME")
    s.add_argument("--all", action="store_true", help="every lab host on this machine")
    s.add_argument("--missing-ok", action="store_true", help="no error for names that are not lab hosts")
    s = sub.add_parser("status", help="table of lab hosts (all, or the NAMEs given)")
    s.add_argument("names", nargs="*", metavar="NAME")
    s.add_argument(
        "--json", action="store_true", help="machine-readable; entries double as molecule instance_config"
    )
    s = sub.add_parser("ssh", help="ssh into a host (as root, or --user lab)")
    s.add_argument("name")
    s.add_argument("--user", default="root")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("inventory", help="Ansible dynamic inventory JSON")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--list", action="store_true")
    g.add_argument("--host")
    args = p.parse_args(argv)
    try:
        if args.cmd == "image":
            print(image.build(args.variant, force=args.force))
        elif args.cmd == "up":
            print(_table(host.up(args.names, args.image, args.bridge, args.group, args.reuse)))
        elif args.cmd == "down":
            if args.all == bool(args.names):
                raise LabError("give host names or --all")
            if args.all:
                host.down_all()
            else:
                host.down([n for n in args.names if not args.missing_ok or n in host.names()])
        elif args.cmd == "status":
            states = [host.load(n) for n in args.names] if args.names else host.existing()
            if args.json:
                print(json.dumps([_status_entry(s) for s in states], indent=2))
            else:
                print(_table(states) if states else "no lab hosts")
        elif args.cmd == "ssh":
            state = host.load(args.name)
            cmd = list(args.command)
            # `ssh NAME --user lab cmd` works as well as `ssh --user lab NAME cmd`
            if cmd[:1] == ["--user"] and len(cmd) > 1:
                args.user, cmd = cmd[1], cmd[2:]
            if cmd[:1] == ["--"]:
                cmd = cmd[1:]
            os.execvp(  # noqa: S606 - replaces this process with ssh, arguments are a list
                "ssh",
                [
                    "ssh",
                    "-t" if sys.stdin.isatty() and not cmd else "-T",
                    *host.ssh_args(state, args.user),
                    *cmd,
                ],
            )
        elif args.cmd == "inventory":
            print(json.dumps(inventory(args.host), indent=2))
    except LabError as e:
        print(f"lab: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
