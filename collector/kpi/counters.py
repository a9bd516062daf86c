"""Deltas from cumulative counters: wraps, resets, gaps, duplicates, reordering, implausible rates.

Contract: ``deltas(readings, spec)`` takes the raw readings of ONE counter series (one device, one
interface or radio, one counter) in any order, duplicates included, and returns a ``CounterDeltas``:
the increase between each pair of consecutive distinct readings, as ``Delta(start_ns, end_ns,
value, ...)``, and every interval whose increase cannot be known as ``Lost(start_ns, end_ns,
reason)``, with counts of what was dropped and why. It is a pure function of the set of readings:
the same readings in any order, or received twice, give the same result (readings are sorted by
timestamp and deduplicated first), which is what lets several ingest processes, a restart or a
recompute from storage agree. The formula and every edge case are in docs/kpis.md ("Counters").

A delta spans whatever gap separates its two readings; ``windows.attribute`` shares it across the
windows it covers. Deltas are exact integers; nothing is interpolated.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Literal, NamedTuple

NS = 1_000_000_000
DeltaKind = Literal["increase", "wrap", "reset"]
LostReason = Literal["reset", "implausible"]


class CounterReading(NamedTuple):
    """One reported value of a cumulative counter.

    ``uptime_s`` is the device's uptime at the reading (sysUpTime, ``uptime_s``), if it reports one;
    ``epoch`` is any discontinuity marker the device reports (ifCounterDiscontinuityTime,
    OpenConfig ``last-clear``, a boot id): a change means the counter was reset.

    A named tuple, as ``Delta``: a day of a city makes millions of both, and a frozen dataclass costs
    three times as much to make (docs/performance.md, "The KPI process's CPU").
    """

    ts_ns: int
    value: int
    uptime_s: float | None = None
    epoch: int | str | None = None


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """How to read one series.

    ``capacity_per_s``: the most the counter can grow per second at line rate, in its own unit
    (an octet counter on a 100 Mbit/s link: 12.5e6); ``None`` when unknown, which disables the
    plausibility guard and the ambiguity check. ``guard``: a rate above ``guard x capacity`` is
    implausible (1.1: line rate plus framing slack). ``uptime_slack_s``: uptime is reported in whole
    seconds and may lag the timestamp a little. ``reset_from_zero``: a reset counter restarts from 0
    (what devices do at boot), so the value after a reset is the increase since the reset; set it
    false for devices whose counters restart anywhere.
    """

    bits: Literal[32, 64] = 64
    capacity_per_s: float | None = None
    guard: float = 1.1
    uptime_slack_s: float = 2.0
    reset_from_zero: bool = True

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    def limit(self, seconds: float) -> float | None:
        """The largest plausible increase over ``seconds``, or None when the capacity is unknown."""
        if self.capacity_per_s is None:
            return None
        return self.guard * self.capacity_per_s * seconds


class Delta(NamedTuple):
    """The increase ``value`` over ``[start_ns, end_ns]``.

    ``kind``: ``increase`` (v1 >= v0), ``wrap`` (the counter passed 2**bits ``wraps`` times) or
    ``reset`` (the counter restarted; ``value`` is what it counted since, and ``start_ns`` is the
    restart when the uptime tells it). ``alternatives``: how many more wraps would also have been
    plausible at the link's capacity (0 = unambiguous); the value is the smallest candidate, and
    the true one may be ``value + k x 2**bits`` for k up to ``alternatives``.
    """

    start_ns: int
    end_ns: int
    value: int
    kind: DeltaKind = "increase"
    wraps: int = 0
    alternatives: int = 0
    hinted: bool = False  # the number of wraps was chosen by resolve_wraps, not forced by the values

    @property
    def ambiguous(self) -> bool:
        return self.alternatives > 0


@dataclass(frozen=True, slots=True)
class Lost:
    """An interval whose increase is unknown: counted nowhere, reported so the KPI can say so."""

    start_ns: int
    end_ns: int
    reason: LostReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CounterDeltas:
    deltas: tuple[Delta, ...] = ()
    lost: tuple[Lost, ...] = ()
    readings: int = 0  # distinct readings used
    duplicates: int = 0  # the same (timestamp, value) again: dropped
    conflicts: int = 0  # the same timestamp with another value: the larger value kept
    out_of_range: int = 0  # negative or >= 2**bits: dropped
    counts: dict[str, int] = field(default_factory=dict)  # per Delta kind and Lost reason, plus "ambiguous"

    @property
    def total(self) -> int:
        return sum(d.value for d in self.deltas)

    @property
    def ambiguous(self) -> int:
        return self.counts.get("ambiguous", 0)


def deltas(readings: Iterable[CounterReading], spec: CounterSpec) -> CounterDeltas:
    """The deltas of one series (see the module docstring)."""
    modulus = spec.modulus
    by_ts: dict[int, CounterReading] = {}
    duplicates = conflicts = out_of_range = 0
    for r in readings:
        if not 0 <= r.value < modulus:
            out_of_range += 1
            continue
        seen = by_ts.get(r.ts_ns)
        if seen is None:
            by_ts[r.ts_ns] = r
        elif seen == r:
            duplicates += 1
        else:
            # Two values for one instant (a device clock stepping back, a buggy poller). Keeping the
            # larger one is arbitrary but independent of arrival order; counted so it is seen.
            conflicts += 1
            by_ts[r.ts_ns] = max(seen, r, key=_rank)
    ordered = [by_ts[ts] for ts in sorted(by_ts)]
    out: list[Delta] = []
    lost: list[Lost] = []
    counts: dict[str, int] = {}
    rate = None if spec.capacity_per_s is None else spec.guard * spec.capacity_per_s  # spec.limit's factor
    for r0, r1 in pairwise(ordered):
        if r1.value >= r0.value and reset_between(r0, r1, spec) is None:
            # Nearly every pair: a plain increase, what pair() and _plausible() make of it, written
            # out (a day of a city is millions of pairs).
            t0, t1, value = r0.ts_ns, r1.ts_ns, r1.value - r0.value
            limit = None if rate is None else rate * ((t1 - t0) / NS)
            if limit is None or value <= limit:
                alternatives = 0 if limit is None else int((limit - value) // modulus)
                out.append(Delta(t0, t1, value, "increase", 0, alternatives))
                counts["increase"] = counts.get("increase", 0) + 1
                if alternatives:
                    counts["ambiguous"] = counts.get("ambiguous", 0) + 1
                continue
        for item in pair(r0, r1, spec):
            if isinstance(item, Delta):
                out.append(item)
                counts[item.kind] = counts.get(item.kind, 0) + 1
                if item.alternatives:
                    counts["ambiguous"] = counts.get("ambiguous", 0) + 1
            else:
                lost.append(item)
                counts[item.reason] = counts.get(item.reason, 0) + 1
    return CounterDeltas(tuple(out), tuple(lost), len(ordered), duplicates, conflicts, out_of_range, counts)


def _rank(r: CounterReading) -> tuple[int, float, str]:
    return (r.value, r.uptime_s if r.uptime_s is not None else -1.0, str(r.epoch))


def reset_between(r0: CounterReading, r1: CounterReading, spec: CounterSpec) -> str | None:
    """Why the device evidently restarted (or its counters were cleared) between two readings."""
    if r0.epoch is not None and r1.epoch is not None and r0.epoch != r1.epoch:
        return "discontinuity marker changed"
    if r1.uptime_s is not None:
        if r0.uptime_s is not None and r1.uptime_s < r0.uptime_s:
            return "uptime went back"
        # Up for less time than has passed since the previous reading: it booted in between, even
        # if it has been up longer than it had been at that reading (a long outage).
        if r1.uptime_s + spec.uptime_slack_s < (r1.ts_ns - r0.ts_ns) / NS:
            return "uptime shorter than the interval"
    return None


def pair(r0: CounterReading, r1: CounterReading, spec: CounterSpec) -> list[Delta | Lost]:
    """The increase between two consecutive readings (``r0.ts_ns < r1.ts_ns``)."""
    t0, t1 = r0.ts_ns, r1.ts_ns
    seconds = (t1 - t0) / NS
    limit = spec.limit(seconds)
    why = reset_between(r0, r1, spec)
    if why is None and r1.value < r0.value:
        wrapped = r1.value + spec.modulus - r0.value
        if limit is None and spec.bits == 64:
            why = "a 64-bit counter fell"  # it does not wrap in practice: 2**64 octets is 46 years at 100 Gbit/s
        elif limit is not None and wrapped > limit:
            why = "a fall that no single wrap explains at the link's capacity"
        else:
            return [_plausible(t0, t1, wrapped, "wrap", 1, limit, spec)]
        if r0.uptime_s is not None and r1.uptime_s is not None:
            # The uptime says the device did not restart: the counter was cleared or rewritten (a
            # `clear counters`, a firmware bug, a value restored from elsewhere), to a value that is
            # not a count since any known moment. Its increase over the interval is unknown.
            return [Lost(t0, t1, "reset", f"{why} while the device stayed up: cleared or rewritten")]
    if why is not None:
        return _reset(r0, r1, spec, why)
    return [_plausible(t0, t1, r1.value - r0.value, "increase", 0, limit, spec)]


def _plausible(
    t0: int, t1: int, value: int, kind: DeltaKind, wraps: int, limit: float | None, spec: CounterSpec
) -> Delta | Lost:
    if limit is None:
        return Delta(t0, t1, value, kind, wraps)
    if value > limit:
        return Lost(t0, t1, "implausible", f"{value} in {(t1 - t0) / NS:g} s is above {spec.guard:g} x capacity")
    alternatives = int((limit - value) // spec.modulus)
    return Delta(t0, t1, value, kind, wraps, alternatives)


def _reset(r0: CounterReading, r1: CounterReading, spec: CounterSpec, why: str) -> list[Delta | Lost]:
    t0, t1 = r0.ts_ns, r1.ts_ns
    if not spec.reset_from_zero:
        return [Lost(t0, t1, "reset", why)]
    # The counter restarted from 0: r1.value is exactly what it counted since the restart. If the
    # uptime says when that was, the count belongs there; what happened between r0 and the failure
    # is unknown.
    boot = t0
    if r1.uptime_s is not None:
        boot = min(t1, max(t0, t1 - int(r1.uptime_s * NS)))
    limit = spec.limit(max(1.0, (t1 - boot) / NS))
    if limit is not None and r1.value > limit:
        return [Lost(t0, t1, "reset", f"{why}; the value after it, {r1.value}, is above what the link carries")]
    # The lost part is [r0, restart] when the uptime dates the restart, else somewhere in [r0, r1].
    out: list[Delta | Lost] = [Lost(t0, boot if boot > t0 else t1, "reset", why)]
    out.append(Delta(boot, t1, r1.value, "reset", 0, 0))
    return out


def resolve_wraps(octets: CounterDeltas, packets: CounterDeltas, modulus: int) -> CounterDeltas:
    """Choose the number of wraps of ambiguous octet deltas from the packet counter of the same
    interface (a heuristic, opt-in; docs/kpis.md "Counters").

    A 32-bit octet counter can wrap several times between two reports on a fast link (4.3 GB is
    343 s at 100 Mbit/s); the packet counter of the same interface wraps about a thousand times
    later. The series' typical bytes per packet is the median over its unambiguous intervals (or,
    with fewer than 3 of those, over its quiet ones: less than 2**bits / 8 counted); each ambiguous
    delta takes the candidate ``value + k x 2**bits`` whose bytes per packet is nearest to it (in
    ratio). Chosen deltas are marked ``hinted``; ``alternatives`` keeps the larger candidates still
    plausible. The readings must come from the same messages (same intervals).
    """
    per_interval = {(d.start_ns, d.end_ns): d.value for d in packets.deltas if not d.alternatives and d.value > 0}
    sizes = [
        d.value / per_interval[(d.start_ns, d.end_ns)]
        for d in octets.deltas
        if not d.alternatives and (d.start_ns, d.end_ns) in per_interval
    ]
    if len(sizes) < 3:
        sizes = [
            d.value / per_interval[(d.start_ns, d.end_ns)]
            for d in octets.deltas
            if d.value < modulus // 8 and d.value > 0 and (d.start_ns, d.end_ns) in per_interval
        ]
    if not sizes:
        return octets
    typical = statistics.median(sizes)
    out: list[Delta] = []
    hinted = 0
    for d in octets.deltas:
        count = per_interval.get((d.start_ns, d.end_ns))
        if not d.alternatives or count is None:
            out.append(d)
            continue

        def distance(k: int, d: Delta = d, count: int = count) -> float:
            value = d.value + k * modulus
            return abs(math.log(value / count / typical)) if value > 0 else math.inf

        k = min(range(d.alternatives + 1), key=distance)
        out.append(
            d._replace(value=d.value + k * modulus, wraps=d.wraps + k, alternatives=d.alternatives - k, hinted=True)
        )
        hinted += 1
    counts = dict(octets.counts)
    if hinted:
        counts["hinted"] = hinted
    return replace(octets, deltas=tuple(out), counts=counts)
