"""The vetted proxy yt-dlp downloads through: every hop is checked, close() cuts open downloads."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bot.egress import EgressProxy


async def test_strict_proxy_refuses_loopback_and_private_hops(sandbox) -> None:
    proxy = EgressProxy(allow_loopback=False)
    url = await proxy.start()
    try:
        async with httpx.AsyncClient(proxy=url, trust_env=False) as client:
            for target in (f"{sandbox.url}/files/sample.mp4", "http://10.0.0.1/x", "http://169.254.169.254/",
                           "http://localhost/x", "http://2130706433/x"):
                response = await client.get(target)
                assert response.status_code == 403, (target, response.status_code)
                assert proxy.refused in ("the link points to a private, local or reserved address",
                                         "the link points to this machine"), proxy.refused
            with pytest.raises(httpx.ProxyError):  # https: CONNECT is checked the same way
                await client.get("https://127.0.0.1:1/")
        assert proxy.hops == []
    finally:
        await proxy.close()


async def test_proxy_forwards_allowed_hops_and_close_cuts_them(sandbox) -> None:
    proxy = EgressProxy(allow_loopback=True)
    url = await proxy.start()
    async with httpx.AsyncClient(proxy=url, trust_env=False, timeout=10) as client:
        response = await client.get(f"{sandbox.url}/files/sample.mp4")
        assert response.status_code == 200 and response.content[4:8] == b"ftyp"
        reading = asyncio.ensure_future(client.get(f"{sandbox.url}/files/drip.mp4?seconds=30&tag=egress"))
        deadline = time.monotonic() + 10
        while not sandbox.client.health()["streams"].get("egress", {}).get("open"):
            assert time.monotonic() < deadline, "the drip never started"
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await proxy.close()
        with pytest.raises(httpx.HTTPError):
            await reading
        assert time.monotonic() - started < 2
