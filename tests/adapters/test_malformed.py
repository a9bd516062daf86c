"""Malformed variants of every vendor format: truncated, wrong types, missing keys. Each is refused
with a reason code and a detail that names the problem; none raises, none is silently dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collector.ingest.pipeline import Rejection
from tests.adapters.helpers import fixture, ns, pipeline

RECEIVED = ns("2025-11-28T14:05:00Z")
UNIFI = "unifi/21004/s/ap-1/stat"
OPENWRT = "openwrt/21004/s/ap-2/monitoring"
TELEGRAF = "telegraf/21004/s/sw-1/snmp"
MERAKI = "meraki/21004/s/ap-3/alert"


def edited(folder: str, name: str, change: Any) -> bytes:
    document = json.loads(fixture(folder, name))
    change(document)
    return json.dumps(document).encode()


def _unwrap(d: dict[str, Any]) -> dict[str, Any]:
    element: dict[str, Any] = d["data"][0]
    return element


UAP = "uap_wrapped_6ghz.json"
AP = "ap_monitoring.json"
DOWN = "aps_went_down.json"
SNMP = fixture("telegraf", "snmp_ifxtable_kind.lp")

CASES: list[tuple[str, str, bytes, str, list[str]]] = [
    # (case, topic, payload, reason, words the detail must contain)
    ("unifi truncated", UNIFI, fixture("unifi", UAP)[:300], "bad_json", ["not JSON"]),
    ("unifi not an object", UNIFI, b"[1, 2]", "bad_json", ["not a JSON object", "array"]),
    (
        "unifi uptime text",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d).update(uptime="long")),
        "invalid",
        ["uptime", "integer", "'long'"],
    ),
    (
        "unifi no num_sta",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d).pop("num_sta")),
        "invalid",
        ["num_sta", "missing"],
    ),
    ("unifi no type", UNIFI, edited("unifi", UAP, lambda d: _unwrap(d).pop("type")), "invalid", ["type", "missing"]),
    (
        "unifi gateway",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d).update(type="ugw")),
        "unsupported",
        ["'ugw'", "uap, usw"],
    ),
    (
        "unifi radio without width",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d)["radio_table"].pop(0)),
        "invalid",
        ["radio_table_stats.0.name", "wifi0", "width"],
    ),
    (
        "unifi channel text",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d)["radio_table_stats"][1].update(channel="auto")),
        "invalid",
        ["radio_table_stats.1.channel", "'auto'"],
    ),
    (
        "unifi cpu out of range",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d)["system-stats"].update(cpu="140.5")),
        "invalid",
        ["cpu_pct", "100"],
    ),
    (
        "unifi uplink counter negative",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d)["uplink"].update(rx_bytes=-1)),
        "invalid",
        ["uplink_rx_bytes"],
    ),
    (
        "unifi vap counter MAC-like",
        UNIFI,
        edited("unifi", UAP, lambda d: _unwrap(d)["vap_table"][0].update(tx_bytes="a4:83:e7:00:11:22")),
        "invalid",
        ["vap_table.0.tx_bytes", "<mac>"],
    ),
    (
        "unifi switch port without index",
        UNIFI,
        edited("unifi", "usw_stat_device.json", lambda d: d["port_table"][1].pop("port_idx")),
        "invalid",
        ["port_table.1.port_idx", "missing"],
    ),
    ("netjson truncated", OPENWRT, fixture("openwrt", AP)[:-20], "bad_json", ["not JSON"]),
    (
        "netjson other type",
        OPENWRT,
        edited("openwrt", AP, lambda d: d.update(type="DeviceConfiguration")),
        "unsupported",
        ["DeviceConfiguration"],
    ),
    ("netjson no type", OPENWRT, edited("openwrt", AP, lambda d: d.pop("type")), "invalid", ["type", "missing"]),
    (
        "netjson interfaces object",
        OPENWRT,
        edited("openwrt", AP, lambda d: d.update(interfaces={})),
        "invalid",
        ["interfaces", "array"],
    ),
    (
        "netjson counter text",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["interfaces"][0]["statistics"].update(rx_bytes="many")),
        "invalid",
        ["interfaces.0.statistics.rx_bytes", "'many'"],
    ),
    (
        "netjson no frequency",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["interfaces"][2]["wireless"].pop("frequency")),
        "invalid",
        ["interfaces.2.wireless.frequency", "missing"],
    ),
    (
        "netjson 60 GHz",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["interfaces"][3]["wireless"].update(frequency=60480)),
        "unsupported",
        ["60480 MHz"],
    ),
    (
        "netjson up is text",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["interfaces"][0].update(up="yes")),
        "invalid",
        ["interfaces.0.up", "true or false"],
    ),
    (
        "netjson no uptime",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["general"].pop("uptime")),
        "invalid",
        ["general.uptime", "missing"],
    ),
    (
        "netjson unnamed interface",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["interfaces"][0].pop("name")),
        "invalid",
        ["interfaces.0.name", "missing"],
    ),
    (
        "netjson bad memory",
        OPENWRT,
        edited("openwrt", AP, lambda d: d["resources"]["memory"].update(total=0)),
        "invalid",
        ["resources.memory.total", "positive"],
    ),
    ("telegraf truncated line", TELEGRAF, SNMP[:120], "bad_line_protocol", ["line 2"]),
    ("telegraf no fields", TELEGRAF, b"interface,ifName=x", "bad_line_protocol", ["line 1", "no fields"]),
    (
        "telegraf bad integer",
        TELEGRAF,
        SNMP.replace(b"ifInErrors=5i", b"ifInErrors=5xi"),
        "bad_line_protocol",
        ["line 2", "ifInErrors", "'5xi'"],
    ),
    (
        "telegraf counter is a string",
        TELEGRAF,
        SNMP.replace(b"ifHCInOctets=9123456789012i", b'ifHCInOctets="lots"'),
        "invalid",
        ["line 2", "ifHCInOctets", "'lots'"],
    ),
    (
        "telegraf unquoted MAC",
        TELEGRAF,
        SNMP.replace(b'ifPhysAddress="02:00:5e:10:00:01"', b"ifPhysAddress=02:00:5e:10:00:01"),
        "bad_line_protocol",
        ["ifPhysAddress", "'<mac>'"],
    ),
    (
        "telegraf cut on a field boundary",
        TELEGRAF,
        SNMP[: SNMP.index(b",ifInErrors=5i")],
        "bad_line_protocol",
        ["line 2", "no timestamp", "truncated"],
    ),
    (
        "telegraf cut inside a counter",
        TELEGRAF,
        b"interface,ifName=e0 ifInOctets=34366,ifOperStatus=1i 1764338400000000000",
        "invalid",
        ["interface.ifInOctets", "integer", "34366.0"],
    ),
    (
        "telegraf status 9",
        TELEGRAF,
        SNMP.replace(b"ifOperStatus=7i", b"ifOperStatus=9i"),
        "invalid",
        ["ifOperStatus", "1..7"],
    ),
    (
        "telegraf unknown measurement",
        TELEGRAF,
        b"cpu,cpu=cpu0 usage_idle=99.5 1764338400000000000",
        "unsupported",
        ["'cpu'", "interface, net, ping, snmp"],
    ),
    ("telegraf snmp alone", TELEGRAF, SNMP.split(b"\n")[0], "unsupported", ["snmp row without interface rows"]),
    (
        "telegraf 32-bit counter too big",
        TELEGRAF,
        b"interface,ifDescr=e0 ifInOctets=5000000000i,ifOperStatus=1i 1764338400000000000",
        "invalid",
        ["in_octets", "32-bit"],
    ),
    (
        "telegraf duplicate interface",
        TELEGRAF,
        SNMP.replace(b'ifName="lan0"', b'ifName="wan0"'),
        "invalid",
        ["names must be unique"],
    ),
    (
        "telegraf json truncated",
        TELEGRAF,
        fixture("telegraf", "json_interface_batch.json")[:200],
        "bad_json",
        ["not JSON"],
    ),
    (
        "telegraf json fields not an object",
        TELEGRAF,
        edited("telegraf", "json_interface_batch.json", lambda d: d["metrics"][1].update(fields=[1])),
        "invalid",
        ["metrics.1.fields", "object"],
    ),
    (
        "telegraf json without name",
        TELEGRAF,
        edited("telegraf", "json_interface_batch.json", lambda d: d["metrics"][0].pop("name")),
        "invalid",
        ["metrics.0.name", "missing"],
    ),
    ("telegraf not text", TELEGRAF, b"\xff\xfe\x00binary", "bad_line_protocol", ["UTF-8"]),
    ("meraki truncated", MERAKI, fixture("meraki", DOWN)[:100], "bad_json", ["not JSON"]),
    (
        "meraki no occurredAt",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.pop("occurredAt")),
        "invalid",
        ["occurredAt", "missing"],
    ),
    (
        "meraki bad time",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(occurredAt="yesterday")),
        "invalid",
        ["occurredAt", "RFC 3339"],
    ),
    (
        "meraki time without offset",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(occurredAt="2025-11-28T14:04:31")),
        "invalid",
        ["occurredAt", "offset"],
    ),
    (
        "meraki type id number",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(alertTypeId=7)),
        "invalid",
        ["alertTypeId", "string"],
    ),
    (
        "meraki unknown level",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(alertLevel="panic")),
        "invalid",
        ["alertLevel", "'panic'"],
    ),
    (
        "meraki no model",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.pop("deviceModel")),
        "invalid",
        ["deviceModel", "routing.meraki.kind"],
    ),
    (
        "meraki alertData list",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(alertData=[])),
        "invalid",
        ["alertData", "object"],
    ),
    (
        "meraki odd type id",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(alertTypeId="Bad Type")),
        "invalid",
        ["type"],
    ),
    (
        "meraki too old",
        MERAKI,
        edited("meraki", DOWN, lambda d: d.update(occurredAt="2018-02-11T00:00:00Z")),
        "timestamp_out_of_range",
        ["2018-02-11"],
    ),
]


@pytest.mark.parametrize(("topic", "payload", "reason", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_payload_is_refused_with_a_reason_naming_the_problem(
    topic: str, payload: bytes, reason: str, words: list[str]
) -> None:
    result = pipeline().process(topic, payload, False, RECEIVED)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    for word in words:
        assert word in result.detail, result
    assert result.detail.startswith(topic.split("/")[0] + ":") or reason == "timestamp_out_of_range", result
    assert "02:00:5e" not in result.detail and "a4:83:e7" not in result.detail  # MACs are masked


def test_an_adapter_bug_costs_one_dead_letter_not_the_collector() -> None:
    from collector.ingest.routing import Route
    from collector.ingest.topics import TopicPattern

    class Broken:
        name = "broken"

        def decode(self, payload: bytes | bytearray, source: object, received_ns: int) -> list[object]:
            raise KeyError("oops")

    p = pipeline()
    p.routes.insert(0, Route("broken", TopicPattern.for_route("broken/{device}"), Broken()))  # type: ignore[arg-type]
    result = p.process("broken/d1", b"{}", False, RECEIVED)
    assert result == Rejection("adapter_failed", "broken: KeyError: 'oops'")
