"""KPI rows <-> InfluxDB: the points the engine writes, and the rows ``kpi show`` reads back.

A row of compute.py becomes one point of ``kpi_<level>`` (``kpi_device``, ``kpi_site``,
``kpi_municipality``, ``kpi_region``) tagged with where it belongs (device, kind, site, nis,
municipality, region) and its ``grain``, stamped at the window's start. A KPI point is identified by
those tags and that time, so writing the same window again replaces it: a recomputation after late
data, a restart or ``kpi recompute`` leaves one point per window, never a duplicate. A figure that
could not be computed (None) is left out of the point rather than written as a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collector.ingest.lineprotocol import encode_line, series_key
from collector.kpi.compute import KpiRow
from collector.kpi.enrich import Place, Places
from collector.sink.query import InfluxQuery, quote_identifier, quote_string

FieldValue = int | float | str | bool
LEVELS = ("device", "site", "municipality", "region")
TAG_KEYS = frozenset({"device", "kind", "site", "nis", "municipality", "region", "grain"})


@dataclass(frozen=True, slots=True)
class KpiPoint:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    ts_ns: int
    fields: dict[str, FieldValue] = field(default_factory=dict)

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


def to_point(row: KpiRow, places: Places, seen: Mapping[str, Place] | None = None, **extra: FieldValue) -> KpiPoint:
    """The point of one row. ``seen``: the places the computation used, by device (a device missing
    from the inventory has its place from the tags its readings were stored with, which ``places``
    alone does not know)."""
    tags: dict[str, str] = {"grain": row.grain}
    if row.level == "device":
        place = seen.get(row.key) if seen else None
        if place is None:
            place = places.place(row.key)
        tags.update(device=place.device, kind=place.kind, site=place.site, nis=place.nis)
        tags["municipality"] = place.municipality
    elif row.level == "site":
        nis, _, site = row.key.partition("/")
        tags.update(nis=nis, site=site, municipality=places.municipalities.get(nis, "unknown"))
    elif row.level == "municipality":
        tags.update(nis=row.key, municipality=places.municipalities.get(row.key, "unknown"))
    else:
        tags["region"] = row.key
    fields: dict[str, FieldValue] = {k: v for k, v in row.fields.items() if v is not None}
    fields.update(devices=row.devices, unknown_devices=row.unknown_devices, **extra)
    return KpiPoint(f"kpi_{row.level}", tuple(sorted((k, v) for k, v in tags.items() if v)), row.start_ns, fields)


def to_lines(points: Iterable[KpiPoint]) -> list[str]:
    return [encode_line(series_key(p.measurement, p.tags), sorted(p.fields.items()), p.ts_ns) for p in points]


async def read_points(
    query: InfluxQuery,
    level: str,
    start_ns: int,
    grain: str = "day",
    end_ns: int | None = None,
    retention_policy: str | None = None,
) -> list[KpiPoint]:
    """The stored KPI points of one level and grain: the window starting at ``start_ns``, or with
    ``end_ns`` every window starting in ``[start_ns, end_ns)``; in ``retention_policy``
    (influxdb.kpi_retention_policy), else the one the query reads by default."""
    measurement = f"kpi_{level}"
    source = (
        f"{quote_identifier(retention_policy)}.{quote_identifier(measurement)}"
        if retention_policy
        else f'"{measurement}"'
    )
    span = f"time = {start_ns}" if end_ns is None else f"time >= {start_ns} AND time < {end_ns}"
    found = await query.query(f'SELECT * FROM {source} WHERE {span} AND "grain" = {quote_string(grain)}')
    points: list[KpiPoint] = []
    for series in found:
        for values in series.values:
            record = dict(zip(series.columns, values, strict=True))
            ts = int(record.pop("time"))
            tags = tuple(sorted((k, str(v)) for k, v in record.items() if k in TAG_KEYS and v is not None))
            fields = {k: v for k, v in record.items() if k not in TAG_KEYS and v is not None}
            points.append(KpiPoint(measurement, tags, ts, fields))
    return points
