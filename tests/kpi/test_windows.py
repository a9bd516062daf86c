"""Event-time windows: alignment, local days across DST, attribution of an interval."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.windows import (
    BUCKET_NS,
    GRAINS,
    NS,
    TZ,
    Window,
    attribute,
    closed,
    day_window,
    local_date,
    touched,
    touched_by_buckets,
    window_of,
    windows_between,
    windows_of_day,
)

H = 3600 * NS


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * NS


def test_five_minute_and_hour_windows_are_aligned() -> None:
    t = utc(2026, 11, 23, 13, 7, 12)
    assert window_of(t, "5m") == Window(utc(2026, 11, 23, 13, 5), utc(2026, 11, 23, 13, 10), "5m")
    assert window_of(t, "1h") == Window(utc(2026, 11, 23, 13), utc(2026, 11, 23, 14), "1h")
    assert window_of(utc(2026, 11, 23, 13, 10), "5m").start_ns == utc(2026, 11, 23, 13, 10)  # start is inside


def test_local_day_in_winter_and_summer() -> None:
    assert day_window(date(2026, 11, 23)) == Window(utc(2026, 11, 22, 23), utc(2026, 11, 23, 23), "day")
    assert day_window(date(2026, 7, 1)) == Window(utc(2026, 6, 30, 22), utc(2026, 7, 1, 22), "day")
    # 23:30 UTC on the 22nd is 00:30 on the 23rd in Brussels.
    assert window_of(utc(2026, 11, 22, 23, 30), "day").local_date() == date(2026, 11, 23)
    assert local_date(utc(2026, 11, 22, 22, 59)) == date(2026, 11, 22)


def test_dst_days_are_23_and_25_hours() -> None:
    spring = day_window(date(2026, 3, 29))
    autumn = day_window(date(2026, 10, 25))
    assert spring.length_ns == 23 * H
    assert autumn.length_ns == 25 * H
    assert (spring.start_ns, autumn.start_ns) == (utc(2026, 3, 28, 23), utc(2026, 10, 24, 22))
    assert len(list(windows_between(spring.start_ns, spring.end_ns, "1h"))) == 23
    assert len(list(windows_between(autumn.start_ns, autumn.end_ns, "5m"))) == 25 * 12
    days = list(windows_between(utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), "day"))
    assert [d.local_date() for d in days] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert [d.length_ns // H for d in days] == [24, 23, 24]


def test_windows_between_is_empty_for_an_empty_range() -> None:
    t = utc(2026, 1, 1)
    assert list(windows_between(t, t, "1h")) == []


def test_attribute_pro_rata_of_time() -> None:
    # 10:50 -> 11:20, 3000 units: 10 min before 11:00, 20 after.
    start, end = utc(2026, 11, 23, 10, 50), utc(2026, 11, 23, 11, 20)
    parts = attribute(start, end, 3000, "1h")
    assert [(w.start_ns, v) for w, v in parts] == [(utc(2026, 11, 23, 10), 1000), (utc(2026, 11, 23, 11), 2000)]


def test_attribute_across_local_midnight() -> None:
    # 22:45 -> 23:15 UTC on 2026-11-22 is 23:45 -> 00:15 in Brussels: half on each local day.
    parts = attribute(utc(2026, 11, 22, 22, 45), utc(2026, 11, 22, 23, 15), 7, "day")
    assert [(w.local_date(), v) for w, v in parts] == [(date(2026, 11, 22), 3), (date(2026, 11, 23), 4)]


def test_attribute_zero_length_goes_to_the_end_instant() -> None:
    t = utc(2026, 11, 23, 11)
    assert attribute(t, t, 5, "1h") == [(window_of(t, "1h"), 5)]


@given(
    st.integers(utc(2026, 1, 1), utc(2026, 12, 31)),
    st.integers(1, 3 * 86_400 * NS),
    st.integers(0, 2**64),
    st.sampled_from(["5m", "1h", "day"]),
)
def test_attribute_never_loses_or_invents_a_unit(start: int, length: int, amount: int, grain: str) -> None:
    parts = attribute(start, start + length, amount, grain)  # type: ignore[arg-type]
    assert sum(v for _, v in parts) == amount
    assert all(v >= 0 for _, v in parts)
    assert parts[0][0].contains(start) and parts[-1][0].contains(start + length - 1)
    assert all(a.end_ns == b.start_ns for (a, _), (b, _) in pairwise(parts))


def test_closing_and_the_windows_a_late_reading_touches() -> None:
    hour = window_of(utc(2026, 11, 23, 10), "1h")
    four_hours = 4 * H
    assert not closed(hour, utc(2026, 11, 23, 13), four_hours)
    assert closed(hour, utc(2026, 11, 23, 15), four_hours)
    got = touched(utc(2026, 11, 23, 10, 58), 3600 * NS, "1h")
    assert [w.start_ns for w in got] == [utc(2026, 11, 23, h) for h in (9, 10, 11)]
    # 00:10 local on the 23rd: its interval may reach back into the 22nd, so both days are touched.
    assert [w.local_date() for w in touched(utc(2026, 11, 22, 23, 10), 3600 * NS, "day")] == [
        date(2026, 11, 22),
        date(2026, 11, 23),
    ]
    assert [w.local_date() for w in touched(utc(2026, 11, 23, 11), 3600 * NS, "day")] == [date(2026, 11, 23)]


def test_windows_of_a_day_across_the_dst_changes() -> None:
    """Spring (2026-03-29, 23 h) and autumn (2026-10-25, 25 h) in Brussels: exact starts and counts."""
    spring, autumn, plain = date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 23)
    for day, hours, first, last in (
        (spring, 23, utc(2026, 3, 28, 23), utc(2026, 3, 29, 21)),  # 00:00 CET ... 23:00 CEST
        (autumn, 25, utc(2026, 10, 24, 22), utc(2026, 10, 25, 22)),  # 00:00 CEST ... 23:00 CET
        (plain, 24, utc(2026, 11, 22, 23), utc(2026, 11, 23, 22)),
    ):
        whole = day_window(day)
        assert windows_of_day(day, "day") == [whole]
        hourly = windows_of_day(day, "1h")
        five = windows_of_day(day, "5m")
        assert len(hourly) == hours and len(five) == 12 * hours
        assert hourly[0].start_ns == first == whole.start_ns and hourly[-1].start_ns == last
        assert hourly[-1].end_ns == five[-1].end_ns == whole.end_ns
        for windows in (hourly, five):
            assert all(a.end_ns == b.start_ns for a, b in pairwise(windows))  # a partition of the day
            assert {local_date(w.start_ns) for w in windows} == {day}  # none straddles midnight
    # The local hours of the autumn day: 02:00 comes twice (CEST, then CET).
    local_hours = [datetime.fromtimestamp(w.start_ns / NS, TZ).strftime("%H%z") for w in windows_of_day(autumn, "1h")]
    assert local_hours[:4] == ["00+0200", "01+0200", "02+0200", "02+0100"] and local_hours[-1] == "23+0100"
    local_hours = [datetime.fromtimestamp(w.start_ns / NS, TZ).strftime("%H") for w in windows_of_day(spring, "1h")]
    assert local_hours[:3] == ["00", "01", "03"] and "02" not in local_hours


def test_touched_buckets_become_the_windows_within_reach() -> None:
    t = utc(2026, 10, 24, 22, 7)  # 00:07 CEST on the autumn DST day
    windows = touched_by_buckets([t // BUCKET_NS], 1200 * NS, GRAINS)
    five = sorted(w for w in windows if w.grain == "5m")
    # the bucket 00:05-00:10 and 20 minutes either side: 23:45 the day before to 00:30
    assert (
        len(five) == 9
        and five[0].start_ns == utc(2026, 10, 24, 21, 45)
        and five[-1].end_ns == utc(2026, 10, 24, 22, 30)
    )
    assert sorted(w.start_ns for w in windows if w.grain == "1h") == [utc(2026, 10, 24, 21), utc(2026, 10, 24, 22)]
    assert {w for w in windows if w.grain == "day"} == {day_window(date(2026, 10, 24)), day_window(date(2026, 10, 25))}
    # A run of buckets is one range: a whole day's backlog touches every window of the day and its neighbours' edges.
    day = day_window(date(2026, 3, 29))
    buckets = range(day.start_ns // BUCKET_NS, day.end_ns // BUCKET_NS)
    windows = touched_by_buckets(buckets, 1200 * NS, ["5m", "1h"])
    assert sum(1 for w in windows if w.grain == "5m") == 276 + 2 * 4
    assert sum(1 for w in windows if w.grain == "1h") == 23 + 2
