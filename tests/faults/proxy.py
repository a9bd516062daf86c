"""An HTTP proxy in front of a real influxd that a test can switch to answering 500s or hanging.

Mode ``swallow`` passes a write to influxd (it is stored) and then holds the answer back until the
mode changes: the collector is left between "written" and "acknowledged", where a test can kill it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Literal

import aiohttp
from aiohttp import web

Mode = Literal["pass", "error", "hang", "swallow"]


class FaultyInfluxProxy:
    def __init__(self, upstream: str, delay_s: float = 0.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay_s = delay_s  # added to every request passed through (a slow database)
        self.mode: Mode = "pass"
        self.answers: Counter[str] = Counter()
        self.swallowed = 0  # writes stored by influxd whose answer was held back
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    async def start(self) -> None:
        app = web.Application(handler_args={"auto_decompress": False}, client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]  # the one site's bound address (aiohttp's public API)
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        self._stopping = True
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        self.answers[mode] += 1
        if mode == "error":
            return web.Response(status=500, text='{"error":"engine: error syncing wal"}')
        if mode == "hang":
            # Hang until the test moves on (the writer's timeout ends the request well before);
            # bounded, so stopping the proxy never waits for a sleeping handler.
            while self.mode == "hang" and not self._stopping:
                await asyncio.sleep(0.05)
            return web.Response(status=503, text="was hanging")
        assert self._session is not None
        if mode == "swallow" and request.path != "/write":
            mode = "pass"  # queries pass: only a write's answer is held back
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(
            request.method, f"{self.upstream}{request.path_qs}", data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            if mode == "swallow":
                self.swallowed += 1
                while self.mode == "swallow" and not self._stopping:  # bounded by the test's stop
                    await asyncio.sleep(0.05)
                return web.Response(status=503, text="answer held back")
            return web.Response(
                status=upstream.status,
                body=payload,
                headers={
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() in ("content-type", "content-encoding", "x-influxdb-error")
                },
            )
