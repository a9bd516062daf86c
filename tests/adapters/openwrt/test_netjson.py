"""OpenWrt NetJSON DeviceMonitoring: an access point with wireless clients, and a wired router."""

from __future__ import annotations

import pytest

from collector.ingest.adapters.openwrt.adapter import NetJsonAdapter, band_of, width_of
from collector.ingest.routing import RoutingConfig
from schemas.canonical import ApClients, ApMetrics, IfCounters
from tests.adapters.helpers import fixture, ns, only, pipeline, points, source, utc

ADAPTER = NetJsonAdapter()


def test_access_point_gives_metrics_radios_client_summary_and_interfaces() -> None:
    readings = ADAPTER.decode(fixture("openwrt", "ap_monitoring.json"), source("ap-21009-flagey-02"), 0)
    assert [r.kind for r in readings] == ["ap", "ap", "ap"]
    ap: ApMetrics = only(readings, "ap.metrics/1")
    assert ap.ts == utc("2025-11-28T14:02:00Z")  # general.local_time
    assert ap.uptime_s == 432_000
    assert ap.cpu_pct == 25.0  # 100 - idle
    assert ap.mem_pct == pytest.approx(100 * (134_217_728 - 70_000_000) / 134_217_728)  # total - available
    assert ap.num_clients == 5
    assert (ap.uplink_rx_bytes, ap.uplink_tx_bytes, ap.uplink_rx_errors, ap.uplink_tx_dropped) == (
        55_555_555_555,
        4_444_444_444,
        4,
        2,
    )
    radios = {r.band: r for r in ap.radios}
    r24, r5 = radios["2.4"], radios["5"]
    assert (r24.channel, r24.width_mhz, r24.tx_power_dbm, r24.noise_floor_dbm, r24.num_clients) == (
        11,
        20,
        18.0,
        -95.0,
        2,
    )
    assert (r24.tx_bytes, r24.rx_bytes, r24.tx_total) == (3_000_000_000, 600_000_000, 2_500_000)
    assert (r5.channel, r5.width_mhz, r5.tx_power_dbm, r5.noise_floor_dbm, r5.num_clients) == (44, 80, 22.0, -92.0, 3)

    clients: ApClients = only(readings, "ap.clients/1")
    assert clients.num_clients == 5
    assert clients.rssi_avg_dbm == pytest.approx((-60 - 80 - 55 - 70 - 64) / 5)
    assert clients.rssi_min_dbm == -80.0
    # SNR = signal - noise (the client's own noise, else its radio's): 35, 15, 37, 20, 28
    assert clients.snr_avg_db == pytest.approx((35 + 15 + 37 + 20 + 28) / 5)
    assert clients.good_rf_clients == 3  # RSSI >= -67 dBm and SNR >= 25 dB
    assert clients.clients is None  # per-client entries never leave the adapter

    interfaces: IfCounters = only(readings, "if.counters/1")
    assert [i.name for i in interfaces.interfaces] == ["eth0", "wlan0", "wlan1"]  # br-lan has no statistics
    eth0 = interfaces.interfaces[0]
    assert (eth0.oper_status, eth0.in_octets, eth0.out_octets, eth0.in_errors, eth0.in_discards) == (
        "up",
        55_555_555_555,
        4_444_444_444,
        4,
        10,
    )
    assert eth0.in_ucast_pkts is None  # Linux counts all packets, not unicast: not mapped
    assert interfaces.sys_uptime_s == 432_000


def test_router_gives_interface_counters_only() -> None:
    readings = ADAPTER.decode(fixture("openwrt", "router_monitoring.json"), source("rtr-1"), 0)
    assert [(r.kind, r.message.schema_id) for r in readings] == [("router", "if.counters/1")]
    counters: IfCounters = readings[0].message  # type: ignore[assignment]
    assert counters.ts == utc("2025-11-28T14:01:00Z")
    assert counters.sys_uptime_s == 1_209_600
    wan = {i.name: i for i in counters.interfaces}["wan"]
    assert (wan.oper_status, wan.counter_bits) == ("unknown", 64)  # no "up" key
    assert (wan.in_octets, wan.out_octets, wan.in_errors, wan.out_errors, wan.in_discards, wan.out_discards) == (
        98_765_432_101,
        12_345_678_901,
        2,
        1,
        55,
        7,
    )


def test_without_local_time_the_receive_time_is_used() -> None:
    payload = fixture("openwrt", "router_monitoring.json").replace(b'"local_time": 1764338460,', b"")
    received = ns("2025-11-28T15:00:00.123456Z")
    stored = points(pipeline().process("openwrt/21004/s/rtr-1/monitoring", payload, False, received))
    assert {p["time"] for p in stored} == {received}


def test_stored_client_summary_has_no_mac() -> None:
    received = ns("2025-11-28T14:02:30Z")
    lines = pipeline().process(
        "openwrt/21009/flagey/ap-21009-flagey-02/monitoring", fixture("openwrt", "ap_monitoring.json"), False, received
    )
    stored = points(lines)
    summary = [p for p in stored if p["measurement"] == "ap_clients"]
    assert summary[0]["tags"] == {"device": "ap-21009-flagey-02", "kind": "ap", "nis": "21009", "site": "flagey"}
    assert summary[0]["fields"]["good_rf_clients"] == 3
    text = "\n".join(lines).lower()  # type: ignore[arg-type]
    for mac in ("a4:83:e7", "da:a1:19", "3c:22:fb", "f2:6e:0b", "8a:1b:2c"):
        assert mac not in text


def test_a_configured_kind_overrides_the_guess() -> None:
    routing = RoutingConfig.model_validate({"openwrt": {"kind": "cpe"}})
    stored = points(
        pipeline(routing).process(
            "openwrt/21004/s/rtr-1/monitoring",
            fixture("openwrt", "ap_monitoring.json"),
            False,
            ns("2025-11-28T14:02:30Z"),
        )
    )
    assert {p["tags"]["kind"] for p in stored} == {"cpe"}
    assert {p["measurement"] for p in stored} == {"netdev", "interface"}  # not an AP: no ap series


@pytest.mark.parametrize(
    ("mhz", "band"), [(2412, "2.4"), (2484, "2.4"), (5180, "5"), (5885, "5"), (5955, "6"), (60480, None)]
)
def test_bands(mhz: int, band: str | None) -> None:
    assert band_of(mhz) == band


@pytest.mark.parametrize(
    ("htmode", "width"),
    [("HT20", 20), ("HT40+", 40), ("VHT80", 80), ("HE160", 160), ("EHT320", 320), ("NOHT", 20), ("auto", None)],
)
def test_widths(htmode: str, width: int | None) -> None:
    assert width_of(htmode) == width
