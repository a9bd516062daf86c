"""The KPI engine's columns hold what lists of the readings held, in the same order, cut the same way.

``Columns`` (collector/kpi/columns.py) replaced lists of frozen dataclasses in raw.py to cut the KPI
process's memory. The pure KPI functions see the same objects: random rows appended in any order
(optional floats, ints up to and beyond 64 bits, equal times), once sealed, read back as the list
sorted stably by time would, and every cut, index and length is that list's.
"""

from __future__ import annotations

from bisect import bisect_left

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.columns import Columns, optional, stored
from collector.kpi.counters import CounterReading
from collector.kpi.raw import DeviceRaw, InterfaceRaw, RadioRaw, counter_columns


def _make(ts: int, value: int, uptime: float) -> CounterReading:
    return CounterReading(ts, value, optional(uptime))


times = st.integers(min_value=-(2**62), max_value=2**62)
rows = st.lists(
    st.tuples(
        st.one_of(times, st.sampled_from([0, 1, 2])),  # equal times are common: stable order matters
        st.integers(min_value=-(2**70), max_value=2**70),
        st.one_of(st.none(), st.floats(allow_nan=False)),
    ),
    max_size=40,
)


@given(rows, times, times)
def test_columns_read_back_as_the_sorted_list_and_cut_like_it(
    given_rows: list[tuple[int, int, float | None]], a: int, b: int
) -> None:
    columns: Columns[CounterReading] = Columns(_make, "qd")
    for ts, value, uptime in given_rows:
        columns.append(ts, value, stored(uptime))
    columns.seal()
    expected = sorted((CounterReading(ts, v, u) for ts, v, u in given_rows), key=lambda r: r.ts_ns)
    assert list(columns) == expected
    assert len(columns) == len(expected)
    assert [columns[i] for i in range(-len(expected), len(expected))] == expected + expected
    assert columns[1:-1:2] == expected[1:-1:2]
    lo, hi = min(a, b), max(a, b)
    cut = columns.cut(lo, hi)
    within = [r for r in expected if lo <= r.ts_ns < hi]
    assert list(cut) == within and len(cut) == len(within)
    assert cut.any_within(lo, hi) == bool(within)
    assert list(cut.times()) == [r.ts_ns for r in within]
    inner = cut.cut(lo + (hi - lo) // 3, hi)  # a cut of a cut stays within the first
    assert list(inner) == [r for r in within if r.ts_ns >= lo + (hi - lo) // 3]
    if within:
        assert cut[-1] == within[-1] and cut[0] == within[0]
    with pytest.raises(IndexError):
        cut[len(within)]


@given(st.lists(st.tuples(times, times), max_size=30))
def test_tuple_rows_come_back_as_tuples(pairs: list[tuple[int, int]]) -> None:
    columns: Columns[tuple[int, int]] = Columns(None, "q")
    for ts, value in pairs:
        columns.append(ts, value)
    columns.seal()
    assert list(columns) == sorted(pairs, key=lambda p: p[0])
    if pairs:
        assert columns[0] == sorted(pairs, key=lambda p: p[0])[0]


def test_a_value_past_64_bits_is_kept_not_refused() -> None:
    columns = counter_columns()
    columns.append(2, 2**64 + 5, stored(None))
    columns.append(1, 7, stored(3.5))
    columns.seal()
    assert list(columns) == [CounterReading(1, 7, 3.5), CounterReading(2, 2**64 + 5, None)]


def test_a_device_cut_shares_nothing_it_should_not_and_leaves_out_what_is_empty() -> None:
    device = DeviceRaw("ap-1", {"device": "ap-1"})
    for ts in (30, 10, 20):
        device.reports.append(ts, stored(float(ts)))
    device.interfaces["wan"] = InterfaceRaw()
    device.interfaces["wan"].oper.append(25, True)
    device.radios["5"] = RadioRaw()
    device.radios["5"].utilisation.append(40, 12.5)
    device.presence.append(15, "a,b")
    device.sort()
    cut = device.slice(10, 26)
    assert cut is not None
    assert [r.ts_ns for r in cut.reports] == [10, 20]
    assert [(r.ts_ns, r.pids) for r in cut.presence] == [(15, frozenset({"a", "b"}))]
    assert list(cut.interfaces) == ["wan"] and list(cut.radios) == []  # the radio read only at 40
    assert cut.tags == device.tags and cut.tags is not device.tags
    assert device.slice(100, 200) is None
    assert len(device.reports) == 3  # the cut is a view: the device keeps all it read
    same = DeviceRaw("ap-1", {"device": "ap-1"})
    for ts in (10, 20):
        same.reports.append(ts, float(ts))
    same.interfaces["wan"] = InterfaceRaw()
    same.interfaces["wan"].oper.append(25, True)
    same.presence.append(15, "a,b")
    assert cut == same  # equal by what they hold, whatever columns they are views of
    assert bisect_left([r.ts_ns for r in device.reports], 20) == 1


@given(st.lists(times, max_size=20), st.lists(times, max_size=20))
def test_equal_time_columns_are_shared_and_unequal_ones_are_not(first: list[int], second: list[int]) -> None:
    a, b, c = counter_columns(), counter_columns(), counter_columns()
    for ts in first:
        a.append(ts, 1, stored(None))
        b.append(ts, 2, stored(2.5))
    for ts in second:
        c.append(ts, 3, stored(None))
    known: list[object] = []
    for columns in (a, b, c):
        columns.seal()
        columns.share_times(known)  # type: ignore[arg-type]
    assert a.times() == b.times() and list(b) == [CounterReading(ts, 2, 2.5) for ts in sorted(first)]
    assert a._columns[0] is b._columns[0]
    assert (c._columns[0] is a._columns[0]) == (sorted(first) == sorted(second))
    assert list(c) == [CounterReading(ts, 3) for ts in sorted(second)]
