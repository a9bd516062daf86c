"""UniFi ``stat/device``: the real unpoller dumps and our own wrapped, 6 GHz variant."""

from __future__ import annotations

import pytest

from collector.ingest.adapters.unifi.adapter import UnifiAdapter
from schemas.canonical import ApMetrics, IfCounters
from tests.adapters.helpers import fixture, ns, only, pipeline, points, source, utc

ADAPTER = UnifiAdapter()


def test_uap_dump_gives_the_access_point_and_its_radios() -> None:
    readings = ADAPTER.decode(fixture("unifi", "uap_stat_device.json"), source("ap-21004-0001"), 0)
    assert [r.kind for r in readings] == ["ap"]
    ap: ApMetrics = only(readings, "ap.metrics/1")
    assert ap.device_id == "ap-21004-0001"
    assert ap.ts == utc("2019-07-04T07:29:41Z")  # last_seen, epoch seconds
    assert ap.seq == 0
    assert ap.uptime_s == 3_105_845
    assert ap.cpu_pct == 24.7 and ap.mem_pct == 52.2  # "system-stats" strings, percent
    assert ap.temperature_c is None  # has_temperature: false
    assert ap.num_clients == 6
    assert (ap.uplink_rx_bytes, ap.uplink_tx_bytes) == (3_752_803_309, 1_604_707_458)
    assert (ap.uplink_rx_errors, ap.uplink_tx_dropped) == (0, 341)
    radios = {r.band: r for r in ap.radios}
    assert set(radios) == {"2.4", "5"}
    r24, r5 = radios["2.4"], radios["5"]
    assert (r24.channel, r24.width_mhz, r24.tx_power_dbm, r24.num_clients) == (6, 40, 22.0, 2)
    assert (r24.cu_total_pct, r24.cu_tx_pct, r24.cu_rx_pct) == (20.0, 4.0, 14.0)
    # counters are the sums over the radio's VAPs (ath0 + ath1 on wifi0, ath2 + ath3 on wifi1)
    assert (r24.tx_bytes, r24.rx_bytes) == (965_488_630 + 0, 1_017_366_419 + 0)
    assert (r24.tx_retries, r24.tx_total) == (7_194_267, 9_547_096)
    assert (r5.channel, r5.width_mhz, r5.num_clients) == (36, 80, 4)
    assert (r5.tx_bytes, r5.rx_bytes) == (834_859_686 + 922_841, 3_358_763_522 + 61_253)
    assert (r5.tx_retries, r5.tx_total) == (9_067_488, 62_855_552)


def test_usw_dump_gives_port_counters() -> None:
    readings = ADAPTER.decode(fixture("unifi", "usw_stat_device.json"), source("sw-21004-01"), 0)
    assert [r.kind for r in readings] == ["switch"]
    sw: IfCounters = only(readings, "if.counters/1")
    assert sw.ts == utc("2019-07-05T06:54:40Z")
    assert sw.sys_uptime_s == 3_188_809
    ports = {i.name: i for i in sw.interfaces}
    assert list(ports) == ["port1", "port2", "port3"]
    p1 = ports["port1"]
    assert (p1.oper_status, p1.speed_mbps, p1.counter_bits) == ("up", 100, 64)
    assert (p1.in_octets, p1.out_octets) == (227_167_212, 507_571_083)
    # unicast = packets - multicast - broadcast
    assert p1.in_ucast_pkts == 1_153_365 - 28_260 - 1_202
    assert p1.out_ucast_pkts == 4_465_717 - 2_284_158 - 417_327
    assert (p1.in_errors, p1.out_errors, p1.in_discards, p1.out_discards) == (12, 0, 0, 0)
    assert ports["port2"].oper_status == "down"
    assert ports["port3"].in_octets == 3_456_851_429_405  # beyond 32 bits: 64-bit counters


def test_wrapped_element_with_temperatures_and_a_6ghz_radio() -> None:
    readings = ADAPTER.decode(fixture("unifi", "uap_wrapped_6ghz.json"), source("ap-21004-gdm-03"), 0)
    ap: ApMetrics = only(readings, "ap.metrics/1")
    assert ap.ts == utc("2025-11-28T14:00:00Z")
    assert ap.temperature_c == 61.5  # the "cpu" sensor of the temperatures list
    assert (ap.cpu_pct, ap.mem_pct, ap.num_clients, ap.uptime_s) == (18.0, 47.5, 39, 864_000)
    radios = {r.band: r for r in ap.radios}
    assert (radios["6"].channel, radios["6"].width_mhz, radios["6"].tx_power_dbm) == (37, 160, 19.0)
    assert radios["5"].tx_bytes == 900_000_000 + 8_000_000  # two SSIDs on one radio
    assert radios["5"].num_clients == 25
    assert (ap.uplink_rx_bytes, ap.uplink_tx_dropped) == (123_456_789_012, 17)


def test_stored_series_carry_the_same_tags_as_a_canonical_device() -> None:
    received = ns("2025-11-28T14:00:05Z")
    stored = points(
        pipeline().process(
            "unifi/21004/gare-du-midi/ap-21004-gdm-03/stat", fixture("unifi", "uap_wrapped_6ghz.json"), False, received
        )
    )
    assert [p["measurement"] for p in stored] == ["ap", "ap_radio", "ap_radio", "ap_radio"]
    tags = {"device": "ap-21004-gdm-03", "kind": "ap", "nis": "21004", "site": "gare-du-midi"}
    assert stored[0]["tags"] == tags
    assert [p["tags"] for p in stored[1:]] == [{**tags, "band": b} for b in ("2.4", "5", "6")]
    assert stored[0]["time"] == ns("2025-11-28T14:00:00Z")
    assert stored[0]["fields"] == {
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
    assert stored[3]["fields"]["tx_retries"] == 100


def test_device_macs_never_reach_the_lines() -> None:
    for name, received in (
        ("uap_stat_device.json", "2019-07-04T07:30:00Z"),
        ("usw_stat_device.json", "2019-07-05T06:55:00Z"),
    ):
        lines = pipeline().process("unifi/21004/s/dev-1/stat", fixture("unifi", name), False, ns(received))
        assert isinstance(lines, list) and lines
        text = "\n".join(lines)
        assert "80:22" not in text and "22:22:00" not in text and "f0:22" not in text


@pytest.mark.parametrize("kind", ["cpe", "ap"])
def test_the_topic_kind_wins(kind: str) -> None:
    readings = ADAPTER.decode(fixture("unifi", "usw_stat_device.json"), source("sw-1", kind), 0)
    assert [r.kind for r in readings] == [kind]
