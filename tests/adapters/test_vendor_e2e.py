"""Vendor payloads through the real broker into real InfluxDB: what an operator would see.

Each flavour (UniFi, OpenWrt NetJSON, Telegraf line protocol and JSON, Meraki) is published on its
default topic with recent times; the stored series must carry the canonical tags and the values of
the payload in canonical units, exactly as a canonical device's would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.app.config import load_config
from collector.delivery.deadletter import mask_macs
from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.adapters.helpers import ADAPTERS, fixture
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

NIS, SITE = "21004", "gare-du-midi"
MACS = ("a4:83:e7", "da:a1:19", "3c:22:fb", "f2:6e:0b", "8a:1b:2c", "02:1a:2b", "02:aa:00", "0c:8d:db")


def at(seconds_ago: int) -> datetime:
    moment = datetime.now(UTC) - timedelta(minutes=30) - timedelta(seconds=seconds_ago)
    return moment.replace(microsecond=0)


def ns(moment: datetime) -> int:
    return samples.ns(moment)


def unifi(moment: datetime) -> bytes:
    document = json.loads(fixture("unifi", "uap_wrapped_6ghz.json"))
    document["data"][0]["last_seen"] = int(moment.timestamp())
    return json.dumps(document).encode()


def netjson(moment: datetime) -> bytes:
    document = json.loads(fixture("openwrt", "ap_monitoring.json"))
    document["general"]["local_time"] = int(moment.timestamp())
    return json.dumps(document).encode()


def telegraf_lp(moment: datetime) -> bytes:
    return fixture("telegraf", "snmp_ifxtable_kind.lp").replace(b"1764338400123456789", str(ns(moment)).encode())


def telegraf_json(moment: datetime) -> bytes:
    document = json.loads(fixture("telegraf", "json_interface_batch.json"))
    for metric in document["metrics"]:
        metric["timestamp"] = int(moment.timestamp())
    return json.dumps(document).encode()


def meraki(moment: datetime) -> bytes:
    document = json.loads(fixture("meraki", "aps_went_down.json"))
    document["occurredAt"] = moment.isoformat().replace("+00:00", "Z")
    return json.dumps(document).encode()


def rows(influxdb: InfluxDB, measurement: str, device: str) -> list[dict[str, Any]]:
    found = points(influxdb, f"SELECT * FROM \"{measurement}\" WHERE device = '{device}'")
    return [{k: v for k, v in row.items() if v is not None} for row in found]


def everything(influxdb: InfluxDB) -> str:
    dump = []
    for measurement in ("ap", "ap_radio", "ap_clients", "netdev", "interface", "device_state", "device_event"):
        dump += points(influxdb, f'SELECT * FROM "{measurement}"')
    return json.dumps(dump).lower()


async def test_every_vendor_flavour_is_stored_as_canonical_series(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    t_unifi, t_openwrt, t_lp, t_json, t_meraki = at(50), at(40), at(30), at(20), at(10)
    canonical_twin = {
        "schema": "ap.metrics/1",
        "device_id": "ap-canonical",
        "ts": samples.iso(t_unifi),
        "seq": 0,
        "uptime_s": 864_000,
        "cpu_pct": 18.0,
        "mem_pct": 47.5,
        "temperature_c": 61.5,
        "num_clients": 39,
        "uplink_rx_bytes": 123_456_789_012,
        "uplink_tx_bytes": 23_456_789_012,
        "uplink_rx_errors": 3,
        "uplink_tx_dropped": 17,
        "radios": [
            {
                "band": "2.4",
                "channel": 1,
                "width_mhz": 20,
                "tx_power_dbm": 17,
                "cu_total_pct": 61,
                "cu_tx_pct": 7,
                "cu_rx_pct": 9,
                "num_clients": 11,
                "tx_bytes": 42_000_000,
                "rx_bytes": 5_000_000,
                "tx_retries": 12_000,
                "tx_total": 150_000,
            },
            {
                "band": "5",
                "channel": 100,
                "width_mhz": 80,
                "tx_power_dbm": 21,
                "cu_total_pct": 23,
                "cu_tx_pct": 10,
                "cu_rx_pct": 6,
                "num_clients": 25,
                "tx_bytes": 908_000_000,
                "rx_bytes": 71_000_000,
                "tx_retries": 30_500,
                "tx_total": 2_040_000,
            },
            {
                "band": "6",
                "channel": 37,
                "width_mhz": 160,
                "tx_power_dbm": 19,
                "cu_total_pct": 4,
                "cu_tx_pct": 2,
                "cu_rx_pct": 1,
                "num_clients": 3,
                "tx_bytes": 33_000_000,
                "rx_bytes": 900_000,
                "tx_retries": 100,
                "tx_total": 25_000,
            },
        ],
    }
    messages = [
        (f"unifi/{NIS}/{SITE}/ap-unifi/stat", unifi(t_unifi)),
        (f"bxl/v1/{NIS}/{SITE}/ap/ap-canonical/metrics", json.dumps(canonical_twin).encode()),
        (f"openwrt/{NIS}/{SITE}/ap-openwrt/monitoring", netjson(t_openwrt)),
        (f"telegraf/{NIS}/{SITE}/cpe-telegraf/snmp", telegraf_lp(t_lp)),
        (f"telegraf/{NIS}/{SITE}/sw-telegraf/snmp", telegraf_json(t_json)),
        (f"meraki/{NIS}/{SITE}/ap-meraki/alert", meraki(t_meraki)),
    ]
    config = collector_config(mosquitto, influxdb, tmp_path)
    async with running_collector(config) as collector:
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.publish(*messages[0])  # a redelivery overwrites its own points
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == len(messages) + 1, what="commit")
    assert dict(collector.dead_letters.counts) == {}

    tags = {"nis": NIS, "site": SITE}
    # UniFi: the same rows as its canonical twin, only the device differs
    unifi_ap, twin_ap = rows(influxdb, "ap", "ap-unifi"), rows(influxdb, "ap", "ap-canonical")
    assert len(unifi_ap) == 1 and [{**r, "device": "x"} for r in unifi_ap] == [{**r, "device": "x"} for r in twin_ap]
    assert unifi_ap[0] == {
        "_measurement": "ap",
        "time": ns(t_unifi),
        **tags,
        "kind": "ap",
        "device": "ap-unifi",
        "uptime_s": 864_000,
        "cpu_pct": 18.0,
        "mem_pct": 47.5,
        "temperature_c": 61.5,
        "num_clients": 39,
        "uplink_rx_bytes": 123_456_789_012,
        "uplink_tx_bytes": 23_456_789_012,
        "uplink_rx_errors": 3,
        "uplink_tx_dropped": 17,
        "seq": 0,
    }
    unifi_radios = rows(influxdb, "ap_radio", "ap-unifi")
    twin_radios = rows(influxdb, "ap_radio", "ap-canonical")
    assert len(unifi_radios) == 3
    assert [{**r, "device": "x"} for r in unifi_radios] == [{**r, "device": "x"} for r in twin_radios]

    # OpenWrt: AP metrics, radios, the client summary and interface counters
    (ap,) = rows(influxdb, "ap", "ap-openwrt")
    assert (ap["time"], ap["kind"], ap["cpu_pct"], ap["num_clients"], ap["uplink_rx_bytes"]) == (
        ns(t_openwrt),
        "ap",
        25.0,
        5,
        55_555_555_555,
    )
    (clients,) = rows(influxdb, "ap_clients", "ap-openwrt")
    assert (clients["num_clients"], clients["rssi_min_dbm"], clients["snr_avg_db"], clients["good_rf_clients"]) == (
        5,
        -80.0,
        27.0,
        3,
    )
    radios = {r["band"]: r for r in rows(influxdb, "ap_radio", "ap-openwrt")}
    assert (radios["5"]["channel"], radios["5"]["width_mhz"], radios["5"]["noise_floor_dbm"]) == (44, 80, -92.0)
    interfaces = {r["ifname"]: r for r in rows(influxdb, "interface", "ap-openwrt")}
    assert set(interfaces) == {"eth0", "wlan0", "wlan1"} and interfaces["eth0"]["in_octets"] == 55_555_555_555

    # Telegraf line protocol: 64-bit IF-MIB counters of a CPE (kind from its tag)
    (netdev,) = rows(influxdb, "netdev", "cpe-telegraf")
    assert netdev == {
        "_measurement": "netdev",
        "time": ns(t_lp),
        **tags,
        "kind": "cpe",
        "device": "cpe-telegraf",
        "sys_uptime_s": 7_776_000,
        "interfaces_up": 1,
        "interfaces_total": 2,
        "seq": 0,
    }
    wan = {r["ifname"]: r for r in rows(influxdb, "interface", "cpe-telegraf")}["wan0"]
    assert (wan["in_octets"], wan["counter_bits"], wan["speed_mbps"], wan["oper_status"]) == (
        9_123_456_789_012,
        64,
        100,
        "up",
    )

    # Telegraf JSON: 32-bit counters of a switch
    switch = {r["ifname"]: r for r in rows(influxdb, "interface", "sw-telegraf")}
    assert switch["GigabitEthernet0/1"]["in_octets"] == 4_000_000_000
    assert (switch["GigabitEthernet0/1"]["counter_bits"], switch["GigabitEthernet0/1"]["kind"]) == (32, "switch")

    # Meraki: the event and the state, at the alert's time
    (state,) = rows(influxdb, "device_state", "ap-meraki")
    assert state == {
        "_measurement": "device_state",
        "time": ns(t_meraki),
        **tags,
        "kind": "ap",
        "device": "ap-meraki",
        "state": "offline",
        "up": 0,
        "reason": "APs went down",
        "stamped_on_receipt": False,
    }
    (event,) = rows(influxdb, "device_event", "ap-meraki")
    assert (event["type"], event["severity"], event["attr_alert_type_id_s"]) == (
        "device.down",
        "critical",
        "stopped_reporting",
    )

    dump = everything(influxdb)
    for mac in MACS:
        assert mac not in dump, mac
    assert "not-a-real-secret" not in dump


async def test_malformed_vendor_payloads_and_unrouted_topics_are_dead_lettered(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    good = at(5)
    bad: list[tuple[str, bytes, str, str]] = [
        (f"unifi/{NIS}/{SITE}/ap-1/stat", unifi(good)[:200], "bad_json", "not JSON"),
        (
            f"unifi/{NIS}/{SITE}/ap-1/stat",
            unifi(good).replace(b'"num_sta": 39', b'"num_sta": "many"'),
            "invalid",
            "num_sta",
        ),
        (
            f"openwrt/{NIS}/{SITE}/ap-2/monitoring",
            netjson(good).replace(b'"frequency": 5220, ', b""),
            "invalid",
            "interfaces.3.wireless.frequency",
        ),
        (f"telegraf/{NIS}/{SITE}/sw-1/snmp", b"interface,ifName=x ifInOctets=12xi", "bad_line_protocol", "12xi"),
        (f"meraki/{NIS}/{SITE}/ap-3/alert", meraki(good).replace(b'"MR86"', b"null"), "invalid", "deviceModel"),
        (f"unifi/{NIS}/{SITE}/ap-1/events", unifi(good), "bad_topic", "'stat' expected"),
        ("acme/21004/box-1/status", b"{}", "no_route", "no route"),
    ]
    # Subscribed to everything (mqtt.topics = ["#"]), the collector also receives topics no route claims.
    config = collector_config(mosquitto, influxdb, tmp_path, MQTT__TOPICS='["#"]')
    async with running_collector(config) as collector:
        publisher.publish(f"unifi/{NIS}/{SITE}/ap-ok/stat", unifi(good))
        for topic, payload, _, _ in bad:
            publisher.publish(topic, payload)
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == len(bad) + 1, what="commit")
    records = [json.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_text().splitlines()]
    assert [(r["topic"], r["reason"]) for r in records] == [(t, reason) for t, _, reason, _ in bad]
    for record, (_, payload, _, word) in zip(records, bad, strict=True):
        assert word in record["detail"], record
        assert record["payload"] == mask_macs(payload.decode())  # client MACs masked, the rest as sent
    assert len(rows(influxdb, "ap", "ap-ok")) == 1  # the good one, between the bad ones, is stored


async def test_a_mapping_in_a_test_config_ingests_a_format_the_code_has_never_seen(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    mappings = load_config(ADAPTERS / "mapping" / "testdata" / "mappings.toml", environ={}).routing
    config = collector_config(mosquitto, influxdb, tmp_path).model_copy(update={"routing": mappings})
    assert "acme/fiberbox/#" in config.subscriptions and "sensa/#" in config.subscriptions
    moment = at(0)
    box = json.loads(fixture("mapping", "acme_fiberbox.json"))
    box["box"]["clock"] = moment.astimezone(UTC).isoformat()
    sensa = json.loads(fixture("mapping", "sensa_ap.json"))
    sensa["t"] = int(moment.timestamp() * 1000) + 250
    async with running_collector(config) as collector:
        publisher.publish("acme/fiberbox/21016/school-21016-003/cpe-21016-003", json.dumps(box))
        publisher.publish("sensa/21009/flagey/ap-21009-flagey-07/stats", json.dumps(sensa))
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == 2, what="commit")
    assert dict(collector.dead_letters.counts) == {}
    wan = {r["ifname"]: r for r in rows(influxdb, "interface", "cpe-21016-003")}["WAN"]
    assert wan == {
        "_measurement": "interface",
        "time": ns(moment),
        "nis": "21016",
        "site": "school-21016-003",
        "kind": "cpe",
        "device": "cpe-21016-003",
        "ifname": "WAN",
        "speed_mbps": 100,
        "counter_bits": 64,
        "in_octets": 1024**3,
        "out_octets": 2048 * 1024,
        "in_errors": 3,
        "in_discards": 1,
        "out_discards": 0,
        "oper_status": "up",
        "oper_up": 1,
    }
    (ap,) = rows(influxdb, "ap", "ap-21009-flagey-07")
    assert (ap["time"], ap["uptime_s"], ap["cpu_pct"], ap["temperature_c"]) == (
        ns(moment) + 250_000_000,
        131_400,
        12.5,
        50.0,
    )
