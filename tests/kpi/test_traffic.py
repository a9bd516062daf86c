"""Volumes, utilisation, 95th percentile, rates and probes from counter deltas: exact values."""

from __future__ import annotations

from datetime import date

from collector.kpi.aggregate import availability_pct, group, public_figures
from collector.kpi.counters import CounterReading, CounterSpec, deltas
from collector.kpi.enrich import Place
from collector.kpi.traffic import (
    Check,
    Probe,
    billing_p95,
    bucket_utilisation,
    link_up_ns,
    links_probe_stats,
    probe_stats,
    ratio_pct,
    volume,
)
from collector.kpi.wifi import channel_load, rf_quality_from_counts, rf_quality_pct
from collector.kpi.windows import NS, day_window, windows_between

S = NS
T0 = 1_795_388_400 * S  # 2026-11-23 00:00 Brussels
M32 = 2**32
LINK = 100e6  # bit/s
SPEC = CounterSpec(bits=32, capacity_per_s=LINK / 8)


def test_volume_of_a_day_with_a_wrap_a_reset_and_the_intervals_across_midnight() -> None:
    day = day_window(date(2026, 11, 23))
    readings = [
        CounterReading(T0 - 600 * S, M32 - 1_000, 9_000),  # 23:50 the day before
        CounterReading(T0 + 600 * S, 2_000, 10_200),  # 00:10, wrapped: 3,000 over 20 min, 1,500 today
        CounterReading(T0 + 3600 * S, 50_000, 13_200),  # +48,000
        CounterReading(T0 + 7200 * S, 6_000, 600),  # rebooted at 01:50: 6,000 since then, 01:00-01:50 lost
        CounterReading(day.end_ns - 600 * S, 106_000, 600 + 79_200),  # +100,000 until 23:50
        CounterReading(day.end_ns + 600 * S, 108_000, 600 + 80_400),  # +2,000 over 20 min, 1,000 today
    ]
    result = deltas(readings, SPEC)
    v = volume(result, day.start_ns, day.end_ns)
    assert v.total == 1_500 + 48_000 + 6_000 + 100_000 + 1_000
    assert v.lost_ns == 3000 * S
    # On a 32-bit counter of a 100 Mbit/s link, 4.3 GB more fit in each interval but the reset's:
    # the volume is the least the counters allow, and says so.
    assert v.ambiguous == 4
    # The hours of the day add up to the day, to the unit.
    hours = [volume(result, w.start_ns, w.end_ns).total for w in windows_between(day.start_ns, day.end_ns, "1h")]
    assert sum(hours) == v.total


def test_utilisation_per_5_minute_bucket() -> None:
    # 15-minute reports; the link carries 10 %, then 50 %, then 20 % (bytes per 900 s at 100 Mbit/s).
    per = [int(LINK / 8 * 900 * u) for u in (0.10, 0.50, 0.20)]
    values = [0, per[0], per[0] + per[1], per[0] + per[1] + per[2]]
    spec = CounterSpec(bits=64, capacity_per_s=LINK / 8)
    result = deltas([CounterReading(T0 + k * 900 * S, v) for k, v in enumerate(values)], spec)
    end = T0 + 2700 * S
    u = bucket_utilisation(result.deltas, LINK, T0, end)
    assert u.samples == 9
    assert (round(u.mean_pct, 6), round(u.p95_pct, 6), round(u.max_pct, 6)) == (26.666667, 50.0, 50.0)


def test_billing_p95_drops_the_top_5_percent_and_bills_the_larger_direction() -> None:
    # 100 five-minute samples in: 1..100 Mbit/s; out: a flat 30 Mbit/s.
    rates = [k * 1e6 for k in range(1, 101)]
    values_in, values_out, v_in, v_out = [0], [0], 0, 0
    for r in rates:
        v_in += int(r / 8 * 300)
        v_out += int(30e6 / 8 * 300)
        values_in.append(v_in)
        values_out.append(v_out)
    spec = CounterSpec(bits=64)
    d_in = deltas([CounterReading(T0 + k * 300 * S, v) for k, v in enumerate(values_in)], spec).deltas
    d_out = deltas([CounterReading(T0 + k * 300 * S, v) for k, v in enumerate(values_out)], spec).deltas
    bill = billing_p95(d_in, d_out, T0, T0 + 100 * 300 * S)
    assert (bill.in_bps, bill.out_bps, bill.billed_bps) == (95e6, 30e6, 95e6)


def test_rates() -> None:
    assert ratio_pct(3, 200) == 1.5
    assert ratio_pct(0, 0) is None


def test_probe_stats() -> None:
    probes = [
        Probe(T0 + 60 * S, 20, 20, 1.0, 0.1),
        Probe(T0 + 960 * S, 20, 19, 3.0, 0.3),
        Probe(T0 + 960 * S, 20, 19, 3.0, 0.3),  # duplicate
        Probe(T0 + 1860 * S, 20, 0),
        Probe(T0 + 2760 * S, 20, 20, 2.0, 0.2),
    ]
    s = probe_stats(probes, T0, T0 + 3600 * S)
    assert (s.probes, s.loss_pct, s.rtt_p50_ms, s.rtt_p95_ms, s.reachable_pct) == (4, 26.25, 2.0, 3.0, 75.0)
    assert s.jitter_ms is not None and round(s.jitter_ms, 9) == 0.2
    assert probe_stats([], T0, T0 + 1).loss_pct is None


def test_probes_of_several_links_at_the_same_time_all_count() -> None:
    """A probe system pings every school on the minute: two links probed at the same instant are
    two probes (a repeat is one only within a link)."""
    lossy = [Probe(T0 + 60 * S, 20, 10, 8.0, 1.0), Probe(T0 + 60 * S, 20, 10, 8.0, 1.0)]
    clean = [Probe(T0 + 60 * S, 20, 20, 2.0, 0.5)]
    s = links_probe_stats([lossy, clean], T0, T0 + 3600 * S)
    assert (s.probes, s.loss_pct, s.rtt_p50_ms, s.rtt_p95_ms, s.jitter_ms) == (2, 25.0, 2.0, 8.0, 0.75)


def test_link_is_down_while_the_device_is_or_a_check_fails() -> None:
    up = [(T0, T0 + 3000 * S), (T0 + 3300 * S, T0 + 3600 * S)]
    checks = [
        Check(T0 + 60 * S, True),
        Check(T0 + 960 * S, False),
        Check(T0 + 1860 * S, True),
        Check(T0 + 2760 * S, False),
    ]
    # Failed 960-1860 and 2760-3660 (held one period): up = 3300 - 900 - 240 (2760-3000) - 300 (3300-3600).
    assert link_up_ns(up, [checks], 900, T0, T0 + 3600 * S) == (3300 - 900 - 240 - 300) * S


def test_an_interface_down_takes_the_link_down_whatever_the_probes_say() -> None:
    up = [(T0, T0 + 3600 * S)]
    probes = [Check(T0 + k * 300 * S, True) for k in range(12)]  # every probe answered
    oper = [Check(T0, True), Check(T0 + 600 * S, False), Check(T0 + 1200 * S, False), Check(T0 + 1800 * S, True)]
    # Down 600-1800 by the interface: an answered probe at 900 or 1500 does not end it (streams apart).
    assert link_up_ns(up, [probes, oper], 900, T0, T0 + 3600 * S) == (3600 - 1200) * S
    # Both streams failing over the same time count it once: probes unanswered 1500-2100 add 1800-2100.
    probes[5:7] = [Check(T0 + 1500 * S, False), Check(T0 + 1800 * S, False)]
    assert link_up_ns(up, [probes, oper], 900, T0, T0 + 3600 * S) == (3600 - 1500) * S


def test_channel_load_and_rf_quality() -> None:
    load = channel_load({"a/2.4": [60.0] * 19 + [90.0], "a/5": [75.0] * 20, "b/5": [10.0], "c/5": []})
    assert (load.radios, load.busy_radios, round(load.busy_share_pct, 6), load.p95_pct) == (3, 1, 33.333333, 75.0)
    assert rf_quality_pct([(-60, 30), (-70, 30), (-60, 20), (-67, 25)]) == 50.0
    assert rf_quality_pct([]) is None
    assert rf_quality_from_counts([(3, 4), (1, 4)]) == 50.0


def test_grouping_and_k_anonymity() -> None:
    places = [
        Place("a1", "ap", "s1", "21004", "Bruxelles"),
        Place("a2", "ap", "s2", "21004", "Bruxelles"),
        Place("a3", "ap", "s1", "21001", "Anderlecht"),
    ]
    assert {k: [p.device for p in v] for k, v in group(places, "municipality").items()} == {
        "21004": ["a1", "a2"],
        "21001": ["a3"],
    }
    assert set(group(places, "site")) == {"21004/s1", "21004/s2", "21001/s1"}
    assert list(group(places, "region")) == ["bxl"]
    assert availability_pct([(90, 100), (50, 100)]) == 70.0
    shown = [
        public_figures({"unique_clients": n}, k)["unique_clients"] for n, k in ((9, 10), (10, 10), (0, 10), (3, 3))
    ]
    assert shown == [None, 10, 0, 3]  # zero singles nobody out
