"""Declarative mappings: formats the code has never seen, onboarded in a test config only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from collector.app.cli import main as cli
from collector.app.config import Config, ConfigError, load_config
from collector.app.service import build_pipeline
from collector.ingest.pipeline import Rejection
from tests.adapters.helpers import ADAPTERS, fixture, ns, points

CONFIG = ADAPTERS / "mapping" / "testdata" / "mappings.toml"
FIBERBOX = "acme/fiberbox/21016/school-21016-003/cpe-21016-003"
SENSA = "sensa/21009/flagey/ap-21009-flagey-07/stats"


def config() -> Config:
    return load_config(CONFIG, environ={})


def test_fiberbox_becomes_interface_counters_with_units_converted() -> None:
    received = ns("2025-11-28T14:03:02Z")
    stored = points(
        build_pipeline(config()).process(FIBERBOX, fixture("mapping", "acme_fiberbox.json"), False, received)
    )
    tags = {"device": "cpe-21016-003", "kind": "cpe", "nis": "21016", "site": "school-21016-003"}
    when = ns("2025-11-28T14:03:00Z")  # 15:03 at +01:00
    assert stored == [
        {
            "measurement": "netdev",
            "tags": tags,
            "time": when,
            "fields": {"sys_uptime_s": 2880 * 60, "interfaces_up": 1, "interfaces_total": 2, "seq": 0},
        },
        {
            "measurement": "interface",
            "tags": {**tags, "ifname": "WAN"},
            "time": when,
            "fields": {
                "speed_mbps": 100,
                "counter_bits": 64,
                "in_octets": 1024**3,
                "out_octets": 2048 * 1024,
                "in_errors": 3,
                "in_discards": 1,
                "out_discards": 0,
                "oper_status": "up",
                "oper_up": 1,
            },
        },
        {
            "measurement": "interface",
            "tags": {**tags, "ifname": "LAN1"},
            "time": when,
            "fields": {
                "speed_mbps": 1000,
                "counter_bits": 64,
                "in_octets": 0,
                "out_octets": 0,
                "in_errors": 0,
                "in_discards": 0,
                "oper_status": "down",
                "oper_up": 0,
            },
        },  # drops.out is optional
    ]


def test_sensa_becomes_access_point_metrics_with_units_converted() -> None:
    stored = points(
        build_pipeline(config()).process(SENSA, fixture("mapping", "sensa_ap.json"), False, ns("2025-11-28T14:03:01Z"))
    )
    ap, r24, r5 = stored
    assert ap["time"] == ns("2025-11-28T14:03:00.25Z")  # epoch milliseconds
    assert ap["tags"] == {"device": "ap-21009-flagey-07", "kind": "ap", "nis": "21009", "site": "flagey"}
    assert ap["fields"] == {
        "uptime_s": 131_400,
        "cpu_pct": 12.5,
        "mem_pct": 50.0,
        "temperature_c": 50.0,
        "num_clients": 14,
        "seq": 0,
    }  # h -> s, fraction -> %, F -> C
    assert r24["tags"]["band"] == "2.4" and r5["tags"]["band"] == "5"
    assert r24["fields"]["tx_power_dbm"] == 20.0  # 100 mW
    assert r5["fields"]["tx_power_dbm"] == pytest.approx(10 * math.log10(200))
    assert (r24["fields"]["cu_total_pct"], r5["fields"]["cu_total_pct"]) == (42.0, 10.0)
    assert (r5["fields"]["channel"], r5["fields"]["width_mhz"]) == (36, 80)


def test_the_mapping_subscribes_to_its_root() -> None:
    assert config().subscriptions == [
        "bxl/#",
        "acme/fiberbox/#",
        "sensa/#",
        "meraki/#",
        "openwrt/#",
        "telegraf/#",
        "unifi/#",
    ]


def _edit(path: str, value: Any) -> bytes:
    import json

    document = json.loads(fixture("mapping", "acme_fiberbox.json"))
    node = document
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (fixture("mapping", "acme_fiberbox.json")[:50], "bad_json", ["acme-fiberbox", "not JSON"]),
        (_edit("box.uptime_min", None), "invalid", ["box.uptime_min", "missing", "sys_uptime_s"]),
        (_edit("ports.1.rx_kib", "lots"), "invalid", ["ports.1.rx_kib", "number", "'lots'"]),
        (_edit("ports.0.link", "FLAPPING"), "invalid", ["ports.0.link", "'FLAPPING'", "DOWN, TEST, UP"]),
        (_edit("ports", {"label": "WAN"}), "invalid", ["ports", "array"]),
        (_edit("box.clock", "15:03"), "invalid", ["box.clock", "RFC 3339"]),
        (_edit("ports.0.crc_err", -4), "invalid", ["mapping 'acme-fiberbox'", "interfaces.0.in_errors"]),
        (_edit("ports.1.label", "WAN"), "invalid", ["names must be unique"]),
    ],
    ids=[
        "truncated",
        "missing key",
        "wrong type",
        "not in map",
        "list is object",
        "bad time",
        "negative",
        "duplicate",
    ],
)
def test_malformed_payloads_name_the_path(payload: bytes, reason: str, words: list[str]) -> None:
    result = build_pipeline(config()).process(FIBERBOX, payload, False, ns("2025-11-28T14:03:02Z"))
    assert isinstance(result, Rejection) and result.reason == reason, result
    for word in words:
        assert word in result.detail, result


MAPPING = """
[[routing.mappings]]
name = "m"
pattern = "{pattern}"
schema = "{schema}"
{extra}
[routing.mappings.fields]
{fields}
"""
AP_FIELDS = 'uptime_s = { path = "u" }\nnum_clients = { path = "n" }'


@pytest.mark.parametrize(
    ("pattern", "schema", "extra", "fields", "words"),
    [
        ("x/{device}", "ap.metrics/1", "", AP_FIELDS, ["kind"]),
        ("x/{device}", "ap.metrics/9", 'kind = "ap"', AP_FIELDS, ["ap.metrics/9", "unknown"]),
        ("{site}/{device}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS, ["literal level"]),
        ("x/{site}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS, ["{device}"]),
        ("x/{device}", "ap.metrics/1", 'kind = "a p"', AP_FIELDS, ["kind 'a p'"]),
        ("x/{device}", "ap.metrics/1", 'kind = "ap"', 'uptime_s = { path = "u" }', ["num_clients", "not mapped"]),
        ("x/{device}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS + '\ncpu = { path = "c" }', ["'cpu'", "cpu_pct"]),
        (
            "x/{device}",
            "ap.metrics/1",
            'kind = "ap"',
            AP_FIELDS + '\ncpu_pct = { path = "c", unit = "kbps" }',
            ["'kbps'", "percent", "fraction"],
        ),
        ("x/{device}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS + '\nnum_clients2 = { path = "c" }', ["num_clients2"]),
        (
            "x/{device}",
            "ap.metrics/1",
            'kind = "ap"',
            'uptime_s = { path = "u", unit = "furlong" }\nnum_clients = { path = "n", unit = "s" }',
            ["furlong"],
        ),
        (
            "x/{device}",
            "ap.clients/1",
            'kind = "ap"',
            'num_clients = { path = "n" }\nclients = { path = "c" }',
            ["client MAC addresses never leave"],
        ),
        ("x/{device}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS + '\nradios = { path = "r" }', ["each"]),
        ("x/{device}", "ap.metrics/1", 'kind = "ap"', AP_FIELDS + '\nts = { path = "t" }', ["'ts'"]),
        (
            "x/{device}",
            "ap.metrics/1",
            'kind = "ap"',
            'uptime_s = { path = "a b" }\nnum_clients = { path = "n" }',
            ["path 'a b'"],
        ),
        (
            "x/{device}",
            "ap.metrics/1",
            'kind = "ap"',
            'uptime_s = { path = "u", const = 1 }\nnum_clients = { path = "n" }',
            ["either path or const"],
        ),
        (
            "x/{device}",
            "device.event/1",
            'kind = "ap"',
            'type = { path = "t" }\nattributes = { path = "a", fields = { "Bad-Key" = { path = "k" } } }',
            ["'Bad-Key'"],
        ),
    ],
    ids=[
        "no kind",
        "unknown schema",
        "no literal root",
        "no device",
        "bad kind",
        "required unmapped",
        "unknown field",
        "unit mismatch",
        "typo",
        "unknown unit",
        "client macs",
        "list without each",
        "envelope field",
        "bad path",
        "path and const",
        "bad attribute key",
    ],
)
def test_check_config_names_each_mistake(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    pattern: str,
    schema: str,
    extra: str,
    fields: str,
    words: list[str],
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MAPPING.format(pattern=pattern, schema=schema, extra=extra, fields=fields))
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert "routing.mappings.0" in str(error.value)
    for word in words:
        assert word in str(error.value)
    assert cli(["check-config", "-c", str(path)]) == 2
    assert "routing.mappings.0" in capsys.readouterr().err


def test_check_config_accepts_the_test_mappings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["check-config", "-c", str(CONFIG)]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_config_names_every_mistake_of_a_mapping_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    fields = 'cpu_pct = { path = "c", unit = "kbps" }\nradios = { path = "r", each = { band = { path = "b" } } }'
    path.write_text(MAPPING.format(pattern="x/{device}", schema="ap.metrics/1", extra='kind = "ap"', fields=fields))
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    message = str(error.value)
    for problem in (
        "unit 'kbps'",
        "fields.radios.each: required field 'channel'",
        "'uptime_s' of ap.metrics/1",
        "'num_clients' of ap.metrics/1",
    ):
        assert problem in message, message
