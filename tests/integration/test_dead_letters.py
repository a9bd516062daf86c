"""The dead-letter file on the real broker: bounded records, rotation, and retained refusals counted once
(docs/delivery.md, "Dead letters")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from collector.ops.health import render_metrics
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

LONG_TOPIC = f"bxl/v1/21004/{'t' * 60_000}/ap/ap-x/metrics"  # 60 KB
BAD_TOPIC = samples.topic("21004", "gare-centrale", "ap", "ap-retained", "metrics")


def dead_letter_files(folder: Path) -> list[Path]:
    """The current file and the rotated ones (not the digest key nor the retained memory)."""
    paths = folder.glob("dead-letter.jsonl*")
    return sorted(p for p in paths if p.name == "dead-letter.jsonl" or p.suffix[1:].isdigit())


def records(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in dead_letter_files(folder) for line in path.read_text().splitlines()]


async def test_a_refused_retained_message_is_dead_lettered_once_over_reconnects_and_restarts(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    publisher = Publisher(mosquitto.port, client_id="retained-publisher")
    publisher.publish(BAD_TOPIC, b"not json", retain=True)
    publisher.close()
    config = collector_config(mosquitto, influxdb, tmp_path)
    reconnects = 3
    async with running_collector(config) as collector:
        await wait_until(lambda: collector.counters["messages_committed"] == 1, what="retained refusal committed")
        for n in range(1, reconnects + 1):
            await asyncio.to_thread(mosquitto.restart)  # retained messages are kept (persistence)
            await wait_until(lambda n=n: collector.source.connects == n + 1, timeout_s=40, what="reconnect")
            await wait_until(lambda n=n: collector.counters["messages_committed"] == n + 1, what="replay committed")
        stats = collector.stats()
        assert stats["rejected_by_reason"] == {"bad_json": 1}  # what the device sent: once
        assert stats["retained_repeats_by_reason"] == {"bad_json": reconnects}
        assert stats["rejected"] == 1 and stats["acked"] == reconnects + 1  # repeats acknowledged, not lost
        metrics_line = 'city_telemetry_retained_repeats_by_reason_total{reason="bad_json"} 3'
        assert metrics_line in render_metrics(stats, "healthy")

    async with running_collector(config) as collector:  # a restart of the collector
        await wait_until(lambda: collector.counters["messages_committed"] == 1, what="replay after restart")
        assert dict(collector.dead_letters.counts) == {}
        assert dict(collector.dead_letters.retained_repeats) == {"bad_json": 1}
        live = Publisher(mosquitto.port, client_id="live-publisher")
        live.publish(BAD_TOPIC, b"not json")  # the device sends it again: that is a new refusal
        topic, payload, _ = samples.link_probe(1, samples.recent())
        live.publish(topic, json.dumps(payload))
        live.close()
        await wait_until(lambda: collector.counters["messages_committed"] == 3, what="live messages")
        assert dict(collector.dead_letters.counts) == {"bad_json": 1}

    stored = records(tmp_path)
    assert [(r["topic"], r["reason"], r.get("retained", False)) for r in stored] == [
        (BAD_TOPIC, "bad_json", True),
        (BAD_TOPIC, "bad_json", False),
    ]
    assert len(points(influxdb, "SELECT * FROM link_probe")) == 1


async def test_oversized_payloads_and_topics_leave_bounded_records_in_bounded_files(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(
        mosquitto, influxdb, tmp_path, DEAD_LETTER__MAX_FILE_BYTES="65536", DEAD_LETTER__KEEP_FILES="2"
    )
    big = b'{"schema": "ap.metrics/1", "pad": "' + b"p" * (900 * 1024) + b'"}'
    sent = 0
    async with running_collector(config) as collector:
        for i in range(40):
            publisher.publish(BAD_TOPIC, big)  # above limits.max_payload_bytes, below the broker's packet limit
            publisher.publish(LONG_TOPIC, b"{}")
            topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
            sent += 3
            publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == sent, timeout_s=60, what="commit")
        stats = collector.stats()
    assert stats["rejected_by_reason"] == {"payload_too_large": 40, "bad_topic": 40}
    assert stats["dead_letter_records_cut"] == 80
    assert stats["dead_letter_bytes_cut"] == 40 * (len(big) - 4096) + 40 * (len(LONG_TOPIC) - 4096)
    files = dead_letter_files(tmp_path)
    assert [p.name for p in files] == ["dead-letter.jsonl", "dead-letter.jsonl.1", "dead-letter.jsonl.2"]
    assert stats["dead_letter_files_deleted"] >= 1 and stats["dead_letter_bytes_deleted"] > 0
    assert all(p.stat().st_size <= 65536 for p in files)  # 80 refusals of 0.9 MiB and 60 KB: 75 MB whole
    for record in records(tmp_path):
        assert len(json.dumps(record)) < 10_000
    assert len(points(influxdb, "SELECT * FROM link_probe")) == 40  # every valid message around them
