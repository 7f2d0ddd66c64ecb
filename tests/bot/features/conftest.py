"""`bot`: one running bot per feature test module (tests/bot/botproc.py).

A module may set GLOBAL_CONFIG (a dict, or a function of the sandbox returning one) and BOT_ENV.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botproc import Bot, module_bot


@pytest.fixture(scope="module")
def bot(request: pytest.FixtureRequest, pg_server, sandbox, tmp_path_factory) -> Iterator[Bot]:
    config = getattr(request.module, "GLOBAL_CONFIG", None)
    if callable(config):  # a function of the sandbox, for URLs that point at it
        config = config(sandbox)
    env = getattr(request.module, "BOT_ENV", {})
    yield from module_bot(pg_server, sandbox, tmp_path_factory.mktemp("bot"), config, **env)
