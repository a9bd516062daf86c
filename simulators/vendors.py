"""Vendor renderings of a device snapshot, shaped like what such equipment really publishes.

- UniFi: one element of the controller's ``stat/device`` list for a UAP (``radio_table``,
  ``radio_table_stats``, ``vap_table``, ``uplink``, ``system-stats``, ``stat`` ...), on
  ``unifi/{nis}/{site}/{device}/stat``. Strings where the controller sends strings (``system-stats``),
  epoch seconds in ``last_seen``, milliseconds in ``stat.time``.
- OpenWrt: a NetJSON ``DeviceMonitoring`` object (``general``, ``resources``, ``interfaces[]`` with
  ``statistics`` and, on wireless interfaces, a ``wireless`` block with its associated clients, as
  openwisp-monitoring sends), on ``openwrt/{nis}/{site}/{device}/monitoring``.
- Telegraf: influx line protocol of the ``snmp`` input polling IF-MIB (an ``snmp`` uptime line and one
  ``interface`` line per ifTable row), on ``telegraf/{nis}/{site}/{device}/snmp``. ``ifInOctets`` and
  friends are Counter32 and wrap; 64-bit capable devices also carry the ifXTable ``ifHC*`` columns.

Structures follow public samples of each format (the adapters' testdata/, with their sources); values come from the
simulation, so a vendor device tells the same truth as a canonical one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from simulators.inventory import Device
from simulators.payloads import UINT32, ApSnap, NetSnap, RadioSnap

SSID = "wifi.brussels"
GAUGE32_MAX = UINT32 - 1


def vendor_topic(device: Device) -> str:
    if device.flavour == "unifi":
        return f"unifi/{device.nis}/{device.site}/{device.device}/stat"
    if device.flavour == "openwrt":
        return f"openwrt/{device.nis}/{device.site}/{device.device}/monitoring"
    if device.flavour == "telegraf":
        return f"telegraf/{device.nis}/{device.site}/{device.device}/snmp"
    raise ValueError(f"{device.device} publishes canonical messages")


def _object_id(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


def _radio_name(band: str) -> tuple[str, str]:
    return ("wifi0", "ng") if band == "2.4" else ("wifi1", "na")


def unifi_stat_device(device: Device, s: ApSnap, interval_s: float) -> dict[str, Any]:
    """A UAP's ``stat/device`` element."""
    site_id = _object_id("site", device.nis, device.site)
    ts_s = s.ts_ms // 1000
    mem_total = 128_622_592
    by_band = {r.band: r for r in s.radios}
    rssi_by_band: dict[str, list[int]] = {}
    for c in s.clients:
        rssi_by_band.setdefault(c.band, []).append(c.rssi_dbm)
    radio_table = []
    radio_stats = []
    vap_table = []
    stat: dict[str, Any] = {
        "site_id": site_id,
        "o": "ap",
        "oid": device.mac,
        "ap": device.mac,
        "time": s.ts_ms,
        "datetime": datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for k, r in enumerate(s.radios):
        name, radio = _radio_name(r.band)
        radio_table.append(
            {
                "radio": radio,
                "name": name,
                "channel": str(r.channel),
                "ht": str(r.width_mhz),
                "tx_power_mode": "auto",
                "tx_power": "0",
                "max_txpower": 22,
                "min_txpower": 6,
                "nss": 2,
                "min_rssi_enabled": False,
                **({"is_11ac": True, "has_dfs": True} if radio == "na" else {}),
            }
        )
        radio_stats.append(
            {
                "name": name,
                "channel": r.channel,
                "radio": radio,
                "cu_total": round(r.cu_total_pct),
                "cu_self_rx": round(r.cu_rx_pct),
                "cu_self_tx": round(r.cu_tx_pct),
                "state": "RUN",
                "tx_power": r.tx_power_dbm,
                "tx_packets": r.tx_total,
                "tx_retries": r.tx_retries,
                "num_sta": r.num_clients,
                "guest-num_sta": r.num_clients,
                "user-num_sta": 0,
            }
        )
        band_rssi = rssi_by_band.get(r.band, [])
        vap_table.append(
            {
                "avg_client_signal": round(sum(band_rssi) / len(band_rssi)) if band_rssi else 0,
                "bssid": _bssid(device, k),
                "channel": r.channel,
                "essid": SSID,
                "id": _object_id("wlan", SSID),
                "name": f"ath{k}",
                "num_sta": r.num_clients,
                "radio": radio,
                "radio_name": name,
                "rx_bytes": r.rx_bytes,
                "rx_packets": r.rx_bytes // 400,
                "rx_errors": 0,
                "rx_dropped": 0,
                "state": "RUN",
                "tx_bytes": r.tx_bytes,
                "tx_packets": r.tx_total,
                "tx_retries": r.tx_retries,
                "tx_dropped": 0,
                "tx_errors": 0,
                "tx_power": r.tx_power_dbm,
                "tx_total": r.tx_total,
                "up": True,
                "usage": "guest",
                "is_guest": True,
                "is_wep": False,
                "t": "vap",
                "ap_mac": device.mac,
                "site_id": site_id,
            }
        )
        stat[f"guest-{name}-rx_bytes"] = r.rx_bytes
        stat[f"guest-{name}-tx_bytes"] = r.tx_bytes
        stat[f"{name}-rx_bytes"] = r.rx_bytes
        stat[f"{name}-tx_bytes"] = r.tx_bytes
        stat[f"{name}-tx_retries"] = r.tx_retries
    rx_total = sum(r.rx_bytes for r in s.radios)
    tx_total = sum(r.tx_bytes for r in s.radios)
    stat.update(
        {
            "rx_bytes": rx_total,
            "tx_bytes": tx_total,
            "bytes": rx_total + tx_total,
            "guest-rx_bytes": rx_total,
            "guest-tx_bytes": tx_total,
            "duration": s.uptime_s * 1000,
        }
    )
    rate = max(interval_s, 1.0)
    return {
        "_id": _object_id("device", device.device),
        "adopted": True,
        "model": device.model,
        "name": device.device,
        "mac": device.mac,
        "ip": device.mgmt_ip,
        "serial": device.mac.replace(":", "").upper(),
        "site_id": site_id,
        "type": "uap",
        "version": "6.6.55.15189",
        "state": 1,
        "last_seen": ts_s,
        "uptime": s.uptime_s,
        "_uptime": s.uptime_s,
        "has_temperature": True,
        "temperatures": [{"name": "CPU", "type": "cpu", "value": s.temperature_c}],
        "sys_stats": {
            "loadavg_1": f"{s.cpu_pct / 50:.2f}",
            "loadavg_5": f"{s.cpu_pct / 55:.2f}",
            "loadavg_15": f"{s.cpu_pct / 60:.2f}",
            "mem_buffer": 0,
            "mem_total": mem_total,
            "mem_used": round(mem_total * s.mem_pct / 100),
        },
        "system-stats": {"cpu": f"{s.cpu_pct:.1f}", "mem": f"{s.mem_pct:.1f}", "uptime": str(s.uptime_s)},
        "radio_table": radio_table,
        "radio_table_stats": radio_stats,
        "uplink": {
            "full_duplex": True,
            "ip": "0.0.0.0",
            "mac": device.mac,
            "name": "eth0",
            "netmask": "0.0.0.0",
            "num_port": 1,
            "rx_bytes": s.uplink_rx_bytes,
            "rx_dropped": 0,
            "rx_errors": s.uplink_rx_errors,
            "rx_multicast": 0,
            "rx_packets": s.uplink_rx_bytes // 900,
            "speed": device.link_capacity_mbps,
            "tx_bytes": s.uplink_tx_bytes,
            "tx_dropped": s.uplink_tx_dropped,
            "tx_errors": 0,
            "tx_packets": s.uplink_tx_bytes // 300,
            "up": True,
            "max_speed": device.link_capacity_mbps,
            "type": "wire",
            "tx_bytes-r": round(s.interval_tx_bytes / rate),
            "rx_bytes-r": round(s.interval_rx_bytes / rate),
            "uplink_mac": "02:ff:00:00:00:01",
        },
        "vap_table": vap_table,
        "stat": stat,
        "num_sta": s.num_clients,
        "user-num_sta": 0,
        "guest-num_sta": s.num_clients,
        "tx_bytes": tx_total,
        "rx_bytes": rx_total,
        "bytes": rx_total + tx_total,
        "satisfaction": _satisfaction(by_band),
    }


def _satisfaction(radios: dict[str, RadioSnap]) -> int:
    worst = max((r.cu_total_pct for r in radios.values()), default=0.0)
    return max(40, min(100, round(100 - max(0.0, worst - 40) * 0.8)))


def _bssid(device: Device, k: int) -> str:
    octets = device.mac.split(":")
    octets[0] = f"{int(octets[0], 16) | 0x02:02x}"
    octets[-1] = f"{(int(octets[-1], 16) + k + 1) % 256:02x}"
    return ":".join(octets)


def _frequency(band: str, channel: int) -> int:
    return 2407 + 5 * channel if band == "2.4" else 5000 + 5 * channel


def netjson_monitoring(device: Device, s: ApSnap) -> dict[str, Any]:
    """An OpenWrt AP's NetJSON DeviceMonitoring document (openwisp-monitoring style)."""
    mem_total = 134_217_728
    free = round(mem_total * (100 - s.mem_pct) / 100)
    idle = max(0, min(100, round(100 - s.cpu_pct)))
    interfaces: list[dict[str, Any]] = [
        {
            "name": "eth0",
            "type": "ethernet",
            "up": True,
            "mac": device.mac,
            "mtu": 1500,
            "uptime": s.uptime_s,
            "statistics": _linux_stats(s.uplink_rx_bytes, s.uplink_tx_bytes, s.uplink_rx_errors, s.uplink_tx_dropped),
        }
    ]
    for k, r in enumerate(s.radios):
        clients = [
            {
                "mac": c.mac,
                "aid": n + 1,
                "assoc": True,
                "auth": True,
                "authorized": True,
                "ht": True,
                "vht": c.band == "5",
                "he": False,
                "wmm": True,
                "mfp": False,
                "wds": False,
                "wps": False,
                "preauth": False,
                "signal": c.rssi_dbm,
                "noise": round(r.noise_floor_dbm),
            }
            for n, c in enumerate(x for x in s.clients if x.band == r.band)
        ]
        interfaces.append(
            {
                "name": f"wlan{k}",
                "type": "wireless",
                "up": True,
                "mac": _bssid(device, k),
                "mtu": 1500,
                "uptime": s.uptime_s,
                "statistics": _linux_stats(r.rx_bytes, r.tx_bytes, 0, 0, tx_packets=r.tx_total),
                "wireless": {
                    "ssid": SSID,
                    "mode": "access_point",
                    "channel": r.channel,
                    "frequency": _frequency(r.band, r.channel),
                    "tx_power": r.tx_power_dbm,
                    "noise": round(r.noise_floor_dbm),
                    "country": "BE",
                    "htmode": ("HT" if r.band == "2.4" else "VHT") + str(r.width_mhz),
                    "clients": clients,
                },
            }
        )
    return {
        "type": "DeviceMonitoring",
        "general": {"local_time": s.ts_ms // 1000, "uptime": s.uptime_s},
        "resources": {
            "load": [round(s.cpu_pct / 50, 2), round(s.cpu_pct / 55, 2), round(s.cpu_pct / 60, 2)],
            "memory": {"total": mem_total, "free": free, "buffered": 2_072_576, "cache": 6_884_352},
            "swap": {"total": 0, "free": 0},
            "cpus": 2,
            "cpu": {
                "frequency": 880_000_000,
                "user": 100 - idle,
                "system": 0,
                "nice": 0,
                "idle": idle,
                "iowait": 0,
                "irq": 0,
                "softirq": 0,
            },
        },
        "interfaces": interfaces,
    }


def _linux_stats(rx: int, tx: int, rx_errors: int, tx_dropped: int, tx_packets: int | None = None) -> dict[str, int]:
    return {
        "collisions": 0,
        "multicast": 0,
        "rx_bytes": rx,
        "rx_packets": rx // 400,
        "rx_errors": rx_errors,
        "rx_dropped": 0,
        "rx_crc_errors": 0,
        "rx_frame_errors": 0,
        "rx_length_errors": 0,
        "rx_fifo_errors": 0,
        "rx_missed_errors": 0,
        "rx_over_errors": 0,
        "rx_compressed": 0,
        "tx_bytes": tx,
        "tx_packets": tx // 900 if tx_packets is None else tx_packets,
        "tx_errors": 0,
        "tx_dropped": tx_dropped,
        "tx_aborted_errors": 0,
        "tx_carrier_errors": 0,
        "tx_fifo_errors": 0,
        "tx_heartbeat_errors": 0,
        "tx_window_errors": 0,
        "tx_compressed": 0,
    }


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def telegraf_snmp(device: Device, s: NetSnap) -> bytes:
    """Telegraf ``inputs.snmp`` output for IF-MIB, as influx line protocol (one poll, several lines)."""
    ts_ns = s.ts_ms * 1_000_000
    host = _tag(device.mgmt_ip)
    name = _tag(device.device)
    lines = [f"snmp,agent_host={host},sysName={name} uptime={s.sys_uptime_s}.{s.ts_ms % 100:02d} {ts_ns}"]
    for index, i in enumerate(s.interfaces, start=1):
        fields: dict[str, str] = {
            "ifAdminStatus": "1i",
            "ifInDiscards": f"{i.in_discards % UINT32}i",
            "ifInErrors": f"{i.in_errors % UINT32}i",
            "ifInNUcastPkts": "0i",
            "ifInOctets": f"{i.in_octets % UINT32}i",
            "ifInUcastPkts": f"{i.in_ucast_pkts % UINT32}i",
            "ifInUnknownProtos": "0i",
            "ifLastChange": "0i",
            "ifMtu": "1500i",
            "ifOperStatus": "1i" if i.oper_status == "up" else "2i",
            "ifOutDiscards": f"{i.out_discards % UINT32}i",
            "ifOutErrors": f"{i.out_errors % UINT32}i",
            "ifOutNUcastPkts": "0i",
            "ifOutOctets": f"{i.out_octets % UINT32}i",
            "ifOutQLen": "0i",
            "ifOutUcastPkts": f"{i.out_ucast_pkts % UINT32}i",
            "ifPhysAddress": f'"{device.mac}"',
            "ifSpecific": '".0.0"',
            "ifSpeed": f"{min(GAUGE32_MAX, i.speed_mbps * 1_000_000)}i",
            "ifType": "6i",
        }
        if s.counter_bits == 64:
            fields.update(
                {
                    "ifHCInOctets": f"{i.in_octets}i",
                    "ifHCOutOctets": f"{i.out_octets}i",
                    "ifHCInUcastPkts": f"{i.in_ucast_pkts}i",
                    "ifHCOutUcastPkts": f"{i.out_ucast_pkts}i",
                    "ifHighSpeed": f"{i.speed_mbps}i",
                    "ifName": f'"{i.name}"',
                }
            )
        body = ",".join(f"{k}={v}" for k, v in sorted(fields.items()))
        lines.append(
            f"interface,agent_host={host},ifDescr={_tag(i.name)},ifIndex={index},sysName={name} {body} {ts_ns}"
        )
    return "\n".join(lines).encode()
