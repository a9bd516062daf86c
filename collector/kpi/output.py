"""KPI rows <-> InfluxDB: the lines the engine writes, and the rows ``kpi show`` reads back.

A KPI point is identified by its measurement, tags and time (the window's start), so writing the
same window again replaces it: a recomputation after late data, a restart or ``kpi recompute``
leaves one point per window, never a duplicate (docs/kpis.md, "Storage").
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.ingest.lineprotocol import encode_line, series_key
from collector.kpi.day import FieldValue, KpiRow
from collector.sink.query import InfluxQuery, quote_string

MEASUREMENTS = {level: f"kpi_{level}" for level in ("device", "site", "municipality", "region")}


def to_lines(rows: Iterable[KpiRow]) -> list[str]:
    return [encode_line(series_key(row.measurement, row.tags), sorted(row.fields.items()), row.ts_ns) for row in rows]


async def read_rows(query: InfluxQuery, level: str, start_ns: int, grain: str = "day") -> list[KpiRow]:
    """The stored KPI rows of one level and window."""
    measurement = MEASUREMENTS[level]
    found = await query.query(
        f'SELECT * FROM "{measurement}" WHERE time = {start_ns} AND "grain" = {quote_string(grain)}'
    )
    rows: list[KpiRow] = []
    for series in found:
        for values in series.values:
            record = dict(zip(series.columns, values, strict=True))
            ts = int(record.pop("time"))
            tags: list[tuple[str, str]] = []
            fields: dict[str, FieldValue] = {}
            for key, value in record.items():
                if value is None:
                    continue
                if key in TAG_KEYS:
                    tags.append((key, str(value)))
                else:
                    fields[key] = value
            rows.append(KpiRow(measurement, tuple(sorted(tags)), ts, fields))
    return rows


TAG_KEYS = frozenset({"device", "kind", "site", "nis", "municipality", "region", "grain"})
