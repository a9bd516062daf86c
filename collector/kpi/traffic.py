"""Traffic KPIs from counter deltas: volume, utilisation, 95th percentile, error rates, probes.

Contract: pure functions over the ``Delta`` values of ``counters.deltas`` (one series each) and
over probe results. A delta accrued evenly over its interval: its part in a window is
``windows.share`` (integers that add up exactly, so the volumes of the 288 five-minute windows, the
24 hours and the day of one series agree to the byte). Utilisation is bytes x 8 / (seconds x link
capacity), in percent; the 95th percentile is nearest-rank (the ISP billing convention: sort the
5-minute samples, drop the top 5 %, take the next).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from collector.kpi.clients import down_to_rank, percentile, ranked
from collector.kpi.counters import CounterDeltas, Delta
from collector.kpi.windows import NS, attribute, share


@dataclass(frozen=True, slots=True)
class Volume:
    total: int  # counter units (octets) attributed to the window
    ambiguous: int  # deltas in the window for which more wraps were possible (the total may be low)
    lost_ns: int  # time of the window inside intervals whose increase is unknown (resets, implausible)


def volume(result: CounterDeltas, from_ns: int, to_ns: int) -> Volume:
    """What one counter series counted in ``[from_ns, to_ns)``, with what it may have missed."""
    total = ambiguous = 0
    for d in result.deltas:
        part = share(d.start_ns, d.end_ns, d.value, from_ns, to_ns)
        total += part
        if d.alternatives and d.end_ns > from_ns and d.start_ns < to_ns:
            ambiguous += 1
    lost = sum(max(0, min(x.end_ns, to_ns) - max(x.start_ns, from_ns)) for x in result.lost)
    return Volume(total, ambiguous, lost)


def bucket_rates(deltas: Iterable[Delta], from_ns: int, to_ns: int) -> dict[int, float]:
    """Mean rate (units per second) of every 5-minute bucket of ``[from_ns, to_ns)`` that the deltas
    cover, over the part they cover. Buckets no delta covers (device down, data lost) have no rate."""
    amounts: dict[int, int] = {}
    covered: dict[int, int] = {}
    for d in deltas:
        if d.end_ns <= from_ns or d.start_ns >= to_ns or d.end_ns <= d.start_ns:
            continue
        for window, part in attribute(d.start_ns, d.end_ns, d.value, "5m"):
            if from_ns <= window.start_ns < to_ns:
                amounts[window.start_ns] = amounts.get(window.start_ns, 0) + part
                overlap = min(d.end_ns, window.end_ns) - max(d.start_ns, window.start_ns)
                covered[window.start_ns] = covered.get(window.start_ns, 0) + overlap
    return {start: amounts[start] / (covered[start] / NS) for start in sorted(amounts) if covered[start]}


@dataclass(frozen=True, slots=True)
class Utilisation:
    samples: int
    mean_pct: float
    p95_pct: float
    max_pct: float


def utilisation(samples_pct: Sequence[float]) -> Utilisation:
    if not samples_pct:
        return Utilisation(0, 0.0, 0.0, 0.0)
    return Utilisation(
        len(samples_pct), sum(samples_pct) / len(samples_pct), percentile(samples_pct, 95), max(samples_pct)
    )


def utilisation_of(groups: Sequence[Sequence[float]]) -> Utilisation:
    """``utilisation`` of the samples of several groups (the links of a level, a day of samples each),
    the same figures, without a list of every sample: the mean adds them in the same order, the p95 is
    the smallest of the top 5 % (``clients.down_to_rank``), which is the nearest rank of the sorted whole."""
    n = sum(len(g) for g in groups)
    if not n:
        return Utilisation(0, 0.0, 0.0, 0.0)
    top = down_to_rank(groups, 95)
    return Utilisation(n, sum(chain.from_iterable(groups)) / n, top[-1], top[0])


def bucket_utilisation(deltas: Iterable[Delta], capacity_bps: float, from_ns: int, to_ns: int) -> Utilisation:
    """Utilisation of the 5-minute buckets of an octet counter (mean, p95, max, in percent)."""
    rates = bucket_rates(deltas, from_ns, to_ns)
    return utilisation([100.0 * r * 8 / capacity_bps for r in rates.values()])


@dataclass(frozen=True, slots=True)
class Billing:
    in_bps: float
    out_bps: float

    @property
    def billed_bps(self) -> float:
        """The 95th percentile that is billed: the larger of the two directions."""
        return max(self.in_bps, self.out_bps)


def billing_p95(in_deltas: Iterable[Delta], out_deltas: Iterable[Delta], from_ns: int, to_ns: int) -> Billing:
    """95th percentile of the 5-minute rates (bit/s) per direction over ``[from_ns, to_ns)``, usually
    a month: 8,640 samples in 30 days, the top 432 (36 hours) dropped."""
    rate_in = [8 * r for r in bucket_rates(in_deltas, from_ns, to_ns).values()]
    rate_out = [8 * r for r in bucket_rates(out_deltas, from_ns, to_ns).values()]
    return Billing(percentile(rate_in, 95), percentile(rate_out, 95))


def ratio_pct(part: int, whole: int) -> float | None:
    """``part / whole`` in percent (error rate: errors / packets; retry rate: retries / frames);
    None when nothing was counted."""
    return 100.0 * part / whole if whole > 0 else None


@dataclass(frozen=True, slots=True)
class Probe:
    ts_ns: int
    sent: int
    received: int
    rtt_avg_ms: float | None = None
    jitter_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeStats:
    probes: int
    loss_pct: float | None  # lost / sent over all probes
    rtt_p50_ms: float | None  # over the probes' mean RTTs
    rtt_p95_ms: float | None
    jitter_ms: float | None  # mean of the probes' jitter (RFC 3393 IPDV, as the probe reports it)
    reachable_pct: float | None  # share of probes with at least one answer


def probe_stats(probes: Iterable[Probe], from_ns: int, to_ns: int) -> ProbeStats:
    """One link's probes in ``[from_ns, to_ns)`` (a probe repeated at the same time counts once)."""
    return links_probe_stats([probes], from_ns, to_ns)


def links_probe_stats(links: Iterable[Iterable[Probe]], from_ns: int, to_ns: int) -> ProbeStats:
    """The probes of several links, each link's repeats counted once: two links probed at the same
    time (a probe system that pings every school on the minute) are two probes.

    A region's day is some 250,000 probes: one link's are held at a time, and of the rest only their
    RTTs and jitters as arrays of floats. The mean jitter is ``math.fsum``'s, the exact sum, so it
    does not depend on the order the links come in."""
    count = sent = received = reachable = 0
    rtts: array[float] = array("d")
    jitters: array[float] = array("d")
    for probes in links:
        for p in {p.ts_ns: p for p in probes if from_ns <= p.ts_ns < to_ns}.values():
            count += 1
            sent += p.sent
            received += p.received
            reachable += p.received > 0
            if p.rtt_avg_ms is not None:
                rtts.append(p.rtt_avg_ms)
            if p.jitter_ms is not None:
                jitters.append(p.jitter_ms)
    if not count:
        return ProbeStats(0, None, None, None, None, None)
    ordered = sorted(rtts)
    return ProbeStats(
        probes=count,
        loss_pct=100.0 * (sent - received) / sent if sent else None,
        rtt_p50_ms=ranked(ordered, 50) if ordered else None,
        rtt_p95_ms=ranked(ordered, 95) if ordered else None,
        jitter_ms=math.fsum(jitters) / len(jitters) if jitters else None,
        reachable_pct=100.0 * reachable / count,
    )


@dataclass(frozen=True, slots=True)
class Check:
    """One observation of a link: a probe (ok = at least one answer) or an ifOperStatus (ok = up)."""

    ts_ns: int
    ok: bool


def link_up_ns(
    device_up: Sequence[tuple[int, int]],
    checks: Iterable[Iterable[Check]],
    hold_s: float,
    from_ns: int,
    to_ns: int,
) -> int:
    """Time of ``[from_ns, to_ns)`` the link was up: its device up (spans from availability.timeline)
    and no failed check in force. ``checks`` are separate streams (the probes, the interface's
    ifOperStatus): in each, a check holds until the next one of the same stream, at most ``hold_s``
    (a report period), so an answered probe does not end an interface's "down" nor the reverse; the
    link is down while any stream's failed check holds. Link availability = this / window length."""
    hold = int(hold_s * NS)
    failed: list[tuple[int, int]] = []
    for stream in checks:
        ordered = sorted({c.ts_ns: c for c in stream}.values(), key=lambda c: c.ts_ns)
        for i, c in enumerate(ordered):
            if not c.ok:
                end = c.ts_ns + hold
                if i + 1 < len(ordered):
                    end = min(end, ordered[i + 1].ts_ns)
                failed.append((c.ts_ns, end))
    merged: list[tuple[int, int]] = []  # the streams' failures may overlap: count each instant once
    for a, b in sorted(failed):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    total = 0
    for a, b in device_up:
        a, b = max(a, from_ns), min(b, to_ns)
        if b <= a:
            continue
        total += b - a
        for fa, fb in merged:
            total -= max(0, min(b, fb) - max(a, fa))
    return total
