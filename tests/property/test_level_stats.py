"""A level's link figures from per-link groups equal those of one list of every sample.

The region's day holds some 250,000 probes and as many utilisation samples per direction; the KPI
process computes their figures without one list (or one object) of them all
(``traffic.utilisation_of``, ``traffic.links_probe_stats``). These check that the figures are those
of the definitions over the one list: nearest-rank percentiles, the mean, each link's repeated probe
counted once; exactly, but for the mean jitter, which is ``math.fsum``'s exact sum where the one
list's plain sum may differ in the last digits.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.clients import percentile
from collector.kpi.traffic import Probe, links_probe_stats, utilisation, utilisation_of

samples = st.floats(min_value=0.0, max_value=250.0, allow_nan=False)


@given(st.lists(st.lists(samples, max_size=30), max_size=8))
def test_utilisation_of_groups_is_that_of_every_sample(groups: list[list[float]]) -> None:
    every = [u for g in groups for u in g]
    assert utilisation_of(groups) == utilisation(every)


probe = st.builds(
    Probe,
    ts_ns=st.integers(min_value=0, max_value=20),
    sent=st.integers(min_value=0, max_value=20),
    received=st.integers(min_value=0, max_value=20),
    rtt_avg_ms=st.none() | samples,
    jitter_ms=st.none() | samples,
)


@given(st.lists(st.lists(probe, max_size=12), max_size=6), st.integers(min_value=0, max_value=10))
def test_probes_of_several_links_are_those_of_one_list(links: list[list[Probe]], start: int) -> None:
    end = start + 8
    chosen = [p for probes in links for p in {p.ts_ns: p for p in probes if start <= p.ts_ns < end}.values()]
    found = links_probe_stats(links, start, end)
    assert found.probes == len(chosen)
    if not chosen:
        assert found.loss_pct is None and found.rtt_p50_ms is None
        return
    sent = sum(p.sent for p in chosen)
    assert found.loss_pct == (100.0 * (sent - sum(p.received for p in chosen)) / sent if sent else None)
    rtts = [p.rtt_avg_ms for p in chosen if p.rtt_avg_ms is not None]
    assert found.rtt_p50_ms == (percentile(rtts, 50) if rtts else None)
    assert found.rtt_p95_ms == (percentile(rtts, 95) if rtts else None)
    jitters = [p.jitter_ms for p in chosen if p.jitter_ms is not None]
    if jitters:
        assert found.jitter_ms is not None
        assert math.isclose(found.jitter_ms, sum(jitters) / len(jitters), rel_tol=1e-12, abs_tol=1e-12)
    else:
        assert found.jitter_ms is None
    assert found.reachable_pct == 100.0 * sum(1 for p in chosen if p.received > 0) / len(chosen)
