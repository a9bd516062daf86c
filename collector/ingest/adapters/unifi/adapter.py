"""UniFi controller ``stat/device`` elements: access points (``uap``) and switches (``usw``).

What a UniFi controller returns per device (the bare element, or the API's ``{"meta", "data": [one]}``
wrapper), as ``unpoller`` and the controller API show it. Mapping (docs/adapters.md has the table):

- ``uap`` -> ``ap.metrics/1``: ``uptime``, ``system-stats.cpu``/``mem`` (strings, percent),
  ``general_temperature`` or the ``temperatures`` list, ``num_sta``, ``uplink.*`` counters, and one
  radio per ``radio_table_stats`` entry: band from ``radio`` (``ng`` 2.4, ``na`` 5, ``6e`` 6), width
  from ``radio_table[].ht``, channel/tx power/clients/utilisation from the stats, byte, retry and
  frame counters summed over the radio's ``vap_table`` entries (they are cumulative per VAP; the
  radio table's own ``tx_packets``/``tx_retries`` are short-interval figures on real controllers).
- ``usw`` -> ``if.counters/1``: one interface per ``port_table`` entry, named ``port<port_idx>``
  (the ``name`` is a free label the operator edits, so it would split series), unicast packets as
  packets minus multicast minus broadcast.

Types are checked as the controller writes them: numbers are JSON numbers, except the fields the
controller writes as text (``system-stats.cpu``/``mem``/``uptime``, ``radio_table[].ht``), which
must be plain decimals; names are strings. Anything else is refused, naming the field.

Time: ``last_seen`` (epoch seconds, when the controller last heard from the device), else
``stat.time`` (epoch ms), else the receive time. ``seq``: 0 (UniFi has no sequence number).
Rates: UniFi's ``rx_rate``/``tx_rate`` (client and wireless-uplink PHY rates) are in **kbps**; the
canonical schemas have no PHY-rate field, so they are not stored. Client MACs (``mac``, ``bssid``,
``uplink_mac`` ...) are never copied.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collector.ingest.adapters.base import (
    AdapterError,
    EpochNs,
    Reading,
    Source,
    as_int,
    as_list,
    as_object,
    as_str,
    build,
    from_epoch,
    from_ns,
    int_from_text,
    invalid,
    load_object,
    number_from_text,
    opt_count,
    opt_float,
    opt_int,
    opt_list,
    require,
    show,
)
from schemas.canonical import ApMetrics, IfCounters

BANDS = {"ng": "2.4", "na": "5", "6e": "6"}
KINDS = {"uap": "ap", "usw": "switch"}
_VAP_COUNTERS = (
    ("tx_bytes", "tx_bytes"),
    ("rx_bytes", "rx_bytes"),
    ("tx_retries", "tx_retries"),
    ("tx_total", "tx_total"),
)


class UnifiAdapter:
    name = "unifi"

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        doc = load_object(payload, "a UniFi stat/device element")
        if "data" in doc and "type" not in doc:
            data = as_list(doc["data"], "data")
            if len(data) != 1:
                raise invalid("data", f"expected exactly one device element, got {len(data)}")
            doc = as_object(data[0], "data.0")
        device_type = as_str(require(doc, "type"), "type")
        if device_type not in KINDS:
            raise AdapterError(
                "unsupported", f"UniFi device type {show(device_type)} is not supported (supported: {', '.join(KINDS)})"
            )
        ts = _timestamp(doc, received_ns)
        kind = source.kind or KINDS[device_type]
        if device_type == "uap":
            return [Reading(kind, _access_point(doc, source.device, ts))]
        return [Reading(kind, _switch(doc, source.device, ts))]


def _timestamp(doc: dict[str, Any], received_ns: int) -> EpochNs:
    if doc.get("last_seen") is not None:
        return from_epoch(doc["last_seen"], "last_seen", "s")
    stat = doc.get("stat")
    if isinstance(stat, dict) and stat.get("time") is not None:
        return from_epoch(stat["time"], "stat.time", "ms")
    return from_ns(received_ns)


def _uptime(doc: dict[str, Any]) -> int:
    if doc.get("uptime") is not None:
        return as_int(doc["uptime"], "uptime")
    stats = doc.get("system-stats")
    if isinstance(stats, dict) and stats.get("uptime") is not None:
        return int_from_text(stats["uptime"], "system-stats.uptime")
    raise invalid("uptime", "missing")


def _temperature(doc: dict[str, Any]) -> float | None:
    if doc.get("has_temperature") is False:
        return None
    if doc.get("general_temperature") is not None:
        return opt_float(doc, "general_temperature")
    sensors = doc.get("temperatures")
    if sensors is None:
        return None
    sensors = as_list(sensors, "temperatures")
    if not sensors:
        return None
    chosen = next((i for i, s in enumerate(sensors) if isinstance(s, dict) and s.get("type") == "cpu"), 0)
    return opt_float(as_object(sensors[chosen], f"temperatures.{chosen}"), "value", f"temperatures.{chosen}.")


def _access_point(doc: dict[str, Any], device: str, ts: EpochNs) -> ApMetrics:
    stats = doc.get("system-stats")
    stats = as_object(stats, "system-stats") if stats is not None else {}
    data: dict[str, Any] = {
        "schema": "ap.metrics/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "uptime_s": _uptime(doc),
        "cpu_pct": _text_number(stats, "cpu"),
        "mem_pct": _text_number(stats, "mem"),
        "temperature_c": _temperature(doc),
        "num_clients": as_int(require(doc, "num_sta"), "num_sta"),
        "radios": _radios(doc),
    }
    uplink = doc.get("uplink")
    if uplink is not None:
        uplink = as_object(uplink, "uplink")
        data["uplink_rx_bytes"] = opt_int(uplink, "rx_bytes", "uplink.")
        data["uplink_tx_bytes"] = opt_int(uplink, "tx_bytes", "uplink.")
        data["uplink_rx_errors"] = opt_int(uplink, "rx_errors", "uplink.")
        data["uplink_tx_dropped"] = opt_int(uplink, "tx_dropped", "uplink.")
    return build(ApMetrics, data, "UniFi uap")


def _text_number(stats: dict[str, Any], key: str) -> float | None:
    value = stats.get(key)
    return None if value is None else number_from_text(value, f"system-stats.{key}")


def _name(entry: dict[str, Any], key: str, where: str) -> str | None:
    """A radio's name, the key that ties radio_table, radio_table_stats and vap_table together."""
    value = entry.get(key)
    return None if value is None else as_str(value, f"{where}{key}")


def _radios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    widths: dict[str | None, Any] = {}
    for i, entry in enumerate(opt_list(doc, "radio_table")):
        entry = as_object(entry, f"radio_table.{i}")
        widths[_name(entry, "name", f"radio_table.{i}.")] = (entry.get("ht"), f"radio_table.{i}.ht")
    vap_sums: dict[str | None, dict[str, int]] = defaultdict(dict)
    for i, vap in enumerate(opt_list(doc, "vap_table")):
        vap = as_object(vap, f"vap_table.{i}")
        sums = vap_sums[_name(vap, "radio_name", f"vap_table.{i}.")]
        for source_key, target in _VAP_COUNTERS:
            value = opt_count(vap, source_key, f"vap_table.{i}.")
            if value is not None:
                sums[target] = sums.get(target, 0) + value
    radios = []
    for i, entry in enumerate(opt_list(doc, "radio_table_stats")):
        where = f"radio_table_stats.{i}."
        entry = as_object(entry, f"radio_table_stats.{i}")
        code = as_str(require(entry, "radio", where), f"{where}radio")
        band = BANDS.get(code)
        if band is None:
            raise AdapterError(
                "unsupported", f"{where}radio: band {show(code)} is not one we store (known: {', '.join(BANDS)})"
            )
        name = _name(entry, "name", where)
        if name not in widths:
            raise invalid(f"{where}name", f"radio {show(name)} has no radio_table entry (its channel width)")
        ht, ht_where = widths[name]
        if ht is None:
            raise invalid(ht_where, "missing (the channel width)")
        radios.append(
            {
                "band": band,
                "channel": as_int(require(entry, "channel", where), f"{where}channel"),
                "width_mhz": int_from_text(ht, ht_where),
                "tx_power_dbm": opt_float(entry, "tx_power", where),
                "cu_total_pct": opt_float(entry, "cu_total", where),
                "cu_tx_pct": opt_float(entry, "cu_self_tx", where),
                "cu_rx_pct": opt_float(entry, "cu_self_rx", where),
                "num_clients": opt_int(entry, "num_sta", where) or 0,
                **vap_sums.get(name, {}),
            }
        )
    return radios


def _switch(doc: dict[str, Any], device: str, ts: EpochNs) -> IfCounters:
    interfaces = []
    for i, port in enumerate(as_list(require(doc, "port_table"), "port_table")):
        where = f"port_table.{i}."
        port = as_object(port, f"port_table.{i}")
        index = as_int(require(port, "port_idx", where), f"{where}port_idx")
        up = port.get("up")
        if up is not None and not isinstance(up, bool):
            raise invalid(f"{where}up", f"expected true or false, got {show(up)}")
        speed = opt_int(port, "speed", where)
        interfaces.append(
            {
                "name": f"port{index}",
                "oper_status": "up" if up else "down" if up is False else "unknown",
                "speed_mbps": speed if speed else None,
                "counter_bits": 64,
                "in_octets": opt_int(port, "rx_bytes", where),
                "out_octets": opt_int(port, "tx_bytes", where),
                "in_ucast_pkts": _unicast(port, "rx", where),
                "out_ucast_pkts": _unicast(port, "tx", where),
                "in_errors": opt_int(port, "rx_errors", where),
                "out_errors": opt_int(port, "tx_errors", where),
                "in_discards": opt_int(port, "rx_dropped", where),
                "out_discards": opt_int(port, "tx_dropped", where),
            }
        )
    data = {
        "schema": "if.counters/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "sys_uptime_s": _uptime(doc),
        "interfaces": interfaces,
    }
    return build(IfCounters, data, "UniFi usw")


def _unicast(port: dict[str, Any], direction: str, where: str) -> int | None:
    packets = opt_count(port, f"{direction}_packets", where)
    multicast = opt_count(port, f"{direction}_multicast", where)
    broadcast = opt_count(port, f"{direction}_broadcast", where)
    if packets is None or multicast is None or broadcast is None:
        return None
    unicast = packets - multicast - broadcast
    return unicast if unicast >= 0 else None
