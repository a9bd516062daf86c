"""Decode: one raw MQTT message -> validated readings, or a Rejection that says why not.

route -> (canonical schema | vendor adapter | declarative mapping) -> topic check -> time window ->
device guard. Pure and synchronous: the MQTT source hands in (topic, payload, retained, received_ns);
nothing here does I/O, so the whole path can be tested, fuzzed and benchmarked without a broker.

The output, :class:`Decoded`, is the seam every later stage consumes (KPIs, enrichment, the
encoder): a validated canonical message (``schemas/canonical.py``) and the tags it is stored under.
Whatever read it, canonical device or vendor adapter, a reading looks the same from here on.

A topic is resolved once (then cached) to the canonical pattern, a vendor adapter or a mapping
(``routing.py``). Only accepted topics are cached, and the cache is bounded in entries and in bytes:
a flood of distinct bad topics costs a resolution each, never memory.

JSON is read by one reader for every route (``adapters.base.load_json``): a key given twice in one
object, at any depth, is refused (``bad_json``), since two values for one reading mean neither can
be trusted; the usual readers silently keep the last one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError

from collector.ingest.adapters.base import DUPLICATE_KEY, AdapterError, Source, load_json
from collector.ingest.routing import AdapterTarget, Route, RouteError, RoutingConfig, build_routes, resolve
from collector.ingest.topics import MESSAGE_SCHEMAS, TopicError, TopicMatch, TopicPattern
from schemas.canonical import ApClients, ApMetrics, CanonicalMessage, DeviceEvent, DeviceState, IfCounters
from schemas.stored import ClientPresence

_CANONICAL = TypeAdapter[CanonicalMessage](Annotated[CanonicalMessage, Field(discriminator="schema_id")])

DETAIL_LIMIT = 500  # characters; a detail quotes the payload, which may be anything up to the size limit

Tags = tuple[tuple[str, str], ...]


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


@dataclass(frozen=True, slots=True)
class Decoded:
    """A validated canonical message and the tags (sorted; from the topic) it is stored under.

    ``stamp_ns`` is the time the collector estimated for a last will from a backlog (see
    :meth:`Decoder._stamp_will`); 0 otherwise: a message with a timestamp of its own is stored at it,
    a live will at its receipt.
    """

    message: CanonicalMessage | ClientPresence
    tags: Tags
    stamp_ns: int = 0


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
        parts.append(f"{location}: {problem['msg'].removeprefix('Value error, ')}")
    if len(problems) > limit:
        parts.append(f"... and {len(problems) - limit} more")
    return Rejection("invalid", "; ".join(parts))


# A duplicate key (which the JSON reader inside pydantic resolves silently, last one wins) is found
# without reading the payload twice. Every key of a JSON object is a string followed by optional
# whitespace and ':'. When no '"' in the payload is followed by whitespace, each key occurrence is
# one '":' and the count of '":' is at least the number of key occurrences (text values may add
# more). The validated message says how many distinct keys it was given (its fields set); if
# the count equals that number, no key occurred twice. Any other payload (a key twice, '":' inside a
# text, pretty-printed JSON, a nested level _key_count does not know) is read again with the exact
# check: an error here costs speed, never a missed duplicate.
_MAYBE_SPACED_KEY = re.compile(rb'"[ \t\r\n]').search


def _key_count(message: CanonicalMessage) -> int:
    """How many keys, at every level, the payload of this validated message had (each at least once)."""
    count = len(message.__pydantic_fields_set__)
    if message.__class__ is ApMetrics:
        for radio in message.radios:
            count += len(radio.__pydantic_fields_set__)
    elif message.__class__ is IfCounters:
        for interface in message.interfaces:
            count += len(interface.__pydantic_fields_set__)
    elif message.__class__ is ApClients:
        for client in message.clients or ():
            count += len(client.__pydantic_fields_set__)
    elif message.__class__ is DeviceEvent:
        count += len(message.attributes)
    return count


def _duplicate_key(payload: bytes | bytearray) -> Rejection | None:
    try:
        load_json(payload)
    except AdapterError as error:
        if error.detail.startswith(DUPLICATE_KEY):
            return Rejection(error.reason, error.detail)
    return None


def _known_schemas() -> set[str]:
    return set().union(*MESSAGE_SCHEMAS.values())


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """What a Decoder is built with besides its topic pattern: the one place its settings and their
    defaults are defined (``Pipeline`` passes them through; ``app/service.py`` fills them from the
    config). Read once, into the Decoder's attributes: the per-message path never looks here."""

    routes: Sequence[Route] | None = None  # None: the built-in routes (RoutingConfig())
    max_payload_bytes: int = 256 * 1024
    max_future_s: float = 600.0
    max_past_s: float = 30 * 86_400.0
    cache_size: int = 200_000
    cache_bytes: int = 64 * 1024**2
    max_devices: int = 200_000
    known_devices: frozenset[str] | None = None  # when set, only these devices are accepted
    will_delay_s: float = 45.0
    will_max_lag_s: float = 120.0


class Decoder:
    """Holds the per-topic resolutions and the device half of the cardinality guard."""

    def __init__(self, topic_pattern: TopicPattern, options: DecodeOptions | None = None) -> None:
        o = DecodeOptions() if options is None else options
        self.topics = topic_pattern
        self.routes = list(build_routes(RoutingConfig()) if o.routes is None else o.routes)
        self.max_devices = o.max_devices
        self.devices: set[str] = set()  # devices accepted so far (the device half of the cardinality guard)
        self.known_devices = o.known_devices  # when set, only these devices are accepted
        self.max_payload_bytes = o.max_payload_bytes
        self._max_future_ns = int(o.max_future_s * 1e9)
        self._max_past_ns = int(o.max_past_s * 1e9)
        self.retained_wills_skipped = 0
        self.wills_stamped_early = 0
        self._will_delay_ns = int(o.will_delay_s * 1e9)
        self._will_max_lag_ns = int(o.will_max_lag_s * 1e9)
        # The newest timestamp each device has sent (state per device; the app may seed it from storage).
        self.last_seen_ns: dict[str, int] = {}
        self._targets: dict[str, TopicMatch | AdapterTarget] = {}
        self._cache_size = o.cache_size
        self._cache_bytes = o.cache_bytes
        self._cached_bytes = 0

    def decode(
        self, topic: str, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[Decoded] | Rejection:
        if len(payload) > self.max_payload_bytes:
            return Rejection("payload_too_large", f"{len(payload)} bytes > limit {self.max_payload_bytes}")
        where = self._targets.get(topic)
        if where is None:
            resolved = self._resolve(topic)
            if resolved.__class__ is Rejection:
                return resolved
            where = resolved  # type: ignore[assignment]
        if where.__class__ is TopicMatch:
            return self._canonical(where, payload, retained, received_ns)
        return self._adapted(where, payload, received_ns)  # type: ignore[arg-type]

    # -- routing ----------------------------------------------------------------------------
    def _resolve(self, topic: str) -> TopicMatch | AdapterTarget | Rejection:
        """Which code reads this topic (routing.py has the rules); cached per topic if accepted."""
        target: TopicMatch | AdapterTarget | Rejection
        found = resolve(self.routes, topic)
        root = self.topics.root
        if isinstance(found, AdapterTarget):
            target = found
        elif root is None or topic.split("/", 1)[0] == root:
            try:
                target = self.topics.parse(topic)
            except TopicError as error:
                target = Rejection("bad_topic", str(error))
        elif isinstance(found, RouteError):
            target = Rejection("bad_topic", str(found))
        else:
            roots = sorted({"/".join(r.pattern.prefix) for r in self.routes} | {root})
            target = Rejection("no_route", f"no route claims this topic; roots: {', '.join(roots)}")
        if isinstance(target, Rejection):
            return target  # not cached: bad topics must not fill memory
        target = self._admit(target)
        if not isinstance(target, Rejection):
            if len(self._targets) >= self._cache_size or self._cached_bytes >= self._cache_bytes:
                self._targets.clear()  # a flood of new topics must not grow memory without bound
                self._cached_bytes = 0
            self._targets[topic] = target
            self._cached_bytes += len(topic)
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

    # -- reading ----------------------------------------------------------------------------
    def _canonical(
        self, where: TopicMatch, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[Decoded] | Rejection:
        try:
            message = _CANONICAL.validate_json(payload)
        except ValidationError as error:
            # A key given twice is refused as such whichever of its values pydantic looked at.
            return _duplicate_key(payload) or describe_validation_error(error)
        if payload.count(b'":') != _key_count(message) or _MAYBE_SPACED_KEY(payload):
            try:  # a key given twice, or a payload the count cannot vouch for: read it exactly
                load_json(payload)
            except AdapterError as error:
                return Rejection(error.reason, error.detail)
        if message.schema_id not in MESSAGE_SCHEMAS[where.message]:
            return Rejection(
                "topic_mismatch", f"topic level {where.message!r} does not carry schema {message.schema_id!r}"
            )
        if message.device_id != where.device:
            return Rejection(
                "topic_mismatch",
                f"device_id {message.device_id!r} differs from topic device {where.device!r}",
            )
        if message.ts is None and isinstance(message, DeviceState):
            if retained:
                # A retained will replayed on subscribe is an old event with no time of its own: storing
                # it again would invent a new state change at "now".
                self.retained_wills_skipped += 1
                return []
            return [Decoded(message, where.tags, self._stamp_will(where.device, received_ns))]
        return self._in_window([Decoded(message, where.tags)], received_ns)

    def _stamp_will(self, device: str, received_ns: int) -> int:
        """When a last will (no time of its own) is stored: 0 for on receipt, else an earlier estimate.

        The broker publishes a will about 1.5 keepalives after the device's last packet. Received live,
        the receipt time is close to that. Received from a backlog (the collector was away), the
        receipt time is arbitrarily late, later even than the ``online`` the device sent when it came
        back, which the broker queued behind the will; stored at receipt, the will would undo it. So a
        will received more than ``will_max_lag_s`` (a report period and 1.5 keepalives) after the
        newest reading of the device cannot be a live one, and is stored ``will_delay_s`` after that
        reading: never after anything the device reported once it was back.
        """
        last = self.last_seen_ns.get(device)
        if last is None or received_ns - last <= self._will_max_lag_ns:
            return 0  # a will received live (within a report period and 1.5 keepalives): at receipt
        self.wills_stamped_early += 1
        return last + self._will_delay_ns

    def _adapted(self, where: AdapterTarget, payload: bytes | bytearray, received_ns: int) -> list[Decoded] | Rejection:
        adapter = where.route.adapter
        try:
            readings = adapter.decode(payload, Source(where.device, where.kind), received_ns)
        except AdapterError as error:
            return Rejection(error.reason, f"{where.route.name}: {error.detail}")
        except Exception as error:  # an adapter bug must cost one dead letter, not the collector
            return Rejection("adapter_failed", f"{where.route.name}: {type(error).__name__}: {error}"[:500])
        return self._in_window([Decoded(r.message, where.tags(r.kind)) for r in readings], received_ns)

    def _in_window(self, decoded: list[Decoded], received_ns: int) -> list[Decoded] | Rejection:
        """All of a message's readings, or a Rejection if one is stamped too far from its receipt."""
        newest = 0
        for reading in decoded:
            ts = reading.message.ts  # type: ignore[union-attr]  # decode makes canonical readings only
            if ts is not None:
                if ts > received_ns + self._max_future_ns or ts < received_ns - self._max_past_ns:
                    return Rejection(
                        "timestamp_out_of_range",
                        f"ts {ts.isoformat()} is outside [now - {self._max_past_ns // 10**9} s, "
                        f"now + {self._max_future_ns // 10**9} s]",
                    )
                newest = max(newest, ts)
        if newest:
            device = decoded[0].message.device_id
            if newest > self.last_seen_ns.get(device, 0):
                self.last_seen_ns[device] = newest
        return decoded
