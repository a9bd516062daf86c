"""Fault tests with the real processes: InfluxDB away or failing, the broker restarted.

Each test publishes a bounded, paced stream and checks that every reading is in InfluxDB
exactly once at the end (points are counted and their sequence numbers compared).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests.conftest import collector_config, running_collector, wait_until
from tests.faults.proxy import FaultyInfluxProxy
from tests.faults.streams import PacedPublisher, readings, stored_count, stored_seqs

pytestmark = [pytest.mark.servers, pytest.mark.slow]

OUTAGE_S = float(os.environ.get("CITY_TELEMETRY_TEST_OUTAGE_S", "60"))


async def test_influxdb_stopped_for_a_minute(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    rate = 100.0
    messages = readings(int(rate * (OUTAGE_S + 20)))
    config = collector_config(mosquitto, influxdb, tmp_path, SPOOL__AFTER_S="2.0")
    async with running_collector(config) as collector:
        publisher = PacedPublisher(mosquitto.port, messages, rate)
        publisher.start()
        await wait_until(lambda: publisher.sent >= rate * 5, what="5 s of traffic")
        await asyncio.to_thread(influxdb.stop)
        await asyncio.sleep(OUTAGE_S)
        spooled_during_outage = collector.counters["lines_spooled"]
        acked_during_outage = collector.counters["acked"]
        await asyncio.to_thread(influxdb.start)
        await asyncio.to_thread(publisher.finish)
        await wait_until(lambda: collector.counters["acked"] >= len(messages), timeout_s=120, what="all acked")
        await wait_until(lambda: collector.spool is not None and collector.spool.empty, what="spool drained")
        drain_rate = collector.drain_rate_lines_s
    # During the outage the readings went to disk and were acknowledged (the broker could forget them).
    assert spooled_during_outage >= rate * (OUTAGE_S - 10)
    assert acked_during_outage >= rate * (OUTAGE_S - 5)
    # The backlog drained faster than real time, and the rate was reported.
    assert drain_rate > 10 * rate
    assert stored_count(influxdb) == len(messages)
    assert stored_seqs(influxdb) == list(range(len(messages)))


async def test_influxdb_answering_500s_and_timing_out(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    proxy = FaultyInfluxProxy(influxdb.url)
    await proxy.start()
    rate = 200.0
    messages = readings(int(rate * 16))
    # The collector's own statistics would be answered by the proxy too: off, so that every answer
    # counted is one of the readings' writer.
    config = collector_config(
        mosquitto,
        proxy.url,
        tmp_path,
        INFLUXDB__TIMEOUT_S="1.0",
        SPOOL__AFTER_S="2.0",
        INFLUXDB__RETRY_MAX_S="0.5",
        OPS__SELF_STATS_EVERY_S="0",
    )
    try:
        async with running_collector(config) as collector:
            publisher = PacedPublisher(mosquitto.port, messages, rate)
            publisher.start()
            for mode, seconds in (("pass", 3), ("error", 4), ("pass", 2), ("hang", 4), ("pass", 1)):
                proxy.mode = mode  # type: ignore[assignment]
                await asyncio.sleep(seconds)
            await asyncio.to_thread(publisher.finish)
            await wait_until(lambda: collector.counters["acked"] >= len(messages), timeout_s=60, what="all acked")
            await wait_until(lambda: collector.spool is not None and collector.spool.empty, what="spool drained")
            retries = collector.writer.retries
    finally:
        await proxy.stop()
    assert proxy.answers["error"] >= 3 and proxy.answers["hang"] >= 2
    assert retries >= proxy.answers["error"] + proxy.answers["hang"] - 1
    assert stored_count(influxdb) == len(messages)
    assert stored_seqs(influxdb) == list(range(len(messages)))


async def test_broker_restarted_mid_stream(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    rate = 300.0
    messages = readings(int(rate * 12))
    config = collector_config(mosquitto, influxdb, tmp_path, MQTT__RECONNECT_MAX_S="1.0")
    async with running_collector(config) as collector:
        publisher = PacedPublisher(mosquitto.port, messages, rate)
        publisher.start()
        await asyncio.sleep(4)
        await asyncio.to_thread(mosquitto.stop)
        await asyncio.sleep(1)
        await asyncio.to_thread(mosquitto.start)
        await wait_until(lambda: collector.source.connects >= 2, what="reconnect")
        await asyncio.to_thread(publisher.finish)
        await wait_until(lambda: stored_count(influxdb) >= len(messages), timeout_s=60, what="all stored")
        assert collector.source.disconnects >= 1
    assert stored_seqs(influxdb) == list(range(len(messages)))


async def test_full_spool_pushes_back_onto_the_broker(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    messages = readings(3000)
    config = collector_config(mosquitto, influxdb, tmp_path, SPOOL__AFTER_S="0.5", SPOOL__MAX_BYTES="20000")
    async with running_collector(config) as collector:
        await asyncio.to_thread(influxdb.stop)
        publisher = PacedPublisher(mosquitto.port, messages, rate=1000)
        publisher.start()
        await asyncio.to_thread(publisher.finish)
        await wait_until(lambda: collector.backpressure, what="backpressure")
        await asyncio.sleep(1)
        acked_while_full = collector.counters["acked"]
        assert collector.spool is not None and collector.spool.bytes <= 20000
        assert acked_while_full < len(messages)  # the rest waits, unacknowledged, in the broker
        assert collector.stats()["backpressure"] is True
        await asyncio.to_thread(influxdb.start)
        await wait_until(lambda: collector.counters["acked"] >= len(messages), timeout_s=60, what="all acked")
        await wait_until(lambda: collector.spool is not None and collector.spool.empty, what="spool drained")
        assert not collector.backpressure
        assert collector.counters["backpressure_episodes"] >= 1
    assert stored_seqs(influxdb) == list(range(len(messages)))


async def test_stopping_while_reading_is_paused_ends_promptly(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    """InfluxDB away, no spool: nothing can be acknowledged, the collector holds receive_maximum
    messages and pauses reading. A stop must still end (paho's thread must not deadlock on itself)."""
    config = collector_config(mosquitto, influxdb, tmp_path, SPOOL__ENABLED="false", MQTT__RECEIVE_MAXIMUM="50")
    await asyncio.to_thread(influxdb.stop)
    messages = readings(400)
    async with running_collector(config) as collector:
        publisher = PacedPublisher(mosquitto.port, messages, rate=2000)
        publisher.start()
        await asyncio.to_thread(publisher.finish)
        await wait_until(lambda: collector.source.read_pauses >= 1, what="reading paused")
        assert collector.counters["acked"] == 0
        started = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - started < 15  # the grace (5 s) and a little
    # Nothing was lost: a new run takes every message from the broker session once InfluxDB is back.
    await asyncio.to_thread(influxdb.start)
    async with running_collector(config) as collector:
        await wait_until(lambda: stored_count(influxdb) == len(messages), timeout_s=60, what="all stored")
    assert stored_seqs(influxdb) == list(range(len(messages)))


async def test_a_failed_internal_task_stops_the_collector(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    """An internal failure must end run() with False (the daemon exits 1 and systemd restarts it),
    not leave a process that looks healthy and does nothing."""
    from collector.app.service import Collector

    collector = Collector(collector_config(mosquitto, influxdb, tmp_path))

    async def broken() -> None:
        await asyncio.sleep(0.5)
        raise OSError("spool segment is corrupt")

    collector.committer.run_drainer = broken  # type: ignore[method-assign]
    result = await asyncio.wait_for(collector.run(asyncio.Event(), grace_s=2), timeout=20)
    assert result is False
