"""decode -> validate -> check against the topic -> normalise -> line protocol, for one message.

Pure and synchronous: the MQTT source hands in (topic, payload, retained, received_ns) and gets back
the lines to write or a Rejection that says why not. Nothing here does I/O, so the whole path can be
tested, fuzzed and benchmarked without a broker or a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from collector.lineprotocol import EncodeError
from collector.normalise import SeriesKeys, timestamp_ns, to_lines
from collector.topics import MESSAGE_SCHEMAS, TopicError, TopicPattern
from schemas.canonical import CanonicalMessage, DeviceState

_CANONICAL = TypeAdapter[CanonicalMessage](Annotated[CanonicalMessage, Field(discriminator="schema_id")])


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not stored. ``reason`` is a stable code (counted in metrics)."""

    reason: str
    detail: str


# Stable reason codes, also the labels of the rejection counters.
REASONS = (
    "payload_too_large",
    "bad_topic",
    "bad_json",
    "unknown_schema",
    "invalid",
    "topic_mismatch",
    "timestamp_out_of_range",
    "unencodable",
    "influxdb_rejected",
)


def describe_validation_error(error: ValidationError, limit: int = 5) -> Rejection:
    problems = error.errors(include_url=False, include_input=False)
    first = problems[0]["type"] if problems else ""
    if first == "json_invalid":
        return Rejection("bad_json", problems[0]["msg"])
    if first in ("union_tag_invalid", "union_tag_not_found"):
        tag = problems[0].get("ctx", {}).get("tag")
        detail = f"unknown schema {tag!r}" if tag is not None else "no 'schema' key"
        return Rejection("unknown_schema", f"{detail}; known: {', '.join(sorted(_known_schemas()))}")
    if first == "dict_type" and not problems[0]["loc"]:
        return Rejection("bad_json", "payload is not a JSON object")
    parts = []
    for problem in problems[:limit]:
        location = ".".join(str(part) for part in problem["loc"][1:]) or "(message)"
        parts.append(f"{location}: {problem['msg']}")
    if len(problems) > limit:
        parts.append(f"... and {len(problems) - limit} more")
    return Rejection("invalid", "; ".join(parts))


def _known_schemas() -> set[str]:
    return set().union(*MESSAGE_SCHEMAS.values())


class Pipeline:
    """Holds per-series state (topic and series-key caches) across messages."""

    def __init__(
        self,
        topic_pattern: TopicPattern,
        *,
        max_payload_bytes: int = 256 * 1024,
        max_future_s: float = 600.0,
        max_past_s: float = 30 * 86_400.0,
    ) -> None:
        self.topics = topic_pattern
        self.keys = SeriesKeys()
        self.max_payload_bytes = max_payload_bytes
        self._max_future_ns = int(max_future_s * 1e9)
        self._max_past_ns = int(max_past_s * 1e9)
        self.retained_wills_skipped = 0

    def process(
        self, topic: str, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[str] | Rejection:
        if len(payload) > self.max_payload_bytes:
            return Rejection("payload_too_large", f"{len(payload)} bytes > limit {self.max_payload_bytes}")
        try:
            where = self.topics.parse(topic)
        except TopicError as error:
            return Rejection("bad_topic", str(error))
        try:
            message = _CANONICAL.validate_json(payload)
        except ValidationError as error:
            return describe_validation_error(error)
        if message.schema_id not in MESSAGE_SCHEMAS[where.message]:
            return Rejection(
                "topic_mismatch", f"topic level {where.message!r} does not carry schema {message.schema_id!r}"
            )
        if message.device_id != where.device:
            return Rejection(
                "topic_mismatch",
                f"device_id {message.device_id!r} differs from topic device {where.device!r}",
            )
        if message.ts is not None:
            ts = timestamp_ns(message.ts)
            if ts > received_ns + self._max_future_ns or ts < received_ns - self._max_past_ns:
                return Rejection(
                    "timestamp_out_of_range",
                    f"ts {message.ts.isoformat()} is outside [now - {self._max_past_ns // 10**9} s, "
                    f"now + {self._max_future_ns // 10**9} s]",
                )
        elif retained and isinstance(message, DeviceState):
            # A retained will replayed on subscribe is an old event with no time of its own: storing it
            # again would invent a new state change at "now".
            self.retained_wills_skipped += 1
            return []
        try:
            return to_lines(message, where.tags, received_ns, self.keys)
        except EncodeError as error:
            return Rejection("unencodable", str(error))
