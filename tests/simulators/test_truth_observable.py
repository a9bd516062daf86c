"""The ground truth's "observable" volumes: what the reports can observe, checked against the published
reports directly and against the KPI engine's counter logic (collector/kpi) run on them."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import orjson
import pytest

from collector.kpi.counters import CounterReading, CounterSpec, deltas
from collector.kpi.traffic import volume
from collector.kpi.windows import NS
from simulators.faults import FaultConfig
from tests.simulators.conftest import MONDAY, Run, run

Readings = dict[str, dict[str, list[CounterReading]]]  # device -> "a"/"b" -> readings


def _ts_ns(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def readings(items: Run) -> tuple[Readings, dict[str, int]]:
    """The volume counters as published: AP uplink tx/rx (bytes from/to clients), link in/out octets."""
    out: Readings = defaultdict(lambda: {"a": [], "b": []})
    bits: dict[str, int] = {}
    for item in items.items:
        if item.invalid or item.message not in ("metrics", "interfaces"):
            continue
        body = orjson.loads(item.payload)
        ts = _ts_ns(body["ts"])
        if item.message == "metrics":
            uptime, a, b, bits[item.device] = body["uptime_s"], body["uplink_tx_bytes"], body["uplink_rx_bytes"], 64
        else:
            link = body["interfaces"][-1 if item.device.startswith("sw-") else 0]
            uptime, a, b, bits[item.device] = (
                body["sys_uptime_s"],
                link["in_octets"],
                link["out_octets"],
                link["counter_bits"],
            )
        out[item.device]["a"].append(CounterReading(ts, a, uptime))
        out[item.device]["b"].append(CounterReading(ts, b, uptime))
    return out, bits


def test_observable_is_the_sum_of_report_to_report_increases_inside_the_day(clean_day: Run) -> None:
    (day,) = clean_day.simulation.truth.result({})["days"]
    published, _ = readings(clean_day)
    day_from = _ts_ns(day["from"])
    day_to = _ts_ns(day["to"])
    for device, entry in day["devices"].items():
        a_key, b_key = (
            ("observable_rx_bytes", "observable_tx_bytes")
            if entry["kind"] == "ap"
            else ("observable_in_bytes", "observable_out_bytes")
        )
        for key, series in ((a_key, published[device]["a"]), (b_key, published[device]["b"])):
            inside = sorted((r.ts_ns, r.value) for r in series if day_from <= r.ts_ns < day_to)
            assert entry[key] == inside[-1][1] - inside[0][1]  # no reset, no wrap on a clean day
        physical = entry["rx_bytes"] + entry["tx_bytes"] if entry["kind"] == "ap" else entry["in_bytes"]
        observable = entry[a_key] + (entry[b_key] if entry["kind"] == "ap" else 0)
        # Only the part before the first and after the last report of the day is missing.
        assert 0.9 * physical <= observable <= physical + 2


FAULTS = FaultConfig.parse(
    "outage=0.3,reboot=0.3,duplicate=0.02,out_of_order=0.02,late=0.01,clock_skew=0.2,counter32=0.5,burst=0.2"
)


@pytest.fixture(scope="module")
def two_faulty_days() -> Run:
    return run(start_ms=MONDAY, scale=0.05, duration_s=2 * 86_400, period_s=900, clients_every=1, faults=FAULTS)


def test_the_kpi_counter_logic_finds_the_pro_rata_truth(two_faulty_days: Run) -> None:
    simulation = two_faulty_days.simulation
    days = simulation.truth.result({})["days"]
    published, bits = readings(two_faulty_days)
    capacity = {d.device: d.link_capacity_mbps * 1e6 / 8 for d in simulation.inventory.devices}
    resets = exact32 = low32 = 0
    for device, series in published.items():
        spec = CounterSpec(bits=32 if bits[device] == 32 else 64, capacity_per_s=capacity[device])
        results = {key: deltas(series[key], spec) for key in ("a", "b")}
        resets += results["a"].counts.get("reset", 0)
        for day in days:
            entry = day["devices"][device]
            names = (
                ("prorata_rx_bytes", "prorata_tx_bytes")
                if entry["kind"] == "ap"
                else ("prorata_in_bytes", "prorata_out_bytes")
            )
            for key, name in zip(("a", "b"), names, strict=True):
                got = volume(results[key], _ts_ns(day["from"]), _ts_ns(day["to"]))
                if spec.bits == 64:
                    assert abs(got.total - entry[name]) <= 2, (device, day["date"], name)
                elif abs(got.total - entry[name]) <= 2:
                    exact32 += 1
                else:
                    # A 32-bit counter that wrapped more than once in an interval: the engine takes the
                    # fewest wraps, so it is low, and it said the interval was ambiguous.
                    assert got.total < entry[name] and got.ambiguous > 0, (device, day["date"], name)
                    low32 += 1
    assert resets > 0  # outages and reboots were there to be handled
    assert exact32 > 0 and low32 > 0
