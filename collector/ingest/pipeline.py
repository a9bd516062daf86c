"""route -> decode -> validate -> check against the topic -> normalise -> line protocol, for one message.

Pure and synchronous: the MQTT source hands in (topic, payload, retained, received_ns) and gets back
the lines to write or a Rejection that says why not. Nothing here does I/O, so the whole path can be
tested, fuzzed and benchmarked without a broker or a database.

A topic is resolved once (then cached) to the canonical pattern, a vendor adapter or a declarative
mapping (collector/ingest/routing.py). Adapters produce canonical messages, which go through the same time
check and normaliser as a canonical device's, so a vendor device's series look exactly the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, TypeAdapter, ValidationError

from collector.ingest.adapters.base import AdapterError, Source
from collector.ingest.inventory import load_device_ids
from collector.ingest.lineprotocol import EncodeError
from collector.ingest.normalise import SeriesKeys, TooManySeries, timestamp_ns, to_lines
from collector.ingest.routing import AdapterTarget, Route, RouteError, RoutingConfig, build_routes, resolve
from collector.ingest.topics import MESSAGE_SCHEMAS, TopicError, TopicMatch, TopicPattern
from schemas.canonical import CanonicalMessage, DeviceState

if TYPE_CHECKING:
    from collector.app.config import Config

_CANONICAL = TypeAdapter[CanonicalMessage](Annotated[CanonicalMessage, Field(discriminator="schema_id")])


DETAIL_LIMIT = 500  # characters; a detail quotes the payload, which may be anything up to the size limit


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was not stored. ``reason`` is a stable code (counted in metrics); ``detail``
    says what and where, cut to DETAIL_LIMIT characters (its start and its end are kept)."""

    reason: str
    detail: str

    def __post_init__(self) -> None:
        if len(self.detail) > DETAIL_LIMIT:
            cut = f"{self.detail[: DETAIL_LIMIT - 145]} [...] {self.detail[-138:]}"
            object.__setattr__(self, "detail", cut)


# Stable reason codes, also the labels of the rejection counters.
REASONS = (
    "payload_too_large",
    "bad_topic",
    "no_route",
    "bad_json",
    "bad_line_protocol",
    "unknown_schema",
    "invalid",
    "unsupported",
    "adapter_failed",
    "topic_mismatch",
    "timestamp_out_of_range",
    "unencodable",
    "unknown_device",
    "too_many_devices",
    "too_many_series",
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
        routes: Sequence[Route] | None = None,
        max_payload_bytes: int = 256 * 1024,
        max_future_s: float = 600.0,
        max_past_s: float = 30 * 86_400.0,
        cache_size: int = 200_000,
        max_devices: int = 200_000,
        max_series: int = 500_000,
        known_devices: frozenset[str] | None = None,
    ) -> None:
        self.topics = topic_pattern
        self.routes = list(build_routes(RoutingConfig()) if routes is None else routes)
        self.keys = SeriesKeys(max_series)
        self.max_devices = max_devices
        self.devices: set[str] = set()  # devices accepted so far (the device half of the cardinality guard)
        self.known_devices = known_devices  # when set, only these devices are accepted
        self.max_payload_bytes = max_payload_bytes
        self._max_future_ns = int(max_future_s * 1e9)
        self._max_past_ns = int(max_past_s * 1e9)
        self.retained_wills_skipped = 0
        self._targets: dict[str, TopicMatch | AdapterTarget | Rejection] = {}
        self._cache_size = cache_size
        root_named, root = topic_pattern._levels[0]
        self._canonical_root = None if root_named else root

    @classmethod
    def from_config(cls, config: Config) -> Pipeline:
        inventory = config.inventory
        known = load_device_ids(inventory.file) if inventory.file is not None and inventory.require_known else None
        return cls(
            TopicPattern(config.topics.pattern),
            routes=build_routes(config.routing),
            max_payload_bytes=config.limits.max_payload_bytes,
            max_future_s=config.limits.max_future_s,
            max_past_s=config.limits.max_past_s,
            max_devices=config.limits.max_devices,
            max_series=config.limits.max_series,
            known_devices=known,
        )

    def process(
        self, topic: str, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[str] | Rejection:
        if len(payload) > self.max_payload_bytes:
            return Rejection("payload_too_large", f"{len(payload)} bytes > limit {self.max_payload_bytes}")
        where = self._targets.get(topic)
        if where is None:
            where = self._resolve(topic)
        if where.__class__ is TopicMatch:
            return self._canonical(where, payload, retained, received_ns)
        if where.__class__ is AdapterTarget:
            return self._adapted(where, payload, received_ns)
        return where  # type: ignore[return-value]

    def _resolve(self, topic: str) -> TopicMatch | AdapterTarget | Rejection:
        """Which code reads this topic (collector/ingest/routing.py has the rules); cached per topic."""
        target: TopicMatch | AdapterTarget | Rejection
        found = resolve(self.routes, topic)
        if isinstance(found, AdapterTarget):
            target = found
        elif self._canonical_root is None or topic.split("/", 1)[0] == self._canonical_root:
            try:
                target = self.topics._parse(topic)
            except TopicError as error:
                target = Rejection("bad_topic", str(error))
        elif isinstance(found, RouteError):
            target = Rejection("bad_topic", str(found))
        else:
            roots = sorted({"/".join(r.pattern.prefix) for r in self.routes} | {self._canonical_root})
            target = Rejection("no_route", f"no route claims this topic; roots: {', '.join(roots)}")
        if not isinstance(target, Rejection):
            target = self._admit(target)
        if len(self._targets) >= self._cache_size:
            self._targets.clear()  # a flood of new topics must not grow memory without bound
        self._targets[topic] = target
        return target

    def _admit(self, target: TopicMatch | AdapterTarget) -> TopicMatch | AdapterTarget | Rejection:
        """The device half of the guard: known to the inventory (if required), and not one too many."""
        device = target.device
        if device in self.devices:
            return target
        if self.known_devices is not None and device not in self.known_devices:
            return Rejection("unknown_device", f"device {device!r} is not in the inventory")
        if len(self.devices) >= self.max_devices:
            return Rejection("too_many_devices", f"{self.max_devices} devices already accepted; refusing {device!r}")
        self.devices.add(device)
        return target

    def _canonical(
        self, where: TopicMatch, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[str] | Rejection:
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
                return self._out_of_range(message)
        elif retained and isinstance(message, DeviceState):
            # A retained will replayed on subscribe is an old event with no time of its own: storing it
            # again would invent a new state change at "now".
            self.retained_wills_skipped += 1
            return []
        try:
            return to_lines(message, where.tags, received_ns, self.keys)
        except EncodeError as error:
            return Rejection("unencodable", str(error))
        except TooManySeries as error:
            return Rejection("too_many_series", str(error))

    def _adapted(self, where: AdapterTarget, payload: bytes | bytearray, received_ns: int) -> list[str] | Rejection:
        adapter = where.route.adapter
        try:
            readings = adapter.decode(payload, Source(where.device, where.kind), received_ns)
        except AdapterError as error:
            return Rejection(error.reason, f"{where.route.name}: {error.detail}")
        except Exception as error:  # an adapter bug must cost one dead letter, not the collector
            return Rejection("adapter_failed", f"{where.route.name}: {type(error).__name__}: {error}"[:500])
        lines: list[str] = []
        try:
            for reading in readings:
                message = reading.message
                if message.ts is not None:
                    ts = timestamp_ns(message.ts)
                    if ts > received_ns + self._max_future_ns or ts < received_ns - self._max_past_ns:
                        return self._out_of_range(message)
                lines += to_lines(message, where.tags(reading.kind), received_ns, self.keys)
        except EncodeError as error:
            return Rejection("unencodable", str(error))
        except TooManySeries as error:
            return Rejection("too_many_series", str(error))
        return lines

    def _out_of_range(self, message: CanonicalMessage) -> Rejection:
        assert message.ts is not None
        return Rejection(
            "timestamp_out_of_range",
            f"ts {message.ts.isoformat()} is outside [now - {self._max_past_ns // 10**9} s, "
            f"now + {self._max_future_ns // 10**9} s]",
        )
