"""Write line protocol to a real influxd and read back what it stored, as plain data.

Each property example gets a database of its own, so that the field types of one example cannot
conflict with another's and a query returns exactly that example's points.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from collector.harness.localservers import InfluxDB
from collector.ingest.adapters.telegraf.lineprotocol import parse

# What SHOW FIELD KEYS calls the types line protocol can carry.
INFLUX_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string"}


@dataclass(frozen=True, slots=True)
class StoredPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time: int


class Store:
    def __init__(self, server: InfluxDB) -> None:
        self.server = server
        self._count = 0

    def database(self) -> str:
        self._count += 1
        name = f"property_{self._count}"
        self._query(f'CREATE DATABASE "{name}"')
        return name

    def drop(self, database: str) -> None:
        self._query(f'DROP DATABASE "{database}"')

    def write(self, database: str, lines: list[str]) -> tuple[int, str]:
        """POST the lines as one /write request (nanosecond precision); InfluxDB's status and answer."""
        query = urllib.parse.urlencode({"db": database, "precision": "ns"})
        request = urllib.request.Request(
            f"{self.server.url}/write?{query}", data="\n".join(lines).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def read(self, database: str) -> tuple[list[StoredPoint], dict[tuple[str, str], str]]:
        """Every point in the database, and the type of each (measurement, field key).

        One SELECT per measurement: a single ``SELECT * FROM /.*/`` leaves out values when two
        measurements have a field of the same name and different types (influxd 1.6 merges them)."""
        (measurements,) = self._query("SHOW MEASUREMENTS", database)
        names = [row[0] for series in measurements.get("series", []) for row in series["values"]]
        if not names:
            return [], {}
        statements = [f"SELECT * FROM {source(name)} GROUP BY *" for name in names] + ["SHOW FIELD KEYS"]
        *selects, field_keys = self._query("; ".join(statements), database)
        points = []
        for name, result in zip(names, selects, strict=True):
            assert not result.get("partial"), "influxd cut the answer short"
            for series in result.get("series", []):
                assert series["name"] == name, (series["name"], name)
                # GROUP BY * lists every tag key of the measurement, "" where a point has none; the
                # encoder never writes an empty tag value, so "" means absent.
                tags = {key: value for key, value in series.get("tags", {}).items() if value != ""}
                columns = series["columns"]
                assert columns[0] == "time", columns
                for row in series["values"]:
                    fields = {k: v for k, v in zip(columns[1:], row[1:], strict=True) if v is not None}
                    points.append(StoredPoint(name, tags, fields, row[0]))
        types = {}
        for series in field_keys.get("series", []):
            for key, kind in series["values"]:
                types[(series["name"], key)] = kind
        return points, types

    def _query(self, statement: str, database: str | None = None) -> list[dict[str, Any]]:
        params = {"q": statement, "epoch": "ns"}
        if database is not None:
            params["db"] = database
        request = urllib.request.Request(
            f"{self.server.url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        results: list[dict[str, Any]] = body["results"]
        for result in results:
            if "error" in result:
                raise RuntimeError(f"{statement}: {result['error']}")
        return results


def source(measurement: str) -> str:
    """The measurement in InfluxQL: a double-quoted identifier, or, since InfluxQL reads NUL as the end
    of the query, a regular expression matching exactly the name with its characters as hex escapes."""
    if "\x00" in measurement:
        return "/^" + "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in measurement) + "$/"
    return '"' + measurement.replace("\\", "\\\\").replace('"', '\\"') + '"'


def same_value(stored: Any, written: bool | int | float | str) -> bool:
    """Whether influxd's JSON answer is the written value. JSON cannot tell 17.0 from 17 nor -0.0 from
    0.0, so floats compare as numbers; the stored type is checked separately (SHOW FIELD KEYS)."""
    if isinstance(written, bool):
        return stored is written
    if isinstance(written, int):
        return type(stored) is int and stored == written
    if isinstance(written, float):
        return type(stored) in (int, float) and math.isfinite(float(stored)) and float(stored) == written
    return isinstance(stored, str) and stored == written


def assert_stored_exactly(store: Store, lines: list[str]) -> None:
    """Write the lines to a fresh database (influxd must take them all) and read back exactly what they
    say: the same measurements, tags, times, field values and field types, nothing more."""
    written = {}
    for point in parse("\n".join(lines)):
        assert point.timestamp_ns is not None, point
        written[(point.name, tuple(sorted(point.tags.items())), point.timestamp_ns)] = point.fields
    assert len(written) == len(lines), f"two lines share a series and time: {lines}"
    database = store.database()
    try:
        status, answer = store.write(database, lines)
        assert status == 204, f"influxd answered {status} {answer[:500]} to {lines}"
        stored, types = store.read(database)
    finally:
        store.drop(database)
    got = {(p.measurement, tuple(sorted(p.tags.items())), p.time): p.fields for p in stored}
    assert sorted(got) == sorted(written), (got, lines)
    for key, fields in written.items():
        assert sorted(got[key]) == sorted(fields), (key, got[key], fields)
        for name, value in fields.items():
            assert same_value(got[key][name], value), (key, name, got[key][name], value)
            assert types[(key[0], name)] == INFLUX_TYPES[type(value)], (key, name, value)
