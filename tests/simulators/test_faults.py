"""Each fault appears in the published stream at its configured rate, with its real signature."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime

import orjson
import pytest

from collector.app.config import load_config
from collector.app.service import build_pipeline
from simulators.city import Item
from simulators.faults import FaultConfig
from tests.simulators.conftest import FAULTY, MONDAY, Run, run, within

PERIODIC = {"metrics", "clients", "interfaces", "probe", "stat", "monitoring", "snmp"}


def ts_ms(item: Item) -> int:
    return int(datetime.fromisoformat(orjson.loads(item.payload)["ts"].replace("Z", "+00:00")).timestamp() * 1000)


def labelled(items: list[Item], fault: str) -> list[Item]:
    return [i for i in items if any(label.split(":")[0] == fault for label in i.labels)]


def skews(r: Run) -> dict[str, int]:
    return {e.subject: round(float(e.detail.split()[0]) * 1000) for e in r.events if e.fault == "clock_skew"}


def test_message_faults_at_their_rates(faulty_day: Run) -> None:
    items = faulty_day.items
    originals = [i for i in items if i.message in PERIODIC and "duplicate" not in i.labels]
    opportunities = [i for i in originals if "burst" not in i.labels]
    n = len(opportunities)
    assert n > 50_000
    counts = Counter(label.split(":")[0] for i in items for label in i.labels)
    for fault in ("duplicate", "out_of_order", "late", "malformed"):
        assert within(counts[fault], n, getattr(FAULTY, fault)), (fault, counts[fault], n)
    clients = [i for i in opportunities if i.message == "clients"]
    assert within(counts["oversized"], len(clients), FAULTY.oversized), counts["oversized"]

    published: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        published[item.topic].append(item)
    for copy in labelled(items, "duplicate"):
        earlier = published[copy.topic][: published[copy.topic].index(copy)]
        assert [i for i in earlier if i.payload == copy.payload and i.at_ms < copy.at_ms]  # the same message, again
    position = {id(item): k for k, item in enumerate(items)}
    overtaken = 0
    for held in labelled(items, "out_of_order"):
        series = [i for i in published[held.topic] if not i.invalid]
        overtaken += any(ts_ms(i) > ts_ms(held) and position[id(i)] < position[id(held)] for i in series)
    # A newer message of the same series arrives first, unless there is none in time (the device went
    # down, the run ended, the newer one was itself refused or held back).
    assert overtaken >= 0.9 * counts["out_of_order"]
    skew = skews(faulty_day)
    for late in labelled(items, "late"):
        true_ms = ts_ms(late) - skew.get(late.device, 0)
        assert late.at_ms - true_ms >= min(1_800_000, faulty_day.simulation.end_ms - true_ms)


def test_invalid_faults_are_refused_by_the_collector(faulty_day: Run) -> None:
    pipeline = build_pipeline(load_config(None, {}))
    now = time.time_ns()
    expected = {"truncated": "bad_json", "garbled": "bad_json", "wrong_type": "invalid", "out_of_range": "invalid"}
    seen: Counter[str] = Counter()
    for item in faulty_day.items:
        if not item.invalid:
            continue
        result = pipeline.process(item.topic, item.payload, item.retain, now)
        assert not isinstance(result, list), item.labels
        label = next(lb for lb in item.labels if lb.split(":")[0] in ("malformed", "oversized"))
        if label == "oversized":
            assert result.reason == "payload_too_large" and len(item.payload) > 256 * 1024
        else:
            assert result.reason == expected[label.split(":")[1]], (label, result)
        seen[label] += 1
    assert len(seen) == 5, seen  # every variant shows up


def test_outages_are_silence_and_last_wills(faulty_day: Run) -> None:
    sim = faulty_day.simulation
    devices = {d.device: d for d in sim.inventory.devices}
    outages = [e for e in faulty_day.events if e.fault == "outage"]
    assert within(len(outages), len(devices), FAULTY.outage)
    silent = [e for e in outages if e.detail == "silent"]
    assert within(len(silent), len(outages), FAULTY.silent_outage)
    wills = labelled(faulty_day.items, "last_will")
    expected_wills = [e for e in outages if e.detail == "will" and devices[e.subject].flavour == "canonical"]
    assert sorted(w.device for w in wills) == sorted(e.subject for e in expected_wills)
    for will in wills:
        body = orjson.loads(will.payload)
        assert will.retain and "ts" not in body and body["state"] == "lost"
    skew = skews(faulty_day)
    by_device: dict[str, list[int]] = defaultdict(list)
    for item in faulty_day.items:
        if item.message in ("metrics", "interfaces") and not item.invalid:
            by_device[item.device].append(ts_ms(item) - skew.get(item.device, 0))
    for outage in outages:
        inside = [t for t in by_device[outage.subject] if outage.t0_ms < t < outage.t1_ms]
        assert inside == [], "a dead device says nothing"
        after = [t for t in by_device[outage.subject] if t > outage.t1_ms]
        if after and outage.t1_ms < sim.end_ms:
            boots = [
                i for i in labelled(faulty_day.items, "boot") if i.device == outage.subject and i.message == "event"
            ]
            at_boot = [b for b in boots if ts_ms(b) - skew.get(b.device, 0) == outage.t1_ms]
            if devices[outage.subject].flavour == "canonical":
                assert len(at_boot) == 1 and b'"reason":"power_loss"' in at_boot[0].payload


def test_reboots_reset_uptime_and_counters(faulty_day: Run) -> None:
    sim = faulty_day.simulation
    devices = {d.device: d for d in sim.inventory.devices}
    reboots = [e for e in faulty_day.events if e.fault == "reboot"]
    assert within(len(reboots), len(devices), FAULTY.reboot, sigmas=6)  # a few are dropped to avoid outages
    announced = labelled(faulty_day.items, "reboot")
    assert sorted(i.device for i in announced) == sorted(
        e.subject for e in reboots if devices[e.subject].flavour == "canonical"
    )
    skew = skews(faulty_day)
    metrics: dict[str, list[tuple[int, dict[str, int]]]] = defaultdict(list)
    for item in faulty_day.items:
        if item.message == "metrics" and not item.invalid and "duplicate" not in item.labels:
            metrics[item.device].append((ts_ms(item) - skew.get(item.device, 0), orjson.loads(item.payload)))
    checked = 0
    for event in reboots:
        series = sorted(metrics.get(event.subject, []), key=lambda x: x[0])
        before = [b for t, b in series if t < event.t0_ms]
        after = [(t, b) for t, b in series if t > event.t1_ms]
        if before and after:
            t, first = after[0]
            assert first["uptime_s"] <= (t - event.t1_ms) / 1000 + 1
            assert first["uplink_rx_bytes"] < before[-1]["uplink_rx_bytes"]
            checked += 1
    assert checked > 10


def test_32_bit_counters_wrap_and_each_wrap_is_labelled() -> None:
    r = run(start_ms=MONDAY, scale=0.1, period_s=300, duration_s=8 * 3600, faults=FaultConfig.parse("none,counter32=1"))
    last: dict[tuple[str, str, str], int] = {}
    decreases = 0
    for item in r.items:
        if item.message != "interfaces":
            continue
        body = orjson.loads(item.payload)
        labels = {lb.split(":", 1)[1] for lb in item.labels if lb.startswith("counter_wrap:")}
        seen = set()
        for interface in body["interfaces"]:
            assert interface["counter_bits"] == 32
            for key in ("in_octets", "out_octets", "in_ucast_pkts", "out_ucast_pkts"):
                value = interface[key]
                previous = last.get((item.device, interface["name"], key))
                if previous is not None and value < previous:
                    seen.add(f"{interface['name']}/{key}")
                last[(item.device, interface["name"], key)] = value
        assert seen == labels, item.topic
        decreases += len(seen)
    assert decreases > 20
    share = FaultConfig.parse("counter32=0.5")
    mixed = run(start_ms=MONDAY, scale=0.5, duration_s=900, period_s=900, faults=share)
    nets = [d for d in mixed.simulation.inventory.devices if d.kind != "ap"]
    assert within(sum(1 for d in nets if d.counter_bits == 32), len(nets), 0.5)


def test_clock_skew_bursts_and_dfs(faulty_day: Run) -> None:
    sim = faulty_day.simulation
    devices = sim.inventory.devices
    skew = skews(faulty_day)
    assert within(len(skew), len(devices), FAULTY.clock_skew)
    assert all(5_000 <= abs(s) <= FAULTY.max_skew_s * 1000 for s in skew.values())
    plain = [i for i in faulty_day.items if i.labels == ("clock_skew",) and i.message != "state"]
    assert plain and all(ts_ms(i) - i.at_ms == skew[i.device] for i in plain)

    site_of = {d.device: d.site for d in devices}
    ap_sites = {d.site for d in devices if d.kind == "ap"}
    bursts = [e for e in faulty_day.events if e.fault == "burst"]
    assert within(len(bursts), len(ap_sites), FAULTY.burst)
    for burst in bursts:
        from_site = [i for i in faulty_day.items if site_of[i.device] == burst.subject and "last_will" not in i.labels]
        assert not [i for i in from_site if burst.t0_ms <= i.at_ms < burst.t1_ms]  # queued at the gateway ...
        flushed = [i for i in from_site if "burst" in i.labels and i.at_ms == burst.t1_ms]
        assert flushed or burst.t0_ms >= sim.end_ms  # ... and flushed at once

    dfs = [e for e in faulty_day.events if e.fault == "dfs"]
    on_dfs = [d for d in devices if d.kind == "ap" and 52 <= d.channel_5 <= 144]
    assert within(len(dfs), len(on_dfs), FAULTY.dfs)
    for item in labelled(faulty_day.items, "dfs"):
        body = orjson.loads(item.payload)
        assert body["type"] == "radio.dfs_channel_change" and body["attributes"]["to_channel"] == 36


def test_faults_switch_off_and_parse() -> None:
    quiet = run(start_ms=MONDAY, scale=0.1, duration_s=6 * 3600, period_s=900, faults=FaultConfig.none())
    assert {label for i in quiet.items for label in i.labels} == {"connect"}
    assert [e for e in quiet.events] == []
    assert FaultConfig.parse("none,reboot=0.5").reboot == 0.5
    assert FaultConfig.parse("none,reboot=0.5").outage == 0.0
    assert FaultConfig.parse("duplicate=0.1").outage == FaultConfig().outage
    for bad in ("reboot", "reboot=2", "nonsense=0.1", "late=x"):
        with pytest.raises(ValueError):
            FaultConfig.parse(bad)
