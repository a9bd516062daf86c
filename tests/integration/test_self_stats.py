"""The collector's own statistics in InfluxDB (collector/ops/selfstats.py) equal what was published."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from collector.ops.selfstats import SelfStatsReporter, stats_lines
from collector.sink.config import InfluxConfig
from collector.sink.influxdb import InfluxWriter
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

VALID, BAD_JSON, INVALID, BAD_TOPIC = 12, 3, 4, 2


def last_stats(influxdb: InfluxDB) -> dict[str, Any]:
    rows = points(influxdb, "SELECT * FROM city_telemetry_collector ORDER BY time DESC LIMIT 1")
    return rows[0] if rows else {}


async def test_the_last_statistics_point_counts_what_was_published_stored_and_rejected(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path, OPS__SELF_STATS_EVERY_S="0.2", KPI__ENABLED="false")
    async with running_collector(config) as collector:
        for i in range(VALID):
            topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
        for i in range(BAD_JSON):
            publisher.publish(samples.topic("21004", "s", "ap", "ap-1", "metrics"), b"{not json" + bytes([48 + i]))
        for i in range(INVALID):
            topic, payload, _ = samples.link_probe(100 + i, samples.recent(offset_s=i))
            payload["sent"] = "100"  # a string where the schema says integer: refused, never coerced
            publisher.publish(topic, json.dumps(payload))
        for i in range(BAD_TOPIC):
            publisher.publish(f"bxl/v1/21004/site-{i}", b"{}")
        publisher.flush()
        total = VALID + BAD_JSON + INVALID + BAD_TOPIC
        await wait_until(lambda: collector.counters["messages_committed"] == total, what="commit")
        await wait_until(
            lambda: last_stats(influxdb).get("messages_committed") == total, timeout_s=10, what="a statistics point"
        )
        live = last_stats(influxdb)
    assert live["instance"] == f"collector-{tmp_path.name}" and live["host"] == socket.gethostname()
    assert (live["received"], live["messages_committed"], live["acked"]) == (total, total, total)
    assert live["lines_written"] == VALID and live["rejected"] == BAD_JSON + INVALID + BAD_TOPIC
    assert (live["spool_bytes"], live["backpressure"], live["health"], live["health_code"]) == (0, 0, "healthy", 0)
    assert live["mqtt_connects"] == 1 and live["self_stats_failures"] == 0
    assert live["write_answered"] >= 1 and live["write_seconds"] > 0
    reasons = points(influxdb, "SELECT last(messages) AS messages FROM city_telemetry_rejected GROUP BY reason")
    assert {row["reason"]: row["messages"] for row in reasons} == {
        "bad_json": BAD_JSON,
        "invalid": INVALID,
        "bad_topic": BAD_TOPIC,
    }
    # The point written at stop has the final counts, and one point per interval came before it.
    final = last_stats(influxdb)
    assert final["received"] == total and final["self_stats_written"] >= live["self_stats_written"]
    assert len(points(influxdb, "SELECT received FROM city_telemetry_collector")) >= 2
    latency = points(influxdb, "SELECT write_latency_ms, write_latency_max_ms FROM city_telemetry_collector")
    with_latency = [row for row in latency if row["write_latency_ms"] is not None]
    assert with_latency and all(0 < r["write_latency_ms"] <= r["write_latency_max_ms"] < 5000 for r in with_latency)
    assert len(points(influxdb, "SELECT * FROM link_probe")) == VALID  # the statistics are not readings


async def test_a_statistics_write_that_fails_is_counted_logged_and_bounded(
    influxdb: InfluxDB, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens on the port: the write gives up within its interval, counts, and says what to check."""
    from collector.ops.logs import configure_logging

    configure_logging("info", "json")
    try:
        stats = {"received": 5, "health": "healthy", "rejected_by_reason": {"bad_json": 1}}
        writer = InfluxWriter(InfluxConfig(url=f"http://127.0.0.1:{free_port()}", retry_max_s=0.2))
        reporter = SelfStatsReporter(
            1.0, lambda: {**stats, **reporter.counters()}, writer, {"instance": "c1", "host": "h"}
        )
        started = asyncio.get_running_loop().time()
        assert await reporter.write_once(timeout_s=0.5) is False
        assert await reporter.write_once(timeout_s=0.5) is False
        assert asyncio.get_running_loop().time() - started < 3
        assert reporter.counters() == {"self_stats_written": 0, "self_stats_failures": 2}
        logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        warnings = [entry for entry in logged if entry["event"] == "self_stats_write_failed"]
        assert len(warnings) == 1 and "InfluxDB reachable" in warnings[0]["hint"]  # once per run of failures
        # Pointed at the real InfluxDB, the same reporter recovers, and its point says it failed twice.
        reporter.writer = InfluxWriter(InfluxConfig(url=influxdb.url))
        assert await reporter.write_once(timeout_s=5) is True
        await reporter.final()
        await writer.close()
        row = last_stats(influxdb)
        assert (row["received"], row["self_stats_failures"], row["health_code"]) == (5, 2, 0)
    finally:
        configure_logging("warning", "console")


def test_statistics_lines_are_typed_and_one_per_reason() -> None:
    stats = {
        "received": 7,
        "backpressure": True,
        "drain_rate_lines_s": 0,
        "write_seconds": 0.25,
        "broker_dropped": None,
        "health": "degraded",
        "rejected_by_reason": {"bad_json": 2},
        "retained_repeats_by_reason": {"bad_json": 1, "invalid": 3},
    }
    lines = stats_lines(stats, {"instance": "c 1", "host": "h"}, 10**18, {"write_latency_ms": 1.5})
    assert lines == [
        "city_telemetry_collector,host=h,instance=c\\ 1 acked=0i,backpressure=1i,backpressure_episodes=0i,"
        'batches_abandoned=0i,drain_rate_lines_s=0i,health="degraded",health_code=1i,lines_drained=0i,'
        "lines_spooled=0i,lines_written=0i,messages_committed=0i,received=7i,rejected=0i,write_latency_ms=1.5,"
        "write_seconds=0.25 1000000000000000000",
        "city_telemetry_rejected,host=h,instance=c\\ 1,reason=bad_json messages=2i,retained_repeats=1i "
        "1000000000000000000",
        "city_telemetry_rejected,host=h,instance=c\\ 1,reason=invalid messages=0i,retained_repeats=3i "
        "1000000000000000000",
    ]


async def test_a_hanging_statistics_write_does_not_hold_up_ingest(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    """The statistics go to a server that accepts connections and never answers: readings are still
    stored at once, and each statistics write gives up after its interval (counted)."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody ever answers
        config = collector_config(mosquitto, influxdb, tmp_path, OPS__SELF_STATS_EVERY_S="0.2", KPI__ENABLED="false")
        async with running_collector(config) as collector:
            self_stats = collector.self_stats
            assert self_stats is not None
            self_stats.writer = InfluxWriter(
                InfluxConfig(url=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=60)
            )
            await wait_until(lambda: self_stats.failures >= 1, timeout_s=10, what="a write given up")
            started = asyncio.get_running_loop().time()
            for i in range(VALID):
                topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
                publisher.publish(topic, json.dumps(payload))
            publisher.flush()
            await wait_until(lambda: collector.counters["lines_written"] == VALID, timeout_s=5, what="stored")
            assert asyncio.get_running_loop().time() - started < 3
            assert collector.stats()["self_stats_failures"] >= 1
    assert len(points(influxdb, "SELECT * FROM link_probe")) == VALID
