"""Shared by the bridge tests: a vendor's HTTP server of our own that misbehaves on request, and the
bridge run as the real CLI subprocess.

``FakeHttp`` runs an aiohttp application on 127.0.0.1 in a thread of its own (so one server serves a
whole test module, whatever event loop each test has). ``faults[path]`` is a list of what the next
requests to that path get instead of the normal answer: ``"500"``, ``"429"`` (Retry-After: 1),
``"429-long"`` (Retry-After: 3600), ``"timeout"`` (an answer later than the bridge waits),
``"truncated"`` (half the body, then the connection is closed), ``"expire"`` (the session is
forgotten: 401).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.harness.localservers import free_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROOT = Path(__file__).resolve().parents[2]


class FakeHttp:
    def __init__(self, routes: list[tuple[str, str, Handler]], ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.ssl_context = ssl_context
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[float, str, str]] = []  # (monotonic time, method, path)
        self.slow_s = 3.0
        self.expire = False  # set by an "expire" fault: the handler forgets the session
        self._routes = routes
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> FakeHttp:
        self._thread.start()
        assert self._ready.wait(10), "fake server did not start"
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(middlewares=[self._misbehave])
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start())
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def count(self, path: str) -> int:
        return sum(1 for _, _, p in self.requests if p == path)

    @web.middleware
    async def _misbehave(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((time.monotonic(), request.method, request.path))
        queue = self.faults.get(request.path)
        fault = queue.pop(0) if queue else None
        if fault == "500":
            return web.Response(status=500, text="Internal Server Error")
        if fault in ("429", "429-long"):
            wait = "1" if fault == "429" else "3600"
            return web.json_response(
                {"errors": ["API rate limit exceeded for organization"]}, status=429, headers={"Retry-After": wait}
            )
        if fault == "timeout":
            await asyncio.sleep(self.slow_s)
        if fault == "expire":
            self.expire = True
        response = await handler(request)
        if fault == "truncated" and isinstance(response, web.Response) and response.body is not None:
            body = bytes(response.body)  # type: ignore[arg-type]
            stream = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            stream.content_length = len(body)
            await stream.prepare(request)
            await stream.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return stream
        return response


def json_lines(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def last_stats(events: list[dict[str, Any]]) -> dict[str, Any]:
    stats = [e for e in events if e.get("event") == "bridge_stats"]
    assert stats, "no bridge_stats line"
    return stats[-1]


async def run_bridge(vendor: str, config: Path, *extra: str, timeout_s: float = 60.0) -> tuple[int, str]:
    """``city-telemetry bridge <vendor> -c config --once``: exit code and everything it logged."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collector.app.cli",
        "bridge",
        vendor,
        "-c",
        str(config),
        "--once",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode()
