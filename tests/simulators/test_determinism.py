"""Same seed, same messages byte for byte; another seed, another city; a format is not a truth."""

from __future__ import annotations

import hashlib

import orjson

from simulators.city import Item
from simulators.faults import FaultConfig
from tests.simulators.conftest import MONDAY, run


def digest(items: list[Item]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.at_ms}|{item.topic}|{item.qos}|{item.retain}|".encode())
        h.update(item.payload)
    return h.hexdigest()


def test_same_seed_same_messages_byte_for_byte() -> None:
    kwargs = {
        "start_ms": MONDAY,
        "scale": 0.1,
        "duration_s": 6 * 3600,
        "period_s": 300,
        "clients_every": 1,
        "vendor_share": 0.2,
        "faults": FaultConfig.parse("default,duplicate=0.02,malformed=0.01"),
    }
    first, second = run(**kwargs), run(**kwargs)
    assert len(first.items) > 10_000
    assert [(i.at_ms, i.topic, i.payload, i.qos, i.retain, i.labels) for i in first.items] == [
        (i.at_ms, i.topic, i.payload, i.qos, i.retain, i.labels) for i in second.items
    ]
    assert first.simulation.truth.result({}) == second.simulation.truth.result({})
    other = run(**{**kwargs, "seed": 8})
    assert digest(other.items) != digest(first.items)
    assert {i.topic for i in other.items} != {i.topic for i in first.items}  # another city, not just other values


def test_vendor_devices_tell_the_same_truth_as_canonical_ones() -> None:
    kwargs = {
        "start_ms": MONDAY,
        "scale": 0.1,
        "duration_s": 4 * 3600,
        "period_s": 900,
        "clients_every": 1,
        "faults": FaultConfig.parse("none,outage=0.3,reboot=0.3"),
    }
    canonical = run(**kwargs)
    mixed = run(**{**kwargs, "vendor_share": 0.5})
    assert canonical.simulation.truth.result({}) == mixed.simulation.truth.result({})
    metrics = {
        (i.device, body["ts"][:19]): body
        for i in canonical.items
        if i.message == "metrics"
        for body in [orjson.loads(i.payload)]
    }
    compared = 0
    for item in mixed.items:
        if item.flavour == "unifi":
            stat = orjson.loads(item.payload)
            key = (item.device, stat["stat"]["datetime"][:19])
            body = metrics[key]
            assert stat["num_sta"] == body["num_clients"]
            assert stat["uptime"] == body["uptime_s"]
            assert stat["uplink"]["rx_bytes"] == body["uplink_rx_bytes"]
            assert [r["cu_total"] for r in stat["radio_table_stats"]] == [
                round(r["cu_total_pct"]) for r in body["radios"]
            ]
            compared += 1
        elif item.flavour == "openwrt":
            doc = orjson.loads(item.payload)
            ts = doc["general"]["local_time"]
            body = next(b for (d, t), b in metrics.items() if d == item.device and t.startswith(_iso_s(ts)))
            wireless = [i["wireless"] for i in doc["interfaces"] if "wireless" in i]
            assert sum(len(w["clients"]) for w in wireless) == body["num_clients"]
            assert doc["interfaces"][0]["statistics"]["tx_bytes"] == body["uplink_tx_bytes"]
            compared += 1
    assert compared > 50


def _iso_s(epoch_s: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
