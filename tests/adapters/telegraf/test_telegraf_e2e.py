"""Telegraf as it publishes, through real mosquitto, the collector and InfluxDB.

The payloads are the test data built as Telegraf's snmp and ping inputs and its influx and json
serializers produce them (testdata/ATTRIBUTION.md): per-table timestamps seconds apart, ifTable and
ifXTable as two tables and as one, 32- and 64-bit counters, pings; shifted to recent times and
published QoS 1 on the topics deploy/telegraf/telegraf.conf gives each device. Every interface of
every poll must be stored once with the device's tags; a half poll and a ping that measured nothing
are dead-lettered with their reason and counted.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests.adapters.helpers import fixture
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

T0_S = 1_764_338_400  # the fixtures' minute, 2025-11-28T14:00:00Z
_STAMP = re.compile(rb" ([0-9]{19})$", re.MULTILINE)
SWITCH, SWITCH_JSON, CPE32, CPE64, HALF = (
    "sw-21004-gdm-01",
    "sw-21004-gdm-02",
    "cpe-21016-007",
    "cpe-21016-008",
    "sw-21004-gdm-03",
)


def base() -> int:
    """A recent whole minute (inside the collector's accepted window), in seconds."""
    moment = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    return int(moment.timestamp())


def shifted_lp(name: str, start_s: int) -> bytes:
    delta = (start_s - T0_S) * 10**9
    return _STAMP.sub(lambda m: b" " + str(int(m.group(1)) + delta).encode(), fixture("telegraf", name))


def shifted_json(name: str, start_s: int) -> bytes:
    document = json.loads(fixture("telegraf", name))
    for metric in document["metrics"]:
        metric["timestamp"] += start_s - T0_S
    return json.dumps(document, separators=(",", ":")).encode()


def rows(influxdb: InfluxDB, measurement: str, device: str) -> list[dict[str, Any]]:
    found = points(influxdb, f"SELECT * FROM \"{measurement}\" WHERE device = '{device}' ORDER BY time")
    return [{k: v for k, v in row.items() if v is not None and k != "_measurement"} for row in found]


def interface(t: int, ifname: str, bits: int, speed: int, oper: str, **counters: int) -> dict[str, Any]:
    return {
        "time": t,
        "ifname": ifname,
        "counter_bits": bits,
        "speed_mbps": speed,
        "oper_status": oper,
        "oper_up": int(oper == "up"),
        **counters,
    }


async def test_telegraf_polls_and_pings_are_stored_once_each_and_half_polls_refused(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    start = base()
    ns = 10**9
    two_tables = shifted_lp("snmp_two_tables.lp", start)
    half = b"".join(line for line in two_tables.splitlines(keepends=True) if b"ifOperStatus" not in line)
    messages = [
        (f"telegraf/21004/gare-du-midi/{SWITCH}/snmp", two_tables),
        (f"telegraf/21004/gare-du-midi/{SWITCH_JSON}/snmp", shifted_json("json_two_tables_batch.json", start)),
        (f"telegraf/21016/school-21016-007/{CPE32}/snmp", shifted_lp("snmp_iftable_32bit.lp", start)),
        (f"telegraf/21016/school-21016-008/{CPE64}/snmp", shifted_lp("snmp_ifxtable_kind.lp", start)),
        (f"telegraf/21016/school-21016-007/{CPE32}/ping", shifted_lp("ping.lp", start)),
        (f"telegraf/21004/gare-du-midi/{HALF}/snmp", half),
        (f"telegraf/21016/school-21016-007/{CPE32}/ping", shifted_lp("ping_failed.lp", start)),
    ]
    config = collector_config(mosquitto, influxdb, tmp_path)
    async with running_collector(config) as collector:
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.publish(*messages[0])  # a redelivery: the same points again, overwritten
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == len(messages) + 1, what="commit")

    # refused with their reason, dead-lettered and counted
    assert dict(collector.dead_letters.counts) == {"unsupported": 2}
    dead = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert [(d["topic"], d["reason"]) for d in dead] == [
        (messages[5][0], "unsupported"),
        (messages[6][0], "unsupported"),
    ]
    assert "interface 'GigabitEthernet0/1' has no ifTable columns" in dead[0]["detail"]
    assert "half poll is not stored" in dead[0]["detail"]
    assert "'no-such-host.city.example' measured nothing (result_code 2" in dead[1]["detail"]
    assert rows(influxdb, "netdev", HALF) == [] and rows(influxdb, "interface", HALF) == []

    # the switch, ifTable + ifXTable as two tables seconds apart: two polls, three interfaces each, once
    t1, t2 = (start * ns + 312_000_000), (start + 60) * ns + 298_000_000  # each poll's first row (the scalars)
    tags = {"nis": "21004", "site": "gare-du-midi", "kind": "switch", "device": SWITCH}
    assert rows(influxdb, "netdev", SWITCH) == [
        {"time": t1, **tags, "sys_uptime_s": 7_776_000, "interfaces_up": 2, "interfaces_total": 3, "seq": 0},
        {"time": t2, **tags, "sys_uptime_s": 7_776_060, "interfaces_up": 2, "interfaces_total": 3, "seq": 0},
    ]
    gi1_in, gi1_out, gi2_in, gi2_out = 9_123_456_789_012, 1_234_567_890_123, 4_400_000_000, 52_000

    def switch_poll(t: int, bump: int) -> list[dict[str, Any]]:
        a_in, a_out = gi1_in + bump * 1_000_003, gi1_out + bump * 250_001
        b_in, b_out = gi2_in + bump * 2 * 1_000_003, gi2_out + bump * 2 * 250_001
        return [
            {
                **tags,
                **interface(t, "Gi0/1", 64, 1000, "up", in_octets=a_in, out_octets=a_out),
                "in_ucast_pkts": a_in // 700,
                "out_ucast_pkts": a_out // 900,
                "in_errors": 2,
                "out_errors": 0,
                "in_discards": 1,
                "out_discards": 0,
            },
            {
                **tags,
                **interface(t, "Gi0/2", 64, 1000, "up", in_octets=b_in, out_octets=b_out),
                "in_ucast_pkts": b_in // 700,
                "out_ucast_pkts": b_out // 900,
                "in_errors": 4,
                "out_errors": 1,
                "in_discards": 2,
                "out_discards": 0,
            },
            {
                **tags,
                **interface(t, "Gi0/3", 64, 100, "down", in_octets=0, out_octets=0),
                "in_ucast_pkts": 0,
                "out_ucast_pkts": 0,
                "in_errors": 6,
                "out_errors": 2,
                "in_discards": 3,
                "out_discards": 0,
            },
        ]

    by_time_name = sorted(rows(influxdb, "interface", SWITCH), key=lambda r: (r["time"], r["ifname"]))
    assert by_time_name == switch_poll(t1, 0) + switch_poll(t2, 60)

    # the same polls through the JSON serializer: the same points at whole seconds
    json_rows = sorted(rows(influxdb, "interface", SWITCH_JSON), key=lambda r: (r["time"], r["ifname"]))
    json_tags = {**tags, "device": SWITCH_JSON}
    assert json_rows == [
        {**r, **json_tags, "time": t}
        for r, t in zip(by_time_name, [start * ns] * 3 + [(start + 60) * ns] * 3, strict=True)
    ]

    # a school CPE with only ifTable: 32-bit counters, the second poll's wan counter wrapped
    cpe_tags = {"nis": "21016", "site": "school-21016-007", "kind": "cpe", "device": CPE32}
    c1, c2 = start * ns + 104_000_000, (start + 60) * ns + 101_000_000
    cpe = sorted(rows(influxdb, "interface", CPE32), key=lambda r: (r["time"], r["ifname"]))
    assert [(r["time"], r["ifname"], r["counter_bits"], r["in_octets"], r["out_octets"]) for r in cpe] == [
        (c1, "lan", 32, 77, 88),
        (c1, "wan", 32, 4_294_000_000, 123_456_789),
        (c2, "lan", 32, 77 + 60 * 40_000, 88 + 60 * 10_000),
        (c2, "wan", 32, (4_294_000_000 + 60 * 20_000) % 2**32, 123_456_789 + 60 * 5_000),
    ]
    assert cpe[1] == {
        **cpe_tags,
        **interface(c1, "wan", 32, 100, "up", in_octets=4_294_000_000, out_octets=123_456_789),
        "in_ucast_pkts": 4_294_000,
        "out_ucast_pkts": 123_456,
        "in_errors": 1,
        "out_errors": 0,
        "in_discards": 0,
        "out_discards": 0,
    }
    assert [r["sys_uptime_s"] for r in rows(influxdb, "netdev", CPE32)] == [864_000, 864_060]

    # one table holding ifXTable and ifTable columns: 64-bit counters, one poll
    (wan64,) = [r for r in rows(influxdb, "interface", CPE64) if r["ifname"] == "wan0"]
    assert (wan64["time"], wan64["counter_bits"], wan64["in_octets"], wan64["speed_mbps"]) == (
        start * ns + 123_456_789,
        64,
        9_123_456_789_012,
        100,
    )
    assert len(rows(influxdb, "interface", CPE64)) == 2

    # pings: link probes of the CPE, one per target
    probe_tags = {"nis": "21016", "site": "school-21016-007", "kind": "cpe", "device": CPE32, "method": "icmp"}
    assert rows(influxdb, "link_probe", CPE32) == [
        {
            "time": (start + 2) * ns,
            **probe_tags,
            "target": "10.21.16.1",
            "sent": 5,
            "received": 5,
            "loss_pct": 0.0,
            "rtt_min_ms": 11.305,
            "rtt_avg_ms": 12.0,
            "rtt_max_ms": 14.872,
            "seq": 0,
        },
        {
            "time": (start + 2) * ns,
            **probe_tags,
            "target": "core-gw.city.example",
            "sent": 5,
            "received": 0,
            "loss_pct": 100.0,
            "seq": 0,
        },
    ]


TELEGRAF_CONF = Path(__file__).resolve().parents[3] / "deploy" / "telegraf" / "telegraf.conf"


def backlog(device_rows: int, start_s: int) -> tuple[bytes, int]:
    """What Telegraf publishes for one device after the broker was away: its outputs.mqtt groups a batch
    of ``metric_batch_size`` metrics by topic, so one message holds up to that many rows of the device,
    poll after poll (here the switch's two-table polls, a minute apart). Returns it and its poll count."""
    two = fixture("telegraf", "snmp_two_tables.lp").splitlines(keepends=True)  # two polls of 7 rows
    lines: list[bytes] = []
    polls = 0
    while (polls + 1) * 7 <= device_rows:
        block = b"".join(two[:7]) if polls % 2 == 0 else b"".join(two[7:14])
        minute = start_s + (polls // 2) * 120  # the fixture's second poll is already a minute later
        delta = (minute - T0_S) * 10**9

        def shifted(m: re.Match[bytes], d: int = delta) -> bytes:
            return b" " + str(int(m.group(1)) + d).encode()

        lines.append(_STAMP.sub(shifted, block))
        polls += 1
    return b"".join(lines), polls


@pytest.mark.parametrize("sized", [False, True], ids=["collector defaults", "sized as telegraf.conf says"])
async def test_a_telegraf_backlog_after_a_broker_outage_is_stored_when_sized_as_documented(
    sized: bool, influxdb: InfluxDB, tmp_path: Path
) -> None:
    """telegraf.conf keeps metrics while the broker is away (metric_buffer_limit) and sends them back in
    batches of metric_batch_size, one message per device. Such a message is larger than the shipped
    broker's max_packet_size and the collector's default payload limit (256 KiB): refused whole. With
    the broker and the collector sized as telegraf.conf says, every poll of it is stored."""
    conf = TELEGRAF_CONF.read_text()
    batch = int(re.search(r"^\s*metric_batch_size = (\d+)", conf, re.MULTILINE).group(1))  # type: ignore[union-attr]
    wanted = int(re.search(r"limits\.max_payload_bytes = (\d+)", conf).group(1))  # type: ignore[union-attr]
    packet = int(re.search(r"max_packet_size (\d+)", conf).group(1))  # type: ignore[union-attr]
    shipped = (TELEGRAF_CONF.parents[1] / "mosquitto" / "city-telemetry.conf").read_text()
    shipped_packet = int(re.search(r"^max_packet_size (\d+)", shipped, re.MULTILINE).group(1))  # type: ignore[union-attr]
    payload, polls = backlog(batch, base() - 24 * 3600)
    assert shipped_packet < len(payload) <= wanted <= packet - 4096, len(payload)
    broker = Mosquitto(tmp_path / "mosquitto", extra_config=f"max_packet_size {packet}\n")
    broker.start()
    publisher = Publisher(broker.port)
    try:
        settings = {"limits__max_payload_bytes": str(wanted)} if sized else {}
        config = collector_config(broker, influxdb, tmp_path, **settings)
        async with running_collector(config) as collector:
            publisher.publish(f"telegraf/21004/gare-du-midi/{SWITCH}/snmp", payload)
            publisher.flush()
            await wait_until(lambda: collector.counters["messages_committed"] == 1, what="commit", timeout_s=60)
    finally:
        publisher.close()
        broker.kill()
    stored = points(influxdb, f"SELECT count(sys_uptime_s) FROM netdev WHERE device = '{SWITCH}'")
    if sized:
        assert dict(collector.dead_letters.counts) == {}
        assert stored[0]["count"] == polls
    else:
        assert dict(collector.dead_letters.counts) == {"payload_too_large": 1}
        assert stored == []
