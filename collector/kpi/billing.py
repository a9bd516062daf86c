"""The monthly 95th percentile of each link (burstable billing), from the stored 5-minute KPI points.

A school's fibre or an uplink is judged, and often billed, on the 95th percentile of its 5-minute
rates over a month: sort the month's samples, drop the top 5 % (36 hours of a 30-day month), take the
highest left (nearest rank), per direction; the billed figure is the larger of the two directions.

The 5-minute rates are not computed again here: they are the 5-minute windows the engine already
wrote for each link (``kpi_device``, grain ``5m``, ``<prefix>_utilisation_<in|out>_mean_pct``, the
rate of that bucket over the part covered by counter deltas, as a share of the link's capacity), read
back from the KPI retention policy. So the month is computed from the same code as every other
window, live and by ``kpi recompute`` alike, and costs one query for a month instead of re-reading a
month of raw counters. A 5-minute bucket without a sample (the link or its reports were away) is not
a sample: ``billing_samples`` says how many there were, beside the buckets the month had so far.

Points: ``kpi_device``, grain ``month``, stamped at the local (Europe/Brussels) first of the month,
fields ``<prefix>_billing_in_p95_bps``, ``<prefix>_billing_out_p95_bps``, ``<prefix>_billing_p95_bps``
(``school`` for a school CPE, else the device's kind, as in compute.py), ``billing_samples``,
``billing_buckets`` and ``final``. Until the month is final, the point is the month so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from collector.kpi.clients import percentile
from collector.kpi.compute import KpiRow
from collector.kpi.enrich import Places
from collector.kpi.output import KpiPoint, to_point
from collector.kpi.windows import NS, TZ, midnight_ns
from collector.sink.query import InfluxQuery, quote_identifier

BUCKET_NS = 300 * NS


@dataclass(frozen=True, slots=True)
class Month:
    start_ns: int
    end_ns: int


def month_window(day: date) -> Month:
    """The local calendar month of ``day``: 28 to 31 local days, DST changes included."""
    first = day.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Month(midnight_ns(first, TZ), midnight_ns(following, TZ))


def link_prefix(kind: str) -> str:
    """The field prefix of a link's figures (compute.py ``_fields``): school CPEs apart, else the kind."""
    return "school" if kind == "cpe" else kind


@dataclass(frozen=True, slots=True)
class Billing:
    in_bps: float
    out_bps: float
    samples: int

    @property
    def billed_bps(self) -> float:
        """What is billed: the larger direction's 95th percentile."""
        return max(self.in_bps, self.out_bps)


def billing(rates_in_bps: list[float], rates_out_bps: list[float]) -> Billing | None:
    """Nearest-rank 95th percentile of each direction's 5-minute rates; None without a sample."""
    if not rates_in_bps and not rates_out_bps:
        return None
    return Billing(
        percentile(rates_in_bps, 95), percentile(rates_out_bps, 95), max(len(rates_in_bps), len(rates_out_bps))
    )


def month_rows(
    samples: dict[str, tuple[list[float], list[float]]], places: Places, month: Month, upto_ns: int
) -> list[KpiRow]:
    """One device row per link with samples: ``samples`` maps a device to its in and out utilisation
    percentages per 5-minute bucket; ``upto_ns`` bounds the buckets the month had so far."""
    buckets = max(0, (min(upto_ns, month.end_ns) - month.start_ns) // BUCKET_NS)
    rows: list[KpiRow] = []
    for device, (in_pct, out_pct) in sorted(samples.items()):
        place = places.place(device)  # no tags needed: a device missing from the inventory is skipped
        if place.capacity_mbps is None:
            continue  # a rate needs the link's capacity: unknown for a device missing from the inventory
        to_bps = place.capacity_mbps * 1e6 / 100.0
        found = billing([p * to_bps for p in in_pct], [p * to_bps for p in out_pct])
        if found is None:
            continue
        prefix = link_prefix(place.kind)
        fields: dict[str, int | float | None] = {
            f"{prefix}_billing_in_p95_bps": round(found.in_bps, 3),
            f"{prefix}_billing_out_p95_bps": round(found.out_bps, 3),
            f"{prefix}_billing_p95_bps": round(found.billed_bps, 3),
            "billing_samples": found.samples,
            "billing_buckets": int(buckets),
        }
        rows.append(KpiRow("device", device, "month", month.start_ns, fields, 1, 0 if place.known else 1))
    return rows


async def read_month_samples(
    query: InfluxQuery, month: Month, kinds: Iterable[str]
) -> tuple[dict[str, tuple[list[float], list[float]]], int]:
    """The 5-minute utilisation samples of the month's links, from the stored ``5m`` device points
    (``query`` reads the KPI retention policy: ``InfluxConfig.for_kpis()``), and the end of the latest
    5-minute window among them (the month's buckets "so far": a fact of the data, not of the clock,
    so that a recompute writes the same point)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    latest_end = month.start_ns
    for kind in sorted(set(kinds)):
        prefix = link_prefix(kind)
        fields = [f"{prefix}_utilisation_in_mean_pct", f"{prefix}_utilisation_out_mean_pct"]
        found = await query.query(
            f'SELECT {", ".join(quote_identifier(f) for f in fields)} FROM "kpi_device" '
            f"WHERE \"grain\" = '5m' AND \"kind\" = '{kind}' "
            f'AND time >= {month.start_ns} AND time < {month.end_ns} GROUP BY "device"'
        )
        for series in found:
            device = series.tags.get("device")
            if not device:
                continue
            in_pct, out_pct = out.setdefault(device, ([], []))
            for row in series.values:
                latest_end = max(latest_end, int(row[0]) + BUCKET_NS)
                if row[1] is not None:
                    in_pct.append(float(row[1]))
                if row[2] is not None:
                    out_pct.append(float(row[2]))
    return out, latest_end


async def month_points(query: InfluxQuery, places: Places, day: date, upto_ns: int, *, final: bool) -> list[KpiPoint]:
    """The billing points of the month of ``day``, from what is stored: its buckets so far end with the
    latest stored 5-minute window (and at ``upto_ns`` at the latest)."""
    month = month_window(day)
    kinds = {p.kind for p in places.devices.values() if p.kind != "ap" and p.capacity_mbps is not None}
    samples, latest_end = await read_month_samples(query, month, kinds)
    upto = min(upto_ns, latest_end)
    return [to_point(row, places, final=final) for row in month_rows(samples, places, month, upto)]
