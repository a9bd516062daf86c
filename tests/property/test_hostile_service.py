"""Hostile messages through a real mosquitto into a running collector: each one is dead-lettered and
counted under its reason, the valid messages around them are stored exactly (special characters
included), and the collector keeps taking messages afterwards."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until
from tests.property.inputs import SEEDS

pytestmark = pytest.mark.servers


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


def hostile_messages() -> list[tuple[str, bytes, str]]:
    """(topic, payload, the reason it must be refused with)."""
    now = samples.recent()
    state_topic, state, _ = samples.device_state(1, now)
    metrics_topic, metrics, _ = samples.ap_metrics(2, now)
    counters_topic, counters, _ = samples.if_counters(3, now)
    event_topic, event, _ = samples.device_event(4, now)
    unifi = SEEDS["unifi/uap_wrapped_6ghz.json"].payload
    return [
        ("bxl/v1/21004/gare,kind=x/switch/sw-001/state", _json(state), "bad_topic"),
        ("bxl/v1/21004/gare du midi/switch/sw-001/state", _json(state), "bad_topic"),
        ('bxl/v1/21004/"gare"/switch/sw-001/state', _json(state), "bad_topic"),
        ("bxl/v1/21004/gare\\/switch/sw-001/state", _json(state), "bad_topic"),
        ("unifi/21004/gare=1/ap-1/stat", unifi, "bad_topic"),
        (state_topic, b"[" * 100_000, "bad_json"),
        (state_topic, b"{" + b" " * 300_000 + b"}", "payload_too_large"),  # mosquitto takes up to 1 MiB
        (state_topic, b"\xff\xfe\x00 not UTF-8", "bad_json"),
        (state_topic, _json({**state, "ts": "9999-12-31T23:59:59Z"}), "timestamp_out_of_range"),
        (metrics_topic, _json({**metrics, "cpu_pct": float("nan")}), "invalid"),
        (metrics_topic, _json({**metrics, "uplink_rx_bytes": 2**64}), "invalid"),
        (event_topic, _json({**event, "attributes": {"x,y=1 z": 1}}), "invalid"),
        (event_topic, _json({**event, "message": "two\nlines"}), "invalid"),
        (counters_topic, _json({**counters, "interfaces": [{"name": "ge\\0", "oper_status": "up"}]}), "unencodable"),
        (
            "telegraf/21004/s/sw-1/snmp",
            b"interface,ifName=e0 ifHCInOctets=1i 99999999999999999999999",
            "bad_line_protocol",
        ),
        ("meraki/21004/s/ap-3/alert", b'{"a":' * 40_000, "bad_json"),
    ]


async def test_hostile_messages_are_counted_and_the_collector_keeps_storing(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path)
    hostile = hostile_messages()
    tricky = ['radar "ch 52", moved', "a\\b", "x=1 y,z", "# not a comment", "é😀"]
    async with running_collector(config) as collector:
        expected_rows = []
        for i, (topic, payload, _) in enumerate(hostile):
            good_topic, good, rows = samples.device_event(100 + i, samples.recent(offset_s=i))
            good["message"] = rows[0]["message"] = tricky[i % len(tricky)]
            expected_rows += rows
            publisher.publish(topic, payload)
            publisher.publish(good_topic, json.dumps(good))  # valid and hostile interleaved
        publisher.flush()
        total = 2 * len(hostile)
        await wait_until(lambda: collector.counters["messages_committed"] == total, what="all committed")
        assert dict(collector.dead_letters.counts) == dict(Counter(reason for _, _, reason in hostile))

        # Still running: a message sent after all of that is stored too.
        last_topic, last, last_rows = samples.link_probe(7, samples.recent())
        publisher.publish(last_topic, json.dumps(last))
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == total + 1, what="the last message")

    stored = sorted(points(influxdb, "SELECT * FROM device_event GROUP BY *"), key=lambda row: row["device"])
    assert [row["message"] for row in stored] == [row["message"] for row in expected_rows]
    assert [(row["time"], row["device"], row["type"]) for row in stored] == [
        (row["time"], row["device"], row["type"]) for row in expected_rows
    ]
    assert len(points(influxdb, "SELECT * FROM link_probe")) == len(last_rows)

    records = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert [(r["topic"], r["reason"]) for r in records] == [(t, reason) for t, _, reason in hostile]
    for record in records:
        assert record["detail"].strip() and len(record["detail"]) <= 500, record["detail"][:200]
