"""What the simulated devices publish is what real equipment publishes: canonical messages that the
schemas accept, and vendor payloads with the structure of the public samples in the adapters' testdata/."""

from __future__ import annotations

import re
from collections import Counter

import orjson
from pydantic import TypeAdapter

from collector.ingest.topics import MESSAGE_SCHEMAS, TopicPattern
from schemas.canonical import SCHEMA_MODELS, DeviceState
from simulators.faults import FaultConfig
from tests.simulators.conftest import MONDAY, Run, run

PATTERN = TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}")
LINE = re.compile(r"^(?P<measurement>[a-z]+),(?P<tags>\S+) (?P<fields>\S+) (?P<ts>\d{19})$")


def test_every_canonical_message_validates(faulty_day: Run) -> None:
    seen: Counter[str] = Counter()
    for item in faulty_day.items:
        if item.flavour != "canonical" and item.message not in ("state", "event"):
            continue
        where = PATTERN.parse(item.topic)
        if item.invalid:
            continue
        body = orjson.loads(item.payload)
        model = SCHEMA_MODELS[body["schema"]]
        message = TypeAdapter(model).validate_json(item.payload)
        assert body["schema"] in MESSAGE_SCHEMAS[where.message]
        assert message.device_id == where.device == item.device
        assert item.qos == 1
        seen[body["schema"]] += 1
        if isinstance(message, DeviceState):
            assert item.retain
            assert (message.ts is None) == ("last_will" in item.labels)
    assert set(seen) == set(SCHEMA_MODELS), seen


def test_vendor_payloads_have_the_structure_of_real_ones() -> None:
    mixed = run(
        start_ms=MONDAY,
        scale=0.1,
        duration_s=3600,
        period_s=900,
        vendor_share=1.0,
        faults=FaultConfig.parse("none,counter32=0.5"),
    )
    flavours = Counter(i.flavour for i in mixed.items)
    assert flavours.keys() == {"unifi", "openwrt", "telegraf", "canonical"}  # canonical: the probe system
    assert {i.message for i in mixed.items if i.flavour == "canonical"} == {"probe"}
    for item in mixed.items:
        d = mixed.simulation.inventory
        if item.flavour == "unifi":
            assert re.fullmatch(r"unifi/210\d\d/[^/]+/ap-210\d\d-\d{4}/stat", item.topic)
            stat = orjson.loads(item.payload)
            assert stat["type"] == "uap" and stat["name"] == item.device
            assert {"radio_table", "radio_table_stats", "vap_table", "uplink", "system-stats", "stat"} <= set(stat)
            assert [r["radio"] for r in stat["radio_table_stats"]] == ["ng", "na"]
            assert isinstance(stat["system-stats"]["cpu"], str) and isinstance(stat["last_seen"], int)
            assert stat["stat"]["time"] // 1000 == stat["last_seen"]
        elif item.flavour == "openwrt":
            assert re.fullmatch(r"openwrt/210\d\d/[^/]+/ap-210\d\d-\d{4}/monitoring", item.topic)
            doc = orjson.loads(item.payload)
            assert doc["type"] == "DeviceMonitoring"
            assert {"local_time", "uptime"} <= set(doc["general"])
            wireless = [i for i in doc["interfaces"] if i["type"] == "wireless"]
            assert [w["wireless"]["mode"] for w in wireless] == ["access_point", "access_point"]
            for w in wireless:
                assert {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets"} <= set(w["statistics"])
                assert all(-95 < c["signal"] < -30 for c in w["wireless"]["clients"])
        elif item.flavour == "telegraf":
            assert re.fullmatch(r"telegraf/210\d\d/[^/]+/(sw|cpe)-210\d\d-\d+/snmp", item.topic)
            lines = [LINE.match(line) for line in item.payload.decode().split("\n")]
            assert all(lines), item.payload
            assert [m["measurement"] for m in lines if m] == ["snmp"] + ["interface"] * (len(lines) - 1)
            device = next(x for x in d.devices if x.device == item.device)
            for m in lines[1:]:
                assert m is not None
                fields = dict(f.split("=", 1) for f in m["fields"].split(","))
                assert int(fields["ifInOctets"].rstrip("i")) < 2**32  # Counter32, whatever the device
                assert ("ifHCInOctets" in fields) == (device.counter_bits == 64)
                assert f"sysName={item.device}" in m["tags"]


def test_client_macs_are_random_per_session(clean_day: Run) -> None:
    macs: dict[str, set[str]] = {}
    for item in clean_day.items:
        if item.message == "clients":
            for client in orjson.loads(item.payload)["clients"]:
                macs.setdefault(client["mac"], set()).add(item.device)
                assert int(client["mac"][:2], 16) & 0x03 == 0x02  # locally administered, unicast
    assert len(macs) > 1000
    assert all(len(devices) == 1 for devices in macs.values())  # a MAC never follows a person elsewhere
    truth = clean_day.simulation.truth.result({})
    assert len(macs) == sum(
        d["unique_clients"] for day in truth["days"] for d in day["devices"].values() if d["kind"] == "ap"
    )
