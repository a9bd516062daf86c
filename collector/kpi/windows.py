"""Event-time windows: 5 minutes, 1 hour and one local (Europe/Brussels) day.

Contract: a window is the half-open interval ``[start_ns, end_ns)`` of UTC nanoseconds since the
epoch. 5-minute and 1-hour windows are aligned on the epoch; Brussels' UTC offsets (+1 h, +2 h) are
whole hours, so they are also aligned on the local clock. A day window runs from local midnight to
the next local midnight, so it is 23 hours on the spring DST day (2026-03-29) and 25 hours on the
autumn one (2026-10-25). Windows are identified by their start; KPI points are written at it.

``attribute`` shares an integer amount that accrued over an interval (a counter delta between two
reports) across the windows the interval covers, pro rata of time, in integers whose sum is exactly
the amount: a delta is never double counted nor lost by rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Brussels")
NS = 1_000_000_000
Grain = Literal["5m", "1h", "day"]
GRAINS: tuple[Grain, ...] = ("5m", "1h", "day")
FIXED_NS: dict[str, int] = {"5m": 300 * NS, "1h": 3600 * NS}


@dataclass(frozen=True, slots=True, order=True)
class Window:
    start_ns: int
    end_ns: int
    grain: Grain

    @property
    def length_ns(self) -> int:
        return self.end_ns - self.start_ns

    def contains(self, ts_ns: int) -> bool:
        return self.start_ns <= ts_ns < self.end_ns

    def local_date(self, tz: ZoneInfo = TZ) -> date:
        """The local date the window starts on (the day of a day window)."""
        return datetime.fromtimestamp(self.start_ns // NS, tz).date()


def elapsed(window: Window, now_ns: int) -> Window:
    """The part of ``window`` that has happened by ``now_ns``: the window itself once it has ended,
    else its start to now. An open window (today, this hour) is computed over that part, so that
    its availability and means are "so far", not its future counted as down; its points keep the
    window's start and grain, so the full window's later computation replaces them."""
    if now_ns >= window.end_ns or now_ns <= window.start_ns:
        return window
    return Window(window.start_ns, now_ns, window.grain)


def midnight_ns(day: date, tz: ZoneInfo = TZ) -> int:
    """Local midnight starting ``day``, in UTC nanoseconds (midnights are whole seconds)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)) * NS


def day_window(day: date, tz: ZoneInfo = TZ) -> Window:
    return Window(midnight_ns(day, tz), midnight_ns(day + timedelta(days=1), tz), "day")


def local_date(ts_ns: int, tz: ZoneInfo = TZ) -> date:
    """The local calendar date of an instant."""
    return datetime.fromtimestamp(ts_ns // NS, tz).date()


def window_of(ts_ns: int, grain: Grain, tz: ZoneInfo = TZ) -> Window:
    """The window of ``grain`` that contains ``ts_ns``."""
    if grain == "day":
        return day_window(local_date(ts_ns, tz), tz)
    size = FIXED_NS[grain]
    start = ts_ns - ts_ns % size  # Python's % floors, so this holds before 1970 too
    return Window(start, start + size, grain)


def next_window(window: Window, tz: ZoneInfo = TZ) -> Window:
    if window.grain == "day":
        return day_window(window.local_date(tz) + timedelta(days=1), tz)
    return Window(window.end_ns, window.end_ns + window.length_ns, window.grain)


def windows_between(from_ns: int, to_ns: int, grain: Grain, tz: ZoneInfo = TZ) -> Iterator[Window]:
    """Every window of ``grain`` that overlaps ``[from_ns, to_ns)``, in order (none if empty)."""
    if to_ns <= from_ns:
        return
    window = window_of(from_ns, grain, tz)
    while window.start_ns < to_ns:
        yield window
        window = next_window(window, tz)


def share(start_ns: int, end_ns: int, amount: int, from_ns: int, to_ns: int) -> int:
    """The part of ``amount`` (accrued evenly over ``[start_ns, end_ns)``) that falls in ``[from_ns, to_ns)``.

    Rounded down on the running total from ``start_ns``: the parts of any partition of the interval
    are integers that add up to ``amount`` exactly, whatever the windows (5 min, 1 h, a day).
    A zero-length interval belongs wholly to the window that contains it.
    """
    if end_ns <= start_ns:
        return amount if from_ns <= end_ns < to_ns else 0
    lo, hi = max(start_ns, from_ns), min(end_ns, to_ns)
    if hi <= lo:
        return 0
    length = end_ns - start_ns
    return amount * (hi - start_ns) // length - amount * (lo - start_ns) // length


def attribute(start_ns: int, end_ns: int, amount: int, grain: Grain, tz: ZoneInfo = TZ) -> list[tuple[Window, int]]:
    """Share ``amount``, accrued evenly over ``[start_ns, end_ns)``, across the windows it covers
    (``share`` for each); the parts add up to ``amount`` exactly."""
    if end_ns <= start_ns:
        return [(window_of(end_ns, grain, tz), amount)]
    return [
        (w, share(start_ns, end_ns, amount, w.start_ns, w.end_ns)) for w in windows_between(start_ns, end_ns, grain, tz)
    ]


def closed(window: Window, watermark_ns: int, lateness_ns: int) -> bool:
    """A window closes when the watermark (the latest event time seen, or the clock) has passed its
    end by the allowed lateness: it is then written, and rewritten only if late data changes it."""
    return window.end_ns + lateness_ns <= watermark_ns


def touched(ts_ns: int, reach_ns: int, grain: Grain, tz: ZoneInfo = TZ) -> list[Window]:
    """The windows whose KPIs a reading at ``ts_ns`` can change: those within ``reach_ns`` of it (a
    counter delta spans to the neighbouring reports; availability looks ``missed x period`` around;
    use ``KpiConfig.lookback_s``). A late reading marks these dirty; recomputing them is idempotent."""
    return list(windows_between(ts_ns - reach_ns, ts_ns + reach_ns + 1, grain, tz))


BUCKET_NS = FIXED_NS["5m"]  # the finest grain: the KPI stage notes touched time in these buckets


def windows_of_day(day: date, grain: Grain, tz: ZoneInfo = TZ) -> list[Window]:
    """The windows of ``grain`` that make up the local ``day``: 1 day; 23, 24 or 25 hours; 276, 288 or
    300 five-minute windows (Brussels' offsets are whole hours, so no hour or 5-minute window
    straddles local midnight)."""
    whole = day_window(day, tz)
    return list(windows_between(whole.start_ns, whole.end_ns, grain, tz))


def touched_by_buckets(
    buckets: Iterable[int], reach_ns: int, grains: Iterable[Grain], tz: ZoneInfo = TZ
) -> set[Window]:
    """The windows of ``grains`` that readings in the given 5-minute buckets (``ts_ns // BUCKET_NS``)
    can change: every window within ``reach_ns`` of a bucket (``touched``, for a whole bucket at
    once). Consecutive buckets are merged into one range first, so a backlog of a whole day costs
    one pass per grain rather than one per reading."""
    runs: list[list[int]] = []
    for bucket in sorted(set(buckets)):
        if runs and bucket <= runs[-1][1] + 1:
            runs[-1][1] = bucket
        else:
            runs.append([bucket, bucket])
    out: set[Window] = set()
    for first, last in runs:
        lo, hi = first * BUCKET_NS - reach_ns, (last + 1) * BUCKET_NS + reach_ns
        for grain in grains:
            out.update(windows_between(lo, hi, grain, tz))
    return out
