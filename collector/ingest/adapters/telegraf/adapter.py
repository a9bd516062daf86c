"""What Telegraf publishes to MQTT: influx line protocol, or its JSON serializer (one metric, or the
batch form ``{"metrics": [...]}``). The payload is sniffed: a JSON object, else line protocol.

Measurements read (anything else is refused as ``unsupported``, naming it):

- ``interface``: inputs.snmp's IF-MIB table. Name from ``ifName``, else ``ifDescr``, else
  ``if<ifIndex>`` (tag or field). 64-bit ``ifHC*`` columns when present (``counter_bits`` 64), else
  the 32-bit ifTable ones (``counter_bits`` 32); ``ifOperStatus`` 1..7 -> up, down, testing, ...;
  speed from ``ifHighSpeed`` (Mbps), else ``ifSpeed`` (bit/s, divided by 10^6; its saturated
  4294967295 means "see ifHighSpeed" and is not stored).
- ``net``: inputs.net. ``bytes_recv``/``bytes_sent`` -> octets, ``err_in``/``err_out`` -> errors,
  ``drop_in``/``drop_out`` -> discards, ``speed`` (Mbps, -1 unknown); oper status unknown. The
  ``interface=all`` row holds protocol counters, not an interface, and is not stored. Linux packet
  counts include multicast, so they are not mapped to unicast packets.
- ``snmp``: ``uptime`` (seconds, Telegraf's ``float(2)`` conversion of sysUpTime) or ``sysUpTime``
  (raw TimeTicks, 1/100 s) -> ``sys_uptime_s`` of the same poll.

Rows with the same timestamp make one ``if.counters/1`` message, so Telegraf must publish a poll in
one message (``outputs.mqtt`` with ``batch = true`` or ``layout = "batch"``, and a topic that keeps
``snmp`` and ``interface`` together): a message with only an ``snmp`` row cannot be stored (the
canonical message needs interfaces) and is refused with that explanation.

Kind: the topic's ``{kind}``, else a ``kind`` tag on the metrics (Telegraf: ``[inputs.snmp.tags]
kind = "cpe"``), else the route's ``kind`` setting, else ``switch``. Time: the metric's timestamp
(line protocol: nanoseconds; JSON: its unit told from its magnitude), else the receive time.
``seq``: 0. Telegraf's ``host``/``agent_host``/``sysName`` tags are not stored: the device is the
topic's.

Types are checked as strictly as the canonical schema checks them: counters, gauges and
``ifOperStatus`` codes are non-negative integers (``123i``, or a JSON integer; ``net``'s ``speed``
may also be -1, "unknown"); ``ifName``/``ifDescr`` are strings; ``ifIndex`` is a non-negative integer
(or a tag of decimal digits); a JSON ``timestamp`` is a number. Fields that are not read may hold
anything. Anything else is refused, naming the metric and the key.
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
    as_list,
    as_object,
    as_str,
    build,
    from_epoch,
    from_ns,
    invalid,
    load_json,
    opt_object,
    show,
)
from collector.ingest.adapters.telegraf.lineprotocol import Point, parse
from collector.ingest.topics import LEVEL_VALUE
from schemas.canonical import IfCounters

OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
_OPER_NAMES = frozenset(OPER_STATUS.values())
GAUGE32_MAX = 2**32 - 1
DEFAULT_KIND = "switch"
KNOWN = ("interface", "net", "snmp")
_INDEX_TAG = re.compile(r"[0-9]{1,10}")


class TelegrafAdapter:
    name = "telegraf"

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        points = _points(payload)
        if not points:
            raise AdapterError("bad_line_protocol", "no metrics in the payload")
        unknown = sorted({p.name for p in points if p.name not in KNOWN})
        if unknown:
            raise AdapterError(
                "unsupported",
                f"Telegraf measurement(s) {', '.join(map(repr, unknown))} are not mapped (known: {', '.join(KNOWN)})",
            )
        kind = source.kind or _kind_tag(points) or DEFAULT_KIND
        polls: dict[EpochNs, tuple[list[dict[str, Any]], list[int]]] = {}
        for point in points:
            if point.name == "net" and point.tags.get("interface") == "all":
                continue  # protocol counters, not an interface
            ts = from_ns(received_ns if point.timestamp_ns is None else point.timestamp_ns)
            interfaces, uptimes = polls.setdefault(ts, ([], []))
            if point.name == "interface":
                interfaces.append(_snmp_interface(point))
            elif point.name == "net":
                interfaces.append(_net_interface(point))
            else:
                uptime = _uptime(point)
                if uptime is not None:
                    uptimes.append(uptime)
        if not polls:
            raise AdapterError(
                "unsupported", "only the net plugin's interface=all protocol counters, which are not stored"
            )
        readings = []
        for ts, (interfaces, uptimes) in polls.items():
            if not interfaces:
                raise AdapterError(
                    "unsupported",
                    "an snmp row without interface rows of the same poll "
                    f"({ts.isoformat()}): publish snmp and interface metrics in one message "
                    "(outputs.mqtt batch)",
                )
            data = {
                "schema": "if.counters/1",
                "device_id": source.device,
                "ts": ts,
                "seq": 0,
                "sys_uptime_s": uptimes[0] if uptimes else None,
                "interfaces": interfaces,
            }
            readings.append(Reading(kind, build(IfCounters, data, "Telegraf metrics")))
        return readings


def _points(payload: bytes | bytearray) -> list[Point]:
    head = payload.lstrip()[:1]
    if head == b"{":
        return _json_points(load_json(payload))
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AdapterError("bad_line_protocol", f"not UTF-8 text: {error.reason} at byte {error.start}") from None
    points = parse(text)
    # Telegraf stamps every line; a line without a time among stamped ones is a cut message whose
    # last line happens to end on a field boundary: reading it would store a damaged poll.
    stamped = [p.timestamp_ns is not None for p in points]
    if any(stamped) and not all(stamped):
        unstamped = points[stamped.index(False)]
        raise AdapterError(
            "bad_line_protocol", f"{unstamped.where}: no timestamp while other lines have one (a truncated message?)"
        )
    return points


def _json_points(document: Any) -> list[Point]:
    if not isinstance(document, dict):  # pragma: no cover - sniffed as an object
        raise AdapterError("bad_json", "payload is not a JSON object")
    if "metrics" in document:
        items = [(f"metrics.{i}", m) for i, m in enumerate(as_list(document["metrics"], "metrics"))]
    else:
        items = [("", document)]
    points = []
    for where, metric in items:
        prefix = f"{where}." if where else ""
        metric = as_object(metric, where or "(payload)")
        name = as_str(metric.get("name"), f"{prefix}name") if "name" in metric else None
        if name is None:
            raise invalid(f"{prefix}name", "missing (not a Telegraf JSON metric)")
        fields = as_object(metric.get("fields"), f"{prefix}fields")
        tags = opt_object(metric, "tags", prefix)
        for key, value in tags.items():
            as_str(value, f"{prefix}tags.{key}")
        stamp = metric.get("timestamp")
        ts_ns = None
        if stamp is not None:
            ts_ns = from_epoch(stamp, f"{prefix}timestamp", "auto")
        points.append(Point(name, tags, fields, ts_ns, where or "(payload)"))
    return points


def _kind_tag(points: list[Point]) -> str | None:
    kinds = {p.tags["kind"] for p in points if "kind" in p.tags}
    if len(kinds) > 1:
        raise invalid("tags.kind", f"metrics of one message disagree: {sorted(kinds)}")
    if not kinds:
        return None
    kind = kinds.pop()
    if not LEVEL_VALUE.match(kind):
        raise invalid("tags.kind", f"{show(kind)}: allowed are A-Z a-z 0-9 . _ -")
    return kind


def _text(point: Point, key: str) -> str | None:
    """A name from a field (a string) or else a tag; None when absent or empty."""
    value = point.fields.get(key)
    if value is None:
        value = point.tags.get(key)
    elif value.__class__ is not str:
        raise invalid(f"{point.where}: {point.name}.{key}", f"expected a string, got {show(value)}")
    return value or None


def _index(point: Point) -> int | None:
    """ifIndex: a non-negative integer field, or a tag of decimal digits (Telegraf's ``is_tag``)."""
    if point.fields.get("ifIndex") is not None:
        return _counter(point, "ifIndex")
    tag = point.tags.get("ifIndex")
    if tag is None:
        return None
    if not _INDEX_TAG.fullmatch(tag):
        raise invalid(f"{point.where}: {point.name}.ifIndex", f"expected decimal digits, got {show(tag)}")
    return int(tag)


def _counter(point: Point, key: str, unknown: int | None = None) -> int | None:
    """Telegraf writes counters and gauges as integers (``123i`` or a JSON integer): a float here is a
    damaged value (``ifInOctets=34366`` is what a cut ``ifInOctets=3436617431i`` reads as), and a
    negative one is not a count. ``unknown``: a negative value the plugin documents (returned as is)."""
    value = point.fields.get(key)
    if value is None:
        return None
    if value.__class__ is not int:
        raise invalid(f"{point.where}: {point.name}.{key}", f"expected an integer, got {show(value)}")
    if value < 0 and value != unknown:
        raise invalid(f"{point.where}: {point.name}.{key}", f"expected a non-negative integer, got {value}")
    return value


def _snmp_interface(point: Point) -> dict[str, Any]:
    name = _text(point, "ifName") or _text(point, "ifDescr")
    if name is None:
        index = _index(point)
        if index is None:
            raise invalid(f"{point.where}: interface", "no ifName, ifDescr or ifIndex to name the interface")
        name = f"if{index}"
    status = point.fields.get("ifOperStatus")
    if status is None:
        oper = "unknown"
    elif isinstance(status, str) and status in _OPER_NAMES:
        oper = status
    else:
        code = _counter(point, "ifOperStatus")
        assert code is not None
        if code not in OPER_STATUS:
            raise invalid(f"{point.where}: interface.ifOperStatus", f"{code} is not an IF-MIB status (1..7)")
        oper = OPER_STATUS[code]
    wide = "ifHCInOctets" in point.fields or "ifHCOutOctets" in point.fields
    prefix = "ifHC" if wide else "if"
    speed = _counter(point, "ifHighSpeed")
    if speed is None:
        bits = _counter(point, "ifSpeed")
        speed = round(bits / 1_000_000) if bits is not None and bits != GAUGE32_MAX else None
    return {
        "name": name,
        "oper_status": oper,
        "speed_mbps": speed,
        "counter_bits": 64 if wide else 32,
        "in_octets": _counter(point, f"{prefix}InOctets"),
        "out_octets": _counter(point, f"{prefix}OutOctets"),
        "in_ucast_pkts": _counter(point, f"{prefix}InUcastPkts"),
        "out_ucast_pkts": _counter(point, f"{prefix}OutUcastPkts"),
        "in_errors": _counter(point, "ifInErrors"),
        "out_errors": _counter(point, "ifOutErrors"),
        "in_discards": _counter(point, "ifInDiscards"),
        "out_discards": _counter(point, "ifOutDiscards"),
    }


def _net_interface(point: Point) -> dict[str, Any]:
    name = point.tags.get("interface")
    if not name:
        raise invalid(f"{point.where}: net", "no interface tag")
    speed = _counter(point, "speed", unknown=-1)
    return {
        "name": name,
        "oper_status": "unknown",
        "speed_mbps": speed if speed is not None and speed >= 0 else None,
        "counter_bits": 64,
        "in_octets": _counter(point, "bytes_recv"),
        "out_octets": _counter(point, "bytes_sent"),
        "in_errors": _counter(point, "err_in"),
        "out_errors": _counter(point, "err_out"),
        "in_discards": _counter(point, "drop_in"),
        "out_discards": _counter(point, "drop_out"),
    }


def _uptime(point: Point) -> int | None:
    value = point.fields.get("uptime")
    if value is not None:
        seconds = as_float(value, f"{point.where}: snmp.uptime")
        if seconds < 0:
            raise invalid(f"{point.where}: snmp.uptime", f"expected a non-negative number of seconds, got {seconds}")
        return int(seconds)
    ticks = _counter(point, "sysUpTime")
    return None if ticks is None else ticks // 100
