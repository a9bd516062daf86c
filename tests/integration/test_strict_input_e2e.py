"""Issue 13, items 1-5, on the real broker and database: what the outside test got through is now
refused (dead-lettered with its reason, counted) or stored exactly, and the valid messages around
it are stored.

1. a string or a boolean where the schema says number;  2. a key given twice;
3. two events of one device 1 ns apart;  4. one device's attribute type against another's;
5. Telegraf values the adapter used to turn into tags and numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

NIS, SITE = "21004", "gare-du-midi"


def canonical(kind: str, device: str, message: str) -> str:
    return samples.topic(NIS, SITE, kind, device, message)


def metrics(device: str, moment: datetime, **changes: Any) -> bytes:
    payload = {
        "schema": "ap.metrics/1",
        "device_id": device,
        "ts": samples.iso(moment),
        "seq": 1,
        "uptime_s": 86400,
        "cpu_pct": 12.5,
        "num_clients": 23,
        "uplink_rx_bytes": 1000,
    }
    payload.update(changes)
    return json.dumps(payload).encode()


def event(device: str, ts: str, attributes: dict[str, Any]) -> bytes:
    payload = {
        "schema": "device.event/1",
        "device_id": device,
        "ts": ts,
        "seq": 1,
        "type": "dfs.channel_change",
        "attributes": attributes,
    }
    return json.dumps(payload).encode()


def telegraf(line: str) -> bytes:
    return line.encode()


async def test_what_the_outside_test_got_through_is_refused_or_stored_exactly(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    second = samples.iso(moment).removesuffix(".000Z")
    t_ns = samples.ns(moment)
    telegraf_topic = f"telegraf/{NIS}/{SITE}/sw-1/snmp"
    bad: list[tuple[str, bytes, str, str]] = [
        # 1. types
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, cpu_pct="12"), "invalid", "cpu_pct"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, cpu_pct=True), "invalid", "cpu_pct"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, num_clients="23"), "invalid", "num_clients"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, num_clients=True), "invalid", "num_clients"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, uptime_s=" 86400 "), "invalid", "uptime_s"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, seq="7"), "invalid", "seq"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, uplink_rx_bytes=True), "invalid", "uplink_rx"),
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment, num_clients=23.0), "invalid", "num_clients"),
        # 2. a key given twice
        (
            canonical("ap", "ap-1", "metrics"),
            metrics("ap-1", moment)[:-1] + b', "num_clients": 99}',
            "bad_json",
            '"num_clients"',
        ),
        # 5. Telegraf
        (
            telegraf_topic,
            json.dumps(
                {"name": "interface", "fields": {"ifName": {"x": 1}, "ifOperStatus": 1}, "timestamp": t_ns // 10**9}
            ).encode(),
            "invalid",
            "ifName",
        ),
        (
            telegraf_topic,
            json.dumps({"name": "interface", "fields": {"ifName": True}, "timestamp": t_ns // 10**9}).encode(),
            "invalid",
            "ifName",
        ),
        (
            telegraf_topic,
            json.dumps({"name": "interface", "fields": {"ifName": [1, 2]}, "timestamp": t_ns // 10**9}).encode(),
            "invalid",
            "ifName",
        ),
        (telegraf_topic, telegraf(f"interface ifIndex=1.5,ifOperStatus=1i {t_ns}"), "invalid", "ifIndex"),
        (
            telegraf_topic,
            json.dumps(
                {"name": "interface", "tags": {"ifName": "e0"}, "fields": {"ifOperStatus": 1}, "timestamp": second}
            ).encode(),
            "invalid",
            "timestamp",
        ),
        (telegraf_topic, telegraf(f"interface,ifName=e0 ifSpeed=-5i,ifOperStatus=1i {t_ns}"), "invalid", "ifSpeed"),
    ]
    ts_a, ts_b = f"{second}.123456001Z", f"{second}.123456999Z"
    good = [
        (canonical("ap", "ap-1", "metrics"), metrics("ap-1", moment)),
        # 3. two events of one device 1 ns apart... 998 ns apart, both beyond the microsecond
        (canonical("ap", "ap-ns", "event"), event("ap-ns", ts_a, {"n": 1})),
        (canonical("ap", "ap-ns", "event"), event("ap-ns", ts_b, {"n": 2})),
        (canonical("ap", "ap-ns", "event"), event("ap-ns", f"{second}.123456002Z", {"n": 3})),
        (telegraf_topic, telegraf(f"interface,ifName=e0 ifSpeed=1000000000i,ifOperStatus=1i {t_ns}")),
    ]
    config = collector_config(mosquitto, influxdb, tmp_path)
    async with running_collector(config) as collector:
        # 4. device A's string attribute is written (and committed) first: with one field per
        # attribute name, device B's integer would then be refused by InfluxDB (field type conflict).
        publisher.publish(canonical("ap", "ap-a", "event"), event("ap-a", samples.iso(moment), {"from_channel": "36"}))
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == 1, what="device A's event")
        publisher.publish(canonical("ap", "ap-b", "event"), event("ap-b", samples.iso(moment), {"from_channel": 36}))
        for i, (topic, payload, _, _) in enumerate(bad):
            publisher.publish(topic, payload)
            topic, payload = good[i % len(good)]
            publisher.publish(topic, payload)  # the valid messages between the bad ones
        publisher.flush()
        total = 2 + 2 * len(bad)
        await wait_until(lambda: collector.counters["messages_committed"] == total, what="every message committed")

    records = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert [(r["topic"], r["reason"]) for r in records] == [(t, reason) for t, _, reason, _ in bad]
    for record, (_, _, _, word) in zip(records, bad, strict=True):
        assert word in record["detail"], record
    assert dict(collector.dead_letters.counts) == {"invalid": len(bad) - 1, "bad_json": 1}

    # 1, 2: the only ap point is the valid message's: nothing coerced, nothing from the duplicate.
    (ap,) = points(influxdb, "SELECT * FROM ap WHERE device = 'ap-1'")
    assert (ap["time"], ap["cpu_pct"], ap["num_clients"], ap["uptime_s"], ap["seq"]) == (t_ns, 12.5, 23, 86400, 1)
    # 3: every event at its exact nanosecond, none merged.
    stored = points(influxdb, "SELECT * FROM device_event WHERE device = 'ap-ns'")
    assert [(r["time"], r["attr_n_i"]) for r in stored] == [
        (t_ns + 123_456_001, 1),
        (t_ns + 123_456_002, 3),
        (t_ns + 123_456_999, 2),
    ]
    # 4: both devices' from_channel are stored, each as sent.
    events = {r["device"]: r for r in points(influxdb, "SELECT * FROM device_event WHERE type = 'dfs.channel_change'")}
    assert events["ap-a"]["attr_from_channel_s"] == "36" and events["ap-a"]["attr_from_channel_i"] is None
    assert events["ap-b"]["attr_from_channel_i"] == 36 and events["ap-b"]["attr_from_channel_s"] is None
    # 5: the one valid Telegraf interface, named and sized as sent; no tag made of a Python repr.
    interfaces = points(influxdb, "SELECT * FROM interface WHERE device = 'sw-1'")
    assert [(r["ifname"], r["speed_mbps"], r["time"]) for r in interfaces] == [("e0", 1000, t_ns)]
    tags = points(influxdb, 'SHOW TAG VALUES FROM interface WITH KEY = "ifname"')
    assert [t["value"] for t in tags] == ["e0"]
