"""Issue 13, items 1-5, at the decode level: each case the outside test got through, now refused with
a stable reason and a detail naming the field (or, for times and event attributes, stored exactly).

The same cases go through mosquitto, the collector and influxd in
tests/integration/test_strict_input_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from collector.ingest.adapters.telegraf.lineprotocol import parse
from collector.ingest.decode import Rejection
from schemas.timestamps import EpochNs, parse_rfc3339
from tests.property.inputs import RECEIVED_NS, SEEDS, make_pipeline

PIPELINE = make_pipeline()


def process(topic: str, payload: bytes) -> list[str] | Rejection:
    return PIPELINE.process(topic, payload, False, RECEIVED_NS)


def edited(seed: str, change: Callable[[Any], object]) -> tuple[str, bytes]:
    document = SEEDS[seed].document()
    change(document)
    return SEEDS[seed].topic, json.dumps(document).encode()


def refused(result: list[str] | Rejection, reason: str, *words: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    for word in words:
        assert word in result.detail, (word, result.detail)
    return result


def stored(result: list[str] | Rejection) -> list[dict[str, Any]]:
    assert isinstance(result, list) and result, result
    return [
        {"name": p.name, "tags": p.tags, "fields": p.fields, "time": p.timestamp_ns} for p in parse("\n".join(result))
    ]


# --- 1. types are checked, not coerced ------------------------------------------------------------
COERCED = [
    ("ap_metrics", "cpu_pct", "12"),
    ("ap_metrics", "cpu_pct", True),
    ("ap_metrics", "num_clients", "23"),
    ("ap_metrics", "num_clients", True),
    ("ap_metrics", "uptime_s", " 86400 "),
    ("ap_metrics", "seq", "7"),
    ("ap_metrics", "uplink_rx_bytes", True),
    ("ap_metrics", "num_clients", 23.0),  # the integral-float decision: refused
    ("ap_clients", "rssi_avg_dbm", "-60"),
    ("link_probe", "sent", 10.0),
    ("link_probe", "received", False),
    ("device_state", "seq", "1"),
    ("device_event", "seq", 1.0),
    ("device_event", "severity", 1),
    ("device_state", "state", True),
]


@pytest.mark.parametrize(("seed", "key", "value"), COERCED)
def test_a_wrong_type_on_a_canonical_topic_is_refused_naming_the_field(seed: str, key: str, value: Any) -> None:
    refused(process(*edited(seed, lambda d: d.update({key: value}))), "invalid", key)


@pytest.mark.parametrize(
    ("where", "value"),
    [("channel", "6"), ("channel", 6.0), ("width_mhz", 20.0), ("width_mhz", True), ("tx_power_dbm", "17")],
)
def test_a_wrong_type_inside_a_radio_is_refused(where: str, value: Any) -> None:
    result = process(*edited("ap_metrics", lambda d: d["radios"][0].update({where: value})))
    refused(result, "invalid", f"radios.0.{where}")


@pytest.mark.parametrize(("key", "value"), [("counter_bits", 32.0), ("counter_bits", True), ("in_octets", "5")])
def test_a_wrong_type_inside_an_interface_is_refused(key: str, value: Any) -> None:
    refused(process(*edited("if_counters", lambda d: d["interfaces"][0].update({key: value}))), "invalid", key)


def test_an_integer_where_a_float_belongs_is_that_number() -> None:
    points = stored(process(*edited("ap_metrics", lambda d: d.update(cpu_pct=12, temperature_c=-3))))
    assert points[0]["fields"]["cpu_pct"] == 12.0 and type(points[0]["fields"]["cpu_pct"]) is float
    assert points[0]["fields"]["temperature_c"] == -3.0


# --- 2. duplicate keys ----------------------------------------------------------------------------
def _duplicate(payload: bytes, key: bytes, value: bytes, occurrence: int = 0) -> bytes:
    """``payload`` with ``"key": value`` written a second time right before the ``occurrence``-th ``key``."""
    at = -1
    for _ in range(occurrence + 1):
        at = payload.index(b'"' + key + b'"', at + 1)
    return payload[:at] + b'"' + key + b'": ' + value + b", " + payload[at:]


@pytest.mark.parametrize(
    ("seed", "key", "occurrence"),
    [
        ("ap_metrics", b"num_clients", 0),  # top level
        ("ap_metrics", b"channel", 1),  # in the second radio
        ("if_counters", b"in_octets", 0),  # in an interface
        ("ap_clients", b"rssi_dbm", 0),  # in a client entry
        ("device_event", b"seq", 0),
        ("device_state", b"state", 0),
    ],
)
def test_a_key_given_twice_on_a_canonical_topic_is_refused_naming_it(seed: str, key: bytes, occurrence: int) -> None:
    payload = SEEDS[seed].payload
    assert key in payload, (seed, key)
    result = process(SEEDS[seed].topic, _duplicate(payload, key, b"99", occurrence))
    refused(result, "bad_json", "twice", key.decode())


def test_a_key_given_twice_in_event_attributes_is_refused() -> None:
    topic, payload = edited("device_event", lambda d: d.update(attributes={"port": 1}))
    refused(process(topic, payload.replace(b'{"port": 1}', b'{"port": 1, "port": 2}')), "bad_json", "port")


@pytest.mark.parametrize("spacing", [b" :", b"\n:", b"\t :", b"\r\n :"])
def test_a_key_given_twice_is_found_whatever_the_whitespace(spacing: bytes) -> None:
    topic, payload = SEEDS["ap_metrics"].topic, SEEDS["ap_metrics"].payload
    twice = payload.replace(b'"num_clients":', b'"num_clients"' + spacing, 1)
    twice = twice[:-1] + b', "seq"' + spacing + b" 1}"
    refused(process(topic, twice), "bad_json", "twice", "seq")


def test_quotes_and_colons_inside_text_values_are_not_taken_for_keys() -> None:
    """The canonical path counts '":' to avoid reading a payload twice; text that contains '":' (and
    pretty-printed JSON) takes the exact check and is stored when no key is given twice."""
    text = 'said "a": then "b" : c'
    result = process(*edited("device_event", lambda d: d.update(message=text, attributes={"note": '"x":'})))
    points = stored(result)
    assert points[0]["fields"]["message"] == text and points[0]["fields"]["attr_note_s"] == '"x":'
    pretty = json.dumps(SEEDS["ap_metrics"].document(), indent=2).encode()
    assert stored(process(SEEDS["ap_metrics"].topic, pretty)) == stored(process(*edited("ap_metrics", lambda d: d)))


DUPLICATED_VENDOR = [
    ("unifi/uap_wrapped_6ghz.json", b"num_sta", 0),
    ("unifi/uap_wrapped_6ghz.json", b"channel", 1),
    ("unifi/usw_stat_device.json", b"rx_bytes", 2),
    ("openwrt/ap_monitoring.json", b"rx_bytes", 0),
    ("telegraf/json_interface_batch.json", b"ifInOctets", 0),
    ("telegraf/json_interface_batch.json", b"agent_host", 1),
    ("meraki/aps_went_down.json", b"occurredAt", 0),
    ("mapping/sensa_ap.json", b"stations", 0),
    ("mapping/acme_fiberbox.json", b"rx_kib", 1),
]


@pytest.mark.parametrize(("seed", "key", "occurrence"), DUPLICATED_VENDOR)
def test_a_key_given_twice_is_refused_by_every_json_adapter(seed: str, key: bytes, occurrence: int) -> None:
    payload = SEEDS[seed].payload
    value = b'"2025-11-28T14:04:31Z"' if key == b"occurredAt" else b"1"
    result = process(SEEDS[seed].topic, _duplicate(payload, key, value, occurrence))
    refused(result, "bad_json", "twice", key.decode())


# --- 3. nanosecond timestamps --------------------------------------------------------------------
def test_two_events_one_nanosecond_apart_stay_two_points_at_their_exact_times() -> None:
    times = ["2026-05-31T23:59:34.123456001Z", "2026-05-31T23:59:34.123456999Z", "2026-05-31T23:59:34.123457Z"]
    stamps = []
    for ts in times:
        points = stored(process(*edited("device_event", lambda d, ts=ts: d.update(ts=ts))))  # type: ignore[misc]
        stamps.append(points[0]["time"])
    assert stamps == [1780271974123456001, 1780271974123456999, 1780271974123457000]


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-05-31T23:59:34Z", 1780271974_000000000),
        ("2026-05-31T23:59:34.1Z", 1780271974_100000000),
        ("2026-05-31T23:59:34.000000001Z", 1780271974_000000001),
        ("2026-06-01T01:59:34.123456789+02:00", 1780271974_123456789),
        ("2026-05-31T20:29:34.5-03:30", 1780271974_500000000),
        ("2026-05-31t23:59:34.999999999z", 1780271974_999999999),
        ("2026-05-31T23:59:34-00:00", 1780271974_000000000),
    ],
)
def test_rfc3339_times_are_read_to_the_nanosecond(text: str, ns: int) -> None:
    moment = parse_rfc3339(text)
    assert moment == ns and type(moment) is EpochNs
    assert parse_rfc3339(moment.isoformat()) == ns  # isoformat is exact too
    assert f"{moment}" == str(ns)  # what line protocol writes


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2026-05-31T23:59:34.1234567891Z", "10 fractional digits"),
        ("2026-05-31T23:59:34", "UTC offset"),
        ("2026-05-31 23:59:34Z", "RFC 3339"),
        ("2026-05-31T23:59:60Z", "second"),
        ("2026-02-30T00:00:00Z", "day"),
        ("2026-05-31T24:00:00Z", "hour"),
        ("2026-05-31T23:59:34+24:00", "offset"),
        ("2026-05-31T23:59Z", "RFC 3339"),
        ("20260531T235934Z", "RFC 3339"),
        ("2026-05-31T23:59:34.Z", "RFC 3339"),
        ("٢٠٢٦-05-31T23:59:34Z", "RFC 3339"),
    ],
)
def test_times_that_are_not_rfc3339_or_cannot_be_kept_exactly_are_refused(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_rfc3339(text)
    refused(process(*edited("device_state", lambda d: d.update(ts=text))), "invalid", "ts", words)


@pytest.mark.parametrize("value", [1780271974, 1780271974.5, True, None, ["2026-05-31T23:59:34Z"]])
def test_a_ts_that_is_not_a_string_is_refused(value: Any) -> None:
    refused(process(*edited("ap_metrics", lambda d: d.update(ts=value))), "invalid", "ts")


def test_vendor_times_keep_their_nanoseconds() -> None:
    topic, payload = edited(
        "meraki/aps_went_down.json", lambda d: d.update(occurredAt="2026-05-31T23:59:34.123456789Z")
    )
    assert {p["time"] for p in stored(process(topic, payload))} == {1780271974_123456789}
    line = b"interface,ifName=e0 ifHCInOctets=1i,ifOperStatus=1i 1780271974123456789"
    assert stored(process("telegraf/21004/s/sw-1/snmp", line))[0]["time"] == 1780271974_123456789
    # Epoch floats are read as the decimal they were written as, not as the nearest binary float
    # times 10**9 (which is ...134363904 here).
    stamped = edited(
        "telegraf/json_interface_batch.json", lambda d: [m.update(timestamp=1780271974.134364) for m in d["metrics"]]
    )
    assert stored(process(*stamped))[0]["time"] == 1780271974_134364000


# --- 4. event attributes: each type in its own field ---------------------------------------------
def test_event_attributes_are_stored_under_a_field_per_type() -> None:
    attributes = {"from_channel": 36, "to": "36", "ratio": 0.5, "radar": True, "whole": 2.0}
    fields = stored(process(*edited("device_event", lambda d: d.update(attributes=attributes))))[0]["fields"]
    assert {k: v for k, v in fields.items() if k.startswith("attr_")} == {
        "attr_from_channel_i": 36,
        "attr_to_s": "36",
        "attr_ratio_f": 0.5,
        "attr_radar_b": True,
        "attr_whole_f": 2.0,
    }
    assert type(fields["attr_whole_f"]) is float and type(fields["attr_from_channel_i"]) is int


def test_an_attribute_integer_beyond_64_bits_is_refused() -> None:
    refused(process(*edited("device_event", lambda d: d.update(attributes={"x": 2**63}))), "invalid", "attributes")


# --- 5. adapters validate as strictly as the schema -----------------------------------------------
TELEGRAF_TOPIC = "telegraf/21004/s/sw-1/snmp"
T = 1780272000000000000


def _telegraf_json(fields: dict[str, Any], tags: dict[str, Any] | None = None, timestamp: Any = 1780272000) -> bytes:
    metric = {"name": "interface", "tags": tags or {}, "fields": fields, "timestamp": timestamp}
    return json.dumps({"metrics": [metric]}).encode()


@pytest.mark.parametrize("name", [{"x": 1}, True, [1, 2], 5, 1.5])
def test_telegraf_json_if_name_that_is_not_a_string_is_refused(name: Any) -> None:
    result = process(TELEGRAF_TOPIC, _telegraf_json({"ifName": name, "ifHCInOctets": 1, "ifOperStatus": 1}))
    refused(result, "invalid", "ifName", "expected a string")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f"interface ifIndex=1.5,ifHCInOctets=1i,ifOperStatus=1i {T}", "ifIndex"),
        (f"interface ifIndex=-3i,ifHCInOctets=1i,ifOperStatus=1i {T}", "ifIndex"),
        (f'interface ifIndex="1",ifHCInOctets=1i,ifOperStatus=1i {T}', "ifIndex"),
        (f"interface,ifIndex=1.5 ifHCInOctets=1i,ifOperStatus=1i {T}", "ifIndex"),
        (f"interface,ifIndex=01a ifHCInOctets=1i,ifOperStatus=1i {T}", "ifIndex"),
        (f"interface,ifName=e0 ifSpeed=-5i,ifOperStatus=1i {T}", "ifSpeed"),
        (f"interface,ifName=e0 ifHighSpeed=-1i,ifOperStatus=1i {T}", "ifHighSpeed"),
        (f"interface,ifName=e0 ifHighSpeed=100,ifOperStatus=1i {T}", "ifHighSpeed"),
        (f"interface,ifName=e0 ifHCInOctets=-1i,ifOperStatus=1i {T}", "ifHCInOctets"),
        (f"interface,ifName=e0 ifHCInOctets=1i,ifOperStatus=-1i {T}", "ifOperStatus"),
        (f"interface,ifName=e0 ifHCInOctets=1i,ifOperStatus=t {T}", "ifOperStatus"),
        (f"interface,ifName=e0 ifName=t,ifHCInOctets=1i {T}", "ifName"),
        (f"net,interface=eth0 bytes_recv=1i,speed=-2i {T}", "speed"),
        (f"snmp uptime=-5 {T}\ninterface,ifName=e0 ifHCInOctets=1i {T}", "uptime"),
        (f'snmp uptime="5" {T}\ninterface,ifName=e0 ifHCInOctets=1i {T}', "uptime"),
    ],
)
def test_telegraf_values_of_the_wrong_type_or_sign_are_refused(line: str, words: str) -> None:
    refused(process(TELEGRAF_TOPIC, line.encode()), "invalid", words)


def test_telegraf_values_that_are_right_are_stored_as_sent() -> None:
    points = stored(process(TELEGRAF_TOPIC, f"interface ifIndex=7i,ifSpeed=1000000000i,ifOperStatus=1i {T}".encode()))
    assert points[1]["tags"]["ifname"] == "if7" and points[1]["fields"]["speed_mbps"] == 1000
    points = stored(process(TELEGRAF_TOPIC, f"interface,ifIndex=12 ifOperStatus=2i {T}".encode()))
    assert points[1]["tags"]["ifname"] == "if12"
    points = stored(process(TELEGRAF_TOPIC, f"net,interface=eth0 bytes_recv=1i,speed=-1i {T}".encode()))
    assert "speed_mbps" not in points[1]["fields"]  # -1: unknown, documented by inputs.net


@pytest.mark.parametrize("stamp", ["1780272000", "2026-06-01T00:00:00Z", True, [1780272000], {"s": 1}])
def test_telegraf_json_timestamp_that_is_not_a_number_is_refused(stamp: Any) -> None:
    result = process(TELEGRAF_TOPIC, _telegraf_json({"ifName": "e0", "ifHCInOctets": 1}, timestamp=stamp))
    refused(result, "invalid", "timestamp")


VENDOR_COERCIONS: list[tuple[str, Callable[[Any], object], str]] = [
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(num_sta="5"), "num_sta"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(num_sta=True), "num_sta"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(num_sta=5.0), "num_sta"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["system-stats"].update(cpu=" 18.0 "), "system-stats.cpu"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["system-stats"].update(cpu="1e1"), "system-stats.cpu"),
    ("unifi/usw_stat_device.json", lambda d: d.pop("uptime") and d["system-stats"].update(uptime="9.0"), "uptime"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["radio_table"][0].update(ht="20.0"), "ht"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["system-stats"].update(mem=True), "system-stats.mem"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0].update(last_seen="1764338400"), "last_seen"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["radio_table"][0].update(name=5), "radio_table.0.name"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["radio_table"][0].update(ht="20 "), "ht"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["radio_table_stats"][0].update(channel="1"), "channel"),
    ("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["uplink"].update(rx_bytes=1e12), "rx_bytes"),
    ("unifi/usw_stat_device.json", lambda d: d["port_table"][0].update(port_idx="1"), "port_idx"),
    ("unifi/usw_stat_device.json", lambda d: d["port_table"][0].update(rx_packets=-5), "rx_packets"),
    ("openwrt/ap_monitoring.json", lambda d: d["general"].update(uptime="7"), "uptime"),
    ("openwrt/ap_monitoring.json", lambda d: d["general"].update(local_time="1764338520"), "local_time"),
    ("openwrt/ap_monitoring.json", lambda d: d["interfaces"][0]["statistics"].update(rx_bytes=True), "rx_bytes"),
    ("openwrt/ap_monitoring.json", lambda d: d["resources"]["cpu"].update(idle="90"), "idle"),
    ("meraki/aps_went_down.json", lambda d: d.update(alertId=643451796760556597), "alertId"),
    ("meraki/aps_went_down.json", lambda d: d.update(occurredAt=1764338671), "occurredAt"),
    ("meraki/aps_went_down.json", lambda d: d.update(deviceModel=["MR"]), "deviceModel"),
    ("mapping/sensa_ap.json", lambda d: d["wlan"].update(stations="14"), "stations"),
    ("mapping/sensa_ap.json", lambda d: d["wlan"].update(stations=14.0), "stations"),
    ("mapping/sensa_ap.json", lambda d: d["device"].update(load="0.5"), "load"),
    ("mapping/sensa_ap.json", lambda d: d.update(t="1764338580250"), "t"),
    ("mapping/acme_fiberbox.json", lambda d: d["ports"][0].update(crc_err=False), "crc_err"),
    ("mapping/acme_fiberbox.json", lambda d: d["ports"][0].update(label=True), "label"),
]


@pytest.mark.parametrize(("seed", "change", "words"), VENDOR_COERCIONS)
def test_every_adapter_refuses_what_the_schema_would(seed: str, change: Callable[[Any], object], words: str) -> None:
    refused(process(*edited(seed, change)), "invalid", words)


def test_vendor_fields_documented_as_text_are_read_as_plain_decimals() -> None:
    topic, payload = edited("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["system-stats"].update(cpu="-0.5"))
    refused(process(topic, payload), "invalid", "cpu_pct")  # read as -0.5, then out of the schema's range
    topic, payload = edited("unifi/uap_wrapped_6ghz.json", lambda d: d["data"][0]["system-stats"].update(cpu="7"))
    assert stored(process(topic, payload))[0]["fields"]["cpu_pct"] == 7.0
