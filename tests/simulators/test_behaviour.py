"""The model's behaviour against the calibration figures quoted in docs/simulator.md, and the
ground truth against what the devices report."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict

import orjson

from simulators.faults import FaultConfig
from simulators.inventory import build_inventory
from simulators.rhythm import WEEKDAY_SHARE, ArrivalModel, session_duration_s
from simulators.truth import TZ
from tests.simulators.conftest import MONDAY, Run, run


def test_session_durations_follow_the_reference_mix() -> None:
    rng = random.Random(1)
    durations = [session_duration_s(rng) for _ in range(200_000)]
    short = sum(1 for d in durations if d <= 1800) / len(durations)
    assert abs(short - 0.48) < 0.01  # 48 % of sessions last at most 30 minutes
    assert abs(statistics.fmean(durations) / 3600 - 2.1) < 0.05  # mean session 2.1 h


def test_weekly_rhythm_and_afternoon_peak() -> None:
    city = build_inventory(seed=7)
    sites = city.site_map()
    weights: dict[str, float] = defaultdict(float)
    for d in city.devices:
        if d.kind == "ap":
            weights[sites[d.site].kind] += sites[d.site].popularity
    model = ArrivalModel(weights)
    per_day = [
        sum(w * model.rate_per_s(kind, day, hour) * 3600 for kind, w in weights.items() for hour in range(24))
        for day in range(7)
    ]
    shares = [x / sum(per_day) for x in per_day]
    assert [round(s, 4) for s in shares] == list(WEEKDAY_SHARE)  # Sat, Sun, Mon 16 %, others 13 %

    week = run(
        start_ms=MONDAY, scale=0.08, duration_s=7 * 86_400, period_s=900, clients_every=4, faults=FaultConfig.none()
    )
    truth = week.simulation.truth
    days = truth.result({})["days"]
    assert len(days) == 7
    sessions = [sum(d["sessions"] for d in day["devices"].values() if d["kind"] == "ap") for day in days]
    for simulated, expected in zip(sessions, WEEKDAY_SHARE, strict=True):
        assert abs(simulated / sum(sessions) - expected) < 0.012
    # Connected clients peak in the afternoon (14-16 h local) on a weekday.
    from datetime import datetime

    by_hour: dict[int, int] = defaultdict(int)
    for per_nis in truth.ticks[1].values():  # Tuesday
        for tick, clients in per_nis.items():
            hour = datetime.fromtimestamp((MONDAY + tick * 900_000) / 1000, TZ).hour
            by_hour[hour] += clients
    assert max(by_hour, key=lambda h: by_hour[h]) in (14, 15, 16)
    assert by_hour[15] > 4 * by_hour[4]  # and the night is quiet
    # Weekend differences: parks gain on Sunday what town halls lose.
    assert model.rate_per_s("park", 6, 15) > model.rate_per_s("park", 1, 15)
    assert model.rate_per_s("town_hall", 6, 15) < 0.5 * model.rate_per_s("town_hall", 1, 15)


def test_traffic_radio_and_counters_behave(clean_day: Run) -> None:
    clients: list[int] = []
    volume: list[int] = []
    cu: dict[str, list[float]] = {"2.4": [], "5": []}
    uptime: dict[str, int] = {}
    for item in clean_day.items:
        body = orjson.loads(item.payload)
        if item.message == "clients":
            clients.append(body["num_clients"])
            volume.append(body["rx_bytes"] + body["tx_bytes"])
        elif item.message == "metrics":
            for radio in body["radios"]:
                cu[radio["band"]].append(radio["cu_total_pct"])
                assert -100 <= radio["noise_floor_dbm"] <= -85
                assert radio["tx_retries"] <= radio["tx_total"]
            if item.device in uptime:
                assert body["uptime_s"] - uptime[item.device] == 900  # no reboots in a clean day
            uptime[item.device] = body["uptime_s"]
        elif item.message == "interfaces":
            for interface in body["interfaces"]:
                if interface["counter_bits"] == 32:
                    assert interface["in_octets"] < 2**32
    assert statistics.correlation(clients, volume) > 0.6  # traffic follows clients
    assert statistics.fmean(cu["2.4"]) > statistics.fmean(cu["5"])  # 2.4 GHz is the crowded band
    assert 0 < max(clients) <= 150


def test_ground_truth_matches_what_devices_report_when_nothing_goes_wrong(clean_day: Run) -> None:
    truth = clean_day.simulation.truth.result({})
    (day,) = truth["days"]
    reported: dict[str, list[int]] = defaultdict(list)
    reported_bytes: dict[str, int] = defaultdict(int)
    per_tick: dict[tuple[str, int], int] = defaultdict(int)
    for item in clean_day.items:
        body = orjson.loads(item.payload)
        if item.message == "metrics":
            reported[item.device].append(body["num_clients"])
            tick = len(reported[item.device])
            per_tick[(item.device.split("-")[1], tick)] += body["num_clients"]
        elif item.message == "clients":
            reported_bytes[item.device] += body["rx_bytes"] + body["tx_bytes"]
    for device, entry in day["devices"].items():
        if entry["kind"] != "ap":
            assert entry["availability_pct"] == 100.0
            continue
        assert entry["availability_pct"] == 100.0
        assert entry["peak_clients"] == max(reported[device])
        assert abs(entry["mean_clients"] * entry["samples"] - sum(reported[device])) < 0.01
        true_bytes = entry["rx_bytes"] + entry["tx_bytes"]
        # Reports cover the day up to each device's last report; the rest of the last period is unreported.
        assert 0.95 * true_bytes <= reported_bytes[device] <= true_bytes + 2
    for nis, entry in day["municipalities"].items():
        ticks = [v for (n, _), v in per_tick.items() if n == nis]
        assert entry["peak_clients"] == max(ticks)
        assert abs(entry["mean_clients"] - sum(ticks) / len(ticks)) < 1e-3


def test_ground_truth_counts_downtime(faulty_day: Run) -> None:
    (day,) = faulty_day.simulation.truth.result({})["days"]
    downs = [e for e in faulty_day.events if e.fault in ("outage", "reboot")]
    assert downs
    for event in downs:
        entry = day["devices"][event.subject]
        lost = (min(event.t1_ms, faulty_day.simulation.end_ms) - event.t0_ms) / 1000
        assert entry["up_s"] <= 86_400 - lost + 1e-6
        assert entry["availability_pct"] < 100.0
    schools = [d for d in day["devices"].values() if d["kind"] == "cpe"]
    assert all(0 < d["utilisation_in_mean_pct"] < d["utilisation_in_p95_pct"] <= 97 for d in schools)
    assert all(d["link_capacity_mbps"] == 100 for d in schools)
