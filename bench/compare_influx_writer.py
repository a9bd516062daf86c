"""Why our own InfluxDB writer and not influxdb-client: what each can write to, and how fast.

In one run:
1. whether influxdb-client (the official Python client) can write to the InfluxDB 1.x we run: it
   only knows ``/api/v2/write``, which InfluxDB 1.x has from 1.8 on (Debian's is 1.6.7);
2. write throughput of the same batches (the collector's default ``batch.max_lines``, gzipped, and
   without gzip to show the clients' own cost apart from compression) into
   an HTTP stand-in that accepts every write at once (``bench/null_influx.py``), so that what is
   timed is each client's own cost: ours (``collector/sink/influxdb.py``, aiohttp), influxdb-client
   synchronous (urllib3) and influxdb-client's asyncio client;
3. ours into the real influxd, for scale;
4. the gzip level: ours compresses at level 1, influxdb-client at ``gzip.compress``'s default, 9.

The lines are the pipeline's own output for the ingest benchmark's message mix. Variants alternate,
each run ``--repeat`` times, best reported. Needs the optional ``bench`` extra. Loopback only.
Run: .venv/bin/python -m bench.compare_influx_writer [--messages 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from bench.ingest import make_messages, new_pipeline
from collector.harness.localservers import InfluxDB, free_port
from collector.sink.config import InfluxConfig
from collector.sink.influxdb import InfluxWriter

BATCH_LINES = 5000  # batch.max_lines' default
DATABASE = "city_telemetry"
BUCKET = f"{DATABASE}/autogen"  # InfluxDB 1.8+'s v2 compatibility names a database/retention policy so


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def make_batches(messages: int) -> list[list[str]]:
    pipeline = new_pipeline(kpi=False)
    now = time.time_ns()
    lines: list[str] = []
    for topic, payload in make_messages(messages):
        result = pipeline.process(topic, payload, False, now)
        assert isinstance(result, list), result
        lines += result
    return [lines[i : i + BATCH_LINES] for i in range(0, len(lines), BATCH_LINES)]


async def ours(url: str, batches: list[list[str]], compress: bool = True) -> float:
    writer = InfluxWriter(InfluxConfig(url=url, database=DATABASE, gzip=compress))
    try:
        started = time.perf_counter()
        for batch in batches:
            report = await writer.write(batch)
            assert report.accepted == len(batch) and not report.refused, report
        return time.perf_counter() - started
    finally:
        await writer.close()


async def ours_plain(url: str, batches: list[list[str]]) -> float:
    return await ours(url, batches, compress=False)


async def client_sync(url: str, batches: list[list[str]], compress: bool = True) -> float:
    with InfluxDBClient(url=url, token="-", org="-", enable_gzip=compress) as client:
        write_api = client.write_api(write_options=SYNCHRONOUS)
        started = time.perf_counter()
        for batch in batches:
            write_api.write(bucket=BUCKET, record=batch)
        return time.perf_counter() - started


async def client_sync_plain(url: str, batches: list[list[str]]) -> float:
    return await client_sync(url, batches, compress=False)


async def client_async(url: str, batches: list[list[str]]) -> float:
    async with InfluxDBClientAsync(url=url, token="-", org="-", enable_gzip=True) as client:
        write_api = client.write_api()
        started = time.perf_counter()
        for batch in batches:
            assert await write_api.write(bucket=BUCKET, record=batch)
        return time.perf_counter() - started


def client_on_influx_1x(url: str, batch: list[str]) -> str:
    """What influxdb-client gets from InfluxDB 1.x for one batch."""
    with InfluxDBClient(url=url, token="-", org="-", enable_gzip=True) as client:
        try:
            client.write_api(write_options=SYNCHRONOUS).write(bucket=BUCKET, record=batch)
        except ApiException as error:
            return f"HTTP {error.status} {error.reason} on POST /api/v2/write"
    return "accepted"


def gzip_levels(batch: list[str]) -> list[tuple[int, float, float]]:
    """(level, ms per batch, compressed/raw) for level 1 (ours) and 9 (influxdb-client's)."""
    body = "\n".join(batch).encode()
    found = []
    for level in (1, 9):
        started = time.perf_counter()
        for _ in range(10):
            packed = gzip.compress(body, compresslevel=level)
        found.append((level, (time.perf_counter() - started) * 100, len(packed) / len(body)))
    return found


Writer = Callable[[str, list[list[str]]], Coroutine[Any, Any, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = make_batches(args.messages)
    total = sum(len(b) for b in batches)
    variants: list[tuple[str, Writer]] = [
        ("ours (aiohttp, asyncio)", ours),
        ("influxdb-client, synchronous", client_sync),
        ("influxdb-client, asyncio", client_async),
        ("ours, without gzip", ours_plain),
        ("influxdb-client, sync, without gzip", client_sync_plain),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in variants}
    real: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        influxdb = InfluxDB(Path(tmp) / "influxdb")
        influxdb.start()
        port = free_port()
        stand_in = subprocess.Popen([sys.executable, "-m", "bench.null_influx", str(port)])
        try:
            wait_for_port(port)
            stand_in_url = f"http://127.0.0.1:{port}"
            on_1x = client_on_influx_1x(influxdb.url, batches[0])
            for round_ in range(args.repeat):
                for name, writer in variants if round_ % 2 == 0 else variants[::-1]:
                    rates[name].append(total / asyncio.run(writer(stand_in_url, batches)))
                real.append(total / asyncio.run(ours(influxdb.url, batches)))
        finally:
            stand_in.terminate()
            stand_in.wait(10)
            influxdb.stop()
    print(f"{total:,} lines in {len(batches)} batches of up to {BATCH_LINES:,} lines, loopback")
    print(f"influxdb-client against InfluxDB 1.6.7: {on_1x}")
    baseline = max(rates[variants[0][0]])
    print(f"{'writer, into the stand-in':<36} {'best lines/s':>13} {'best / ours':>12}")
    for name, values in rates.items():
        print(f"{name:<36} {max(values):>13,.0f} {max(values) / baseline:>12.2f}")
    print(f"{'ours into InfluxDB 1.6.7':<36} {max(real):>13,.0f}")
    for level, ms, ratio in gzip_levels(batches[0]):
        print(f"gzip level {level}: {ms:.1f} ms per {len(batches[0]):,}-line batch, compressed to {ratio:.1%}")


if __name__ == "__main__":
    main()
