"""Every adapter folder's ``sample.toml`` is a valid config, shows every option, and reads its own test data.

The samples are loaded through the real config loader and the adapters they configure decode the
folder's ``testdata/`` through the real pipeline, so a sample cannot rot: a renamed option, a changed
default or a pattern that no longer parses fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from collector.app.config import Config, load_config
from collector.app.service import build_pipeline
from collector.ingest.adapters import builtin_adapters
from collector.ingest.adapters.mapping.adapter import FieldSpec, MappingConfig, TimestampSpec
from collector.ingest.routing import AdapterRouteConfig, RoutingConfig
from collector.ingest.topics import TopicPattern
from tests.adapters.helpers import ADAPTERS, fixture, ns, points

TAGS = {"nis": "21004", "site": "gare-du-midi", "device": "dev-1"}

# (adapter folder, test data file, receive time, measurements stored in order, kind, point time)
BUILTIN_CASES = [
    ("unifi", "uap_wrapped_6ghz.json", "2025-11-28T14:00:05Z", ["ap"] + ["ap_radio"] * 3, "ap", "2025-11-28T14:00:00Z"),
    (
        "unifi",
        "usw_stat_device.json",
        "2019-07-05T06:54:45Z",
        ["netdev"] + ["interface"] * 3,
        "switch",
        "2019-07-05T06:54:40Z",
    ),
    (
        "openwrt",
        "ap_monitoring.json",
        "2025-11-28T14:02:30Z",
        ["netdev"] + ["interface"] * 3 + ["ap", "ap_radio", "ap_radio", "ap_clients"],
        "ap",
        "2025-11-28T14:02:00Z",
    ),
    (
        "openwrt",
        "router_monitoring.json",
        "2025-11-28T14:02:30Z",
        ["netdev"] + ["interface"] * 3,
        "router",
        "2025-11-28T14:01:00Z",
    ),
    (
        "telegraf",
        "snmp_ifxtable_kind.lp",
        "2025-11-28T14:00:01Z",
        ["netdev", "interface", "interface"],
        "cpe",
        "2025-11-28T14:00:00.123456789Z",
    ),
    (
        "telegraf",
        "json_interface_batch.json",
        "2025-11-28T14:00:01Z",
        ["netdev", "interface", "interface"],
        "switch",
        "2025-11-28T14:00:00Z",
    ),
    (
        "meraki",
        "aps_went_down.json",
        "2025-11-28T14:05:03Z",
        ["device_event", "device_state"],
        "ap",
        "2025-11-28T14:04:31.25Z",
    ),
    (
        "meraki",
        "switch_port_disconnected.json",
        "2025-11-28T14:10:00Z",
        ["device_event"],
        "switch",
        "2025-11-28T14:09:58Z",
    ),
]


def sample(folder: str) -> Path:
    return ADAPTERS / folder / "sample.toml"


def load_sample(folder: str) -> Config:
    return load_config(sample(folder), environ={})  # the sample alone, whatever the test's environment


def options_shown(text: str) -> set[str]:
    """Keys the sample sets or shows commented out: ``key =`` at a line start or in an inline table, and
    the last key of a table header (``[routing.mappings.fields.interfaces.each]``)."""
    assigned = re.findall(r"(?:^|[{,#])\s*([a-z_]+)\s*=", text, flags=re.MULTILINE)
    headers = re.findall(r"^#?\s*\[\[?[a-z_.]*?([a-z_]+)\]", text, flags=re.MULTILINE)
    return set(assigned) | set(headers)


def test_every_adapter_folder_has_a_readme_a_sample_and_a_case_here() -> None:
    folders = {*builtin_adapters(), "mapping"}
    assert folders == {p.name for p in ADAPTERS.iterdir() if (p / "adapter.py").exists()}
    for folder in folders:
        assert (ADAPTERS / folder / "README.md").is_file(), folder
        assert sample(folder).is_file(), folder
    assert {case[0] for case in BUILTIN_CASES} == set(builtin_adapters())


@pytest.mark.parametrize("name", sorted(builtin_adapters()))
def test_builtin_sample_shows_its_section_with_every_option_at_its_default(name: str) -> None:
    text = sample(name).read_text(encoding="utf-8")
    assert tomllib.loads(text).keys() == {"routing"}
    assert tomllib.loads(text)["routing"].keys() == {name}  # its own section only
    assert set(AdapterRouteConfig.model_fields) <= options_shown(text)
    # "the values shown are the defaults": a changed default must change the sample too
    assert getattr(load_sample(name).routing, name) == getattr(RoutingConfig(), name)
    assert f'pattern = "{builtin_adapters()[name].default_pattern}"' in text


@pytest.mark.parametrize(("name", "data", "received", "measurements", "kind", "time"), BUILTIN_CASES)
def test_builtin_sample_decodes_its_own_testdata(
    name: str, data: str, received: str, measurements: list[str], kind: str, time: str
) -> None:
    config = load_sample(name)
    pattern = TopicPattern.for_route(getattr(config.routing, name).pattern)
    topic = pattern.build(**TAGS, **{"+": "snmp"})
    stored = points(build_pipeline(config).process(topic, fixture(name, data), False, ns(received)))
    assert [p["measurement"] for p in stored] == measurements
    for point in stored:
        assert {k: point["tags"][k] for k in ("nis", "site", "device", "kind")} == {**TAGS, "kind": kind}
        assert point["time"] == ns(time)


def test_mapping_sample_shows_every_key_of_a_mapping_and_of_a_field() -> None:
    text = sample("mapping").read_text(encoding="utf-8")
    assert tomllib.loads(text).keys() == {"routing"}
    keys = {f.alias or name for name, f in MappingConfig.model_fields.items()}
    keys |= set(TimestampSpec.model_fields) | set(FieldSpec.model_fields)
    assert keys <= options_shown(text)
    assert [m.name for m in load_sample("mapping").routing.mappings] == ["acme-fiberbox", "sensa-ap"]


def test_mapping_sample_decodes_the_fiberbox_with_its_units_converted() -> None:
    pipeline = build_pipeline(load_sample("mapping"))
    stored = points(
        pipeline.process(
            "acme/fiberbox/21004/gare-du-midi/dev-1",
            fixture("mapping", "acme_fiberbox.json"),
            False,
            ns("2025-11-28T14:03:02Z"),
        )
    )
    assert [p["measurement"] for p in stored] == ["netdev", "interface", "interface"]
    assert {p["time"] for p in stored} == {ns("2025-11-28T14:03:00Z")}  # 15:03 at +01:00
    assert all(p["tags"]["kind"] == "cpe" and p["tags"]["nis"] == "21004" for p in stored)
    assert stored[0]["fields"]["sys_uptime_s"] == 2880 * 60  # minutes
    wan, lan = stored[1], stored[2]
    assert (wan["tags"]["ifname"], lan["tags"]["ifname"]) == ("WAN", "LAN1")
    assert wan["fields"] == {
        "oper_status": "up",
        "oper_up": 1,
        "speed_mbps": 100,  # 0.1 Gbps
        "counter_bits": 64,  # const
        "in_octets": 1_048_576 * 1024,  # KiB
        "out_octets": 2048 * 1024,
        "in_errors": 3,
        "in_discards": 1,
        "out_discards": 0,
    }
    assert "out_discards" not in lan["fields"]  # optional, absent in the payload


def test_mapping_sample_decodes_the_sensa_access_point_with_its_units_converted() -> None:
    pipeline = build_pipeline(load_sample("mapping"))
    stored = points(
        pipeline.process(
            "sensa/21004/gare-du-midi/dev-1/status",
            fixture("mapping", "sensa_ap.json"),
            False,
            ns("2025-11-28T14:03:01Z"),
        )
    )
    assert [p["measurement"] for p in stored] == ["ap", "ap_radio", "ap_radio"]
    assert {p["time"] for p in stored} == {ns("2025-11-28T14:03:00.25Z")}  # epoch ms
    ap = stored[0]["fields"]
    assert (ap["uptime_s"], ap["cpu_pct"], ap["mem_pct"], ap["num_clients"]) == (131_400, 12.5, 50.0, 14)
    assert ap["temperature_c"] == pytest.approx(50.0)  # 122 °F
    radios = {p["tags"]["band"]: p["fields"] for p in stored[1:]}
    assert radios["2.4"]["tx_power_dbm"] == pytest.approx(20.0)  # 100 mW
    assert radios["5"]["tx_power_dbm"] == pytest.approx(23.0103, abs=1e-4)  # 200 mW
    assert (radios["5"]["channel"], radios["5"]["width_mhz"], radios["5"]["cu_total_pct"]) == (36, 80, 10.0)
