"""Twice the sustainable rate for a minute: nothing lost, memory bounded.

The sustainable rate is measured first, in the test, for this configuration on this machine: a
backlog queued in the broker is drained by the collector and timed. InfluxDB sits behind a proxy
that adds a fixed delay to every write, so that the rate is set by the database, as in a real
overload, and stays low enough for a test (a few thousand readings a second).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests.daemon import start_daemon, wait_for_log
from tests.faults.proxy import FaultyInfluxProxy
from tests.faults.streams import PacedPublisher, readings, stored_count, stored_seqs

pytestmark = [pytest.mark.servers, pytest.mark.slow]

OVERLOAD_S = float(os.environ.get("CITY_TELEMETRY_TEST_OVERLOAD_S", "60"))


class ProxyThread:
    """The fault proxy on an event loop of its own, for a test that drives a daemon process."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        self.proxy = FaultyInfluxProxy(upstream, delay_s=delay_s)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FaultyInfluxProxy:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)
        return self.proxy

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_twice_the_sustainable_rate_for_a_minute(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    with ProxyThread(influxdb.url, delay_s=0.2) as proxy:
        config = tmp_path / "collector.toml"
        config.write_text(f"""
[mqtt]
port = {mosquitto.port}
client_id = "overload-test"
receive_maximum = 2000
[influxdb]
url = "{proxy.url}"
retry_max_s = 0.5
[batch]
max_lines = 500
max_interval_s = 0.1
[spool]
folder = "{tmp_path / "spool"}"
max_bytes = 262144
after_s = 1.0
[dead_letter]
file = "{tmp_path / "dead-letter.jsonl"}"
[log]
stats_every_s = 5.0
""")
        log = tmp_path / "daemon.log"
        daemon = start_daemon(config, log)
        try:
            wait_for_log(log, "mqtt_connected")
            time.sleep(0.3)
            # 1. The sustainable rate: a backlog of 4000 readings, timed from first to last stored.
            calibration = readings(4000, devices=400)
            publisher = PacedPublisher(mosquitto.port, calibration, rate=1e6)
            started = time.monotonic()
            publisher.start()
            publisher.finish()
            while stored_count(influxdb) < len(calibration) and time.monotonic() - started < 60:
                time.sleep(0.05)
            sustainable = len(calibration) / (time.monotonic() - started)
            # 2. Twice that, for a minute.
            rate = 2 * sustainable
            overload = readings(len(calibration) + int(rate * OVERLOAD_S), devices=400)[len(calibration) :]
            publisher = PacedPublisher(mosquitto.port, overload, rate=rate)
            publisher.start()
            samples: list[float] = []
            while publisher.sent < len(overload):
                samples.append(rss_mib(daemon.pid))
                time.sleep(1)
            publisher.finish()
            total = len(calibration) + len(overload)
            backlog_at_end = total - stored_count(influxdb)
            deadline = time.monotonic() + OVERLOAD_S * 3
            while stored_count(influxdb) < total and time.monotonic() < deadline:
                samples.append(rss_mib(daemon.pid))
                time.sleep(1)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
    text = log.read_text()
    print(
        f"sustainable {sustainable:.0f}/s, published at {rate:.0f}/s, backlog {backlog_at_end}; "
        f"RSS MiB min {min(samples):.0f} max {max(samples):.0f}"
    )
    assert stored_count(influxdb) == total
    assert stored_seqs(influxdb) == list(range(total))
    # The collector fell behind, and the broker, not the collector, held the backlog: the collector
    # never had more than its receive maximum (2000 messages; two lines each, the client summary and
    # its pseudonymised presence) waiting to be written.
    assert backlog_at_end > 2 * 2000
    pending = [json.loads(line)["pending_lines"] for line in text.splitlines() if '"collector_stats"' in line]
    assert pending and max(pending) <= 2 * 2000
    assert "mqtt_reading_paused" in text
    # Memory bounded: the second half of the overload used no more than the first half plus a margin.
    half = len(samples) // 2
    assert max(samples[half:]) < max(samples[:half]) * 1.25 + 20
    assert max(samples) < 400
