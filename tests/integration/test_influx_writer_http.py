"""The InfluxDB writer, checked on the exact HTTP requests it sends (v2 cannot run here: Debian's
InfluxDB is 1.6.7), and on how it answers each kind of server response."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from collector.app.config import load_config
from collector.sink.influxdb import InfluxWriter


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeInflux:
    """A local HTTP server that records requests and answers from a script of (status, body)."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, str]] = field(default_factory=list)
    refuse_lines_containing: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
        self.requests.append(Recorded(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.script:
            status, text = self.script.pop(0)
            return web.Response(status=status, text=text)
        if self.refuse_lines_containing and self.refuse_lines_containing.encode() in body:
            return web.Response(status=400, text='{"error":"partial write: field type conflict dropped=1"}')
        return web.Response(status=204)


@pytest.fixture
async def fake_influx() -> AsyncIterator[FakeInflux]:
    fake = FakeInflux()
    # Keep the body as sent: the test checks the gzip itself.
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]  # the one site's bound address (aiohttp's public API)
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def writer_for(fake: FakeInflux, tmp_path: Path, **env: str) -> InfluxWriter:
    environ = {"CITY_TELEMETRY__INFLUXDB__URL": f'"{fake.url}"', "CITY_TELEMETRY__INFLUXDB__RETRY_MIN_S": "0.01"}
    environ.update({f"CITY_TELEMETRY__INFLUXDB__{k.upper()}": v for k, v in env.items()})
    deadline = time.monotonic() + 20  # a test must end even if the writer would retry for ever
    return InfluxWriter(load_config(None, environ).influxdb, should_stop=lambda: time.monotonic() > deadline)


LINES = ["ap,device=ap-1,nis=21004 num_clients=3i 1795860000000000000", 'ev,device=a msg="x y" 1795860000000000001']


async def test_v2_request_is_exact(fake_influx: FakeInflux, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    writer = writer_for(
        fake_influx,
        tmp_path,
        API='"v2"',
        ORG='"bric"',
        BUCKET='"city telemetry"',
        TOKEN_FILE=f'"{token_file}"',
        GZIP="true",  # the fake is on the loopback, where "auto" would not compress
    )
    report = await writer.write(LINES)
    await writer.close()
    assert report.accepted == 2 and report.refused == []
    [request] = fake_influx.requests
    assert request.method == "POST"
    assert request.path == "/api/v2/write"
    assert request.query == {"org": "bric", "bucket": "city telemetry", "precision": "ns"}
    assert request.headers["Authorization"] == "Token s3cr3t-token"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert request.body == "\n".join(LINES).encode()


async def test_requests_to_influxdb_on_this_machine_are_not_compressed_by_default(
    fake_influx: FakeInflux, tmp_path: Path
) -> None:
    writer = writer_for(fake_influx, tmp_path)  # gzip = "auto", the fake on 127.0.0.1
    report = await writer.write(LINES)
    await writer.close()
    assert report.accepted == 2
    [request] = fake_influx.requests
    assert "Content-Encoding" not in request.headers
    assert request.body == "\n".join(LINES).encode()  # as sent: the fake inflates only what says gzip


async def test_v1_request_is_exact(fake_influx: FakeInflux, tmp_path: Path) -> None:
    writer = writer_for(
        fake_influx,
        tmp_path,
        DATABASE='"city"',
        RETENTION_POLICY='"one_year"',
        USERNAME="collector",
        PASSWORD="pa:ss",
        GZIP="false",
    )
    await writer.write(LINES)
    await writer.close()
    [request] = fake_influx.requests
    assert request.path == "/write"
    assert request.query == {"db": "city", "rp": "one_year", "precision": "ns"}
    assert request.headers["Authorization"] == "Basic Y29sbGVjdG9yOnBhOnNz"  # collector:pa:ss
    assert "Content-Encoding" not in request.headers
    assert request.body == "\n".join(LINES).encode()


@pytest.mark.parametrize("failure", [(500, "engine: error syncing wal"), (503, ""), (429, "slow down"), (401, "no")])
async def test_retryable_answers_are_retried_until_accepted(
    fake_influx: FakeInflux, tmp_path: Path, failure: tuple[int, str]
) -> None:
    fake_influx.script = [failure, failure]
    writer = writer_for(fake_influx, tmp_path, API='"v2"', ORG='"o"', BUCKET='"b"', TOKEN='"t"')
    report = await writer.write(LINES)
    await writer.close()
    assert report.accepted == 2
    assert len(fake_influx.requests) == 3
    assert writer.retries == 2
    assert {r.body for r in fake_influx.requests} == {"\n".join(LINES).encode()}  # the same batch each time


async def test_refused_lines_are_isolated_and_reported(fake_influx: FakeInflux, tmp_path: Path) -> None:
    lines = [f"m,device=d{i} v={i}i {1795860000000000000 + i}" for i in range(16)]
    lines[11] = "m,device=d11 v=11.5 1795860000000000011"  # say InfluxDB refuses this one
    fake_influx.refuse_lines_containing = "v=11.5"
    writer = writer_for(fake_influx, tmp_path)
    report = await writer.write(lines)
    await writer.close()
    assert report.accepted == 15
    assert [line for line, _ in report.refused] == [lines[11]]
    assert "field type conflict" in report.refused[0][1] and "HTTP 400" in report.refused[0][1]
    accepted_bodies = [r.body for r in fake_influx.requests if b"v=11.5" not in r.body]
    assert sorted(line for body in accepted_bodies for line in body.decode().split("\n")) == sorted(
        lines[:11] + lines[12:]
    )


async def test_unreachable_server_is_retried_not_dropped(tmp_path: Path) -> None:
    from collector.harness.localservers import free_port

    environ = {
        "CITY_TELEMETRY__INFLUXDB__URL": f'"http://127.0.0.1:{free_port()}"',
        "CITY_TELEMETRY__INFLUXDB__RETRY_MIN_S": "0.01",
    }
    attempts = 0

    def stop_after_three() -> bool:
        nonlocal attempts
        attempts += 1
        return attempts > 3

    writer = InfluxWriter(load_config(None, environ).influxdb, should_stop=stop_after_three)
    from collector.sink.influxdb import WriteAborted

    with pytest.raises(WriteAborted):
        await writer.write(LINES)
    await writer.close()
    assert writer.retries >= 1
    assert writer.last_error is not None and "Connect" in writer.last_error
