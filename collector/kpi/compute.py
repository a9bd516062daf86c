"""One window's KPIs at every level, from the readings of its devices: the engine's single entry point.

Contract: ``compute_window(devices, window, config)`` takes, for each device, its readings from
``config.lookback_s`` before the window to ``config.lookahead_s`` after it (so that the state at the
window's edges and the intervals crossing them are known) and returns ``KpiRow`` values for every
device, site, municipality and the region. It is pure: the live engine (on a closed or dirty window
re-read from storage) and ``kpi recompute`` call it with the same stored readings and get the same
rows, which are idempotent points (level, key, grain, window start). It is two steps: ``summarise``
turns one device's readings into its figures for the window (``DeviceSummary``), and ``window_rows``
computes every level from the summaries, so a day can be summarised a part of the devices at a time
(engine.day_points). Figures that add up are summed from the devices; peaks, percentiles and
distinct counts are recomputed from the group's readings (its client reports, probes, samples and
each bucket's concurrent clients). A figure that cannot be computed is None (no capacity for an
unknown device, no probe). Definitions: docs/kpis.md.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from collector.kpi.aggregate import LEVELS, group, public_figures
from collector.kpi.availability import AvailabilityPolicy, Report, Span, StateMark, any_up, hotspots, timeline
from collector.kpi.clients import (
    ClientCount,
    ClientsReport,
    SessionTimes,
    client_buckets,
    session_gap_s,
    session_stats,
    sessions,
    sessions_stats,
    total_load,
    unique_clients,
)
from collector.kpi.counters import CounterReading, CounterSpec, deltas, resolve_wraps
from collector.kpi.enrich import Place
from collector.kpi.traffic import (
    Check,
    Probe,
    Volume,
    bucket_rates,
    link_up_ns,
    links_probe_stats,
    ratio_pct,
    utilisation_of,
    volume,
)
from collector.kpi.wifi import channel_load, rf_quality_from_counts
from collector.kpi.windows import NS, Window

Value = int | float | None


@dataclass(frozen=True, slots=True)
class KpiConfig:
    period_s: float = 60.0  # periodic reports (metrics, interfaces)
    clients_period_s: float = 300.0  # client reports
    missed_reports: int = 3
    will_delay_s: float = 45.0  # keepalive x 1.5
    guard: float = 1.1
    wraps_from_packets: bool = True  # resolve ambiguous 32-bit octet deltas with the packet counter
    k_anonymity: int = 10
    suppress_small_counts: bool = False  # True for what leaves the operator's hands
    clients_bucket_s: float = 300.0  # concurrent clients: the 5-minute buckets of the reference definition
    day_reads: int = 8  # a day's readings are read back in this many parts of the devices (engine.day_points)

    @property
    def lookback_s(self) -> float:
        """How much before (and after) a window its readings are needed."""
        return (self.missed_reports + 1) * max(self.period_s, self.clients_period_s)

    @property
    def lookahead_s(self) -> float:
        return self.lookback_s


@dataclass(frozen=True, slots=True)
class DeviceReadings:
    """Everything stored about one device around one window, as the query side reads it back.

    ``counters``: ``rx``/``tx`` (AP: bytes from/to clients), ``in``/``out`` (the link's octets),
    ``in_pkts``/``out_pkts`` (the link's packets), ``in_errors``/``out_errors``/``in_discards``/
    ``out_discards``, ``tx_retries:<band>``/``tx_total:<band>`` (an AP radio's frames), each a series
    of readings. ``channel_utilisation``: band -> (ts, cu_total_pct). ``rf``: (ts, good_rf_clients,
    num_clients) from client reports.
    """

    place: Place
    reports: Sequence[Report] = ()
    marks: Sequence[StateMark] = ()
    clients: Sequence[ClientCount] = ()
    client_reports: Sequence[ClientsReport] = ()
    counters: Mapping[str, Sequence[CounterReading]] = field(default_factory=dict)
    probes: Sequence[Probe] = ()
    channel_utilisation: Mapping[str, Sequence[tuple[int, float]]] = field(default_factory=dict)
    rf: Sequence[tuple[int, int, int]] = ()
    link_counter_bits: int | None = None  # the width the device reported for its link's counters
    link_oper: Sequence[Check] = ()  # the link interface's ifOperStatus: (ts, up)


@dataclass(frozen=True, slots=True)
class KpiRow:
    level: str  # device, site, municipality, region
    key: str  # device id, nis/site, nis, region
    grain: str
    start_ns: int
    fields: dict[str, Value]
    devices: int  # how many devices the row is computed from
    unknown_devices: int  # of which not in the inventory


@dataclass(slots=True)
class DeviceSummary:
    """One device's figures for one window: computed once from its readings and shared by every level.

    It keeps what the levels above need and drops the rest (the per-minute reports and counters), so
    that the summaries of a whole city's day can be held while its readings are read back one part of
    the devices at a time (engine.py): the client reports and probes (distinct clients, sessions and
    probe statistics are recomputed at every level), each bucket's concurrent clients, and the samples
    whose percentiles every level takes."""

    place: Place
    spans: list[Span]
    up_ns: int
    uncertain_ns: int
    volumes: dict[str, Volume]
    utilisation: dict[str, Sequence[float]]  # per-interval samples, in and out
    client_buckets: list[int]  # clients at the end of each bucket of the window (clients.client_buckets)
    client_reports: Sequence[ClientsReport]
    channel_utilisation: dict[str, Sequence[float]]  # band -> samples in the window
    rf_counts: tuple[int, int]  # good-RF clients and clients, summed over the window's client reports
    probes: Sequence[Probe]
    link_oper: Sequence[Check] = ()


OCTETS = frozenset({"rx", "tx", "in", "out"})
PACKETS = frozenset({"in_pkts", "out_pkts"})
LINK_COUNTERS = OCTETS | PACKETS | {"in_errors", "out_errors", "in_discards", "out_discards"}


def _spec(d: DeviceReadings, name: str, config: KpiConfig) -> CounterSpec:
    """A link counter is 32 bits (ifTable) when the device says so (``counter_bits: 32`` in its
    reports) or the inventory does (a device that does not say); AP counters are 64. Line rate bounds
    octets and packets (at most one 64-byte frame per 64 octets); nothing bounds the others."""
    place = d.place
    narrow = d.link_counter_bits == 32 or place.counter_bits == 32
    bits: Literal[32, 64] = 32 if narrow and name in LINK_COUNTERS else 64
    capacity = None
    if place.capacity_mbps is not None and name in OCTETS | PACKETS:
        octets = place.capacity_mbps * 1e6 / 8
        capacity = octets / 64 if name in PACKETS else octets
    return CounterSpec(bits=bits, capacity_per_s=capacity, guard=config.guard)


def summarise(d: DeviceReadings, window: Window, config: KpiConfig) -> DeviceSummary:
    """One device's figures for ``window`` from its readings (see ``compute_window``)."""
    start, end = window.start_ns, window.end_ns
    policy = AvailabilityPolicy(
        period_s=config.period_s, missed=config.missed_reports, will_delay_s=config.will_delay_s
    )
    spans, uncertain = timeline(d.reports, d.marks, policy, start, end)
    up = sum(s.end_ns - s.start_ns for s in spans if s.up)
    results = {name: deltas(series, _spec(d, name, config)) for name, series in d.counters.items()}
    if config.wraps_from_packets:
        for name in ("in", "out"):
            if name in results and f"{name}_pkts" in results and results[name].ambiguous:
                bits = _spec(d, name, config).modulus
                results[name] = resolve_wraps(results[name], results[f"{name}_pkts"], bits)
    volumes = {name: volume(r, start, end) for name, r in results.items()}
    samples: dict[str, Sequence[float]] = {}
    if d.place.capacity_mbps:
        for name in ("in", "out"):
            if name in results:
                # One sample per 5-minute bucket the deltas measured, its mean rate over the part they
                # cover, as a share of the capacity: the same samples whatever the report period and
                # whether a report is missing (a 10-minute delta gives both its buckets their rate). A
                # bucket no delta covers (the link or its reports away) is no sample (billing.py).
                rates = bucket_rates(results[name].deltas, start, end).values()
                scale = 800.0 / (d.place.capacity_mbps * 1e6)  # bytes/s -> % of the capacity in bit/s
                samples[name] = array("d", [r * scale for r in rates])  # 8 bytes a sample, kept for the levels
    ap = d.place.kind == "ap"
    bucket_ns = int(config.clients_bucket_s * NS)
    good = total = 0
    for ts, g, n in d.rf:
        if start <= ts < end:
            good += g
            total += n
    return DeviceSummary(
        place=d.place,
        spans=spans,
        up_ns=up,
        uncertain_ns=uncertain,
        volumes=volumes,
        utilisation=samples,
        client_buckets=client_buckets(d.clients, start, end, config.period_s, bucket_ns) if ap else [],
        client_reports=d.client_reports,
        channel_utilisation={
            band: array("d", [v for ts, v in series if start <= ts < end])
            for band, series in d.channel_utilisation.items()
        },
        rf_counts=(good, total),
        probes=d.probes,
        link_oper=d.link_oper,
    )


def compute_window(devices: Sequence[DeviceReadings], window: Window, config: KpiConfig) -> list[KpiRow]:
    return window_rows([summarise(d, window, config) for d in devices], window, config)


def window_rows(summaries: Sequence[DeviceSummary], window: Window, config: KpiConfig) -> list[KpiRow]:
    """The rows of every level from the window's device summaries (in device order: sums of floats in
    another order can differ in the last bit)."""
    start, end = window.start_ns, window.end_ns
    prepared = {d.place.device: d for d in summaries}
    # Sessions are joined across the APs of a site (roams), once per site, and counted at every level.
    gap = session_gap_s(config.clients_period_s)
    site_sessions: dict[str, SessionTimes] = {}
    for site, places in group((d.place for d in summaries if d.place.kind == "ap"), "site").items():
        found = sessions([r for p in places for r in prepared[p.device].client_reports], gap)
        site_sessions[site] = SessionTimes.of(found)
    rows: list[KpiRow] = []
    for level in LEVELS:
        for key, places in sorted(group((d.place for d in summaries), level).items()):
            members = [prepared[p.device] for p in places]
            fields = _fields(members, level, start, end, config, site_sessions)
            if config.suppress_small_counts:
                fields = public_figures(fields, config.k_anonymity)
            unknown = sum(1 for p in places if not p.known)
            rows.append(KpiRow(level, key, window.grain, start, fields, len(members), unknown))
    return rows


def _fields(
    members: list[DeviceSummary],
    level: str,
    start: int,
    end: int,
    config: KpiConfig,
    site_sessions: dict[str, SessionTimes],
) -> dict[str, Value]:
    length = end - start
    out: dict[str, Value] = {}
    aps = [m for m in members if m.place.kind == "ap"]
    up = sum(m.up_ns for m in members)
    out["availability_pct"] = 100.0 * up / (length * len(members)) if members else None
    out["uncertain_s"] = sum(m.uncertain_ns for m in members) / NS
    if aps:
        out["ap_availability_pct"] = 100.0 * sum(m.up_ns for m in aps) / (length * len(aps))
        sites: dict[str, list[list[Span]]] = {}
        for m in aps:
            sites.setdefault(m.place.level("site"), []).append(m.spans)
        site_up = [any_up(spans, start, end) for spans in sites.values()]
        if level != "device":
            out["site_availability_pct"] = 100.0 * sum(site_up) / (length * len(site_up))
            out["hotspots"] = hotspots(site_up)
        load = total_load((m.client_buckets for m in aps), start, end, int(config.clients_bucket_s * NS))
        out["peak_clients"] = load.peak
        out["peak_hour"] = load.peak_hour
        out["mean_clients"] = load.mean
        # One report at a time: a region's day of client reports is too many to hold as sets at once.
        unique = unique_clients(r for m in aps for r in m.client_reports if start <= r.ts_ns < end)
        out["unique_clients"] = unique
        if level == "device":
            stats = session_stats(sessions(aps[0].client_reports, session_gap_s(config.clients_period_s)), start, end)
        else:
            stats = sessions_stats((site_sessions[site] for site in {m.place.level("site") for m in aps}), start, end)
        out["sessions"] = stats.count
        out["session_p50_s"] = stats.p50_s if stats.count else None
        out["session_p90_s"] = stats.p90_s if stats.count else None
        for name in ("rx", "tx"):
            vols = [m.volumes[name] for m in aps if name in m.volumes]
            out[f"{name}_bytes"] = sum(v.total for v in vols) if vols else None
        out["volume_ambiguous"] = sum(m.volumes[n].ambiguous for m in aps for n in ("rx", "tx") if n in m.volumes)
        _radio_fields(out, aps)
    kinds = sorted({m.place.kind for m in members if m.place.kind != "ap"})
    for kind in kinds:
        # Network links by kind (school CPEs, aggregation switches): their figures do not mix.
        _link_fields(
            out,
            "school" if kind == "cpe" else kind,
            [m for m in members if m.place.kind == kind],
            start,
            end,
            config,
        )
    return out


def _link_fields(
    out: dict[str, Value], prefix: str, links: list[DeviceSummary], start: int, end: int, config: KpiConfig
) -> None:
    length = end - start
    out[f"{prefix}_availability_pct"] = 100.0 * sum(m.up_ns for m in links) / (length * len(links))
    for name in ("in", "out"):
        vols = [m.volumes[name] for m in links if name in m.volumes]
        out[f"{prefix}_{name}_bytes"] = sum(v.total for v in vols) if vols else None
        stats = utilisation_of([m.utilisation[name] for m in links if name in m.utilisation])
        out[f"{prefix}_utilisation_{name}_mean_pct"] = stats.mean_pct if stats.samples else None
        out[f"{prefix}_utilisation_{name}_p95_pct"] = stats.p95_pct if stats.samples else None
    out[f"{prefix}_volume_ambiguous"] = sum(
        m.volumes[n].ambiguous for m in links for n in ("in", "out") if n in m.volumes
    )
    for name in ("in_errors", "out_errors", "in_discards", "out_discards"):
        packets = f"{name.split('_')[0]}_pkts"
        pairs = [
            (m.volumes[name].total, m.volumes[packets].total)
            for m in links
            if name in m.volumes and packets in m.volumes
        ]
        if pairs:  # errors (discards) per packet of the same direction
            out[f"{prefix}_{name}_rate_pct"] = ratio_pct(sum(e for e, _ in pairs), sum(p for _, p in pairs))
    probed = [m for m in links if m.probes]
    if probed:
        ps = links_probe_stats([m.probes for m in probed], start, end)
        out[f"{prefix}_probe_loss_pct"] = ps.loss_pct
        out[f"{prefix}_rtt_p50_ms"] = ps.rtt_p50_ms
        out[f"{prefix}_rtt_p95_ms"] = ps.rtt_p95_ms
        out[f"{prefix}_jitter_ms"] = ps.jitter_ms
    checked = [m for m in links if m.probes or m.link_oper]
    if checked:  # a probe without an answer and an interface not up both take the link down
        link_up = sum(
            link_up_ns(
                [(s.start_ns, s.end_ns) for s in m.spans if s.up],
                ([Check(p.ts_ns, p.received > 0) for p in m.probes], m.link_oper),
                config.period_s,
                start,
                end,
            )
            for m in checked
        )
        out[f"{prefix}_link_availability_pct"] = 100.0 * link_up / (length * len(checked))


def _radio_fields(out: dict[str, Value], aps: list[DeviceSummary]) -> None:
    cu = {f"{m.place.device}/{band}": samples for m in aps for band, samples in m.channel_utilisation.items()}
    load = channel_load(cu)
    if load.radios:
        out["cu_p95_pct"] = load.p95_pct
        out["busy_radios"] = load.busy_radios
        out["busy_radio_share_pct"] = load.busy_share_pct
    retries = total = 0
    for m in aps:
        for name, v in m.volumes.items():
            if name.startswith("tx_retries:") and f"tx_total:{name.split(':', 1)[1]}" in m.volumes:
                retries += v.total
                total += m.volumes[f"tx_total:{name.split(':', 1)[1]}"].total
    out["retry_rate_pct"] = ratio_pct(retries, total)
    out["rf_quality_pct"] = rf_quality_from_counts(m.rf_counts for m in aps)
