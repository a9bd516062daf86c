"""OpenWrt devices reporting NetJSON ``DeviceMonitoring`` (as openwisp-monitoring's agent sends it).

- ``interfaces[]`` with ``statistics`` -> ``if.counters/1`` (Linux netdev counters, 64-bit):
  ``rx_bytes``/``tx_bytes`` -> in/out octets, ``rx_errors``/``tx_errors`` -> errors,
  ``rx_dropped``/``tx_dropped`` -> discards, ``up`` -> oper status (``unknown`` when absent),
  ``general.uptime`` -> ``sys_uptime_s``. Linux counts *all* packets where IF-MIB counts unicast
  only, so packet counts are not mapped (they would overstate unicast traffic).
- An access point (an interface whose ``wireless.mode`` is ``access_point``) also gives
  ``ap.metrics/1``: uptime, CPU (100 - ``resources.cpu.idle``), memory (``total - available``, or
  ``total - free - buffered - cached`` when ``available`` is absent, over ``total``), the single
  ethernet interface's counters as the uplink, and one radio per band (frequency -> band,
  ``htmode`` -> width, ``tx_power``, ``noise``, client count, the wireless interfaces' byte counters
  and transmitted frames); and ``ap.clients/1``: the number of clients and their signal summary
  (RSSI average and minimum, SNR from signal minus noise, clients with RSSI >= -67 dBm and
  SNR >= 25 dB). The clients' MAC addresses are never copied.

Kind: the topic's ``{kind}`` or the route's ``kind`` setting, else ``ap`` when the payload has an
access-point interface and ``router`` otherwise (set ``kind`` for a device whose radios may be off,
or its series would change kind). Time: ``general.local_time`` (the device clock, epoch seconds),
else the receive time, in which case a redelivered message is stored a second time at its new
receive time instead of overwriting itself. ``seq``: 0.
"""

from __future__ import annotations

import re
from typing import Any

from collector.ingest.adapters.base import (
    AdapterError,
    EpochNs,
    Reading,
    Source,
    as_float,
    as_int,
    as_object,
    as_str,
    build,
    from_epoch,
    from_ns,
    invalid,
    load_object,
    opt_count,
    opt_float,
    opt_int,
    opt_list,
    opt_object,
    require,
    show,
)
from schemas.canonical import ApClients, ApMetrics, IfCounters

AP_MODES = frozenset({"access_point", "ap", "master"})
GOOD_RSSI_DBM = -67.0
GOOD_SNR_DB = 25.0
_WIDTH = re.compile(r"(\d+)[+-]?$")


def band_of(frequency_mhz: int) -> str | None:
    if 2400 <= frequency_mhz < 2500:
        return "2.4"
    if 5150 <= frequency_mhz < 5925:
        return "5"
    if 5925 <= frequency_mhz <= 7125:
        return "6"
    return None


def width_of(htmode: str) -> int | None:
    if htmode.upper() == "NOHT":
        return 20
    found = _WIDTH.search(htmode)
    return int(found.group(1)) if found else None


class NetJsonAdapter:
    name = "openwrt"

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        doc = load_object(payload, "a NetJSON DeviceMonitoring object")
        doc_type = require(doc, "type")
        if doc_type != "DeviceMonitoring":
            raise AdapterError("unsupported", f"type: NetJSON {show(doc_type)} is not DeviceMonitoring")
        general = opt_object(doc, "general")
        local_time = general.get("local_time")
        ts = from_epoch(local_time, "general.local_time") if local_time is not None else from_ns(received_ns)
        uptime = opt_int(general, "uptime", "general.")
        interfaces = [as_object(i, f"interfaces.{n}") for n, i in enumerate(opt_list(doc, "interfaces"))]
        access_points = [
            (n, i)
            for n, i in enumerate(interfaces)
            if isinstance(i.get("wireless"), dict)
            and isinstance(i["wireless"].get("mode"), str)
            and i["wireless"]["mode"] in AP_MODES
        ]
        kind = source.kind or ("ap" if access_points else "router")
        readings = []
        counters = _if_counters(interfaces, source.device, ts, uptime)
        if counters is not None:
            readings.append(Reading(kind, counters))
        if kind == "ap":
            if uptime is None:
                raise invalid("general.uptime", "missing (an access point's uptime)")
            metrics, clients = _access_point(doc, interfaces, access_points, source.device, ts, uptime)
            readings += [Reading(kind, metrics), Reading(kind, clients)]
        if not readings:
            raise AdapterError("unsupported", "nothing to store: no interface statistics and not an access point")
        return readings


def _if_counters(interfaces: list[dict[str, Any]], device: str, ts: EpochNs, uptime: int | None) -> IfCounters | None:
    rows = []
    for n, interface in enumerate(interfaces):
        stats = interface.get("statistics")
        if stats is None:
            continue
        where = f"interfaces.{n}.statistics."
        stats = as_object(stats, f"interfaces.{n}.statistics")
        up = interface.get("up")
        if up is not None and not isinstance(up, bool):
            raise invalid(f"interfaces.{n}.up", f"expected true or false, got {show(up)}")
        rows.append(
            {
                "name": as_str(require(interface, "name", f"interfaces.{n}."), f"interfaces.{n}.name"),
                "oper_status": "up" if up else "down" if up is False else "unknown",
                "counter_bits": 64,
                "in_octets": opt_int(stats, "rx_bytes", where),
                "out_octets": opt_int(stats, "tx_bytes", where),
                "in_errors": opt_int(stats, "rx_errors", where),
                "out_errors": opt_int(stats, "tx_errors", where),
                "in_discards": opt_int(stats, "rx_dropped", where),
                "out_discards": opt_int(stats, "tx_dropped", where),
            }
        )
    if not rows:
        return None
    data = {
        "schema": "if.counters/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "sys_uptime_s": uptime,
        "interfaces": rows,
    }
    return build(IfCounters, data, "NetJSON interfaces")


def _memory_pct(resources: dict[str, Any]) -> float | None:
    memory = resources.get("memory")
    if memory is None:
        return None
    memory = as_object(memory, "resources.memory")
    where = "resources.memory."
    total = as_int(require(memory, "total", where), f"{where}total")
    if total <= 0:
        raise invalid(f"{where}total", f"must be positive, got {total}")
    available = opt_int(memory, "available", where)
    if available is None:
        free = as_int(require(memory, "free", where), f"{where}free")
        cached = memory.get("cached", memory.get("cache"))
        available = free + (opt_int(memory, "buffered", where) or 0)
        available += as_int(cached, f"{where}cached") if cached is not None else 0
    return 100.0 * max(0, total - available) / total


def _access_point(
    doc: dict[str, Any],
    interfaces: list[dict[str, Any]],
    access_points: list[tuple[int, dict[str, Any]]],
    device: str,
    ts: EpochNs,
    uptime: int,
) -> tuple[ApMetrics, ApClients]:
    resources = opt_object(doc, "resources")
    cpu = resources.get("cpu")
    cpu_pct = None
    if cpu is not None:
        idle = as_float(require(as_object(cpu, "resources.cpu"), "idle", "resources.cpu."), "resources.cpu.idle")
        cpu_pct = 100.0 - idle
    radios: dict[str, dict[str, Any]] = {}
    signals: list[float] = []
    snrs: list[float] = []
    good = 0
    total_clients = 0
    for n, interface in access_points:
        where = f"interfaces.{n}.wireless."
        wireless = interface["wireless"]
        frequency = as_int(require(wireless, "frequency", where), f"{where}frequency")
        band = band_of(frequency)
        if band is None:
            raise AdapterError("unsupported", f"{where}frequency: {frequency} MHz is not a 2.4, 5 or 6 GHz channel")
        noise = opt_float(wireless, "noise", where)
        clients = opt_list(wireless, "clients", where)
        total_clients += len(clients)
        for c, client in enumerate(clients):
            client = as_object(client, f"{where}clients.{c}")
            signal = opt_float(client, "signal", f"{where}clients.{c}.")
            if signal is None:
                continue
            signals.append(signal)
            client_noise = opt_float(client, "noise", f"{where}clients.{c}.")
            floor = client_noise if client_noise is not None else noise
            snr = signal - floor if floor is not None else None
            if snr is not None:
                snrs.append(max(0.0, snr))  # a client below the noise floor: SNR 0, not negative
            if signal >= GOOD_RSSI_DBM and snr is not None and snr >= GOOD_SNR_DB:
                good += 1
        stats = interface.get("statistics")
        stats = as_object(stats, f"interfaces.{n}.statistics") if stats is not None else {}
        radio = radios.get(band)
        if radio is None:
            htmode = as_str(require(wireless, "htmode", where), f"{where}htmode")
            width = width_of(htmode)
            if width is None:
                raise invalid(f"{where}htmode", f"{show(htmode)} does not say the channel width")
            radio = radios[band] = {
                "band": band,
                "channel": as_int(require(wireless, "channel", where), f"{where}channel"),
                "width_mhz": width,
                "tx_power_dbm": as_float(require(wireless, "tx_power", where), f"{where}tx_power"),
                "noise_floor_dbm": noise,
                "num_clients": 0,
            }
        radio["num_clients"] += len(clients)
        for source_key, target in (("tx_bytes", "tx_bytes"), ("rx_bytes", "rx_bytes"), ("tx_packets", "tx_total")):
            value = opt_count(stats, source_key, f"interfaces.{n}.statistics.")
            if value is not None:
                radio[target] = radio.get(target, 0) + value
    metrics: dict[str, Any] = {
        "schema": "ap.metrics/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "uptime_s": uptime,
        "cpu_pct": cpu_pct,
        "mem_pct": _memory_pct(resources),
        "num_clients": total_clients,
        "radios": list(radios.values()),
    }
    ethernet = [(n, i) for n, i in enumerate(interfaces) if i.get("type") == "ethernet"]
    if len(ethernet) == 1 and isinstance(ethernet[0][1].get("statistics"), dict):
        n, uplink = ethernet[0]
        stats = uplink["statistics"]
        where = f"interfaces.{n}.statistics."
        metrics["uplink_rx_bytes"] = opt_int(stats, "rx_bytes", where)
        metrics["uplink_tx_bytes"] = opt_int(stats, "tx_bytes", where)
        metrics["uplink_rx_errors"] = opt_int(stats, "rx_errors", where)
        metrics["uplink_tx_dropped"] = opt_int(stats, "tx_dropped", where)
    summary: dict[str, Any] = {
        "schema": "ap.clients/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "num_clients": total_clients,
        "rssi_avg_dbm": sum(signals) / len(signals) if signals else None,
        "rssi_min_dbm": min(signals) if signals else None,
        "snr_avg_db": sum(snrs) / len(snrs) if snrs else None,
        "good_rf_clients": good if signals else None,
    }
    return build(ApMetrics, metrics, "NetJSON access point"), build(ApClients, summary, "NetJSON wireless clients")
