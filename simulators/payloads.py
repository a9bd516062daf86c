"""What a device knows at a report instant (snapshots), and the canonical messages built from it.

The simulation fills a snapshot from its state; the canonical format here and the vendor formats in
``simulators/vendors.py`` are different renderings of the same snapshot, so a device publishes the
same truth whatever it speaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

UINT32 = 2**32


def iso_ms(t_ms: int) -> str:
    """RFC 3339, UTC, milliseconds: ``2026-11-28T14:00:00.250Z``."""
    return datetime.fromtimestamp(t_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{t_ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class RadioSnap:
    band: str
    channel: int
    width_mhz: int
    tx_power_dbm: int
    noise_floor_dbm: float
    cu_total_pct: float
    cu_tx_pct: float
    cu_rx_pct: float
    num_clients: int
    tx_bytes: int
    rx_bytes: int
    tx_retries: int
    tx_total: int


@dataclass(frozen=True, slots=True)
class ClientSnap:
    mac: str
    band: str
    rssi_dbm: int
    snr_db: int
    rx_bytes: int
    tx_bytes: int
    connected_s: int


@dataclass(frozen=True, slots=True)
class ApSnap:
    device: str
    ts_ms: int  # the device's clock (skew included)
    seq: int
    uptime_s: int
    cpu_pct: float
    mem_pct: float
    temperature_c: float
    num_clients: int
    uplink_rx_bytes: int
    uplink_tx_bytes: int
    uplink_rx_errors: int
    uplink_tx_dropped: int
    radios: tuple[RadioSnap, ...]
    clients: tuple[ClientSnap, ...]
    interval_rx_bytes: int  # since the last clients report
    interval_tx_bytes: int


@dataclass(frozen=True, slots=True)
class IfSnap:
    name: str
    oper_status: str
    speed_mbps: int
    in_octets: int  # true 64-bit running totals; 32-bit devices report them modulo 2**32
    out_octets: int
    in_ucast_pkts: int
    out_ucast_pkts: int
    in_errors: int
    out_errors: int
    in_discards: int
    out_discards: int


@dataclass(frozen=True, slots=True)
class NetSnap:
    device: str
    ts_ms: int
    seq: int
    sys_uptime_s: int
    counter_bits: int
    interfaces: tuple[IfSnap, ...]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def ap_metrics(s: ApSnap) -> dict[str, Any]:
    return {
        "schema": "ap.metrics/1",
        "device_id": s.device,
        "ts": iso_ms(s.ts_ms),
        "seq": s.seq,
        "uptime_s": s.uptime_s,
        "cpu_pct": s.cpu_pct,
        "mem_pct": s.mem_pct,
        "temperature_c": s.temperature_c,
        "num_clients": s.num_clients,
        "uplink_rx_bytes": s.uplink_rx_bytes,
        "uplink_tx_bytes": s.uplink_tx_bytes,
        "uplink_rx_errors": s.uplink_rx_errors,
        "uplink_tx_dropped": s.uplink_tx_dropped,
        "radios": [
            {
                "band": r.band,
                "channel": r.channel,
                "width_mhz": r.width_mhz,
                "tx_power_dbm": r.tx_power_dbm,
                "noise_floor_dbm": r.noise_floor_dbm,
                "cu_total_pct": r.cu_total_pct,
                "cu_tx_pct": r.cu_tx_pct,
                "cu_rx_pct": r.cu_rx_pct,
                "num_clients": r.num_clients,
                "tx_bytes": r.tx_bytes,
                "rx_bytes": r.rx_bytes,
                "tx_retries": r.tx_retries,
                "tx_total": r.tx_total,
            }
            for r in s.radios
        ],
    }


def ap_clients(s: ApSnap, with_list: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "ap.clients/1",
        "device_id": s.device,
        "ts": iso_ms(s.ts_ms),
        "seq": s.seq,
        "num_clients": s.num_clients,
    }
    if s.clients:
        rssi = [c.rssi_dbm for c in s.clients]
        body["rssi_avg_dbm"] = round(sum(rssi) / len(rssi), 1)
        body["rssi_min_dbm"] = float(min(rssi))
        body["snr_avg_db"] = round(sum(c.snr_db for c in s.clients) / len(s.clients), 1)
        body["good_rf_clients"] = sum(1 for c in s.clients if c.rssi_dbm >= -67 and c.snr_db >= 25)
    body["rx_bytes"] = s.interval_rx_bytes
    body["tx_bytes"] = s.interval_tx_bytes
    if with_list:
        body["clients"] = [client_entry(c) for c in s.clients]
    return body


def client_entry(c: ClientSnap) -> dict[str, Any]:
    return {
        "mac": c.mac,
        "band": c.band,
        "rssi_dbm": c.rssi_dbm,
        "snr_db": c.snr_db,
        "rx_bytes": c.rx_bytes,
        "tx_bytes": c.tx_bytes,
        "connected_s": c.connected_s,
    }


def if_counters(s: NetSnap) -> dict[str, Any]:
    wrap = UINT32 if s.counter_bits == 32 else 2**63
    return {
        "schema": "if.counters/1",
        "device_id": s.device,
        "ts": iso_ms(s.ts_ms),
        "seq": s.seq,
        "sys_uptime_s": s.sys_uptime_s,
        "interfaces": [
            {
                "name": i.name,
                "oper_status": i.oper_status,
                "speed_mbps": i.speed_mbps,
                "counter_bits": s.counter_bits,
                "in_octets": i.in_octets % wrap,
                "out_octets": i.out_octets % wrap,
                "in_ucast_pkts": i.in_ucast_pkts % wrap,
                "out_ucast_pkts": i.out_ucast_pkts % wrap,
                "in_errors": i.in_errors,
                "out_errors": i.out_errors,
                "in_discards": i.in_discards,
                "out_discards": i.out_discards,
            }
            for i in s.interfaces
        ],
    }


Rtt = tuple[float, float, float, float]  # min, avg, max, jitter (ms)


def link_probe(
    device: str, ts_ms: int, seq: int, sent: int, received: int, rtt: Rtt | None, target: str = "dc-irisnet-1"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "link.probe/1",
        "device_id": device,
        "ts": iso_ms(ts_ms),
        "seq": seq,
        "target": target,
        "method": "icmp",
        "sent": sent,
        "received": received,
    }
    if rtt is not None:
        body["rtt_min_ms"], body["rtt_avg_ms"], body["rtt_max_ms"], body["jitter_ms"] = rtt
    return body


def device_state(
    device: str, state: str, ts_ms: int | None = None, seq: int | None = None, reason: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": "device.state/1", "device_id": device}
    if ts_ms is not None:
        body["ts"] = iso_ms(ts_ms)
    if seq is not None:
        body["seq"] = seq
    body["state"] = state
    if reason is not None:
        body["reason"] = reason
    return body


def device_event(
    device: str,
    ts_ms: int,
    seq: int,
    type_: str,
    severity: str,
    message: str,
    attributes: dict[str, str | int | float | bool],
) -> dict[str, Any]:
    return {
        "schema": "device.event/1",
        "device_id": device,
        "ts": iso_ms(ts_ms),
        "seq": seq,
        "type": type_,
        "severity": severity,
        "message": message,
        "attributes": attributes,
    }
