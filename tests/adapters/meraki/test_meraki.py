"""Meraki webhook alerts -> device events, and device state for APs going down and coming up."""

from __future__ import annotations

import pytest

from collector.ingest.adapters.meraki.adapter import MerakiAdapter, snake
from schemas.canonical import DeviceEvent, DeviceState
from tests.adapters.helpers import fixture, ns, only, pipeline, points, source, utc

ADAPTER = MerakiAdapter()


def test_ap_went_down_is_an_event_and_an_offline_state() -> None:
    readings = ADAPTER.decode(fixture("meraki", "aps_went_down.json"), source("ap-21004-gp-01"), 0)
    assert [r.kind for r in readings] == ["ap", "ap"]  # deviceModel MR86
    event: DeviceEvent = only(readings, "device.event/1")
    assert event.ts == utc("2025-11-28T14:04:31.25Z")  # occurredAt, not sentAt
    assert (event.type, event.severity, event.message, event.seq) == ("device.down", "critical", "APs went down", 0)
    assert event.attributes == {"alert_type_id": "stopped_reporting", "alert_id": "643451796760556597"}
    state: DeviceState = only(readings, "device.state/1")
    assert (state.state, state.reason, state.ts, state.seq) == (
        "offline",
        "APs went down",
        utc("2025-11-28T14:04:31.25Z"),
        None,
    )


def test_ap_came_up_is_online() -> None:
    readings = ADAPTER.decode(fixture("meraki", "aps_came_up.json"), source("ap-21004-gp-01"), 0)
    event: DeviceEvent = only(readings, "device.event/1")
    assert (event.type, event.severity) == ("device.up", "info")  # "informational"
    state: DeviceState = only(readings, "device.state/1")
    assert (state.state, state.ts) == ("online", utc("2025-11-28T14:20:59Z"))


def test_switch_port_disconnected_keeps_the_port_facts() -> None:
    readings = ADAPTER.decode(fixture("meraki", "switch_port_disconnected.json"), source("sw-21004-gp"), 0)
    assert [(r.kind, r.message.schema_id) for r in readings] == [("switch", "device.event/1")]  # no state
    event: DeviceEvent = readings[0].message  # type: ignore[assignment]
    assert (event.type, event.severity) == ("port.down", "warning")
    assert event.attributes == {
        "alert_type_id": "port_disconnected",
        "alert_id": "643451796760556610",
        "port_num": 7,
        "description": "Switch port is down",
        "status": "down",
        "prev_status": "1 Gbps",
        "port_desc": "AP Grand-Place 01",
    }  # fmt: skip  (the nested lldp object is not a single value)


def test_client_data_never_leaves_the_adapter() -> None:
    received = ns("2025-11-28T14:12:00Z")
    lines = pipeline().process(
        "meraki/21004/grand-place/gw-21004-gp/alert", fixture("meraki", "client_connectivity.json"), False, received
    )
    stored = points(lines)
    assert [p["measurement"] for p in stored] == ["device_event"]
    assert stored[0]["tags"] == {
        "device": "gw-21004-gp",
        "kind": "router",
        "nis": "21004",
        "site": "grand-place",
        "type": "meraki.client_connectivity",
    }
    assert stored[0]["fields"] == {
        "severity": "info",
        "message": "Client connectivity changed",
        "seq": 0,
        "attr_alert_id_s": "643451796760556700",
        "attr_alert_type_id_s": "client_connectivity",
        "attr_connected_s": "false",
    }
    text = "\n".join(lines).lower()  # type: ignore[arg-type]
    for secret in ("a4:83:e7", "a4-83-e7", "10.21.4.123", "marie", "k1234", "not-a-real-secret"):
        assert secret not in text


def test_stored_state_and_event_share_the_alert_time() -> None:
    stored = points(
        pipeline().process(
            "meraki/21004/grand-place/ap-21004-gp-01/alert",
            fixture("meraki", "aps_went_down.json"),
            False,
            ns("2025-11-28T14:05:03Z"),
        )
    )
    by_measurement = {p["measurement"]: p for p in stored}
    assert by_measurement["device_state"]["fields"] == {
        "state": "offline",
        "up": 0,
        "reason": "APs went down",
        "stamped_on_receipt": False,
    }
    assert {p["time"] for p in stored} == {ns("2025-11-28T14:04:31.25Z")}


@pytest.mark.parametrize(
    ("key", "name"), [("portNum", "port_num"), ("prevStatus", "prev_status"), ("oldIfUp", "old_if_up"), ("ip", "ip")]
)
def test_snake_case(key: str, name: str) -> None:
    assert snake(key) == name
