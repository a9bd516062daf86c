"""The pure KPI core on a simulated faulty day's published messages, against the simulator's truth.

No broker and no database: the messages the simulator publishes are read straight into the KPI
core's input records (the lead's query side will read the same records back from InfluxDB). What
the published messages cannot tell (a dead-lettered report, a timestamp moved by clock skew across
midnight, the minutes of a silent outage) is excluded or bounded explicitly, never tolerated loosely.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pytest

from collector.kpi.availability import AvailabilityPolicy, Report, StateMark, availability
from collector.kpi.clients import ClientCount, ClientsReport, concurrent, unique_clients
from collector.kpi.compute import DeviceReadings, KpiConfig, compute_window
from collector.kpi.counters import CounterReading
from collector.kpi.enrich import parse_places
from collector.kpi.pseudonym import Pseudonymiser
from collector.kpi.traffic import Probe
from collector.kpi.windows import NS, day_window
from simulators.city import SimConfig, Simulation
from simulators.faults import FaultConfig

MONDAY = 1_795_388_400_000  # 2026-11-23 00:00 Brussels
PERIOD_S = 900
FAULTS = "outage=0.2,reboot=0.2,counter32=0.5"  # the defaults, with more outages and reboots


def _ts(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


@dataclass
class Published:
    simulation: Simulation
    day: dict[str, Any]
    reports: dict[str, list[Report]] = field(default_factory=lambda: defaultdict(list))
    marks: dict[str, list[StateMark]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[str, list[ClientCount]] = field(default_factory=lambda: defaultdict(list))
    client_reports: dict[str, list[ClientsReport]] = field(default_factory=lambda: defaultdict(list))
    counters: dict[str, dict[str, list[CounterReading]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    probes: dict[str, list[Probe]] = field(default_factory=lambda: defaultdict(list))
    unsure: set[str] = field(default_factory=set)  # devices with a refused message or a skewed clock


@pytest.fixture(scope="module")
def published() -> Published:
    simulation = Simulation(
        SimConfig(start_ms=MONDAY, scale=0.1, period_s=PERIOD_S, clients_every=1, faults=FaultConfig.parse(FAULTS))
    )
    items = list(simulation.items())
    (day,) = simulation.truth.result({})["days"]
    out = Published(simulation, day)
    pseudonyms = Pseudonymiser(b"a secret of the operator, 32 b.")
    for item in items:
        if item.invalid or any(label.startswith("clock_skew") for label in item.labels):
            out.unsure.add(item.device)
        if item.invalid:
            continue  # dead-lettered by the collector
        body = orjson.loads(item.payload)
        counters = out.counters[item.device]
        if item.message == "metrics":
            ts, uptime = _ts(body["ts"]), body["uptime_s"]
            out.reports[item.device].append(Report(ts, uptime))
            out.counts[item.device].append(ClientCount(ts, body["num_clients"]))
            counters["rx"].append(CounterReading(ts, body["uplink_tx_bytes"], uptime))  # from clients
            counters["tx"].append(CounterReading(ts, body["uplink_rx_bytes"], uptime))
        elif item.message == "interfaces":
            ts, uptime = _ts(body["ts"]), body["sys_uptime_s"]
            out.reports[item.device].append(Report(ts, uptime))
            link = body["interfaces"][-1 if item.device.startswith("sw-") else 0]  # uplink, wan0
            for name, key in (
                ("in", "in_octets"),
                ("out", "out_octets"),
                ("in_pkts", "in_ucast_pkts"),
                ("out_pkts", "out_ucast_pkts"),
            ):
                counters[name].append(CounterReading(ts, link[key], uptime))
        elif item.message == "probe":
            out.probes[item.device].append(
                Probe(_ts(body["ts"]), body["sent"], body["received"], body.get("rtt_avg_ms"), body.get("jitter_ms"))
            )
        elif item.message == "state":
            if "ts" in body:
                out.marks[item.device].append(StateMark(_ts(body["ts"]), body["state"] == "online"))
            else:  # a last will: stamped when received
                out.marks[item.device].append(StateMark(item.at_ms * 1_000_000, False, will=True))
        elif item.message == "clients":
            ts = _ts(body["ts"])
            pids = frozenset(str(pseudonyms.pid_at(c["mac"], ts)) for c in body.get("clients", []))
            out.client_reports[item.device].append(ClientsReport(ts, item.device, pids))
    return out


POLICY = AvailabilityPolicy(period_s=PERIOD_S, missed=3, will_delay_s=45)


def test_availability_per_device_and_municipality(published: Published) -> None:
    day = published.day
    start, end = _ts(day["from"]), _ts(day["to"])
    per_nis: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # up, length, uncertain
    exact = bounded = 0
    for device, truth in day["devices"].items():
        a = availability(published.reports[device], published.marks[device], POLICY, start, end)
        error_pp = abs(a.pct - truth["availability_pct"])
        if a.uncertain_ns == 0:
            assert error_pp <= 0.1, device
            exact += truth["outages"] + truth["reboots"] > 0
        else:
            # A silent outage is dated to within half the uncertain time, nothing more.
            assert error_pp <= 100 * a.uncertain_ns / 2 / a.length_ns + 0.01, device
            bounded += 1
        if truth["kind"] == "ap":
            per_nis[truth["nis"]][0] += a.up_ns
            per_nis[truth["nis"]][1] += a.length_ns
            per_nis[truth["nis"]][2] += a.uncertain_ns
    assert exact > 5 and bounded > 0  # outages and reboots dated by their messages, and silent ones
    for nis, (up, length, uncertain) in per_nis.items():
        error_pp = abs(100 * up / length - day["municipalities"][nis]["ap_availability_pct"])
        assert error_pp <= 0.1 + 100 * uncertain / 2 / length, nis


def test_peak_and_mean_clients_per_ap_and_municipality(published: Published) -> None:
    day = published.day
    start, end = _ts(day["from"]), _ts(day["to"])
    aps: dict[str, list[str]] = defaultdict(list)
    checked = 0
    for device, truth in day["devices"].items():
        if truth["kind"] != "ap":
            continue
        aps[truth["nis"]].append(device)
        load = concurrent({device: published.counts[device]}, start, end, valid_s=PERIOD_S)
        assert load.peak == truth["peak_clients"], device
        if device not in published.unsure:
            assert load.mean == pytest.approx(truth["mean_clients"], abs=1e-4), device
            checked += 1
    assert checked > 50
    for nis, devices in aps.items():
        load = concurrent({d: published.counts[d] for d in devices}, start, end, valid_s=PERIOD_S)
        truth = day["municipalities"][nis]
        assert load.peak == truth["peak_clients"], nis
        if not published.unsure.intersection(devices):
            assert load.mean == pytest.approx(truth["mean_clients"], abs=1e-4), nis


def test_unique_clients_per_ap(published: Published) -> None:
    day = published.day
    start, end = _ts(day["from"]), _ts(day["to"])
    checked = 0
    for device, truth in day["devices"].items():
        if truth["kind"] != "ap" or device in published.unsure:
            continue
        reports = [r for r in published.client_reports[device] if start <= r.ts_ns < end]
        assert unique_clients(reports) == truth["unique_clients"], device
        checked += 1
    assert checked > 50


def test_compute_window_per_municipality(published: Published) -> None:
    """The engine's entry point on the whole day: every municipality row against the truth."""
    day = published.day
    window = day_window(datetime.fromisoformat(day["date"]).date())
    places = parse_places(published.simulation.inventory.to_json())
    devices = [
        DeviceReadings(
            places.place(device),
            published.reports[device],
            published.marks[device],
            published.counts[device],
            published.client_reports[device],
            published.counters[device],
            published.probes[device],
        )
        for device in day["devices"]
    ]
    config = KpiConfig(period_s=PERIOD_S, clients_period_s=PERIOD_S)
    rows = {(r.level, r.key): r for r in compute_window(devices, window, config)}
    assert {level for level, _ in rows} == {"device", "site", "municipality", "region"}
    school_p95_checked = clients_checked = 0
    for nis, truth in day["municipalities"].items():
        row = rows[("municipality", nis)]
        f = row.fields
        members = [d for d, e in day["devices"].items() if e["nis"] == nis]
        aps = [d for d in members if day["devices"][d]["kind"] == "ap"]
        uncertain = sum(
            availability(published.reports[d], published.marks[d], POLICY, window.start_ns, window.end_ns).uncertain_ns
            for d in aps
        )
        bound = 0.1 + 100 * uncertain / 2 / (len(aps) * window.length_ns)
        assert abs(f["ap_availability_pct"] - truth["ap_availability_pct"]) <= bound, nis
        assert f["peak_clients"] == truth["peak_clients"], nis
        if not published.unsure.intersection(aps):
            # A refused first report of the run loses its interval; exact where nothing was refused.
            for name in ("rx", "tx"):
                assert abs(f[f"{name}_bytes"] - truth[f"prorata_{name}_bytes"]) <= len(aps), nis
            assert f["mean_clients"] == pytest.approx(truth["mean_clients"], abs=1e-4), nis
            assert f["unique_clients"] == truth["unique_clients"], nis
            clients_checked += 1
        schools = [d for d in members if day["devices"][d]["kind"] == "cpe"]
        if schools and not published.unsure.intersection(schools):
            assert abs(f["school_utilisation_in_p95_pct"] - truth["school_utilisation_in_p95_pct"]) <= 0.1, nis
            school_p95_checked += 1
    assert school_p95_checked > 3 and clients_checked > 3, (school_p95_checked, clients_checked)
    region = rows[("region", "bxl")].fields
    assert region["hotspots"] == len({(e["nis"], e["site"]) for e in day["devices"].values() if e["kind"] == "ap"})
