"""deploy/telegraf/telegraf.conf publishes what the telegraf route reads: its topic template, for
every input's tags and measurement, resolves to the telegraf route with the input's device, site
and NIS code; the data format and layout are the ones the adapter decodes; the SNMP tables carry
the tag the adapter joins ifTable and ifXTable rows on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from collector.ingest.adapters.telegraf.adapter import DEFAULT_POLL_TOLERANCE_S
from collector.ingest.routing import AdapterTarget, RoutingConfig, build_routes, resolve

CONF = Path(__file__).resolve().parents[3] / "deploy" / "telegraf" / "telegraf.conf"
_ACTION = re.compile(r"\{\{(.*?)\}\}")


def render(template: str, name: str, tags: dict[str, str]) -> str:
    """The Go text/template constructs the conf uses, as Telegraf's outputs.mqtt evaluates them
    (``.Name``, ``.Tag "key"``, ``if eq .Name "x"`` / ``else`` / ``end``); anything else fails."""
    out: list[str] = []
    stack: list[bool] = []  # is the current branch emitted
    position = 0
    for action in _ACTION.finditer(template):
        if all(stack):
            out.append(template[position : action.start()])
        position = action.end()
        words = action.group(1).split()
        if words == [".Name"]:
            value = name
        elif len(words) == 2 and words[0] == ".Tag":
            value = tags.get(words[1].strip('"'), "")
        elif len(words) == 4 and words[:3] == ["if", "eq", ".Name"]:
            stack.append(name == words[3].strip('"'))
            continue
        elif words == ["else"]:
            stack[-1] = not stack[-1]
            continue
        elif words == ["end"]:
            stack.pop()
            continue
        else:
            raise AssertionError(f"template action not understood by this test: {action.group(0)}")
        if all(stack):
            out.append(value)
    out.append(template[position:])
    # Telegraf drops an empty path segment (a missing tag); so does this
    return "/".join(level for level in "".join(out).split("/") if level)


@pytest.fixture(scope="module")
def conf() -> dict[str, Any]:
    with CONF.open("rb") as handle:
        return tomllib.load(handle)


def route_of(conf: dict[str, Any], name: str, tags: dict[str, str]) -> AdapterTarget:
    (mqtt,) = conf["outputs"]["mqtt"]
    topic = render(mqtt["topic"], name, tags)
    target = resolve(build_routes(RoutingConfig()), topic)
    assert isinstance(target, AdapterTarget), (topic, target)
    return target


def test_output_is_line_protocol_one_message_per_topic_at_qos_1(conf: dict[str, Any]) -> None:
    (mqtt,) = conf["outputs"]["mqtt"]
    assert (mqtt["data_format"], mqtt["layout"], mqtt["qos"], mqtt["retain"]) == ("influx", "batch", 1, False)
    assert "batch" not in mqtt  # removed in Telegraf v1.37.0
    agent = conf["agent"]
    assert agent["interval"] == agent["flush_interval"] == "60s"
    assert DEFAULT_POLL_TOLERANCE_S < 60


def test_every_snmp_poll_goes_to_its_device_topic_on_the_telegraf_route(conf: dict[str, Any]) -> None:
    devices = []
    for snmp in conf["inputs"]["snmp"]:
        tags = snmp["tags"]
        targets = [route_of(conf, name, tags) for name in ("snmp", "interface")]
        assert {(t.route.name, t.device, t.base) for t in targets} == {
            ("telegraf", tags["device"], (("device", tags["device"]), ("nis", tags["nis"]), ("site", tags["site"])))
        }
        # snmp and interface metrics share one topic: one batch message holds the whole poll
        assert len({render(conf["outputs"]["mqtt"][0]["topic"], n, tags) for n in ("snmp", "interface")}) == 1
        assert tags["kind"] in {"cpe", "switch"}
        devices.append(tags["device"])
    assert len(devices) == len(set(devices)) >= 2


def test_snmp_tables_are_the_if_mib_tables_joined_on_ifdescr(conf: dict[str, Any]) -> None:
    for snmp in conf["inputs"]["snmp"]:
        fields = {f["name"]: f for f in snmp["field"]}
        assert fields["sysUpTime"]["oid"] == "SNMPv2-MIB::sysUpTime.0" and "conversion" not in fields["sysUpTime"]
        tables = snmp["table"]
        assert [(t["name"], t["oid"]) for t in tables] == [
            ("interface", "IF-MIB::ifTable"),
            ("interface", "IF-MIB::ifXTable"),
        ]
        for table in tables:
            assert {"name": "ifDescr", "oid": "IF-MIB::ifDescr", "is_tag": True} in table["field"]


def test_pings_go_to_their_own_topic_of_the_probed_device(conf: dict[str, Any]) -> None:
    for ping in conf["inputs"]["ping"]:
        tags = ping["tags"]
        target = route_of(conf, "ping", tags)
        assert (target.route.name, target.device) == ("telegraf", tags["device"])
        topic = render(conf["outputs"]["mqtt"][0]["topic"], "ping", tags)
        assert topic == f"telegraf/{tags['nis']}/{tags['site']}/{tags['device']}/ping"
        assert topic != render(conf["outputs"]["mqtt"][0]["topic"], "snmp", tags)


def test_the_renderer_fails_on_what_it_does_not_know() -> None:
    with pytest.raises(AssertionError, match="not understood"):
        render('telegraf/{{ .Tag "a" | lower }}', "snmp", {"a": "x"})
    assert render('a/{{ .Tag "missing" }}/{{ if eq .Name "ping" }}p{{ else }}s{{ end }}', "snmp", {}) == "a/s"
