"""The read side of the InfluxDB sink: InfluxQL over ``/query``, for the KPI engine and ``kpi`` commands.

InfluxQL is the one query language every InfluxDB serves: 1.x natively, 2.x through its v1
compatibility API (``/query`` with a DBRP mapping from the database name to a bucket, and a token),
3.x through its v1 compatibility too. So the KPI engine reads raw readings, and writes KPI points,
the same way on all three (docs/kpis.md, "Where the numbers come from").

Results are asked for in chunks (``chunked=true``): a day of a city's readings is hundreds of
thousands of rows, which 1.x would otherwise cut at its ``max-row-limit`` without an error. Times
come back as integer nanoseconds (``epoch=ns``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from collector.sink.config import InfluxConfig

CHUNK_ROWS = 20_000


class QueryError(Exception):
    """InfluxDB answered the query with an error, or could not be reached."""


@dataclass(slots=True)
class Series:
    """One series of a result: its measurement, GROUP BY tags, columns and rows (``time`` first)."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]] = field(default_factory=list)

    def rows(self) -> Iterator[dict[str, Any]]:
        columns = self.columns
        for values in self.values:
            yield dict(zip(columns, values, strict=True))


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxQuery:
    """InfluxQL against the configured InfluxDB (v1 database, or v2/3 bucket through DBRP)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self.database = config.bucket if config.api == "v2" and config.bucket else config.database
        self.url = config.url.rstrip("/") + "/query"
        self.headers: dict[str, str] = {}
        if config.api == "v2" and config.token is not None:
            self.headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        elif config.username is not None:
            password = config.password.get_secret_value() if config.password is not None else ""
            token = base64.b64encode(f"{config.username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query(self, statement: str, chunk_rows: int = CHUNK_ROWS) -> list[Series]:
        """The series of one InfluxQL statement (all its chunks, merged); QueryError on failure."""
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=max(self.config.timeout_s, 120.0))
            self._session = aiohttp.ClientSession(timeout=timeout)
        form = {"q": statement, "db": self.database, "epoch": "ns", "chunked": "true", "chunk_size": str(chunk_rows)}
        if self.config.api == "v1" and self.config.retention_policy:
            form["rp"] = self.config.retention_policy
        try:
            async with self._session.post(self.url, data=form, headers=self.headers) as response:
                body = await response.read()
                if response.status >= 300:
                    raise QueryError(f"HTTP {response.status}: {body[:300].decode('utf-8', 'replace')}")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise QueryError(f"{type(error).__name__}: {error}") from error
        return merge_chunks(body)


def merge_chunks(body: bytes) -> list[Series]:
    """A chunked answer is one JSON document per line; a series may continue over several."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for line in body.splitlines():
        if not line.strip():
            continue
        document = orjson.loads(line)
        if "error" in document:
            raise QueryError(str(document["error"]))
        for result in document.get("results", []):
            if "error" in result:
                raise QueryError(str(result["error"]))
            for raw in result.get("series", []):
                tags = raw.get("tags") or {}
                key = (raw.get("name", ""), tuple(sorted(tags.items())))  # SHOW ... series have no name
                series = merged.get(key)
                if series is None:
                    series = merged[key] = Series(key[0], dict(tags), list(raw["columns"]))
                series.values.extend(raw.get("values", []))
    return list(merged.values())
