"""Canonical test messages, and the InfluxDB rows each must become, written out independently of
the normaliser so that the end-to-end tests check the data model rather than restate the code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

Row = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def topic(nis: str, site: str, kind: str, device: str, message: str) -> str:
    return f"bxl/v1/{nis}/{site}/{kind}/{device}/{message}"


def base_tags(nis: str, site: str, kind: str, device: str) -> dict[str, str]:
    return {"nis": nis, "site": site, "kind": kind, "device": device}


def ap_metrics(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"ap-{i:04d}"
    payload = {
        "schema": "ap.metrics/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "uptime_s": 1000 + i,
        "cpu_pct": 12.5,
        "mem_pct": 40.25,
        "num_clients": i % 40,
        "uplink_rx_bytes": 10**12 + i,
        "uplink_tx_bytes": 2 * 10**12 + i,
        "radios": [
            {
                "band": "2.4",
                "channel": 1 + i % 13,
                "width_mhz": 20,
                "tx_power_dbm": 17,
                "noise_floor_dbm": -92.0,
                "cu_total_pct": 55.5,
                "num_clients": i % 10,
                "tx_retries": 7 * i,
                "tx_total": 100 * i,
            },
            {
                "band": "5",
                "channel": 36,
                "width_mhz": 80,
                "tx_power_dbm": 20.5,
                "cu_total_pct": 12.0,
                "num_clients": i % 30,
            },
        ],
    }
    tags = base_tags("21004", "gare-du-midi", "ap", device)
    rows = [
        {
            "_measurement": "ap",
            "time": ns(t),
            **tags,
            "uptime_s": 1000 + i,
            "cpu_pct": 12.5,
            "mem_pct": 40.25,
            "num_clients": i % 40,
            "uplink_rx_bytes": 10**12 + i,
            "uplink_tx_bytes": 2 * 10**12 + i,
            "seq": i,
        },
        {
            "_measurement": "ap_radio",
            "time": ns(t),
            **tags,
            "band": "2.4",
            "channel": 1 + i % 13,
            "width_mhz": 20,
            "tx_power_dbm": 17.0,
            "noise_floor_dbm": -92.0,
            "cu_total_pct": 55.5,
            "num_clients": i % 10,
            "tx_retries": 7 * i,
            "tx_total": 100 * i,
        },
        {
            "_measurement": "ap_radio",
            "time": ns(t),
            **tags,
            "band": "5",
            "channel": 36,
            "width_mhz": 80,
            "tx_power_dbm": 20.5,
            "cu_total_pct": 12.0,
            "num_clients": i % 30,
        },
    ]
    return topic("21004", "gare-du-midi", "ap", device, "metrics"), payload, rows


def ap_clients(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"ap-{i:04d}"
    payload = {
        "schema": "ap.clients/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "num_clients": 2,
        "rssi_avg_dbm": -61.5,
        "rssi_min_dbm": -70.0,
        "snr_avg_db": 30.0,
        "good_rf_clients": 1,
        "rx_bytes": 5000 + i,
        "tx_bytes": 9000 + i,
        "clients": [
            {"mac": "a4:83:e7:12:34:56", "band": "5", "rssi_dbm": -53, "snr_db": 38, "rx_bytes": 10},
            {"mac": "da:a1:19:00:00:01", "band": "2.4", "rssi_dbm": -70, "snr_db": 22},
        ],
    }
    tags = base_tags("21009", "place-flagey", "ap", device)
    rows = [
        {
            "_measurement": "ap_clients",
            "time": ns(t),
            **tags,
            "num_clients": 2,
            "rssi_avg_dbm": -61.5,
            "rssi_min_dbm": -70.0,
            "snr_avg_db": 30.0,
            "good_rf_clients": 1,
            "rx_bytes": 5000 + i,
            "tx_bytes": 9000 + i,
            "seq": i,
        },
    ]
    return topic("21009", "place-flagey", "ap", device, "clients"), payload, rows


def if_counters(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"cpe-school-{i:03d}"
    payload = {
        "schema": "if.counters/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "sys_uptime_s": 86_400 + i,
        "interfaces": [
            {
                "name": "ge-0/0/0",
                "oper_status": "up",
                "speed_mbps": 100,
                "counter_bits": 32,
                "in_octets": 4_000_000_000 + i,
                "out_octets": 123_456 + i,
                "in_errors": 0,
                "out_discards": 3,
            },
            {"name": "ge-0/0/1", "oper_status": "down", "speed_mbps": 1000, "in_octets": 2**40 + i},
        ],
    }
    tags = base_tags("21015", "athenee-schaerbeek", "cpe", device)
    rows = [
        {
            "_measurement": "netdev",
            "time": ns(t),
            **tags,
            "sys_uptime_s": 86_400 + i,
            "interfaces_up": 1,
            "interfaces_total": 2,
            "seq": i,
        },
        {
            "_measurement": "interface",
            "time": ns(t),
            **tags,
            "ifname": "ge-0/0/0",
            "speed_mbps": 100,
            "counter_bits": 32,
            "in_octets": 4_000_000_000 + i,
            "out_octets": 123_456 + i,
            "in_errors": 0,
            "out_discards": 3,
            "oper_status": "up",
            "oper_up": 1,
        },
        {
            "_measurement": "interface",
            "time": ns(t),
            **tags,
            "ifname": "ge-0/0/1",
            "speed_mbps": 1000,
            "counter_bits": 64,
            "in_octets": 2**40 + i,
            "oper_status": "down",
            "oper_up": 0,
        },
    ]
    return topic("21015", "athenee-schaerbeek", "cpe", device, "interfaces"), payload, rows


def link_probe(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"cpe-school-{i:03d}"
    payload = {
        "schema": "link.probe/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "target": "dc-core-1",
        "method": "twamp",
        "sent": 100,
        "received": 100 - i % 5,
        "rtt_min_ms": 0.75,
        "rtt_avg_ms": 1.5,
        "rtt_max_ms": 4.25,
        "jitter_ms": 0.125,
    }
    tags = base_tags("21001", "coovi", "cpe", device)
    rows = [
        {
            "_measurement": "link_probe",
            "time": ns(t),
            **tags,
            "target": "dc-core-1",
            "method": "twamp",
            "sent": 100,
            "received": 100 - i % 5,
            "loss_pct": float(i % 5),
            "rtt_min_ms": 0.75,
            "rtt_avg_ms": 1.5,
            "rtt_max_ms": 4.25,
            "jitter_ms": 0.125,
            "seq": i,
        },
    ]
    return topic("21001", "coovi", "cpe", device, "probe"), payload, rows


def device_state(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"sw-{i:03d}"
    state = ["online", "offline", "rebooting"][i % 3]
    payload = {
        "schema": "device.state/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "state": state,
        "reason": f"test {i}",
    }
    tags = base_tags("21013", "parvis", "switch", device)
    rows = [
        {
            "_measurement": "device_state",
            "time": ns(t),
            **tags,
            "state": state,
            "up": int(state == "online"),
            "reason": f"test {i}",
            "seq": i,
            "stamped_on_receipt": False,
        },
    ]
    return topic("21013", "parvis", "switch", device, "state"), payload, rows


def device_event(i: int, t: datetime) -> tuple[str, dict[str, Any], list[Row]]:
    device = f"ap-{i:04d}"
    payload = {
        "schema": "device.event/1",
        "device_id": device,
        "ts": iso(t),
        "seq": i,
        "type": "dfs.channel_change",
        "severity": "warning",
        "message": f'radar on "ch 52", moved {i}',
        "attributes": {"from_channel": 52, "to_channel": 100, "band": "5", "forced": True},
    }
    tags = base_tags("21016", "parc-wolvendael", "ap", device)
    rows = [
        {
            "_measurement": "device_event",
            "time": ns(t),
            **tags,
            "type": "dfs.channel_change",
            "severity": "warning",
            "message": f'radar on "ch 52", moved {i}',
            "seq": i,
            "attr_from_channel_i": 52,
            "attr_to_channel_i": 100,
            "attr_band_s": "5",
            "attr_forced_b": True,
        },
    ]
    return topic("21016", "parc-wolvendael", "ap", device, "event"), payload, rows


Builder = Callable[[int, datetime], tuple[str, dict[str, Any], list[Row]]]

BUILDERS: list[Builder] = [ap_metrics, ap_clients, if_counters, link_probe, device_state, device_event]


def recent(offset_s: float = 0.0) -> datetime:
    """A millisecond-rounded moment an hour ago (well inside the collector's time window)."""
    moment = datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=offset_s)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
