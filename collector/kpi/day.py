"""One local day's KPIs, at every level, from that day's raw readings. Pure.

Contract: ``compute_day(day, raw, places, settings)`` takes the readings of ``[midnight - lookback,
next midnight + lookahead)`` (raw.py reads them) and returns :class:`KpiRow` values: one per device,
site, municipality and the region, stamped at the day's local midnight, tagged ``grain=day``. The
same readings give the same rows, whichever process computes them and whenever: the live engine
and ``kpi recompute`` call this function and nothing else (docs/kpis.md has every definition).

Sums (volumes, up time) add up across levels; peaks, percentiles and distinct counts are computed
again from the readings of the group's devices, never added or averaged from the level below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from collector.kpi.aggregate import availability_pct
from collector.kpi.availability import AvailabilityPolicy, Span, any_up, timeline
from collector.kpi.clients import (
    ClientCount,
    ClientsReport,
    concurrent,
    session_gap_s,
    session_stats,
    sessions,
    unique_clients,
)
from collector.kpi.counters import CounterDeltas, CounterSpec, deltas
from collector.kpi.enrich import Place, Places
from collector.kpi.raw import DeviceRaw, RawData
from collector.kpi.traffic import link_up_ns, probe_stats, utilisation, volume
from collector.kpi.wifi import channel_load, rf_quality_from_counts
from collector.kpi.windows import NS, day_window

FieldValue = int | float | str | bool


@dataclass(frozen=True, slots=True)
class KpiSettings:
    report_period_s: float = 60.0  # how often devices report (the simulator's and most APs' default)
    missed_reports: int = 3  # silent this many periods: down
    will_delay_s: float = 45.0  # a last will comes this long after the device went silent
    clients_every_s: float = 300.0  # how often APs list their clients (ap.clients/1)


@dataclass(frozen=True, slots=True)
class KpiRow:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    ts_ns: int
    fields: dict[str, FieldValue] = field(default_factory=dict)

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(slots=True)
class _Device:
    place: Place
    raw: DeviceRaw
    spans: list[Span]
    up_ns: int
    uncertain_ns: int
    clients: list[ClientCount]
    presence: list[ClientsReport]
    rx: int = 0  # bytes from the clients (AP), in (link)
    tx: int = 0  # bytes to the clients (AP), out (link)
    util_in: list[float] = field(default_factory=list)
    util_out: list[float] = field(default_factory=list)


def lookback_ns(settings: KpiSettings) -> int:
    """How far before (and after) the day the readings must reach for its edges to be known."""
    return int(max(settings.missed_reports * settings.report_period_s, settings.clients_every_s) * 2 * NS)


def compute_day(day: date, raw: RawData, places: Places, settings: KpiSettings) -> list[KpiRow]:
    window = day_window(day)
    start, end = window.start_ns, window.end_ns
    policy = AvailabilityPolicy(
        period_s=settings.report_period_s, missed=settings.missed_reports, will_delay_s=settings.will_delay_s
    )
    devices = [_device(place_raw, places, policy, start, end, settings) for place_raw in raw.devices.values()]
    rows = [_device_row(d, start, end, settings) for d in devices]
    for level in ("site", "municipality", "region"):
        groups: dict[str, list[_Device]] = {}
        for d in devices:
            groups.setdefault(d.place.level(level), []).append(d)
        rows.extend(_group_row(level, members, start, end, settings) for members in groups.values())
    return rows


def _device(
    raw: DeviceRaw, places: Places, policy: AvailabilityPolicy, start: int, end: int, s: KpiSettings
) -> _Device:
    place = places.place(raw.device, raw.tags)
    spans, uncertain = timeline(raw.reports, raw.marks, policy, start, end)
    up = sum(span.end_ns - span.start_ns for span in spans if span.up)
    d = _Device(place, raw, spans, up, uncertain, raw.clients, raw.presence)
    if raw.uplink_tx or raw.uplink_rx:
        spec = CounterSpec(bits=64, capacity_per_s=_capacity_bytes(place.capacity_mbps))
        d.rx = volume(deltas(raw.uplink_tx, spec), start, end).total
        d.tx = volume(deltas(raw.uplink_rx, spec), start, end).total
    link = _link(raw, place)
    if link is not None:
        interface = raw.interfaces[link]
        mbps = place.port_mbps(link) or interface.speed_mbps
        spec = CounterSpec(bits=32 if interface.bits == 32 else 64, capacity_per_s=_capacity_bytes(mbps))
        ins, outs = deltas(interface.in_octets, spec), deltas(interface.out_octets, spec)
        d.rx = volume(ins, start, end).total
        d.tx = volume(outs, start, end).total
        if mbps:
            d.util_in = _utilisation(ins, mbps, start, end, s.report_period_s)
            d.util_out = _utilisation(outs, mbps, start, end, s.report_period_s)
    return d


def _capacity_bytes(mbps: int | None) -> float | None:
    return mbps * 1e6 / 8 if mbps else None


def _utilisation(result: CounterDeltas, mbps: int, start: int, end: int, period_s: float) -> list[float]:
    """One utilisation sample (percent) per report interval ending in the window: the interval's mean
    bit rate over the link's capacity. An interval is at least one report period long: after a boot
    the counter counted only since the boot, but the period's mean rate includes the time it was down
    (what a 5-minute average of the link shows; docs/kpis.md)."""
    capacity_bps = mbps * 1e6
    period_ns = int(period_s * NS)
    return [
        100.0 * d.value * 8 / (max(d.end_ns - d.start_ns, period_ns) / NS * capacity_bps)
        for d in result.deltas
        if start <= d.end_ns < end and d.end_ns > d.start_ns
    ]


def _link(raw: DeviceRaw, place: Place) -> str | None:
    """The interface that is the device's link: the inventory's, else a school CPE's only interface."""
    if place.link is not None and place.link in raw.interfaces:
        return place.link
    if place.kind == "cpe" and len(raw.interfaces) == 1:
        return next(iter(raw.interfaces))
    return None


def _tags(**tags: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in tags.items() if v))


def _device_row(d: _Device, start: int, end: int, s: KpiSettings) -> KpiRow:
    place, raw = d.place, d.raw
    fields: dict[str, FieldValue] = {
        "availability_pct": round(100.0 * d.up_ns / (end - start), 4),
        "up_s": round(d.up_ns / NS, 3),
        "uncertain_s": round(d.uncertain_ns / NS, 3),
        "reports": sum(1 for r in raw.reports if start <= r.ts_ns < end),
        "known": place.known,
    }
    if place.kind == "ap":
        fields.update(_clients_fields({place.device: d.clients}, d.presence, start, end, s))
        fields.update(rx_bytes=d.rx, tx_bytes=d.tx)
        load = channel_load(
            {
                band: [x.cu_total_pct for x in samples if x.cu_total_pct is not None and start <= x.ts_ns < end]
                for band, samples in raw.radios.items()
            }
        )
        fields.update(cu_p95_pct=round(load.p95_pct, 4), radios_busy_pct=round(load.busy_share_pct, 4))
        quality = rf_quality_from_counts((g, n) for ts, g, n in raw.rf_good if start <= ts < end)
        if quality is not None:
            fields["rf_quality_pct"] = round(quality, 4)
    elif d.util_in or d.rx or d.tx:
        fields.update(in_bytes=d.rx, out_bytes=d.tx)
        fields.update(_util_fields(d.util_in, d.util_out))
    if raw.probes:
        fields.update(_probe_fields(raw, start, end))
        checks = [c for i in raw.interfaces.values() for c in i.oper]
        device_up = [(sp.start_ns, sp.end_ns) for sp in d.spans if sp.up]
        link_up = link_up_ns(device_up, checks, s.report_period_s, start, end)
        fields["link_availability_pct"] = round(100.0 * link_up / (end - start), 4)
    tags = _tags(
        device=place.device,
        kind=place.kind,
        site=place.site,
        nis=place.nis,
        municipality=place.municipality,
        grain="day",
    )
    return KpiRow("kpi_device", tags, start, fields)


def _clients_fields(
    counts: dict[str, list[ClientCount]], presence: Iterable[ClientsReport], start: int, end: int, s: KpiSettings
) -> dict[str, FieldValue]:
    period = int(s.report_period_s * NS)
    load = concurrent(counts, start, end, valid_s=s.report_period_s, bucket_ns=period)
    in_day = [r for r in presence if start <= r.ts_ns < end]
    found = sessions(in_day, session_gap_s(s.clients_every_s))
    stats = session_stats(found, start, end)
    out: dict[str, FieldValue] = {
        "peak_clients": load.peak,
        "mean_clients": round(load.mean, 4),
        "unique_clients": unique_clients(in_day),
        "sessions": stats.count,
        "session_p50_s": round(stats.p50_s, 1),
        "session_p90_s": round(stats.p90_s, 1),
    }
    if load.peak_hour is not None and load.peak:
        out["peak_hour"] = load.peak_hour
    return out


def _util_fields(util_in: Sequence[float], util_out: Sequence[float]) -> dict[str, FieldValue]:
    u_in, u_out = utilisation(util_in), utilisation(util_out)
    return {
        "util_in_mean_pct": round(u_in.mean_pct, 4),
        "util_in_p95_pct": round(u_in.p95_pct, 4),
        "util_out_mean_pct": round(u_out.mean_pct, 4),
        "util_out_p95_pct": round(u_out.p95_pct, 4),
        "util_samples": u_in.samples,
    }


def _probe_fields(raw: DeviceRaw, start: int, end: int) -> dict[str, FieldValue]:
    stats = probe_stats(raw.probes, start, end)
    out: dict[str, FieldValue] = {"probes": stats.probes}
    for key, value in (
        ("probe_loss_pct", stats.loss_pct),
        ("rtt_p50_ms", stats.rtt_p50_ms),
        ("rtt_p95_ms", stats.rtt_p95_ms),
        ("jitter_ms", stats.jitter_ms),
    ):
        if value is not None:
            out[key] = round(value, 4)
    return out


def _group_row(level: str, members: list[_Device], start: int, end: int, s: KpiSettings) -> KpiRow:
    first = members[0].place
    aps = [d for d in members if d.place.kind == "ap"]
    links = [d for d in members if d.util_in or (d.place.kind != "ap" and (d.rx or d.tx))]
    schools = [d for d in members if d.place.kind == "cpe"]
    fields: dict[str, FieldValue] = {"devices": len(members), "aps": len(aps)}
    if aps:
        fields["ap_availability_pct"] = round(availability_pct((d.up_ns, end - start) for d in aps) or 0.0, 4)
        sites: dict[str, list[_Device]] = {}
        for d in aps:
            sites.setdefault(d.place.level("site"), []).append(d)
        site_up = {key: any_up([d.spans for d in group], start, end) for key, group in sites.items()}
        fields["sites"] = len(sites)
        fields["hotspots"] = sum(1 for up in site_up.values() if up > 0)
        fields["site_availability_pct"] = round(100.0 * sum(site_up.values()) / (len(sites) * (end - start)), 4)
        counts = {d.place.device: d.clients for d in aps}
        fields.update(_clients_fields(counts, [r for d in aps for r in d.presence], start, end, s))
        fields.update(rx_bytes=sum(d.rx for d in aps), tx_bytes=sum(d.tx for d in aps))
    if schools:
        fields["school_links"] = len(schools)
        fields["school_link_availability_pct"] = round(
            availability_pct((d.up_ns, end - start) for d in schools) or 0.0, 4
        )
        fields["school_in_bytes"] = sum(d.rx for d in schools)
        fields["school_out_bytes"] = sum(d.tx for d in schools)
        school_util = _util_fields([u for d in schools for u in d.util_in], [u for d in schools for u in d.util_out])
        fields.update({f"school_{key}": value for key, value in school_util.items()})
    if links and not schools:
        fields["link_in_bytes"] = sum(d.rx for d in links)
        fields["link_out_bytes"] = sum(d.tx for d in links)
    if level == "site":
        tags = _tags(nis=first.nis, site=first.site, municipality=first.municipality, grain="day")
    elif level == "municipality":
        tags = _tags(nis=first.nis, municipality=first.municipality, grain="day")
    else:
        tags = _tags(region=first.region, grain="day")
    return KpiRow(f"kpi_{level}", tags, start, fields)
