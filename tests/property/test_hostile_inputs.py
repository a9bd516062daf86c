"""Inputs crafted to break the collector: line protocol injected through topic levels, payload ids,
vendor fields and event attributes; oversized, deeply nested and huge payloads; NaN and Infinity;
integers beyond 64 bits; times far from now; bytes that are not UTF-8.

Each is refused with a stable reason and a detail that says what is wrong, or stored with its
special characters escaped (checked by reading them back from a real InfluxDB). None raises.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from collector.ingest.adapters.telegraf.lineprotocol import parse
from collector.ingest.decode import REASONS, Rejection
from tests.property.inputs import MAX_DETAIL, RECEIVED_NS, ROUTE_SEEDS, ROUTES, SEEDS, Seed, make_pipeline
from tests.property.store import Store, assert_stored_exactly

PIPELINE = make_pipeline()

# Level values that would break out of a tag (",", " ", "="), end a line ("\n"), open a string ('"'),
# escape ("\\"), start a comment ("#"), be an MQTT wildcard, or simply not be a level value.
BAD_LEVELS = [
    ",",
    " ",
    "=",
    '"',
    "\\",
    "\n",
    "ap\n",
    "\nap",
    "a,kind=x",
    "a b",
    "a=b",
    'a"b',
    "a\\b",
    "a\tb",
    "\x00",
    "é",
    "#",
    "+",
    "x" * 65,
    "",
]


def rejected(result: list[str] | Rejection, reason: str | tuple[str, ...], *words: str) -> Rejection:
    """``result`` must be a refusal with one of ``reason``, a readable detail containing ``words``."""
    reasons = (reason,) if isinstance(reason, str) else reason
    assert isinstance(result, Rejection), result
    assert result.reason in reasons and result.reason in REASONS, result
    assert result.detail.strip() and len(result.detail) <= MAX_DETAIL, result
    for word in words:
        assert word in result.detail, (word, result)
    return result


def process(topic: str, payload: bytes, pipeline: Any = PIPELINE) -> list[str] | Rejection:
    return pipeline.process(topic, payload, False, RECEIVED_NS)  # type: ignore[no-any-return]


def edited(seed: Seed, change: Callable[[Any], object]) -> bytes:
    document = seed.document()
    change(document)
    return json.dumps(document, allow_nan=True).encode()


# --- line protocol injected through topic levels ---------------------------------------------------
def _topic(route: str, values: dict[str, str]) -> str:
    levels = []
    for level in ROUTES[route].split("/"):
        name = level.strip("{}")
        levels.append(
            values.get(name, level if level != "+" else "snmp") if level.startswith("{") or level == "+" else level
        )
    return "/".join(levels)


def _valid_values(route: str) -> dict[str, str]:
    levels = ROUTES[route].split("/")
    seed_levels = ROUTE_SEEDS[route].topic.split("/")
    return {level.strip("{}"): value for level, value in zip(levels, seed_levels, strict=True) if level[0] in "{+"}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_topic_levels_that_would_inject_line_protocol_are_refused(route: str) -> None:
    seed = ROUTE_SEEDS[route]
    valid = _valid_values(route)
    assert isinstance(process(_topic(route, valid), seed.payload), list)  # the valid topic is stored
    for level in valid:
        for bad in BAD_LEVELS:
            topic = _topic(route, {**valid, level: bad})
            if bad == "" and level == "+":
                continue
            result = rejected(process(topic, seed.payload), "bad_topic")
            if bad:
                assert repr(bad)[:40] in result.detail or "levels" in result.detail, (topic, result)


def test_a_topic_of_many_levels_or_64_kib_is_refused_briefly() -> None:
    for topic in ["bxl/" + "a/" * 30_000 + "x", "bxl/v1/" + "n" * 65_000 + "/s/ap/d/state", "unifi/" + "/" * 5000]:
        rejected(process(topic, ROUTE_SEEDS["canonical"].payload), "bad_topic")


# --- ids and names inside payloads -----------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        "ap-1,kind=x",
        "ap-1 x",
        "ap-1=x",
        'ap-1"',
        "ap-1\\",
        "ap-1\n",
        "\nap-1",
        "ap-1\x00",
        "ap-1#",
        "-ap-1",
        "x" * 65,
        "",
        "é",
    ],
)
def test_payload_ids_that_would_inject_line_protocol_are_refused(bad: str) -> None:
    state = SEEDS["device_state"]
    result = process(state.topic, edited(state, lambda d: d.update(device_id=bad)))
    rejected(result, "invalid", "device_id")
    probe = SEEDS["link_probe"]
    rejected(process(probe.topic, edited(probe, lambda d: d.update(target=bad))), "invalid", "target")
    event = SEEDS["device_event"]
    rejected(process(event.topic, edited(event, lambda d: d.update(type=bad))), "invalid", "type")
    rejected(process(event.topic, edited(event, lambda d: d["attributes"].update({bad: 1}))), "invalid", "attributes")


@pytest.mark.parametrize("control", ["\n", "\r", "\x00", "\x1b", "\x7f"])
def test_control_characters_in_stored_strings_are_refused(control: str) -> None:
    counters = SEEDS["if_counters"]
    result = process(counters.topic, edited(counters, lambda d: d["interfaces"][0].update(name=f"ge{control}0")))
    rejected(result, "invalid", "interfaces.0.name")
    event = SEEDS["device_event"]
    rejected(process(event.topic, edited(event, lambda d: d.update(message=f"a{control}b"))), "invalid", "message")
    result = process(event.topic, edited(event, lambda d: d["attributes"].update(note=f"a{control}b")))
    rejected(result, "invalid", "attributes")
    netjson = SEEDS["openwrt/ap_monitoring.json"]
    result = process(netjson.topic, edited(netjson, lambda d: d["interfaces"][0].update(name=f"eth{control}0")))
    rejected(result, "invalid", "name")


def test_a_backslash_in_a_tag_is_refused_by_name() -> None:
    """Line protocol has no reliable escape for a backslash in a tag (InfluxDB 1.x reads it two ways)."""
    counters = SEEDS["if_counters"]
    result = process(counters.topic, edited(counters, lambda d: d["interfaces"][0].update(name="ge\\0")))
    rejected(result, "unencodable", "tag value", "'ge\\\\0'")
    telegraf = SEEDS["telegraf/json_interface_batch.json"]
    result = process(telegraf.topic, edited(telegraf, lambda d: d["metrics"][1]["tags"].update(ifDescr="e\\1")))
    rejected(result, "unencodable", "'e\\\\1'")


TRICKY_NAMES = ["a,b", "a b", "a=b", 'a"b', "#a", " a", "a ", "a,b=c d", "é😀", "time", "'", ",", "=", " "]
TRICKY_TEXTS = ['say "hi"', "back\\slash", "trailing\\", '\\"', ",= #", "é😀", "\\t", " lead", "time", "i", "1i", "t"]


def _set_interface_name(name: str) -> Callable[[Any], object]:
    return lambda document: document["interfaces"][1].update(name=name)


def _set(values: dict[str, Any]) -> Callable[[Any], object]:
    return lambda document: document.update(values)


@pytest.mark.servers
def test_tricky_names_and_strings_are_stored_escaped_exactly(store: Store) -> None:
    """Interface names (tags) and event, Meraki and Telegraf strings (fields) with line protocol's
    special characters are written escaped: InfluxDB stores exactly the original text."""
    messages: list[tuple[str, bytes]] = []
    counters = SEEDS["if_counters"]
    for name in TRICKY_NAMES:
        messages.append((counters.topic, edited(counters, _set_interface_name(name))))
    event = SEEDS["device_event"]
    for i, text in enumerate(TRICKY_TEXTS):
        messages.append((event.topic, edited(event, _set({"message": text, "attributes": {"note": text, "n": i}}))))
    netjson = SEEDS["openwrt/router_monitoring.json"]
    messages.append((netjson.topic, edited(netjson, lambda d: d["interfaces"][0].update(name='wan "1", =x'))))
    meraki = SEEDS["meraki/switch_port_disconnected.json"]
    messages.append((meraki.topic, edited(meraki, lambda d: d.update(alertType='Port "2" down\\now\nsoon'))))
    messages.append((meraki.topic, edited(meraki, lambda d: d["alertData"].update({"portDesc": 'to "core", =1 \\'}))))
    fiberbox = SEEDS["mapping/acme_fiberbox.json"]
    messages.append((fiberbox.topic, edited(fiberbox, lambda d: d["ports"][0].update(label="WAN, uplink=1"))))
    telegraf = b"interface,ifName=eth\\,0\\ x\\=1 ifHCInOctets=1i,ifOperStatus=1i 1780272000000000000"
    messages.append(("telegraf/21004/s/sw-1/snmp", telegraf))

    for topic, payload in messages:
        lines = process(topic, payload)
        assert isinstance(lines, list) and lines, (topic, payload, lines)
        assert_stored_exactly(store, lines)

    # What was stored is the original text, not merely what our own reader makes of the lines.
    lines = process(counters.topic, edited(counters, lambda d: d["interfaces"][1].update(name='a,b=c d"e')))
    assert isinstance(lines, list)
    assert {"ifname": 'a,b=c d"e'}.items() <= parse(lines[2])[0].tags.items()
    lines = process(meraki.topic, edited(meraki, lambda d: d.update(alertType='Port "2"\ndown\\')))
    assert isinstance(lines, list)
    assert parse(lines[0])[0].fields["message"] == 'Port "2" down\\'  # the newline became a space


# --- size and shape --------------------------------------------------------------------------------
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_oversized_payloads_are_refused_before_decoding(route: str) -> None:
    pipeline = make_pipeline(max_payload_bytes=4096)
    topic = ROUTE_SEEDS[route].topic
    rejected(process(topic, b"{" + b" " * 4095 + b"}", pipeline), "payload_too_large", "4097 bytes", "4096")
    at_limit = process(topic, b"{" + b" " * 4094 + b"}", pipeline)
    assert not isinstance(at_limit, Rejection) or at_limit.reason != "payload_too_large", at_limit


NESTED = {
    "100k [": b"[" * 100_000,
    "100k [ and ]": b"[" * 100_000 + b"]" * 100_000,
    "40k objects": b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
    "schema, then 60k [": b'{"schema": "ap.metrics/1", "radios": ' + b"[" * 60_000,
}


@pytest.mark.parametrize("shape", sorted(NESTED))
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_deeply_nested_json_is_refused_quickly(route: str, shape: str) -> None:
    started = time.monotonic()
    result = process(ROUTE_SEEDS[route].topic, NESTED[shape])
    assert time.monotonic() - started < 1.0, "decoding a nested payload must not take long"
    rejected(result, ("bad_json", "bad_line_protocol"))


def _wide_object(keys: int) -> dict[str, int]:
    return {f"k{i:06d}": i for i in range(keys)}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_huge_json_documents_are_handled_quickly_with_a_short_detail(route: str) -> None:
    seed = ROUTE_SEEDS[route]
    wide = json.dumps(_wide_object(20_000)).encode()  # 280 KB: above the default limit
    assert len(wide) > 256 * 1024
    rejected(process(seed.topic, wide), "payload_too_large")
    payloads = [json.dumps(_wide_object(15_000)).encode(), json.dumps(list(range(30_000))).encode()]
    if seed.is_json:
        payloads.append(edited(seed, lambda d: (d[0] if isinstance(d, list) else d).update(_wide_object(12_000))))
    for payload in payloads:
        assert len(payload) <= 256 * 1024
        started = time.monotonic()
        result = process(seed.topic, payload)
        assert time.monotonic() - started < 1.0
        if isinstance(result, Rejection):
            rejected(result, REASONS)


def test_extra_keys_are_named_a_few_at_a_time() -> None:
    state = SEEDS["device_state"]
    result = process(state.topic, edited(state, lambda d: d.update(_wide_object(12_000))))
    rejected(result, "invalid", "k000000", "Extra inputs are not permitted", "more")
    long_key = edited(state, lambda d: d.update({"k" * 100_000: 1}))
    rejected(process(state.topic, long_key), "invalid", "Extra inputs")


def test_too_many_radios_or_interfaces_are_refused() -> None:
    metrics = SEEDS["ap_metrics"]
    result = process(metrics.topic, edited(metrics, lambda d: d.update(radios=d["radios"] * 100)))
    rejected(result, "invalid", "radios")
    counters = SEEDS["if_counters"]
    many = [{"name": f"p{i}", "oper_status": "up"} for i in range(3000)]
    rejected(process(counters.topic, edited(counters, lambda d: d.update(interfaces=many))), "invalid", "interfaces")


# --- numbers ---------------------------------------------------------------------------------------
NAN_CASES: list[tuple[str, Callable[[Any], object]]] = [
    ("ap_metrics", lambda d: d.update(cpu_pct=float("nan"))),
    ("ap_metrics", lambda d: d.update(cpu_pct=float("inf"))),
    ("ap_metrics", lambda d: d["radios"][0].update(tx_power_dbm=float("-inf"))),
    ("link_probe", lambda d: d.update(rtt_avg_ms=float("nan"))),
    ("device_event", lambda d: d["attributes"].update(x=float("nan"))),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(uptime=float("nan"))),
    ("openwrt/ap_monitoring.json", lambda d: d["resources"]["cpu"].update(idle=float("inf"))),
    ("telegraf/json_interface_batch.json", lambda d: d["metrics"][0]["fields"].update(ifHCInOctets=float("nan"))),
    ("meraki/switch_port_disconnected.json", lambda d: d["alertData"].update(portNum=float("nan"))),
    ("mapping/sensa_ap.json", lambda d: d["device"].update(load=float("inf"))),
    ("mapping/acme_fiberbox.json", lambda d: d["ports"][0].update(rx_kib=float("-inf"))),
]


@pytest.mark.parametrize(("seed", "change"), NAN_CASES)
def test_nan_and_infinity_are_refused(seed: str, change: Callable[[Any], object]) -> None:
    payload = edited(SEEDS[seed], change)
    assert b"NaN" in payload or b"Infinity" in payload
    rejected(process(SEEDS[seed].topic, payload), ("bad_json", "invalid"))


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "+Inf", "-inf", "Infinity", "1e400", "-1e400"])
def test_nan_and_infinity_in_telegraf_line_protocol_are_refused(value: str) -> None:
    line = f"interface,ifName=e0 ifHCInOctets=1i,ifOperStatus=1i,x={value} 1780272000000000000"
    rejected(process("telegraf/21004/s/sw-1/snmp", line.encode()), "bad_line_protocol", "'x'")


BIG = [2**63, 2**64, 2**64 + 1, 10**30, 10**400, -(2**63) - 1, -1]
BIG_CASES: list[tuple[str, Callable[[Any, int], object], str]] = [
    ("ap_metrics", lambda d, v: d.update(uplink_rx_bytes=v), "uplink_rx_bytes"),
    ("ap_clients", lambda d, v: d.update(seq=v), "seq"),
    ("if_counters", lambda d, v: d["interfaces"][1].update(in_octets=v), "in_octets"),
    ("unifi/uap_wrapped_6ghz.json", lambda d, v: d["data"][0]["uplink"].update(rx_bytes=v), "rx_bytes"),
    ("unifi/usw_stat_device.json", lambda d, v: d["port_table"][0].update(tx_bytes=v), ""),
    ("openwrt/ap_monitoring.json", lambda d, v: d["interfaces"][0]["statistics"].update(rx_bytes=v), ""),
    ("telegraf/json_interface_batch.json", lambda d, v: d["metrics"][1]["fields"].update(ifHCInOctets=v), ""),
    ("mapping/acme_fiberbox.json", lambda d, v: d["ports"][0].update(rx_kib=v), ""),
]


@pytest.mark.parametrize(("seed", "change", "word"), BIG_CASES)
def test_integers_beyond_64_bits_are_refused(seed: str, change: Callable[[Any, int], object], word: str) -> None:
    for value in BIG:
        payload = edited(SEEDS[seed], lambda d, v=value: change(d, v))  # type: ignore[misc]
        result = rejected(process(SEEDS[seed].topic, payload), ("invalid", "bad_json"))
        assert word in result.detail or result.reason == "bad_json", result  # JSON itself cannot hold 10**400


@pytest.mark.parametrize("value", ["9223372036854775808i", "18446744073709551615u", "99999999999999999999999i"])
def test_integers_beyond_64_bits_in_telegraf_line_protocol_are_refused(value: str) -> None:
    line = f"interface,ifName=e0 ifHCInOctets={value},ifOperStatus=1i 1780272000000000000"
    rejected(process("telegraf/21004/s/sw-1/snmp", line.encode()), "invalid", "in_octets")


# --- time ------------------------------------------------------------------------------------------
FAR = [
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2262-04-12T00:00:00Z",
    "2026-06-01T00:11:00Z",
    "9999-12-31T23:59:59.999999-23:59",
]


@pytest.mark.parametrize("moment", FAR)
def test_canonical_times_far_from_now_are_refused(moment: str) -> None:
    for name in ["ap_metrics", "device_state", "device_event"]:
        seed = SEEDS[name]
        result = process(seed.topic, edited(seed, lambda d: d.update(ts=moment)))
        rejected(result, "timestamp_out_of_range", "outside")


TIME_CASES: list[tuple[str, Callable[[Any], object]]] = [
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(last_seen=4_102_444_800)),  # 2100
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(last_seen=10**12)),  # year 33658
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(last_seen=-(10**30))),
    ("openwrt/ap_monitoring.json", lambda d: d["general"].update(local_time=10**20)),
    ("openwrt/ap_monitoring.json", lambda d: d["general"].update(local_time=0)),
    ("telegraf/json_interface_batch.json", lambda d: d["metrics"][0].update(timestamp=10**30)),
    ("telegraf/json_interface_batch.json", lambda d: [m.update(timestamp=1e300) for m in d["metrics"]]),
    ("meraki/aps_went_down.json", lambda d: d.update(occurredAt="9999-12-31T23:59:59Z")),
    ("meraki/aps_went_down.json", lambda d: d.update(occurredAt="0001-01-01T00:00:00+14:00")),
    ("mapping/sensa_ap.json", lambda d: d.update(t=10**20)),
    ("mapping/sensa_ap.json", lambda d: d.update(t=-(10**20))),
    ("mapping/acme_fiberbox.json", lambda d: d["box"].update(clock="2200-01-01T00:00:00Z")),
]


@pytest.mark.parametrize(("seed", "change"), TIME_CASES)
def test_vendor_times_far_from_now_are_refused(seed: str, change: Callable[[Any], object]) -> None:
    result = process(SEEDS[seed].topic, edited(SEEDS[seed], change))
    rejected(result, ("timestamp_out_of_range", "invalid"))


@pytest.mark.parametrize(
    "stamp",
    [
        "99999999999999999999999",
        "-99999999999999999999999",
        "9223372036854775807",
        "²",
        "--5",
        "١٧٨٠٢٧٢٠٠٠٠٠٠٠٠٠٠٠٠",
        "9000000000000000000",
    ],
)
def test_telegraf_timestamps_beyond_any_calendar_are_refused(stamp: str) -> None:
    line = f"interface,ifName=e0 ifHCInOctets=1i,ifOperStatus=1i {stamp}"
    rejected(process("telegraf/21004/s/sw-1/snmp", line.encode()), ("bad_line_protocol", "timestamp_out_of_range"))


# --- encodings -------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_payloads_that_are_not_utf8_are_refused(route: str) -> None:
    seed = ROUTE_SEEDS[route]
    cut = seed.payload.index(b'"' if seed.is_json else b"=") + 1
    payloads = {
        "binary": b"\xff\xfe\x00\x01\x80",
        "a bad byte in a string": seed.payload[:cut] + b"\xff\xc3" + seed.payload[cut:],
        "latin-1": (seed.payload[:cut].decode() + "é" + seed.payload[cut:].decode()).encode("latin-1", "replace"),
        "utf-16": seed.payload.decode().encode("utf-16"),
        "lone surrogate escape": seed.payload[:cut] + rb"\ud800" + seed.payload[cut:],
        "UTF-8 byte order mark": b"\xef\xbb\xbf" + seed.payload,
    }
    for what, payload in payloads.items():
        result = process(seed.topic, payload)
        if what == "lone surrogate escape" and not seed.is_json:
            continue  # in line protocol, \ud800 is six ASCII characters
        if isinstance(result, Rejection):
            rejected(result, ("bad_json", "bad_line_protocol", "invalid", "unsupported"))
        else:
            assert what == "UTF-8 byte order mark" and not seed.is_json, (what, result)


# --- wrong types, everywhere -----------------------------------------------------------------------
WRONG_TYPES: list[Any] = [[], {}, None, [1], {"a": 1}, "", "x", True, -1, 1.5, 2**64]


@pytest.mark.parametrize("seed", sorted(name for name, seed in SEEDS.items() if seed.is_json))
def test_every_value_of_every_sample_replaced_by_a_wrong_type_is_refused_or_stored(seed: str) -> None:
    """Each value of each sample, one at a time, becomes a list, an object, null, a string, a
    number...: the pipeline refuses with a reason (never adapter_failed: an adapter bug) or stores."""
    document = SEEDS[seed].document()
    paths: list[list[str | int]] = []

    def walk(node: Any, path: list[str | int]) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in items:
            paths.append([*path, key])
            walk(child, [*path, key])

    walk(document, [])
    assert paths
    for path in paths:
        for wrong in WRONG_TYPES:
            changed = json.loads(SEEDS[seed].payload)
            node = changed
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = wrong
            result = process(SEEDS[seed].topic, json.dumps(changed).encode())
            if isinstance(result, Rejection):
                assert result.reason != "adapter_failed", (path, wrong, result)
                rejected(result, REASONS)


LP_TOKEN = re.compile(r'[^ ,=\n"]+')
WRONG_TOKENS = [
    '"x"',
    '""',
    "t",
    "false",
    "1.5",
    "-1i",
    "-1",
    "0u",
    "99999999999999999999i",
    "1e400",
    "nan",
    "x",
    "",
    "\\",
    "=",
    ",",
    " ",
    '"',
    "-",
    "\u0661",
    "²i",
]


@pytest.mark.parametrize("seed", sorted(name for name, seed in SEEDS.items() if not seed.is_json))
def test_every_token_of_telegraf_line_protocol_replaced_is_refused_or_stored(seed: str) -> None:
    """Each name, value and timestamp of the line protocol samples, one at a time, becomes a string,
    a boolean, a float, a negative or huge integer, a separator...: refused with a reason, or stored."""
    text = SEEDS[seed].payload.decode()
    tokens = list(LP_TOKEN.finditer(text))
    assert len(tokens) > 10
    for token in tokens:
        for wrong in WRONG_TOKENS:
            payload = (text[: token.start()] + wrong + text[token.end() :]).encode()
            result = process(SEEDS[seed].topic, payload)
            if isinstance(result, Rejection):
                assert result.reason != "adapter_failed", (token.group(), wrong, result)
                rejected(result, REASONS)
