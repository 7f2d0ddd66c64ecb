"""`python -m bot ...` is the operator CLI (bot.cli); a minimal `run` works before the CLI exists."""

from __future__ import annotations

import importlib.util
import sys


def main() -> int:
    if importlib.util.find_spec("bot.cli") is not None:
        from bot.cli import main as cli_main

        return cli_main()
    if sys.argv[1:] != ["run"]:
        print("usage: python -m bot run", file=sys.stderr)
        return 2
    from bot.app import run
    from bot.settings import Env

    return run(Env.from_environ())


if __name__ == "__main__":
    sys.exit(main())
