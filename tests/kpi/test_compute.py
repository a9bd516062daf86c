"""compute_window on hand-built readings: every level present, unknown devices kept, small counts hidden."""

from __future__ import annotations

from datetime import date

import pytest

from collector.kpi.availability import Report
from collector.kpi.clients import ClientCount, ClientsReport
from collector.kpi.compute import DeviceReadings, KpiConfig, compute_window
from collector.kpi.counters import CounterReading
from collector.kpi.enrich import Place, Places
from collector.kpi.windows import NS, day_window

DAY = day_window(date(2026, 11, 23))
T0 = DAY.start_ns
P = 900


def ap(place: Place, clients: int, pids: frozenset[str], bytes_per_period: int) -> DeviceReadings:
    times = [T0 + (k * P + 30) * NS for k in range(96)]
    return DeviceReadings(
        place=place,
        reports=[Report(t, 10**6 + k * P) for k, t in enumerate(times)],
        clients=[ClientCount(t, clients) for t in times],
        client_reports=[ClientsReport(t, place.device, pids) for t in times[:4]],
        counters={"rx": [CounterReading(t, k * bytes_per_period, 10**6 + k * P) for k, t in enumerate(times)]},
    )


def test_levels_unknown_devices_and_k_anonymity() -> None:
    places = Places({"a1": Place("a1", "ap", "s1", "21004", "Bruxelles", capacity_mbps=1000)}, {"21004": "Bruxelles"})
    known = ap(places.place("a1"), 3, frozenset({"p1", "p2"}), 1_000)
    stray = ap(places.place("a9", {"nis": "21004", "site": "s2", "kind": "ap"}), 2, frozenset({"p3"}), 10)
    config = KpiConfig(period_s=P, clients_period_s=P)
    rows = {(r.level, r.key): r for r in compute_window([known, stray], DAY, config)}
    assert set(rows) == {
        ("device", "a1"),
        ("device", "a9"),
        ("site", "21004/s1"),
        ("site", "21004/s2"),
        ("municipality", "21004"),
        ("region", "bxl"),
    }
    m = rows[("municipality", "21004")]
    assert (m.devices, m.unknown_devices, m.grain, m.start_ns) == (2, 1, "day", T0)
    assert m.fields["peak_clients"] == 5 and m.fields["mean_clients"] == 5.0
    assert m.fields["unique_clients"] == 3 and m.fields["sessions"] == 3
    assert m.fields["hotspots"] == 2 and m.fields["site_availability_pct"] == 100.0
    # 95 intervals between the 96 reports; after the last one (23:45:30) nothing is known yet.
    assert m.fields["rx_bytes"] == 95 * 1_010
    assert rows[("device", "a9")].unknown_devices == 1
    public = compute_window([known, stray], DAY, KpiConfig(period_s=P, clients_period_s=P, suppress_small_counts=True))
    shown = next(r.fields for r in public if r.level == "municipality")
    # Every count of clients or sessions below k is hidden, and the session durations with them.
    hidden = ("unique_clients", "sessions", "peak_clients", "mean_clients", "session_p50_s", "session_p90_s")
    assert {name: shown[name] for name in hidden} == dict.fromkeys(hidden)
    assert shown["rx_bytes"] == m.fields["rx_bytes"] and shown["hotspots"] == 2


def test_radio_and_error_rate_fields() -> None:
    times = [T0 + (k * P + 30) * NS for k in range(96)]
    up = [10**6 + k * P for k in range(96)]
    radio = DeviceReadings(
        place=Place("a1", "ap", "s1", "21004", "Bruxelles", capacity_mbps=1000),
        reports=[Report(t, u) for t, u in zip(times, up, strict=True)],
        channel_utilisation={"2.4": [(t, 80.0) for t in times], "5": [(t, 20.0) for t in times]},
        rf=[(t, 3, 4) for t in times],
        counters={
            "tx_retries:5": [CounterReading(t, 5 * k, u) for k, (t, u) in enumerate(zip(times, up, strict=True))],
            "tx_total:5": [CounterReading(t, 100 * k, u) for k, (t, u) in enumerate(zip(times, up, strict=True))],
        },
    )
    link = DeviceReadings(
        place=Place("c1", "cpe", "school-1", "21004", "Bruxelles", capacity_mbps=100, link="wan0", counter_bits=32),
        reports=[Report(t, u) for t, u in zip(times, up, strict=True)],
        counters={
            "in_pkts": [CounterReading(t, 1000 * k, u) for k, (t, u) in enumerate(zip(times, up, strict=True))],
            "in_errors": [CounterReading(t, k, u) for k, (t, u) in enumerate(zip(times, up, strict=True))],
        },
    )
    rows = {(r.level, r.key): r for r in compute_window([radio, link], DAY, KpiConfig(period_s=P))}
    f = rows[("municipality", "21004")].fields
    assert (f["cu_p95_pct"], f["busy_radios"], f["busy_radio_share_pct"]) == (80.0, 1, 50.0)
    assert (f["retry_rate_pct"], f["rf_quality_pct"]) == (5.0, 75.0)
    assert f["school_in_errors_rate_pct"] == 0.1
    assert f["school_availability_pct"] == 100.0
    assert rows[("device", "c1")].fields["school_in_errors_rate_pct"] == 0.1


def test_a_missing_report_gives_both_its_buckets_the_rate_it_measured() -> None:
    """The trial dropped single 5-minute reports of a school link: each 10-minute delta gave one sample,
    in the bucket where it ended, so the month's p95 was off and samples < buckets though the link was
    measured throughout. A utilisation sample is a 5-minute bucket's rate over the part deltas cover."""
    from collector.kpi.windows import window_of

    capacity = 100  # Mbit/s
    rates = [10, 20, 30, 40, 50, 60]  # % of each 5-minute bucket, 10:00 to 10:30
    ten = T0 + 10 * 3600 * NS
    counts = [0]
    for rate in rates:
        counts.append(counts[-1] + rate * capacity * 10**6 // 8 // 100 * 300)
    times = [ten + k * 300 * NS for k in range(len(counts))]
    kept = [k for k in range(len(counts)) if k != 2]  # the 10:10 report is missing
    link = DeviceReadings(
        place=Place("c1", "cpe", "school-1", "21004", "Bruxelles", capacity_mbps=capacity, link="wan0"),
        reports=[Report(times[k], 10**6 + 300 * k) for k in kept],
        counters={"in": [CounterReading(times[k], counts[k], 10**6 + 300 * k) for k in kept]},
    )
    config = KpiConfig(period_s=300)
    buckets: list[float] = []
    for k in range(len(rates)):
        window = window_of(times[k], "5m")
        (row,) = [r for r in compute_window([link], window, config) if r.level == "device"]
        value = row.fields["school_utilisation_in_mean_pct"]
        assert isinstance(value, float), value
        buckets.append(value)
    # 10:05 and 10:10 share the 10-minute delta: both its mean, 25 %; the others their own rate.
    assert [round(b, 9) for b in buckets] == [10.0, 25.0, 25.0, 40.0, 50.0, 60.0]
    hour = window_of(ten, "1h")
    (row,) = [r for r in compute_window([link], hour, config) if r.level == "device"]
    assert row.fields["school_utilisation_in_p95_pct"] == pytest.approx(60.0)
    assert row.fields["school_utilisation_in_mean_pct"] == pytest.approx(sum(buckets) / 6)
