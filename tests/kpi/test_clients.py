"""Concurrent clients, unique clients and sessions: exact values on hand-built reports."""

from __future__ import annotations

from collector.kpi.clients import (
    ClientCount,
    ClientsReport,
    Session,
    concurrent,
    percentile,
    session_gap_s,
    session_stats,
    sessions,
    unique_clients,
)

S = 1_000_000_000
T0 = 1_795_388_400 * S  # Monday 2026-11-23 00:00 Brussels (23:00 UTC)
DAY = 86_400
P = 900


def ticks(phase: int, values: list[int], skip: frozenset[int] = frozenset()) -> list[ClientCount]:
    return [ClientCount(T0 + (k * P + phase) * S, v) for k, v in enumerate(values) if k not in skip]


def test_peak_and_mean_equal_those_over_report_ticks() -> None:
    a = [3, 5, 9, 2] + [0] * 92
    b = [1, 1, 4, 8] + [1] * 92
    load = concurrent({"a": ticks(10, a), "b": ticks(50, b)}, T0, T0 + DAY * S, valid_s=P)
    sums = [x + y for x, y in zip(a, b, strict=True)]
    assert load.buckets == 288
    assert (load.peak, load.peak_at_ns, load.peak_hour) == (13, T0 + 2 * P * S, 0)
    assert load.mean == sum(sums) / len(sums)


def test_an_ap_that_stops_reporting_counts_zero_after_one_period() -> None:
    # b reports ticks 0-1 only: its 4 clients hold for 3 buckets each, then count 0.
    load = concurrent({"b": ticks(50, [4, 4])}, T0, T0 + 2 * 3600 * S, valid_s=P)
    assert load.buckets == 24
    assert load.mean == 4 * 6 / 24


def test_duplicated_reports_count_once_and_order_does_not_matter() -> None:
    a = ticks(10, [3, 7, 1])
    once = concurrent({"a": a}, T0, T0 + 3600 * S, valid_s=P)
    assert concurrent({"a": a[::-1] + a}, T0, T0 + 3600 * S, valid_s=P) == once
    assert (once.peak, once.peak_hour) == (7, 0)


def test_peak_hour_is_local_time() -> None:
    values = [0] * 96
    values[4 * 14 + 2] = 40  # 14:30 Brussels
    load = concurrent({"a": ticks(0, values)}, T0, T0 + DAY * S, valid_s=P)
    assert (load.peak, load.peak_hour) == (40, 14)


def test_no_ap_gives_zero() -> None:
    assert concurrent({}, T0, T0 + 3600 * S, valid_s=P).peak == 0
    assert concurrent({}, T0, T0, valid_s=P).buckets == 0


def report(t_s: int, device: str, *pids: str) -> ClientsReport:
    return ClientsReport(T0 + t_s * S, device, frozenset(pids))


def test_unique_clients_are_distinct_pseudonyms_over_the_aps() -> None:
    rs = [report(0, "a", "p1", "p2"), report(900, "a", "p2"), report(30, "b", "p3", "p1")]
    assert unique_clients(rs) == 3
    assert unique_clients([]) == 0


def test_sessions_join_consecutive_reports_and_roams_and_split_on_absence() -> None:
    gap = session_gap_s(P)  # 1350 s for 15-minute reports
    rs = [
        report(0, "a", "p1"),
        report(900, "a", "p1", "p2"),
        report(1800, "a", "p2"),  # p1 is no longer on a...
        report(1830, "b", "p1"),  # ...it roamed to b, 930 s after its last sighting: the session continues
        report(2700, "a"),
        report(2730, "b"),
        report(3600, "a", "p1"),  # 1770 s after its last sighting: a new session
    ]
    found = sessions(rs, gap)
    assert found == [
        Session("p1", T0, T0 + 1830 * S, 3),
        Session("p2", T0 + 900 * S, T0 + 1800 * S, 2),
        Session("p1", T0 + 3600 * S, T0 + 3600 * S, 1),
    ]
    stats = session_stats(found, T0, T0 + DAY * S)
    assert (stats.count, stats.p50_s, stats.p90_s, stats.mean_s) == (3, 900.0, 1830.0, 910.0)
    assert session_stats(found, T0 + 3000 * S, T0 + DAY * S).count == 1  # counted on the day it starts


def test_session_gap_is_ten_minutes_for_frequent_reports() -> None:
    assert session_gap_s(300) == 600.0 and session_gap_s(60) == 600.0 and session_gap_s(900) == 1350.0
    # With 5-minute reports, missing one report (10 minutes between sightings) does not end a session.
    found = sessions([report(0, "a", "p"), report(600, "a", "p"), report(1300, "a", "p")], session_gap_s(300))
    assert [(s.start_ns - T0) // S for s in found] == [0, 1300]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
