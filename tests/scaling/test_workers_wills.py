"""``run --workers 2``: a will redelivered to a worker SIGKILLed between write and acknowledgement is
stored once, at its first stamp, from that worker's own receipt-stamp file (``<spool>/worker-k/``).

The single-process case, and the same run without the file, are tests/hardening/test_will_redelivery.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from tests.conftest import DATABASE
from tests.daemon import start_daemon
from tests.faults.proxy import FaultyInfluxProxy
from tests.hardening.test_will_redelivery import device_dies, stored
from tests.scaling.test_workers import events, get, metric, stop, wait_ready, write_config

pytestmark = pytest.mark.servers


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_worker_killed_between_write_and_ack_stores_the_redelivered_will_once(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    proxy = FaultyInfluxProxy(influxdb.url)
    await proxy.start()
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port)
    config.write_text(config.read_text().replace(influxdb.url, proxy.url))
    log = tmp_path / "supervisor.log"
    supervisor = start_daemon(config, log, "--workers", "2")
    try:
        await asyncio.to_thread(wait_ready, port)
        proxy.mode = "swallow"
        device_dies(mosquitto.port)
        await until(lambda: proxy.swallowed >= 1 and len(stored(influxdb)) == 1, "the will written, unanswered")
        first = stored(influxdb)[0]
        holders = [k for k in (1, 2) if (tmp_path / "spool" / f"worker-{k}" / "receipt-stamps").exists()]
        assert len(holders) == 1  # the worker the broker gave the will to
        worker = holders[0]
        _, body = await asyncio.to_thread(get, port, "/healthz")
        os.kill(json.loads(body)["workers"][str(worker)]["pid"], signal.SIGKILL)
        await until(lambda: bool(events(log, "worker_exited")), "the worker's exit seen")
        proxy.mode = "pass"
        await until(lambda: len(events(log, "worker_started")) >= 3, "the worker restarted")
        await until(
            lambda: metric(port, "city_telemetry_receipt_stamps_reused_total", 0) == 1,
            "the redelivered will stored at its first stamp",
        )
        await until(lambda: metric(port, "city_telemetry_acked_total", 0) >= 1, "the redelivered will acknowledged")
        restarted = [e for e in events(log, "collector_starting") if e["worker"] == worker]
        assert len(restarted) == 2
    finally:
        proxy.mode = "pass"
        code = await asyncio.to_thread(stop, supervisor)
        await proxy.stop()
    assert code == 0
    rows = stored(influxdb)
    assert [(r["time"], r["state"], r["stamped_on_receipt"]) for r in rows] == [(first["time"], "lost", True)]
