"""Counter deltas: exact values for every edge case, then generated streams against their true sums."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.kpi.counters import CounterReading, CounterSpec, Delta, Lost, deltas, pair, resolve_wraps

S = 1_000_000_000
T0 = 1_795_388_400 * S  # 2026-11-23 00:00 Brussels
M32 = 2**32
LINK_100M = 12_500_000.0  # octets per second on a 100 Mbit/s link


def r(t_s: float, value: int, uptime: float | None = None, epoch: int | None = None) -> CounterReading:
    return CounterReading(T0 + int(t_s * S), value, uptime, epoch)


def test_plain_increases_sum_exactly() -> None:
    out = deltas([r(0, 100), r(60, 250), r(120, 250), r(180, 1000)], CounterSpec(bits=64))
    assert [d.value for d in out.deltas] == [150, 0, 750]
    assert out.total == 900
    assert out.counts == {"increase": 3}
    assert out.lost == ()


def test_32_bit_wrap_is_added_back() -> None:
    out = deltas([r(0, M32 - 1000), r(60, 500)], CounterSpec(bits=32, capacity_per_s=LINK_100M))
    (d,) = out.deltas
    assert (d.value, d.kind, d.wraps, d.alternatives) == (1500, "wrap", 1, 0)


def test_64_bit_wrap_near_the_top_with_known_capacity() -> None:
    out = deltas([r(0, 2**64 - 10), r(60, 5)], CounterSpec(bits=64, capacity_per_s=LINK_100M))
    assert [(d.value, d.kind) for d in out.deltas] == [(15, "wrap")]


def test_64_bit_fall_without_capacity_is_a_reset() -> None:
    out = deltas([r(0, 10_000), r(60, 40)], CounterSpec(bits=64))
    assert [(d.value, d.kind) for d in out.deltas] == [(40, "reset")]
    assert [(x.start_ns, x.end_ns, x.reason) for x in out.lost] == [(T0, T0 + 60 * S, "reset")]


def test_a_fall_no_single_wrap_explains_is_a_reset() -> None:
    # 2**32 - 3e9 + 10 octets in 60 s would be 172 Mbit/s on a 100 Mbit/s link: not a wrap.
    out = deltas([r(0, 3_000_000_000), r(60, 10)], CounterSpec(bits=32, capacity_per_s=LINK_100M))
    assert [(d.value, d.kind) for d in out.deltas] == [(10, "reset")]
    assert out.counts == {"reset": 2}  # the lost part and the counted part


def test_a_fall_while_the_uptime_says_the_device_stayed_up_counts_nothing() -> None:
    # 50 GB to 5 GB in 60 s on a 1 Gbit/s uplink (a wrap would be 18 exabytes): no boot explains it, so
    # the new value is not traffic; the interval is lost and counting goes on from the new value.
    spec = CounterSpec(bits=64, capacity_per_s=125_000_000.0)
    readings = [r(0, 50_000_000_000, 86_400), r(60, 50_001_000_000, 86_460), r(120, 5_000_000_000, 86_520)]
    out = deltas([*readings, r(180, 5_001_000_000, 86_580)], spec)
    assert [(d.start_ns, d.value) for d in out.deltas] == [(T0, 1_000_000), (T0 + 120 * S, 1_000_000)]
    assert [(x.start_ns, x.end_ns, x.reason) for x in out.lost] == [(T0 + 60 * S, T0 + 120 * S, "reset")]
    assert "stayed up" in out.lost[0].detail
    # The same for a 32-bit counter whose fall is too large for a wrap at the link's rate.
    fall = deltas([r(0, 20_000_000, 1_000), r(60, 15_000_000, 1_060)], CounterSpec(bits=32, capacity_per_s=1e5))
    assert (fall.deltas, [x.reason for x in fall.lost]) == ((), ["reset"])
    # Without uptimes a restart shows only as a fall: the value after it is still counted since then.
    unknown = deltas([r(0, 50_000_000_000), r(60, 5_000_000_000)], spec)
    assert [(d.value, d.kind) for d in unknown.deltas] == [(5_000_000_000, "reset")]


def test_uptime_going_back_is_a_reset_even_when_the_value_grew() -> None:
    out = deltas([r(0, 1_000, uptime=5_000), r(900, 50_000, uptime=300)], CounterSpec(bits=64))
    lost, counted = out.lost[0], out.deltas[0]
    # Booted 300 s before the second reading: the 50,000 were counted since then; 0..600 s is unknown.
    assert (counted.start_ns, counted.end_ns, counted.value, counted.kind) == (
        T0 + 600 * S,
        T0 + 900 * S,
        50_000,
        "reset",
    )
    assert (lost.start_ns, lost.end_ns, lost.reason) == (T0, T0 + 600 * S, "reset")


def test_uptime_shorter_than_the_interval_is_a_reset() -> None:
    # A 4-hour outage: uptime after it (1 h) is longer than before it (10 min) but shorter than the gap.
    out = deltas([r(0, 9_000, uptime=600), r(5 * 3600, 70_000, uptime=3600)], CounterSpec(bits=64))
    assert [(d.start_ns, d.value, d.kind) for d in out.deltas] == [(T0 + 4 * 3600 * S, 70_000, "reset")]


def test_uptime_rounding_is_not_a_reset() -> None:
    out = deltas([r(0, 0, uptime=100), r(60.9, 10, uptime=160)], CounterSpec(bits=64))
    assert [d.kind for d in out.deltas] == ["increase"]


def test_changed_discontinuity_marker_is_a_reset() -> None:
    out = deltas([r(0, 500, epoch=1), r(60, 800, epoch=2)], CounterSpec(bits=64))
    assert [(d.value, d.kind) for d in out.deltas] == [(800, "reset")]


def test_reset_without_restart_from_zero_loses_the_interval() -> None:
    out = deltas([r(0, 500, uptime=900), r(60, 800, uptime=30)], CounterSpec(bits=64, reset_from_zero=False))
    assert out.deltas == ()
    assert [(x.start_ns, x.end_ns, x.reason) for x in out.lost] == [(T0, T0 + 60 * S, "reset")]


def test_implausible_rate_is_dropped_and_counted() -> None:
    # 1e9 octets in 60 s is 133 Mbit/s: above 1.1 x 100 Mbit/s.
    out = deltas([r(0, 0), r(60, 1_000_000_000), r(120, 1_000_000_100)], CounterSpec(bits=64, capacity_per_s=LINK_100M))
    assert [d.value for d in out.deltas] == [100]
    assert [(x.start_ns, x.reason) for x in out.lost] == [(T0, "implausible")]
    assert out.counts == {"implausible": 1, "increase": 1}


def test_guard_allows_ten_percent_above_line_rate() -> None:
    out = deltas([r(0, 0), r(100, int(1.1 * LINK_100M * 100))], CounterSpec(bits=64, capacity_per_s=LINK_100M))
    assert out.lost == () and out.total == 1_375_000_000


def test_ambiguous_when_another_wrap_fits_at_capacity() -> None:
    spec = CounterSpec(bits=32, capacity_per_s=LINK_100M)
    # 900 s at 100 Mbit/s x 1.1 is 12.4e9 octets: 0, 1 or 2 more wraps fit above a 3e9 delta.
    out = deltas([r(0, 1_000_000_000), r(900, 4_000_000_000)], spec)
    (d,) = out.deltas
    assert (d.value, d.alternatives, d.ambiguous) == (3_000_000_000, 2, True)
    assert out.ambiguous == 1
    # Over 60 s at most 825e6 octets fit: no ambiguity.
    (d,) = deltas([r(0, 1_000_000_000), r(60, 1_500_000_000)], spec).deltas
    assert d.alternatives == 0


def test_duplicates_and_order_do_not_change_anything() -> None:
    readings = [r(0, 10), r(60, 20), r(120, 5, uptime=30), r(180, 40)]
    spec = CounterSpec(bits=32, capacity_per_s=LINK_100M)
    clean = deltas(readings, spec)
    noisy = deltas([readings[2], readings[0], readings[3], readings[0], readings[1], readings[2]], spec)
    assert noisy.deltas == clean.deltas and noisy.lost == clean.lost
    assert (noisy.duplicates, noisy.readings) == (2, 4)


def test_conflicting_values_at_one_instant_keep_the_larger_whatever_the_order() -> None:
    a, b = r(60, 200), r(60, 300)
    for order in ([r(0, 100), a, b], [b, r(0, 100), a]):
        out = deltas(order, CounterSpec(bits=64))
        assert [d.value for d in out.deltas] == [200]
        assert out.conflicts == 1


def test_out_of_range_values_are_dropped_and_counted() -> None:
    out = deltas([r(0, 10), r(60, M32 + 5), r(120, -1), r(180, 30)], CounterSpec(bits=32))
    assert out.total == 20 and out.out_of_range == 2


def test_a_gap_is_one_delta_over_the_whole_gap() -> None:
    out = deltas([r(0, 0), r(3 * 3600, 7_000)], CounterSpec(bits=64, capacity_per_s=LINK_100M))
    assert [(d.start_ns, d.end_ns, d.value) for d in out.deltas] == [(T0, T0 + 3 * 3600 * S, 7_000)]


def test_single_or_no_reading_gives_nothing() -> None:
    assert deltas([], CounterSpec()).deltas == ()
    assert deltas([r(0, 5), r(0, 5)], CounterSpec()).deltas == ()


# -- generated streams -------------------------------------------------------------------------------


@dataclass
class Stream:
    readings: list[CounterReading]
    true_total: int  # every increment between the first and the last reading
    lost_to_resets: int  # increments between a reading and the restart that followed it
    resets: int


@st.composite
def streams(draw: st.DrawFn, bits: int) -> tuple[Stream, CounterSpec]:
    capacity = draw(st.sampled_from([LINK_100M, 125_000_000.0, 1_250_000.0]))
    spec = CounterSpec(bits=32 if bits == 32 else 64, capacity_per_s=capacity)
    modulus = 2**bits
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    n = draw(st.integers(2, 40))
    t = T0 + rng.randrange(0, 60 * S)
    total = draw(st.integers(0, modulus - 1))  # the counter's true running value since its last boot
    boot = t - rng.randrange(3600, 10**7) * S
    readings = [CounterReading(t, total % modulus, (t - boot) // S)]
    true_total = lost = resets = 0
    for _ in range(n - 1):
        dt_s = rng.choice([rng.randint(5, 60), rng.randint(60, 900), rng.randint(900, 4 * 3600)])  # gaps too
        t1 = t + dt_s * S
        rate = capacity * rng.choice([0.0, rng.random() * 0.05, rng.random(), 1.0])
        if rng.random() < 0.1:
            # A restart at least 4 s after the previous reading (a restart closer than the uptime's
            # resolution cannot be told apart from a long-running device; docs/kpis.md).
            boot = t + rng.randint(4, dt_s - 1) * S if dt_s > 5 else t1
            before = int(rate * (boot - t) / S)
            after = int(rate * (t1 - boot) / S)
            true_total += before + after
            lost += before
            resets += 1
            total = after
        else:
            increment = int(rate * dt_s)
            true_total += increment
            total += increment
        t = t1
        readings.append(CounterReading(t, total % modulus, (t - boot) // S))
    return Stream(readings, true_total, lost, resets), spec


def _check(stream: Stream, spec: CounterSpec, shuffle_seed: int, duplicates: int) -> None:
    rng = random.Random(shuffle_seed)
    noisy = stream.readings + [rng.choice(stream.readings) for _ in range(duplicates)]
    rng.shuffle(noisy)
    out = deltas(noisy, spec)
    assert out.duplicates == duplicates
    assert out.readings == len(stream.readings)
    assert out.deltas == deltas(stream.readings, spec).deltas  # order and repeats change nothing
    resets = [x for x in out.lost if x.reason == "reset"]
    assert len(resets) == stream.resets
    assert not [x for x in out.lost if x.reason == "implausible"]  # every rate was at most the capacity
    # What the ambiguous intervals may have missed is a whole number of wraps, within the candidates.
    missed = stream.true_total - stream.lost_to_resets - out.total
    assert missed % spec.modulus == 0
    assert 0 <= missed // spec.modulus <= sum(d.alternatives for d in out.deltas)
    if not out.ambiguous:
        assert out.total == stream.true_total - stream.lost_to_resets


@settings(max_examples=150)
@given(streams(32), st.integers(0, 2**16), st.integers(0, 5))
def test_generated_32_bit_streams_sum_to_the_truth(case: tuple[Stream, CounterSpec], seed: int, dups: int) -> None:
    _check(*case, seed, dups)


@settings(max_examples=100)
@given(streams(64), st.integers(0, 2**16), st.integers(0, 5))
def test_generated_64_bit_streams_sum_to_the_truth(case: tuple[Stream, CounterSpec], seed: int, dups: int) -> None:
    stream, spec = case
    _check(stream, spec, seed, dups)
    assert deltas(stream.readings, spec).ambiguous == 0  # 2**64 octets never fit in an interval


values = st.integers(0, 2**64 - 1)
instants = st.integers(T0, T0 + 4 * 3600 * S)
readings = st.builds(
    CounterReading,
    ts_ns=instants,
    value=values | st.integers(0, 10**6),
    uptime_s=st.none() | st.floats(0, 10**6, allow_nan=False),
    epoch=st.none() | st.integers(0, 2),
)
specs = st.builds(
    CounterSpec,
    bits=st.sampled_from([32, 64]),
    capacity_per_s=st.none() | st.sampled_from([LINK_100M, 1_250.0, 1e12]),
    reset_from_zero=st.booleans(),
)


@settings(max_examples=300)
@given(st.lists(readings, max_size=12), specs)
def test_deltas_are_pair_of_each_consecutive_two(found: list[CounterReading], spec: CounterSpec) -> None:
    """``deltas`` writes the plain increase out (nearly every pair of a day): what it gives is what
    ``pair`` gives for each two consecutive distinct readings, field for field, counts included."""
    out = deltas(found, spec)
    by_ts: dict[int, CounterReading] = {}
    for reading in sorted(found, key=lambda x: (x.value, x.uptime_s if x.uptime_s is not None else -1.0, str(x.epoch))):
        if 0 <= reading.value < spec.modulus:
            by_ts[reading.ts_ns] = reading  # the larger of two values at one instant, as deltas keeps
    ordered = [by_ts[ts] for ts in sorted(by_ts)]
    expected = [item for r0, r1 in itertools.pairwise(ordered) for item in pair(r0, r1, spec)]
    assert list(out.deltas) == [x for x in expected if isinstance(x, Delta)]
    assert list(out.lost) == [x for x in expected if isinstance(x, Lost)]
    kinds = [x.kind if isinstance(x, Delta) else x.reason for x in expected]
    ambiguous = sum(1 for x in expected if isinstance(x, Delta) and x.alternatives)
    assert out.counts == {k: kinds.count(k) for k in set(kinds)} | ({"ambiguous": ambiguous} if ambiguous else {})


def test_interval_types_are_exported() -> None:
    assert Delta(0, 1, 2).ambiguous is False
    assert Lost(0, 1, "reset").detail == ""


def test_packet_counter_resolves_how_many_times_the_octets_wrapped() -> None:
    # 15-minute reports of a 100 Mbit/s link, 900 bytes per packet; the busy interval carried
    # 9e9 octets (2 wraps + a remainder), which the octet counter alone cannot tell.
    octets = [0, 9_000_000, 9_000_000 + 9_000_000_000, 9_018_000_000, 9_036_000_000, 9_054_000_000]
    times = [0, 900, 1800, 2700, 3600, 4500]
    spec = CounterSpec(bits=32, capacity_per_s=LINK_100M)
    o = deltas([r(t, v % M32) for t, v in zip(times, octets, strict=True)], spec)
    packet_spec = CounterSpec(bits=32, capacity_per_s=LINK_100M / 64)
    p = deltas([r(t, v // 900) for t, v in zip(times, octets, strict=True)], packet_spec)
    assert [d.value for d in o.deltas][1] == 9_000_000_000 - 2 * M32  # the fewest wraps
    resolved = resolve_wraps(o, p, M32)
    assert [d.value for d in resolved.deltas] == [9_000_000, 9_000_000_000, 9_000_000, 18_000_000, 18_000_000]
    busy = resolved.deltas[1]
    assert (busy.wraps, busy.hinted, busy.alternatives) == (2, True, 0)
    assert resolved.counts["hinted"] == 5  # every interval was ambiguous at 100 Mbit/s over 900 s
    # Without a packet counter nothing changes.
    assert resolve_wraps(o, deltas([], spec), M32) == o
