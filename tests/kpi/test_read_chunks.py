"""A pass's windows are read back in bounded runs: a day window alone (read in parts of the devices),
the 5-minute and hourly windows in runs of at most 3 hours, each window in exactly one run.

Why: one read of a whole day's 312 windows held a day's readings at once; the KPI process's memory
then grew with the city (docs/performance.md, "KPI process memory").
"""

from __future__ import annotations

from datetime import date

from collector.kpi.engine import READ_CHUNK_NS, read_chunks
from collector.kpi.windows import windows_of_day


def test_a_whole_day_is_read_in_runs_of_three_hours_and_the_day_alone() -> None:
    day = date(2026, 3, 29)  # 23 hours: the spring change
    windows = windows_of_day(day, "5m") + windows_of_day(day, "1h") + windows_of_day(day, "day")
    chunks = read_chunks(list(reversed(windows)))
    assert sorted(w for chunk in chunks for w in chunk) == sorted(windows)  # each once
    days = [chunk for chunk in chunks if any(w.grain == "day" for w in chunk)]
    assert days == [[windows_of_day(day, "day")[0]]]
    others = [chunk for chunk in chunks if chunk not in days]
    assert len(others) == 8  # 23 hours in runs of 3
    for chunk in others:
        assert max(w.end_ns for w in chunk) - min(w.start_ns for w in chunk) <= READ_CHUNK_NS


def test_a_live_pass_is_one_read() -> None:
    fives = windows_of_day(date(2026, 6, 1), "5m")[100:103]
    assert read_chunks(fives) == [fives]
