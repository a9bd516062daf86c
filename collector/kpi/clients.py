"""Wi-Fi client KPIs: concurrent clients (peak, its hour, mean), unique clients, sessions.

Contract, all pure functions of the readings given:

- ``concurrent(samples, from_ns, to_ns, valid_s)``: the number of associated clients summed over
  the APs given, at the end of every 5-minute bucket of ``[from_ns, to_ns)``: each AP counts with its
  latest ``num_clients`` report at or before the bucket's end if that report is less than
  ``valid_s`` old (its report period), else 0 (down or silent). Peak (and the local hour of the
  first bucket that reaches it) and mean are over those buckets. With 15-minute reports each report
  holds for three buckets, so the peak and mean equal the peak and mean over report ticks.
- ``unique_clients(reports)``: distinct client pseudonyms (a day's pseudonyms: see pseudonym.py).
- ``sessions(reports, gap_s)``: a session is a pseudonym's run of sightings (at client reports of
  the APs given, so a roam between APs of one site continues it) with no two consecutive sightings
  more than ``gap_s`` apart. ``gap_s`` is 10 minutes, or 1.5 report periods if the reports are
  sparser (a client present at consecutive 15-minute reports is one session). A session's
  duration is from its first to its last sighting: a lower bound, 0 for a client seen once; a
  session shorter than a report period may not be seen at all.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain

from collector.kpi.windows import NS, TZ

BUCKET_NS = 300 * NS
SESSION_GAP_S = 600.0


@dataclass(frozen=True, slots=True)
class ClientCount:
    ts_ns: int
    num_clients: int


@dataclass(frozen=True, slots=True)
class ClientsReport:
    """The pseudonyms of the clients one AP listed at one report (never a MAC)."""

    ts_ns: int
    device: str
    pids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Load:
    peak: int
    peak_at_ns: int | None  # start of the first 5-minute bucket that reached the peak
    peak_hour: int | None  # its local (Brussels) hour, 0-23
    mean: float
    buckets: int


@dataclass(frozen=True, slots=True)
class Session:
    pid: str
    start_ns: int
    end_ns: int
    sightings: int

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS


@dataclass(frozen=True, slots=True)
class SessionStats:
    count: int
    p50_s: float
    p90_s: float
    mean_s: float


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of unsorted values; 0.0 for none."""
    if not values:
        return 0.0
    return ranked(sorted(values), q)


def ranked(ordered: Sequence[float], q: float) -> float:
    """``percentile`` of values already sorted (several percentiles of one sort); at least one value."""
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def down_to_rank(groups: Sequence[Sequence[float]], q: float) -> list[float]:
    """The values of ``groups`` from the largest down to their ``percentile`` ``q`` (the last one),
    without a sorted copy of them all: the p95 of a city's day of samples (millions) holds the top 5 %
    only. At least one value."""
    n = sum(len(g) for g in groups)
    return heapq.nlargest(n - max(1, math.ceil(q / 100 * n)) + 1, chain.from_iterable(groups))


def concurrent(
    samples: Mapping[str, Iterable[ClientCount]], from_ns: int, to_ns: int, valid_s: float, bucket_ns: int = BUCKET_NS
) -> Load:
    """Concurrent clients over the APs in ``samples`` (device -> its reports; see the module docstring).
    Give each AP's reports from ``valid_s`` before ``from_ns`` so the first buckets are complete."""
    parts = (client_buckets(reports, from_ns, to_ns, valid_s, bucket_ns) for reports in samples.values())
    return total_load(parts, from_ns, to_ns, bucket_ns)


def bucket_count(from_ns: int, to_ns: int, bucket_ns: int = BUCKET_NS) -> int:
    return sum(1 for _ in _buckets(from_ns, to_ns, bucket_ns))


def client_buckets(
    reports: Iterable[ClientCount], from_ns: int, to_ns: int, valid_s: float, bucket_ns: int = BUCKET_NS
) -> list[int]:
    """One AP's part of ``concurrent``: its clients at the end of each bucket. A group's totals are
    the sums of its APs' parts, so an AP's part can be kept (a few hundred small ints a day) instead
    of its reports while the rest of the city is read."""
    valid = int(valid_s * NS)
    series = sorted({c.ts_ns: c.num_clients for c in reports}.items())  # a repeated report counts once
    k = 0
    out: list[int] = []
    for _, end in _buckets(from_ns, to_ns, bucket_ns):
        while k < len(series) and series[k][0] < end:
            k += 1
        out.append(series[k - 1][1] if k and end - series[k - 1][0] <= valid else 0)
    return out


def total_load(parts: Iterable[Sequence[int]], from_ns: int, to_ns: int, bucket_ns: int = BUCKET_NS) -> Load:
    """``load`` of the bucket by bucket sum of several APs' ``client_buckets`` (a group's clients)."""
    totals = [0] * bucket_count(from_ns, to_ns, bucket_ns)
    for part in parts:
        for i, n in enumerate(part):
            totals[i] += n
    return load(totals, from_ns, bucket_ns)


def load(totals: Sequence[int], from_ns: int, bucket_ns: int = BUCKET_NS) -> Load:
    """Peak (its first bucket and local hour) and mean of the buckets' totals, the first bucket being
    the one ``from_ns`` falls in."""
    if not totals:
        return Load(0, None, None, 0.0, 0)
    first = from_ns - from_ns % bucket_ns
    peak = max(totals)
    peak_at = first + totals.index(peak) * bucket_ns
    hour = datetime.fromtimestamp(peak_at // NS, TZ).hour
    return Load(peak, peak_at, hour, sum(totals) / len(totals), len(totals))


def _buckets(from_ns: int, to_ns: int, bucket_ns: int) -> Iterable[tuple[int, int]]:
    """Epoch-aligned buckets overlapping the range (local days start on whole hours, so a day has
    exactly 276, 288 or 300 five-minute buckets)."""
    start = from_ns - from_ns % bucket_ns
    while start < to_ns:
        yield (start, start + bucket_ns)
        start += bucket_ns


def unique_clients(reports: Iterable[ClientsReport]) -> int:
    seen: set[str] = set()
    for r in reports:
        seen.update(r.pids)
    return len(seen)


def session_gap_s(report_period_s: float) -> float:
    """The gap that ends a session: 10 minutes, or 1.5 report periods for sparser reports."""
    return max(SESSION_GAP_S, 1.5 * report_period_s)


def sessions(reports: Iterable[ClientsReport], gap_s: float = SESSION_GAP_S) -> list[Session]:
    """Sessions of the pseudonyms in ``reports`` (all APs of a site, for roams), by start then pid."""
    gap = int(gap_s * NS)
    sightings: dict[str, set[int]] = {}
    for r in reports:
        for pid in r.pids:
            sightings.setdefault(pid, set()).add(r.ts_ns)
    out: list[Session] = []
    for pid, times in sightings.items():
        ordered = sorted(times)
        start = prev = ordered[0]
        count = 1
        for t in ordered[1:]:
            if t - prev > gap:
                out.append(Session(pid, start, prev, count))
                start, count = t, 0
            prev = t
            count += 1
        out.append(Session(pid, start, prev, count))
    out.sort(key=lambda s: (s.start_ns, s.pid))
    return out


@dataclass(frozen=True, slots=True)
class SessionTimes:
    """Sessions as what ``session_stats`` needs of them, two columns: each one's start (ns) and
    duration (s). 16 bytes a session where a ``Session`` costs about 280: a day's sessions of a whole
    city are held while every level is computed."""

    starts: array[int]
    durations: array[float]

    @classmethod
    def of(cls, found: Iterable[Session]) -> SessionTimes:
        starts: array[int] = array("q")
        durations: array[float] = array("d")
        for s in found:
            starts.append(s.start_ns)
            durations.append(s.duration_s)
        return cls(starts, durations)


def session_stats(found: Sequence[Session], from_ns: int, to_ns: int) -> SessionStats:
    """Sessions that started in ``[from_ns, to_ns)`` and their duration p50, p90 and mean."""
    return sessions_stats([SessionTimes.of(found)], from_ns, to_ns)


def sessions_stats(groups: Iterable[SessionTimes], from_ns: int, to_ns: int) -> SessionStats:
    """``session_stats`` over the sessions of several groups (the sites of a municipality)."""
    durations = [d for g in groups for s, d in zip(g.starts, g.durations, strict=True) if from_ns <= s < to_ns]
    if not durations:
        return SessionStats(0, 0.0, 0.0, 0.0)
    return SessionStats(
        len(durations), percentile(durations, 50), percentile(durations, 90), sum(durations) / len(durations)
    )
