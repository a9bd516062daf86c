"""Every field position of every route, one property per adapter: a value of any JSON type (or any
line protocol value, for Telegraf's text) put where the format has a number, a name or a time is
either refused with a stable reason, or stored exactly as sent (after the format's documented unit
conversion), in the type the data model gives it.

Each position names where it is in a valid payload, where its value is stored (measurement, the
tags that pick the point, the field or tag key, or the point's time) and an oracle: the value a
sent value must be stored as, or ``REFUSE`` when its type is not the one the format documents
(then the message must be refused: a string, a boolean or ``23.0`` for an integer is never guessed
at). A value of the right type may still be refused (a range, the time window); it must never be
stored altered. A smaller sample of the stored lines goes through a real influxd and is read back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from collector.ingest.adapters.base import AdapterError
from collector.ingest.adapters.telegraf.lineprotocol import Point, parse
from collector.ingest.decode import REASONS, Rejection
from collector.ingest.lineprotocol import TIME_MAX_NS, TIME_MIN_NS
from schemas.timestamps import parse_rfc3339
from tests.property.conftest import scaled
from tests.property.inputs import MAX_DETAIL, RECEIVED, RECEIVED_NS, SEEDS, make_pipeline
from tests.property.store import Store, assert_stored_exactly

PIPELINE = make_pipeline()


class Refuse(Exception):
    """The oracle's answer for a value of the wrong type: the message must be refused."""


REFUSE = Refuse()
ABSENT: Any = object()  # the field is (or may be) left out, e.g. an optional value sent as null


# --- oracles: sent value -> stored value ----------------------------------------------------------
def integer(value: Any) -> Any:
    if value.__class__ is not int:
        raise REFUSE
    return value


def number(value: Any) -> float:
    if value.__class__ not in (int, float):
        raise REFUSE
    try:
        result = float(value)
    except OverflowError:
        raise REFUSE from None
    if not math.isfinite(result):
        raise REFUSE
    return result


def text(value: Any) -> str:
    if value.__class__ is not str:
        raise REFUSE
    return str(value)


def decimal_text(value: Any) -> float:
    """UniFi's numbers written as text: a plain decimal, or a number."""
    if value.__class__ is str:
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
            raise REFUSE
        return float(value)
    return number(value)


def digits_text(value: Any) -> int:
    if value.__class__ is str:
        if not re.fullmatch(r"-?[0-9]{1,20}", value):
            raise REFUSE
        return int(value)
    return integer(value)  # type: ignore[no-any-return]


def rfc3339(value: Any) -> int:
    try:
        return int(parse_rfc3339(text(value)))
    except ValueError:
        raise REFUSE from None


def epoch(unit: str) -> Callable[[Any], int]:
    scale = {"s": 10**9, "ms": 10**6}

    def oracle(value: Any) -> int:
        number(value)
        factor = scale[unit]
        ns = value * factor if value.__class__ is int else round(Decimal(repr(value)) * factor)
        if not TIME_MIN_NS <= ns <= TIME_MAX_NS:
            raise REFUSE
        return int(ns)

    return oracle


def epoch_auto(value: Any) -> int:
    magnitude = abs(number(value))
    unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ns = value * scale if value.__class__ is int else round(Decimal(repr(value)) * scale)
    if not TIME_MIN_NS <= ns <= TIME_MAX_NS:
        raise REFUSE
    return int(ns)


TELEGRAF_POLL_NS = 1764338400 * 10**9  # the other rows' time in telegraf/json_interface_batch.json


def telegraf_poll_time(value: Any) -> int:
    """The snmp row's time moved: rows within poll_tolerance_s (20 s) after the poll's earliest row are one
    poll, stored at that earliest time; further apart, the snmp row and the interface rows are two half
    polls, refused."""
    ns = epoch_auto(value)
    first, last = sorted((ns, TELEGRAF_POLL_NS))
    if last - first > 20 * 10**9:
        raise REFUSE
    return first


def scaled_int(factor: float) -> Callable[[Any], int]:
    def oracle(value: Any) -> int:
        result = number(value) * factor
        if not math.isfinite(result):
            raise REFUSE
        return round(result)

    return oracle


def scaled_float(convert: Callable[[float], float]) -> Callable[[Any], float]:
    return lambda value: convert(number(value))


def non_negative(oracle: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        result = oracle(value)
        if result < 0:
            raise REFUSE
        return result

    return checked


def if_speed(value: Any) -> Any:
    """Telegraf's ifSpeed (bit/s) -> speed_mbps; its saturated 2**32 - 1 means "see ifHighSpeed"."""
    bits = non_negative(integer)(value)
    return ABSENT if bits == 2**32 - 1 else round(bits / 1_000_000)


def uptime_seconds(value: Any) -> int:
    """Telegraf's snmp ``uptime``: seconds as a number, whole seconds stored."""
    return int(non_negative(number)(value))


def name(value: Any) -> str | None:
    """Telegraf's ifName/ifDescr: a string; an empty one names nothing (the next source is used)."""
    return text(value) or None


def label(value: Any) -> str:
    """A mapping's text field: a string, or a number written as its decimal text."""
    if value.__class__ is str:
        return str(value)
    if value.__class__ is int or value.__class__ is float:
        return str(int(value)) if value.__class__ is float and value.is_integer() else str(value)
    raise REFUSE


OPER = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}


def oper_status(value: Any) -> str:
    if value.__class__ is str and value in OPER.values():
        return str(value)
    code = integer(value)
    if code not in OPER:
        raise REFUSE
    return OPER[code]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$")


def meraki_attribute(value: Any) -> Any:
    """alertData values: single values kept with their type (texts cleaned and cut), the rest left out."""
    if value.__class__ is str:
        return ABSENT if _MAC.match(value.strip()) else _CONTROL.sub(" ", value)[:256]
    if value.__class__ in (bool, int, float):
        return value
    return ABSENT


# --- positions ------------------------------------------------------------------------------------
Path = tuple[str | int, ...]
SUFFIX = {bool: "b", int: "i", float: "f", str: "s"}


@dataclass(frozen=True)
class Position:
    path: Path
    measurement: str
    key: str  # a field key; "tag:<name>" for a tag; "time" for the point's time; "attr:<name>" for an attribute
    oracle: Callable[[Any], Any]
    select: dict[str, str] = field(default_factory=dict)  # the tags that pick the point


def P(path: str, measurement: str, key: str, oracle: Callable[[Any], Any], **select: str) -> Position:
    parts: Path = tuple(int(p) if p.isdigit() else p for p in path.split("."))
    return Position(parts, measurement, key, oracle, select)


ROUTES: dict[str, tuple[str, list[Position]]] = {
    "canonical": (
        "ap_metrics",
        [
            P("uptime_s", "ap", "uptime_s", integer),
            P("cpu_pct", "ap", "cpu_pct", number),
            P("mem_pct", "ap", "mem_pct", number),
            P("num_clients", "ap", "num_clients", integer),
            P("uplink_rx_bytes", "ap", "uplink_rx_bytes", integer),
            P("seq", "ap", "seq", integer),
            P("ts", "ap", "time", rfc3339),
            P("radios.0.channel", "ap_radio", "channel", integer, band="2.4"),
            P("radios.0.width_mhz", "ap_radio", "width_mhz", integer, band="2.4"),
            P("radios.0.tx_power_dbm", "ap_radio", "tx_power_dbm", number, band="2.4"),
            P("radios.1.num_clients", "ap_radio", "num_clients", integer, band="5"),
        ],
    ),
    "canonical-interfaces": (
        "if_counters",
        [
            P("sys_uptime_s", "netdev", "sys_uptime_s", integer),
            P("interfaces.0.in_octets", "interface", "in_octets", integer, ifname="ge-0/0/0"),
            P("interfaces.0.counter_bits", "interface", "counter_bits", integer, ifname="ge-0/0/0"),
            P("interfaces.1.name", "interface", "tag:ifname", text),
            P("interfaces.1.oper_status", "interface", "oper_status", text, ifname="ge-0/0/1"),
        ],
    ),
    "canonical-events": (
        "device_event",
        [
            P("attributes.from_channel", "device_event", "attr:from_channel", lambda v: v),
            P("message", "device_event", "message", text),
            P("severity", "device_event", "severity", text),
            P("ts", "device_event", "time", rfc3339),
        ],
    ),
    "canonical-probes": (
        "link_probe",
        [
            P("sent", "link_probe", "sent", integer),
            P("rtt_avg_ms", "link_probe", "rtt_avg_ms", number),
            P("target", "link_probe", "tag:target", text),
        ],
    ),
    "unifi": (
        "unifi/uap_wrapped_6ghz.json",
        [
            P("data.0.uptime", "ap", "uptime_s", integer),
            P("data.0.num_sta", "ap", "num_clients", integer),
            P("data.0.system-stats.cpu", "ap", "cpu_pct", decimal_text),
            P("data.0.system-stats.mem", "ap", "mem_pct", decimal_text),
            P("data.0.uplink.rx_bytes", "ap", "uplink_rx_bytes", integer),
            P("data.0.last_seen", "ap", "time", epoch("s")),
            P("data.0.radio_table_stats.0.channel", "ap_radio", "channel", integer, band="2.4"),
            P("data.0.radio_table_stats.0.tx_power", "ap_radio", "tx_power_dbm", number, band="2.4"),
            P("data.0.radio_table_stats.0.cu_total", "ap_radio", "cu_total_pct", number, band="2.4"),
            P("data.0.radio_table.0.ht", "ap_radio", "width_mhz", digits_text, band="2.4"),
        ],
    ),
    "unifi-switch": (
        "unifi/usw_stat_device.json",
        [
            P("port_table.0.rx_bytes", "interface", "in_octets", integer, ifname="port1"),
            P("port_table.0.rx_errors", "interface", "in_errors", integer, ifname="port1"),
            P("uptime", "netdev", "sys_uptime_s", integer),
        ],
    ),
    "openwrt": (
        "openwrt/ap_monitoring.json",
        [
            P("general.uptime", "ap", "uptime_s", integer),
            P("general.local_time", "ap", "time", epoch("s")),
            P("resources.cpu.idle", "ap", "cpu_pct", scaled_float(lambda idle: 100.0 - idle)),
            P("interfaces.0.statistics.rx_bytes", "interface", "in_octets", integer, ifname="eth0"),
            P("interfaces.0.statistics.rx_errors", "interface", "in_errors", integer, ifname="eth0"),
            P("interfaces.3.name", "interface", "tag:ifname", text),
            P("interfaces.2.wireless.channel", "ap_radio", "channel", integer, band="2.4"),
            P("interfaces.2.wireless.tx_power", "ap_radio", "tx_power_dbm", number, band="2.4"),
        ],
    ),
    "telegraf-json": (
        "telegraf/json_interface_batch.json",
        [
            P("metrics.1.fields.ifInOctets", "interface", "in_octets", integer, ifname="GigabitEthernet0/1"),
            P("metrics.1.fields.ifSpeed", "interface", "speed_mbps", if_speed, ifname="GigabitEthernet0/1"),
            P("metrics.1.fields.ifOperStatus", "interface", "oper_status", oper_status, ifname="GigabitEthernet0/1"),
            P("metrics.1.fields.ifName", "interface", "tag:ifname", name),
            P("metrics.1.tags.ifDescr", "interface", "tag:ifname", name),
            P("metrics.0.fields.uptime", "netdev", "sys_uptime_s", uptime_seconds),
            P("metrics.0.timestamp", "netdev", "time", telegraf_poll_time),
        ],
    ),
    "meraki": (
        "meraki/switch_port_disconnected.json",
        [
            P("alertData.portNum", "device_event", "attr:port_num", meraki_attribute),
            P("alertData.status", "device_event", "attr:status", meraki_attribute),
            P("occurredAt", "device_event", "time", rfc3339),
            P("alertType", "device_event", "message", lambda v: _CONTROL.sub(" ", text(v))[:1024]),
        ],
    ),
    "mapping": (
        "mapping/sensa_ap.json",
        [
            P("wlan.stations", "ap", "num_clients", integer),
            P("device.load", "ap", "cpu_pct", scaled_float(lambda x: x * 100)),
            P("device.up_h", "ap", "uptime_s", scaled_int(3600)),
            P("temp_f", "ap", "temperature_c", scaled_float(lambda f: (f - 32.0) * 5.0 / 9.0)),
            P("t", "ap", "time", epoch("ms")),
            P("wlan.radios.0.ch", "ap_radio", "channel", integer, band="2.4"),
        ],
    ),
    "mapping-interfaces": (
        "mapping/acme_fiberbox.json",
        [
            P("ports.0.rx_kib", "interface", "in_octets", scaled_int(1024), ifname="WAN"),
            P("ports.0.crc_err", "interface", "in_errors", integer, ifname="WAN"),
            P("ports.1.label", "interface", "tag:ifname", label),
            P("box.clock", "interface", "time", rfc3339),
        ],
    ),
}

# Telegraf line protocol: (line number, field key) positions of the seed, their oracles on the value
# the line protocol reader gives (what was sent), and where it is stored.
LP_SEED = "telegraf/snmp_ifxtable_kind.lp"
LP_FIELDS: list[tuple[int, str, str, str, Callable[[Any], Any]]] = [
    (1, "ifHCInOctets", "interface", "in_octets", integer),
    (1, "ifInErrors", "interface", "in_errors", integer),
    (1, "ifHighSpeed", "interface", "speed_mbps", non_negative(integer)),
    (1, "ifOperStatus", "interface", "oper_status", oper_status),
    (1, "ifName", "interface", "tag:ifname", name),
    (0, "uptime", "netdev", "sys_uptime_s", uptime_seconds),
]

# --- values ---------------------------------------------------------------------------------------
HOSTILE_TEXT = ["12", " 12 ", "12.5", "-3", "1e3", "0x10", "+5", "007", "", "NaN", "true", "a,b=c d", 'q"', "\\"]
TIMES = [
    "2026-05-31T23:00:00.123456789Z",
    "2026-05-31T23:00:00.000000001+02:00",
    "2026-05-31t23:00:00z",
    "2026-05-31T23:00:00",
    "2026-05-31 23:00:00Z",
    "2026-05-31T23:00:00.1234567891Z",
    "2026-05-31T23:00:60Z",
    "2026-02-30T00:00:00Z",
]
values = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2, 5, 7, 36, 23, 100, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 1764338400, 1764338400123]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([23.0, 0.5, -0.0, 1.0, 36.0, 1e300, 1764338400.5, 99.5]),
    st.booleans(),
    st.none(),
    st.sampled_from(HOSTILE_TEXT + TIMES),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

# For the sample that goes through influxd: values of the right type more often, so that more is stored.
plausible = st.one_of(
    values,
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=100),
    st.sampled_from(["12", "24.7", "7", *TIMES[:3]]),
    st.text(alphabet='abcXYZ09 ,="\\/-é', min_size=1, max_size=12),
)


def line_protocol_value(value: Any) -> str:
    """How a Telegraf sender writes a typed value."""
    if value is True or value is False:
        return "true" if value else "f"
    if value.__class__ is int:
        return f"{value}i"
    if value.__class__ is float:
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


lp_values = st.one_of(
    values.filter(lambda v: v is not None and not isinstance(v, list | dict)).map(line_protocol_value),
    st.sampled_from(["1u", "-5i", "1.5", "nan", "inf", "x", '"x"', "5", "18446744073709551615u", "1e400", "-0"]),
)


# --- the property ---------------------------------------------------------------------------------
def _put(document: Any, path: Path, value: Any) -> None:
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value  # a key the seed lacks is added (Telegraf's ifName field)


def _picked(points: list[Point], position: Position) -> list[Point]:
    return [p for p in points if p.name == position.measurement and position.select.items() <= p.tags.items()]


def check(
    position: Position, sent: Any, result: list[str] | Rejection, store: Store | None = None, note: bool = True
) -> None:
    try:
        # null is "absent" in the vendor formats, and some have a fallback for it (UniFi's uptime):
        # only a refusal's reason is checked then.
        expected = position.oracle(sent) if sent is not None else None
    except Refuse:
        assert isinstance(result, Rejection), f"{sent!r} at {position.path} must be refused, got {result}"
        expected = REFUSE
    if isinstance(result, Rejection):
        if note:
            event(f"refused: {result.reason}")
        assert result.reason in REASONS and result.reason != "adapter_failed", result
        assert result.detail.strip() and len(result.detail) <= MAX_DETAIL, result
        return
    if note:
        event("stored")
    if expected is None:
        return
    points = _picked(parse("\n".join(result)), position)
    key = position.key
    if key.startswith("tag:"):
        tags = {p.tags.get(key[4:]) for p in _picked(parse("\n".join(result)), position)}
        assert expected is ABSENT or expected in tags, (sent, expected, tags)
    elif key == "time":
        assert points and {p.timestamp_ns for p in points} == {expected}, (sent, expected, points)
    else:
        assert len(points) == 1, (position, points)
        fields = points[0].fields
        if key.startswith("attr:") and expected is not ABSENT:
            key = f"attr_{key[5:]}_{SUFFIX[type(expected)]}"
        if expected is ABSENT:
            assert not any(k == key or k.startswith(f"attr_{key[5:]}_") for k in fields), (sent, fields)
        else:
            assert key in fields, (sent, expected, fields)
            assert fields[key] == expected and type(fields[key]) is type(expected), (sent, fields[key], expected)
    if store is not None and result:
        assert_stored_exactly(store, result)


def json_case(route: str, position: Position, value: Any) -> tuple[list[str] | Rejection, Any]:
    seed = SEEDS[ROUTES[route][0]]
    document = seed.document()
    _put(document, position.path, value)
    payload = json.dumps(document, ensure_ascii=False).encode()
    return PIPELINE.process(seed.topic, payload, False, RECEIVED_NS), value


def lp_case(line: int, key: str, token: str) -> tuple[list[str] | Rejection, Any]:
    seed = SEEDS[LP_SEED]
    lines = seed.payload.decode().splitlines()
    rest, stamp = lines[line].rsplit(" ", 1)
    head, fields = rest.rsplit(" ", 1)  # the seed's tags have escaped spaces, its fields none
    parts = [p for p in fields.split(",") if not p.startswith(f"{key}=")]
    lines[line] = f"{head} {','.join([*parts, f'{key}={token}'])} {stamp}"
    result = PIPELINE.process(seed.topic, "\n".join(lines).encode(), False, RECEIVED_NS)
    try:
        (point,) = parse(lines[line])
    except AdapterError:
        assert isinstance(result, Rejection) and result.reason == "bad_line_protocol", (token, result)
        return result, None
    return result, point.fields[key]


JSON_ROUTES = sorted(ROUTES)


def test_every_position_is_in_its_seed_and_the_seed_is_stored() -> None:
    """The positions point at values of a payload the pipeline stores (so a refusal means something)."""
    for route, (seed, positions) in ROUTES.items():
        result = PIPELINE.process(SEEDS[seed].topic, SEEDS[seed].payload, False, RECEIVED_NS)
        assert isinstance(result, list) and result, (route, result)
        document = SEEDS[seed].document()
        for position in positions:
            node = document
            for step in position.path:
                node = node.get(step) if isinstance(node, dict) else node[step]
            if node is None:
                assert position.path[-1] == "ifName", position  # added by the property
                continue
            result = json_case(route, position, node)[0]
            assert isinstance(result, list), (route, position, result)
            check(position, node, result, note=False)  # stored as it stands
    assert RECEIVED.year == 2026


@pytest.mark.parametrize("route", JSON_ROUTES)
@settings(max_examples=scaled(150))
@given(data=st.data())
def test_any_value_in_any_field_is_refused_or_stored_as_sent(route: str, data: st.DataObject) -> None:
    position = data.draw(st.sampled_from(ROUTES[route][1]))
    result, sent = json_case(route, position, data.draw(values))
    check(position, sent, result)


@settings(max_examples=scaled(300))
@given(where=st.sampled_from(LP_FIELDS), token=lp_values)
def test_any_value_in_any_telegraf_line_protocol_field_is_refused_or_stored_as_sent(
    where: tuple[int, str, str, str, Callable[[Any], Any]], token: str
) -> None:
    line, key, measurement, target, oracle = where
    result, sent = lp_case(line, key, token)
    if sent is not None:
        select = {} if target.startswith("tag:") or measurement == "netdev" else {"ifname": "wan0"}
        if key == "ifName":
            select = {}
        check(Position((line, key), measurement, target, oracle, select), sent, result)


@pytest.mark.servers
@pytest.mark.parametrize("route", [*JSON_ROUTES, "telegraf-lp"])
@settings(max_examples=scaled(30))
@given(data=st.data())
def test_what_is_stored_is_what_influxdb_keeps(store: Store, route: str, data: st.DataObject) -> None:
    """A smaller sample, through a real influxd: the lines of a stored message are kept exactly."""
    if route == "telegraf-lp":
        line, key, measurement, target, oracle = data.draw(st.sampled_from(LP_FIELDS))
        result, sent = lp_case(line, key, data.draw(lp_values))
        if sent is not None:
            select = {} if target.startswith("tag:") or measurement == "netdev" else {"ifname": "wan0"}
            check(Position((line, key), measurement, target, oracle, select), sent, result, store)
        return
    position = data.draw(st.sampled_from(ROUTES[route][1]))
    result, sent = json_case(route, position, data.draw(plausible))
    check(position, sent, result, store)


# --- a key given twice ----------------------------------------------------------------------------
KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:')
JSON_SEEDS = sorted(name for name, seed in SEEDS.items() if seed.is_json)


@settings(max_examples=scaled(300))
@given(data=st.data())
def test_a_key_given_twice_anywhere_on_any_json_route_is_refused_naming_it(data: st.DataObject) -> None:
    """Any key of any JSON payload (canonical or vendor), at any depth, written a second time with
    any value before its first occurrence: refused as bad_json, naming the key."""
    seed = SEEDS[data.draw(st.sampled_from(JSON_SEEDS))]
    keys = list(KEY.finditer(seed.payload))
    found = data.draw(st.sampled_from(keys))
    value = json.dumps(data.draw(values), ensure_ascii=False).encode()
    payload = seed.payload[: found.start()] + found.group(0) + b" " + value + b", " + seed.payload[found.start() :]
    result = PIPELINE.process(seed.topic, payload, False, RECEIVED_NS)
    assert isinstance(result, Rejection) and result.reason == "bad_json", (seed.name, found.group(0), result)
    assert json.loads(b'"' + found.group(1) + b'"') in result.detail, result.detail
