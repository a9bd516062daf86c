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
- ``ping``: inputs.ping -> ``link.probe/1`` (method ``icmp``), target from the ``url`` tag:
  ``packets_transmitted``/``packets_received`` -> sent/received, ``minimum``/``average``/
  ``maximum_response_ms`` -> rtt min/avg/max. ``standard_deviation_ms`` is not IPDV (RFC 3393), so
  it is not stored as jitter. A ping that sent nothing (``result_code`` 2 without counts: the ping
  command failed or the host did not resolve) measured nothing and is refused.

**Polls.** Telegraf's snmp input stamps each table with the time its walk ended, so the rows of one
poll carry times seconds apart (the ``snmp`` scalars first, then each table). Rows of one agent
(``agent_host``) whose times lie within ``poll_tolerance_s`` of the poll's first row are one poll
and make one ``if.counters/1`` message, stamped with that first row's time; a message holding rows
of several agents is refused (one device per topic). Within a poll, rows of one interface are
merged: Telegraf's example configuration walks ``ifTable`` and ``ifXTable`` as two tables of one
``interface`` measurement, one row per interface each. The rows are joined on the first identity
they all carry: ``ifIndex`` (or the ``index`` tag of ``index_as_tag``), else ``ifDescr``, else
``ifName`` (tag or field). A single table with both tables' columns (an ``ifXTable`` walk with
``ifOperStatus`` added, or ``ifTable`` with ``ifHC*`` fields) is one row per interface and needs
no join. Two rows of one interface that disagree on a value are refused (``invalid``); an
interface with no ``ifTable`` column (ifOperStatus, ifInOctets ...) is a poll whose ifTable walk
is missing from the message (it failed, or the poll was split over two flushes) and is refused
(``unsupported``), like an ``snmp`` row without interface rows: that half is never stored. The
other half of a split poll (ifTable rows only) cannot be told from an agent without ifXTable and is
stored as one (README.md, "Known limits").

Telegraf must publish a poll in one message: ``outputs.mqtt`` with ``layout = "batch"`` (before
v1.37.0 also ``batch = true``) and a topic that keeps a device's ``snmp``, ``interface`` and ``ping``
metrics together (``deploy/telegraf/telegraf.conf``).

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
from collections.abc import Hashable
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
from schemas.canonical import IfCounters, LinkProbe

OPER_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
_OPER_NAMES = frozenset(OPER_STATUS.values())
GAUGE32_MAX = 2**32 - 1
DEFAULT_KIND = "switch"
KNOWN = ("interface", "net", "ping", "snmp")
DEFAULT_POLL_TOLERANCE_S = 20.0
# ifTable columns: an interface whose rows hold none of them has no ifTable row in the poll.
IF_TABLE = frozenset(
    {"ifOperStatus", "ifAdminStatus", "ifInOctets", "ifOutOctets", "ifSpeed", "ifType", "ifMtu", "ifInUcastPkts"}
)
_INDEX_TAG = re.compile(r"[0-9]{1,10}")


class TelegrafAdapter:
    name = "telegraf"

    def __init__(self, poll_tolerance_s: float = DEFAULT_POLL_TOLERANCE_S) -> None:
        self.tolerance_ns = round(poll_tolerance_s * 1e9)

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
        readings: list[Reading] = []
        rows: list[tuple[int, Point]] = []
        for point in points:
            ts_ns = received_ns if point.timestamp_ns is None else point.timestamp_ns
            if point.name == "ping":
                readings.append(Reading(kind, _probe(point, source.device, from_ns(ts_ns))))
            elif point.name == "net" and point.tags.get("interface") == "all":
                continue  # protocol counters, not an interface
            else:
                rows.append((ts_ns, point))
        if not rows:
            if not readings:
                raise AdapterError(
                    "unsupported", "only the net plugin's interface=all protocol counters, which are not stored"
                )
            return readings
        agents = sorted({p.tags.get("agent_host", "") for _, p in rows if p.name != "net"} - {""})
        if len(agents) > 1:
            raise invalid(
                "tags.agent_host",
                f"rows of {len(agents)} SNMP agents {agents[:4]} in one message for one device: "
                "put the device in the topic (deploy/telegraf/telegraf.conf)",
            )
        for poll in self._polls(rows):
            readings.append(Reading(kind, _poll(poll, source.device)))
        return readings

    def _polls(self, rows: list[tuple[int, Point]]) -> list[list[tuple[int, Point]]]:
        """Rows grouped into polls: a poll starts at a row and takes every later row up to
        ``poll_tolerance_s`` after it (measured from the poll's first row, not chained)."""
        polls: list[list[tuple[int, Point]]] = []
        for row in sorted(rows, key=lambda r: r[0]):
            if polls and row[0] - polls[-1][0][0] <= self.tolerance_ns:
                polls[-1].append(row)
            else:
                polls.append([row])
        return polls


def _poll(poll: list[tuple[int, Point]], device: str) -> IfCounters:
    ts = from_ns(poll[0][0])
    interfaces: list[dict[str, Any]] = []
    uptimes: list[int] = []
    snmp_rows = [p for _, p in poll if p.name == "interface"]
    for _, point in poll:
        if point.name == "net":
            interfaces.append(_net_interface(point))
        elif point.name == "snmp":
            uptime = _uptime(point)
            if uptime is not None:
                uptimes.append(uptime)
    interfaces += [_snmp_interface(point) for point in _merged(snmp_rows)]
    if not interfaces:
        raise AdapterError(
            "unsupported",
            "an snmp row without interface rows of the same poll "
            f"({ts.isoformat()}): publish snmp and interface metrics in one message "
            '(outputs.mqtt layout = "batch")',
        )
    data = {
        "schema": "if.counters/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "sys_uptime_s": uptimes[0] if uptimes else None,
        "interfaces": interfaces,
    }
    return build(IfCounters, data, "Telegraf metrics")


def _identity(point: Point, key: str) -> Hashable | None:
    if key == "ifIndex":
        index = _index(point)
        if index is None and _INDEX_TAG.fullmatch(point.tags.get("index", "")):
            index = int(point.tags["index"])  # index_as_tag = true: the row index, ifIndex in IF-MIB
        return index
    return _text(point, key)


def _merged(rows: list[Point]) -> list[Point]:
    """The rows of one poll with one row per interface: rows of one interface (ifTable and ifXTable
    walked as two tables) joined on the first identity every row carries."""
    if not rows:
        return []
    join = next((k for k in ("ifIndex", "ifDescr", "ifName") if all(_identity(r, k) is not None for r in rows)), None)
    merged: dict[Hashable, Point] = {}
    for number, row in enumerate(rows):
        key = number if join is None else _identity(row, join)
        into = merged.get(key)
        if into is None:
            merged[key] = Point(row.name, dict(row.tags), dict(row.fields), row.timestamp_ns, row.where)
            continue
        for source, target, what in ((row.tags, into.tags, "tag"), (row.fields, into.fields, "field")):
            for name, value in source.items():
                if name in target and target[name] != value:
                    raise invalid(
                        f"{row.where}: interface {show(key)}",
                        f"rows of one poll disagree on {what} {name!r}: {show(target[name])} and {show(value)} "
                        "(two polls within poll_tolerance_s, or two interfaces with one name?)",
                    )
                target[name] = value
    for key, point in merged.items():
        if not IF_TABLE.intersection(point.fields):
            raise AdapterError(
                "unsupported",
                f"{point.where}: interface {show(key)} has no ifTable columns (ifOperStatus, ifInOctets ...) "
                "in this poll: its ifTable walk is missing (failed, or the poll was split over two messages); "
                "a half poll is not stored",
            )
    return list(merged.values())


def _probe(point: Point, device: str, ts: EpochNs) -> LinkProbe:
    target = point.tags.get("url")
    if not target:
        raise invalid(f"{point.where}: ping", "no url tag (the probed host)")
    if point.fields.get("packets_transmitted") is None:
        code = point.fields.get("result_code")
        raise AdapterError(
            "unsupported",
            f"{point.where}: ping of {show(target)} measured nothing (result_code {show(code)}: the ping "
            "command failed or the host did not resolve; Telegraf's log says why)",
        )
    data = {
        "schema": "link.probe/1",
        "device_id": device,
        "ts": ts,
        "seq": 0,
        "target": target,
        "method": "icmp",
        "sent": _counter(point, "packets_transmitted"),
        "received": _counter(point, "packets_received"),
        "rtt_min_ms": _number(point, "minimum_response_ms"),
        "rtt_avg_ms": _number(point, "average_response_ms"),
        "rtt_max_ms": _number(point, "maximum_response_ms"),
    }
    return build(LinkProbe, data, "Telegraf ping")


def _number(point: Point, key: str) -> float | None:
    value = point.fields.get(key)
    return None if value is None else as_float(value, f"{point.where}: {point.name}.{key}")


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
