"""The ingest path end to end: real mosquitto, real influxd, the collector in between."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

MEASUREMENTS = [
    "ap",
    "ap_radio",
    "ap_clients",
    "netdev",
    "interface",
    "link_probe",
    "device_state",
    "device_event",
]


def stored(influxdb: InfluxDB) -> list[dict[str, Any]]:
    rows = []
    for measurement in MEASUREMENTS:
        for row in points(influxdb, f'SELECT * FROM "{measurement}"'):
            rows.append({key: value for key, value in row.items() if value is not None})
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def canonical(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_every_kind_arrives_exactly(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path, protocol: str
) -> None:
    n = 12
    expected: list[dict[str, Any]] = []
    messages = []
    for k, build in enumerate(samples.BUILDERS):
        for i in range(n):
            topic, payload, rows = build(i, samples.recent(offset_s=k * 100 + i * 1.001))
            messages.append((topic, json.dumps(payload)))
            expected.extend(rows)
    config = collector_config(mosquitto, influxdb, tmp_path, MQTT__PROTOCOL=f'"{protocol}"')
    async with running_collector(config) as collector:
        for topic, text in messages:
            publisher.publish(topic, text)
        # A redelivery (same message again, as QoS 1 allows) must leave one point, not two.
        publisher.publish(*messages[0])
        publisher.publish(*messages[-1])
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == len(messages) + 2, what="commit")
        assert collector.counters["acked"] == len(messages) + 2
    assert dict(collector.dead_letters.counts) == {}
    actual = stored(influxdb)
    assert len(actual) == len(expected)
    assert actual == canonical(expected)
    # The client MACs of ap.clients never reach the database, in any field or tag.
    dump = json.dumps(actual)
    assert "a4:83:e7" not in dump and "da:a1:19" not in dump


BAD_MESSAGES: list[tuple[str, bytes, str, str]] = [
    # (topic, payload, reason, a word the detail must contain)
    (samples.topic("21004", "s", "ap", "ap-1", "metrics"), b'{"schema": "ap.metrics/1", ', "bad_json", "EOF"),
    (samples.topic("21004", "s", "ap", "ap-1", "metrics"), b"\xff\xfe garbage", "bad_json", "JSON"),
    (samples.topic("21004", "s", "ap", "ap-1", "metrics"), b"[1, 2]", "bad_json", "object"),
    (
        samples.topic("21004", "s", "ap", "ap-1", "metrics"),
        b'{"schema":"ap.metrics/1","device_id":"ap-1","ts":"2026-01-01T00:00:00Z","seq":1,"uptime_s":"long",'
        b'"num_clients":1}',
        "invalid",
        "uptime_s",
    ),
    (
        samples.topic("21004", "s", "ap", "ap-1", "metrics"),
        b'{"schema":"ap.metrics/1","device_id":"ap-1","ts":"2026-01-01T00:00:00Z","seq":1,"uptime_s":1,'
        b'"num_clients":1,"cpu_pct":140}',
        "invalid",
        "cpu_pct",
    ),
    (
        samples.topic("21004", "s", "ap", "ap-1", "metrics"),
        b'{"schema":"ap.metrics/9","device_id":"ap-1","ts":"2026-01-01T00:00:00Z","seq":1}',
        "unknown_schema",
        "ap.metrics/9",
    ),
    (
        samples.topic("21004", "s", "ap", "ap-1", "metrics"),
        b'{"schema":"device.state/1","device_id":"ap-1","state":"online"}',
        "topic_mismatch",
        "metrics",
    ),
    (
        samples.topic("21004", "s", "ap", "ap-2", "state"),
        b'{"schema":"device.state/1","device_id":"ap-1","state":"online"}',
        "topic_mismatch",
        "ap-2",
    ),
    ("bxl/v1/21004/s/ap/ap-1/metrics/extra", b"{}", "bad_topic", "levels"),
    ("bxl/v2/21004/s/ap/ap-1/metrics", b"{}", "bad_topic", "v1"),
    (samples.topic("21004", "s", "ap", "ap-1", "gossip"), b"{}", "bad_topic", "gossip"),
]


async def test_invalid_messages_are_dead_lettered_and_valid_ones_stored(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path, DEAD_LETTER__TOPIC='"city-telemetry/dead-letter"')
    dead_letter_topic: list[bytes | bytearray] = []
    watcher = Publisher(mosquitto.port, client_id="dead-letter-watcher")
    watcher.client.on_message = lambda client, userdata, message: dead_letter_topic.append(message.payload)
    watcher.client.subscribe("city-telemetry/dead-letter", qos=1)
    good = []
    async with running_collector(config) as collector:
        for i, (topic, payload, _, _) in enumerate(BAD_MESSAGES):
            t, good_payload, rows = samples.link_probe(i, samples.recent(offset_s=i))
            good.append(rows[0])
            publisher.publish(t, json.dumps(good_payload))  # valid and invalid interleaved
            publisher.publish(topic, payload)
        publisher.flush()
        total = 2 * len(BAD_MESSAGES)
        await wait_until(lambda: collector.counters["messages_committed"] == total, what="commit")
        assert collector.counters["acked"] == total
    await wait_until(lambda: len(dead_letter_topic) == len(BAD_MESSAGES), timeout_s=10, what="dead letters")
    watcher.close()

    stored_rows = [
        {k: v for k, v in row.items() if v is not None} for row in points(influxdb, "SELECT * FROM link_probe")
    ]
    assert canonical(stored_rows) == canonical(good)
    for measurement in ("ap", "device_state"):
        assert points(influxdb, f"SELECT * FROM {measurement}") == []

    records = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert [json.loads(p) for p in dead_letter_topic] == records
    assert len(records) == len(BAD_MESSAGES)
    for record, (topic, payload, reason, word) in zip(records, BAD_MESSAGES, strict=True):
        assert record["topic"] == topic
        assert record["reason"] == reason, record
        assert word in record["detail"], record
        original = (
            record["payload"].encode()
            if "payload" in record
            else __import__("base64").b64decode(record["payload_base64"])
        )
        assert original == payload
    assert sum(collector.dead_letters.counts.values()) == len(BAD_MESSAGES)


@pytest.mark.parametrize("spool", [False, True], ids=["broker-holds", "spool-holds"])
async def test_influxdb_outage_loses_nothing(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path, spool: bool
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path, SPOOL__ENABLED=str(spool).lower(), SPOOL__AFTER_S="1.0")
    sent = []
    async with running_collector(config) as collector:
        for i in range(50):
            t, payload, rows = samples.ap_clients(i, samples.recent(offset_s=i))
            publisher.publish(t, json.dumps(payload))
            sent.append(rows[0])
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == 50, what="first commit")
        influxdb.stop()
        for i in range(50, 300):
            t, payload, rows = samples.ap_clients(i, samples.recent(offset_s=i))
            publisher.publish(t, json.dumps(payload))
            sent.append(rows[0])
        publisher.flush()
        await wait_until(lambda: collector.writer.retries >= 3, what="failed writes")
        if spool:
            # Spooled to disk (fsynced), then acknowledged: the broker can forget them.
            await wait_until(lambda: collector.counters["acked"] == 300, what="ack after spooling")
            # Two lines a message: the client summary and its pseudonymised presence (docs/kpis.md).
            assert collector.counters["lines_spooled"] == 500
            assert collector.spool is not None and collector.spool.lines == 500
        else:
            await asyncio.sleep(2)
            assert collector.counters["acked"] == 50  # nothing acknowledged while InfluxDB is away
        influxdb.start()
        await wait_until(lambda: collector.counters["messages_committed"] == 300, what="commit after outage")
        await wait_until(lambda: collector.spool is None or collector.spool.empty, what="spool drained")
        assert collector.counters["acked"] == 300
    stored_rows = [
        {k: v for k, v in row.items() if v is not None} for row in points(influxdb, "SELECT * FROM ap_clients")
    ]
    assert canonical(stored_rows) == canonical(sent)
    assert collector.counters["lines_drained"] == (500 if spool else 0)


async def test_acknowledgements_reach_the_broker(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    """After a clean run, the collector's session holds nothing: every PUBACK (sent a batch at a
    time) was taken by the broker. The same session then gets only what was published later."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    config = collector_config(mosquitto, influxdb, tmp_path)
    async with running_collector(config) as collector:
        for i in range(500):
            topic, payload, _ = samples.ap_clients(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        await wait_until(lambda: collector.counters["acked"] == 500, what="acks")
    late_topic, late_payload, _ = samples.ap_clients(999, samples.recent(offset_s=999))
    publisher.publish(late_topic, json.dumps(late_payload))
    publisher.flush()

    redelivered: list[bytes | bytearray] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.mqtt.client_id, protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: redelivered.append(message.payload)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 60
    client.connect("127.0.0.1", mosquitto.port, clean_start=False, properties=properties)
    client.loop_start()
    await asyncio.sleep(1.5)
    client.disconnect()
    client.loop_stop()
    assert redelivered == [json.dumps(late_payload).encode()]
