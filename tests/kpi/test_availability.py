"""Availability from reports, uptimes, state marks and silence: exact spans for each kind of outage."""

from __future__ import annotations

import random

from collector.kpi.availability import (
    Availability,
    AvailabilityPolicy,
    Report,
    Span,
    StateMark,
    any_up,
    availability,
    hotspots,
    timeline,
)

S = 1_000_000_000
T0 = 1_795_388_400 * S
DAY = 86_400
P = 900
POLICY = AvailabilityPolicy(period_s=P, missed=3, will_delay_s=45)


def reports(start_s: int, end_s: int, boot_s: int, phase: int = 30, uptime: bool = True) -> list[Report]:
    """One report per period at ``phase`` in [start, end), up since ``boot_s``."""
    first = start_s - start_s % P + phase
    return [Report(T0 + t * S, (t - boot_s) if uptime else None) for t in range(first, end_s, P) if t >= start_s]


def run(rs: list[Report], marks: list[StateMark] | None = None) -> Availability:
    return availability(rs, marks or [], POLICY, T0, T0 + DAY * S)


def test_a_device_that_reports_all_day_is_up_all_day() -> None:
    a = run(reports(0, DAY, boot_s=-10 * DAY))
    assert (a.up_ns, a.length_ns, a.uncertain_ns, a.pct) == (DAY * S, DAY * S, 0, 100.0)


def test_outage_with_a_last_will_is_dated_by_the_will() -> None:
    # Last report 3630 s; dies at 4000; will received 45 s later; boots at 7600, reports again from 8130.
    rs = reports(0, 4000, -DAY) + reports(7600, DAY, boot_s=7600)
    a = run(rs, [StateMark(T0 + 4045 * S, False, will=True), StateMark(T0 + 7600 * S, True)])
    assert a.down_ns == 3600 * S and a.uncertain_ns == 0


def test_silent_outage_counts_half_the_uncertain_period() -> None:
    rs = reports(0, 4000, -DAY) + reports(7600, DAY, boot_s=7600)
    a = run(rs)
    # Up at 3630 (last report); down from 3630 + 450 until the boot at 7600 that the uptime dates.
    assert a.down_ns == (7600 - 4080) * S
    assert a.uncertain_ns == P * S
    spans, _ = timeline(rs, [], POLICY, T0, T0 + DAY * S)
    assert spans == [
        Span(T0, T0 + 4080 * S, True),
        Span(T0 + 4080 * S, T0 + 7600 * S, False),
        Span(T0 + 7600 * S, T0 + DAY * S, True),
    ]


def test_a_reboot_without_any_state_message_is_seen_from_the_uptime() -> None:
    # Vendor device: reports at 30, 930, 1830; down 2000-2100; the report at 2730 says uptime 630 s.
    rs = reports(0, 2000, -DAY) + reports(2100, DAY, boot_s=2100)
    a = run(rs)
    # Down somewhere in (1830, 2100): half of those 270 s counted down.
    assert (a.down_ns, a.uncertain_ns) == (135 * S, 270 * S)


def test_a_reboot_with_its_state_message_is_exact() -> None:
    rs = reports(0, 2000, -DAY) + reports(2100, DAY, boot_s=2100)
    a = run(rs, [StateMark(T0 + 2000 * S, False)])
    assert (a.down_ns, a.uncertain_ns) == (100 * S, 0)


def test_lost_messages_bridged_by_the_uptime_are_not_downtime() -> None:
    # The site's gateway lost the broker for two hours: no reports, a will even, but no reboot.
    rs = [r for r in reports(0, DAY, -DAY) if not 3600 <= (r.ts_ns - T0) // S < 3 * 3600]
    a = run(rs, [StateMark(T0 + 3700 * S, False, will=True)])
    assert (a.up_ns, a.uncertain_ns) == (DAY * S, 0)


def test_silence_without_uptime_after_three_missed_reports_is_down() -> None:
    rs = reports(0, 3600, 0, uptime=False) + reports(3600 + 4 * 3600, DAY, 0, uptime=False)
    a = run(rs)
    # Last report 2730; next 18030: down from 2730 + 450 to 18030. Before the first report (30 s),
    # with no uptime and no lookback, the state is unknown: counted down, and uncertain.
    assert a.down_ns == (18030 - 3180 + 30) * S
    assert a.uncertain_ns == (P + 30) * S
    # Two missed reports (a gap of 2700 s) are not an outage.
    gap = [r for r in reports(0, DAY, 0, uptime=False) if (r.ts_ns - T0) // S not in (930, 1830)]
    assert run(gap).down_ns == 30 * S  # only the unknown start


def test_silence_at_the_end_of_the_range() -> None:
    rs = reports(0, DAY - 4000, -DAY)  # last report at 81_930; nothing after
    a = run(rs)
    assert (a.down_ns, a.uncertain_ns) == ((DAY - 81_930 - 450) * S, P * S)
    # Silent for less than three periods at the end: still up.
    assert run(reports(0, DAY - 2000, -DAY)).down_ns == 0


def test_a_device_booting_during_the_window_was_down_before() -> None:
    a = run(reports(36_000, DAY, boot_s=36_000))
    assert a.up_ns == (DAY - 36_000) * S


def test_order_and_duplicates_do_not_matter() -> None:
    rs = reports(0, 4000, -DAY) + reports(7600, DAY, boot_s=7600)
    marks = [StateMark(T0 + 4045 * S, False, will=True), StateMark(T0 + 7600 * S, True)]
    noisy = rs + rs[:10]
    random.Random(3).shuffle(noisy)
    assert run(noisy, marks[::-1]) == run(rs, marks)


def test_a_site_is_up_while_any_of_its_aps_is() -> None:
    a = [Span(T0, T0 + 100 * S, True), Span(T0 + 100 * S, T0 + 300 * S, False), Span(T0 + 300 * S, T0 + 1000 * S, True)]
    b = [Span(T0, T0 + 200 * S, True), Span(T0 + 200 * S, T0 + 1000 * S, False)]
    assert any_up([a, b], T0, T0 + 1000 * S) == 900 * S
    assert any_up([], T0, T0 + 1000 * S) == 0
    assert hotspots([900 * S, 0, 1]) == 2


def test_a_silent_outage_ended_by_an_online_message_is_still_an_outage() -> None:
    # No will; "online" at the boot (100 ms before the boot the uptime gives); 20 minutes down.
    rs = reports(0, 4000, -DAY) + reports(5200, DAY, boot_s=5200)
    a = run(rs, [StateMark(T0 + 30 * S, True), StateMark(T0 + 5200 * S - 100_000_000, True)])
    # Last report 3630; down in (3630, 4530): from 4080 to the boot at 5200.
    assert (a.down_ns, a.uncertain_ns) == ((5200 - 4080) * S, P * S)
