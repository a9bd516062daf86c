"""The read side of the InfluxDB sink: InfluxQL over ``/query``, for the KPI engine and ``kpi`` commands.

InfluxQL is the one query language every InfluxDB serves: 1.x natively, 2.x through its v1
compatibility API (``/query`` with a DBRP mapping from the database name to a bucket, and a token),
3.x through its v1 compatibility too. So the KPI engine reads raw readings, and writes KPI points,
the same way on all three (docs/kpis.md, "Where the numbers come from").

Results are asked for in chunks (``chunked=true``): a day of a city's readings is hundreds of
thousands of rows, which 1.x would otherwise cut at its ``max-row-limit`` without an error. Times
come back as integer nanoseconds (``epoch=ns``). ``stream`` hands the series on chunk by chunk, as
they arrive, so that a reader building its own structures (the KPI engine's day read) never holds the
whole answer as JSON text and parsed rows beside what it built from them; ``query`` merges them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Iterator
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

    def _session_for_queries(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=max(self.config.timeout_s, 120.0))
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def stream(self, statement: str, chunk_rows: int = CHUNK_ROWS) -> AsyncIterator[Series]:
        """The series of one InfluxQL statement in pieces, as InfluxDB sends its chunks; QueryError
        on failure (possibly after some pieces: a caller keeps nothing of a failed read).

        A series longer than a chunk comes as several pieces with the same name and tags, rows in
        order. Each chunk is one JSON document on one line; only the line being read is held."""
        form = {"q": statement, "db": self.database, "epoch": "ns", "chunked": "true", "chunk_size": str(chunk_rows)}
        if self.config.api == "v1" and self.config.retention_policy:
            form["rp"] = self.config.retention_policy
        try:
            async with self._session_for_queries().post(self.url, data=form, headers=self.headers) as response:
                if response.status >= 300:
                    body = await response.read()
                    raise QueryError(f"HTTP {response.status}: {body[:300].decode('utf-8', 'replace')}")
                pending = bytearray()
                async for data in response.content.iter_any():
                    pending += data
                    end = pending.rfind(b"\n")
                    if end < 0:
                        continue
                    lines = bytes(pending[:end])
                    del pending[: end + 1]
                    for line in lines.split(b"\n"):
                        for piece in series_of_chunk(line):
                            yield piece
                for piece in series_of_chunk(bytes(pending)):
                    yield piece
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise QueryError(f"{type(error).__name__}: {error}") from error

    async def query(self, statement: str, chunk_rows: int = CHUNK_ROWS) -> list[Series]:
        """The series of one InfluxQL statement (all its chunks, merged); QueryError on failure."""
        return merge_pieces([piece async for piece in self.stream(statement, chunk_rows)])


def series_of_chunk(line: bytes) -> Iterator[Series]:
    """The series pieces of one chunk (one line of a chunked answer); QueryError for an error."""
    if not line.strip():
        return
    document = orjson.loads(line)
    if "error" in document:
        raise QueryError(str(document["error"]))
    for result in document.get("results", []):
        if "error" in result:
            raise QueryError(str(result["error"]))
        for raw in result.get("series", []):
            # SHOW ... series have no name
            yield Series(raw.get("name", ""), raw.get("tags") or {}, raw["columns"], raw.get("values", []))


def merge_pieces(pieces: Iterable[Series]) -> list[Series]:
    """Pieces of one series (same name and tags) joined in order, series in the order first seen."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
    for piece in pieces:
        key = (piece.name, tuple(sorted(piece.tags.items())))
        series = merged.get(key)
        if series is None:
            merged[key] = piece  # pieces are fresh from the JSON parser: nobody else holds them
        else:
            series.values.extend(piece.values)
    return list(merged.values())


def merge_chunks(body: bytes) -> list[Series]:
    """A whole chunked answer (one JSON document per line), its series merged."""
    return merge_pieces(piece for line in body.splitlines() for piece in series_of_chunk(line))
