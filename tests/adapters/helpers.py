"""Shared by the adapter tests: fixtures, a pipeline with the default routes, stored points as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.ingest.adapters.base import Reading, Source
from collector.ingest.adapters.telegraf.lineprotocol import parse
from collector.ingest.pipeline import DecodeOptions, Pipeline, Rejection
from collector.ingest.routing import RoutingConfig, build_routes
from collector.ingest.topics import TopicPattern
from schemas.timestamps import EpochNs, parse_rfc3339

HERE = Path(__file__).parent
ADAPTERS = Path(__file__).resolve().parents[2] / "collector" / "ingest" / "adapters"
CANONICAL_PATTERN = "bxl/v1/{nis}/{site}/{kind}/{device}/{message}"


def fixture(folder: str, name: str) -> bytes:
    return (ADAPTERS / folder / "testdata" / name).read_bytes()


def utc(text: str) -> EpochNs:
    """The exact time of an RFC 3339 string, as adapters and the canonical schema give it."""
    return parse_rfc3339(text)


def ns(text: str) -> int:
    return int(parse_rfc3339(text))


def pipeline(routing: RoutingConfig | None = None) -> Pipeline:
    return Pipeline(TopicPattern(CANONICAL_PATTERN), DecodeOptions(routes=build_routes(routing or RoutingConfig())))


def points(lines: list[str] | Rejection) -> list[dict[str, Any]]:
    """Lines as {measurement, tags, fields, time}, in order."""
    assert isinstance(lines, list), lines
    return [
        {"measurement": p.name, "tags": p.tags, "fields": p.fields, "time": p.timestamp_ns}
        for p in parse("\n".join(lines))
    ]


def only(readings: list[Reading], schema: str) -> Any:
    found = [r.message for r in readings if r.message.schema_id == schema]
    assert len(found) == 1, [r.message.schema_id for r in readings]
    return found[0]


def source(device: str = "dev-1", kind: str | None = None) -> Source:
    return Source(device, kind)
