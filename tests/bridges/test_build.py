"""What one complete poll publishes, built without I/O: client reports and Meraki mappings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.bridges.common import DeviceIndex
from collector.bridges.meraki.bridge import build_messages as meraki_messages
from collector.bridges.meraki.config import MerakiConfig
from collector.bridges.unifi.bridge import SiteData, build_messages, client_report
from collector.bridges.unifi.config import UnifiConfig
from schemas.canonical import ApClients

NOW = 1_764_338_400_123_456_789  # 2025-11-28T14:00:00.123456789Z


def test_a_client_report_counts_every_wireless_client_and_keeps_only_readable_ones() -> None:
    stations: list[dict[str, Any]] = [
        {"mac": "02:5e:11:00:00:01", "radio": "na", "signal": -60, "noise": -95, "rx_bytes": 10, "uptime": 5},
        {"mac": "02:5e:11:00:00:02", "radio": "ad", "signal": -60},  # 60 GHz: no band of ours
        {"mac": "02:5e:11:00:00:03", "radio": "ng", "signal": "-60"},  # text: not guessed
        {"mac": "not-a-mac", "radio": "ng", "signal": -60},
        {"mac": "02:5e:11:00:00:05", "radio": "6e", "signal": -70},  # no noise: no SNR
    ]
    report, skipped = client_report("ap-1", stations, "2025-11-28T14:00:00.123Z", 7)
    assert skipped == 3
    ApClients.model_validate(report)
    assert {k: v for k, v in report.items() if k != "clients"} == {
        "schema": "ap.clients/1",
        "device_id": "ap-1",
        "ts": "2025-11-28T14:00:00.123Z",
        "seq": 7,
        "num_clients": 5,
        "rssi_avg_dbm": -65.0,
        "rssi_min_dbm": -70,
        "good_rf_clients": 1,
        "snr_avg_db": 35.0,
    }
    assert report["clients"] == [
        {"mac": "02:5e:11:00:00:01", "band": "5", "rssi_dbm": -60, "snr_db": 35, "rx_bytes": 10, "connected_s": 5},
        {"mac": "02:5e:11:00:00:05", "band": "6", "rssi_dbm": -70},
    ]


def test_clients_go_to_their_access_point_whatever_the_mac_spelling_and_wired_ones_to_none(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    cfg = UnifiConfig(url="https://u:8443", username="ro", password_file=tmp_path / "pw")
    index = DeviceIndex([{"device": "ap-1", "kind": "ap", "nis": "21004", "site": "s", "mac": "80:2A:A8:00:00:01"}])
    site = SiteData(
        "default",
        [{"type": "uap", "mac": "80:2a:a8:00:00:01", "name": "x"}, {"type": "ugw", "mac": "80:2a:a8:00:00:02"}],
        [
            {"mac": "02:00:00:00:00:01", "ap_mac": "80-2A-A8-00-00-01", "radio": "na", "signal": -50},
            {"mac": "02:00:00:00:00:02", "ap_mac": "80:2a:a8:00:00:01", "is_wired": True},
        ],
    )
    built = build_messages([site], index, cfg, NOW)
    assert [topic for topic, _ in built.messages] == ["unifi/21004/s/ap-1/stat", "bxl/v1/21004/s/ap/ap-1/clients"]
    report = json.loads(built.messages[1][1])
    assert (report["num_clients"], report["ts"], report["seq"]) == (1, "2025-11-28T14:00:00.123Z", 1_764_338_400)
    assert built.skipped_types == {"ugw": 1} and built.not_in_inventory == []


def test_meraki_statuses_and_utilisation_become_states_and_per_band_events(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k")
    cfg = MerakiConfig.model_validate({"api": {"organization_id": "1", "api_key_file": str(tmp_path / "key")}})
    index = DeviceIndex([{"device": "ap-1", "kind": "ap", "nis": "21004", "site": "s", "serial": "Q-1"}])
    statuses = [
        {"serial": "Q-1", "status": "alerting", "productType": "wireless", "networkId": "N_1"},
        {"serial": "Q-2", "status": "dormant", "productType": "switch", "networkId": "N_1"},
        {"serial": "Q-3", "status": "rebooting?"},  # not a documented status: skipped, counted
    ]
    utilization = [{"serial": "Q-1", "byBand": [{"band": "6", "total": {"percentage": 7}}, {"band": "6E"}]}]
    built = meraki_messages(statuses, utilization, index, cfg, NOW)
    assert built.skipped == 2 and built.not_in_inventory == ["Q-2"]
    topics = [topic for topic, _ in built.messages]
    assert topics == [
        "bxl/v1/21004/s/ap/ap-1/state",
        "bxl/v1/unknown/N_1/switch/Q-2/state",
        "bxl/v1/21004/s/ap/ap-1/event",
    ]
    event = json.loads(built.messages[2][1])
    assert (event["type"], event["attributes"]) == (
        "meraki.channel_utilization.band_6",
        {"band": "6", "total_pct": 7.0},
    )
    assert isinstance(event["attributes"]["total_pct"], float)


def test_the_stats_line_points_at_earlier_events_only_when_something_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.bridges import common

    lines: list[dict[str, object]] = []
    monkeypatch.setattr(common.log, "info", lambda event, **fields: lines.append({"event": event, **fields}))
    stats = common.Stats("unifi")
    stats.add("published", 12)
    stats.add("publish_unacked", 0)
    stats.log()
    stats.poll_failed("http_error")
    stats.log()
    quiet, failed = lines
    assert quiet["published"] == 12 and "hint" not in quiet
    assert failed["polls_failed"] == 1 and "see the events before this line" in str(failed["hint"])


def test_a_timeout_says_what_it_was() -> None:
    """The trial read 'GET ...: TimeoutError: ' in the bridges' logs: a timeout's own text is empty."""
    import aiohttp

    from collector.bridges.common import transport_error

    error = transport_error(TimeoutError(), "GET /api/s/default/stat/device")
    assert (error.reason, error.detail) == (
        "timeout",
        "GET /api/s/default/stat/device: TimeoutError: no complete answer within timeout_s",
    )
    refused = transport_error(aiohttp.ClientConnectionError("Connection refused"), "GET /x")
    assert refused.detail == "GET /x: ClientConnectionError: Connection refused"
