"""What every adapter shares: the adapter contract, typed access to vendor payloads, time conversions.

An adapter turns one vendor payload into canonical messages (``schemas/canonical.py``), validated, so
that ``collector/ingest/normalise.py`` stores them exactly as it stores a canonical device's. It never
writes, never logs and never keeps a client MAC address: per-client entries are summarised inside
the adapter and dropped. When the payload is not what the adapter expects it raises
:class:`AdapterError` with a stable reason code and a detail that names the problem and where it is
(``uplink.rx_bytes: expected an integer, got 'lots'``); the pipeline turns that into a dead letter.

Adapters validate as strictly as the canonical schema: the helpers here take a value only in the
JSON type the format documents (an integer is a JSON integer: not a string, a boolean or ``23.0``;
a number is an integer or a finite float). Where a vendor documents numbers as text (UniFi's
``system-stats``), the adapter says so field by field with :func:`number_from_text`, which reads a
plain decimal and nothing else (no spaces, no ``0x``, no ``1e3``). JSON with a key given twice in
one object is refused whatever the route (:func:`load_json`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import jiter
from pydantic import BaseModel, ValidationError

from collector.ingest.lineprotocol import TIME_MAX_NS, TIME_MIN_NS
from schemas.canonical import CanonicalMessage
from schemas.timestamps import EpochNs, from_ns, parse_rfc3339

__all__ = ["EpochNs", "from_ns"]  # re-exported: adapters build their timestamps with from_ns

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}")

M = TypeVar("M", bound=BaseModel)


class AdapterError(ValueError):
    """A payload the adapter cannot turn into canonical readings; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Source:
    """What the topic says about the sender."""

    device: str
    kind: str | None  # from a {kind} topic level or the route's ``kind`` setting; None: the adapter decides


@dataclass(frozen=True, slots=True)
class Reading:
    """One canonical message and the device class (``kind`` tag) it is stored under."""

    kind: str
    message: CanonicalMessage


class Adapter(Protocol):
    name: str

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        """The canonical readings in ``payload``; raises AdapterError when there are none to be had."""
        ...


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """How a builtin adapter package declares itself (its ``ADAPTER``); the registry finds it there.

    ``name`` is also its config section (``[routing.<name>]``) and route name; ``default_pattern`` the
    topic pattern it reads unless the config says otherwise. ``settings``: keys of its own in that
    section, as pydantic field definitions (``{"key": (type, Field(default, ...))}``); the factory
    is called with their configured values as keyword arguments.
    """

    name: str
    factory: Callable[..., Adapter]
    default_pattern: str
    settings: Mapping[str, Any] = field(default_factory=dict)


# --- decoding ------------------------------------------------------------------------------------
DUPLICATE_KEY = "a key given twice"


def load_json(payload: bytes | bytearray) -> Any:
    """The JSON document, or AdapterError(bad_json). Refused besides what RFC 8259 refuses: a key
    given twice in one object, at any depth (a reader that keeps the last would store a value the
    device may not have meant), NaN and Infinity tokens (not JSON, even in a key no adapter reads).
    The reader is pydantic's own (jiter), asked to check duplicates."""
    try:
        return jiter.from_json(
            payload if payload.__class__ is bytes else bytes(payload), allow_inf_nan=False, catch_duplicate_keys=True
        )
    except ValueError as error:
        text = str(error)
        if text.startswith("Detected duplicate key"):
            raise AdapterError("bad_json", f"{DUPLICATE_KEY}: {mask(text.removeprefix('Detected '))}") from None
        raise AdapterError("bad_json", f"not JSON: {mask(text)}") from None


def load_object(payload: bytes | bytearray, what: str) -> dict[str, Any]:
    document = load_json(payload)
    if not isinstance(document, dict):
        raise AdapterError("bad_json", f"payload is not a JSON object ({what} expected), got {kind_of(document)}")
    return document


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def show(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a bad value for a dead-letter detail: MAC addresses are masked."""
    text = _MAC.sub("<mac>", repr(value) if not isinstance(value, dict | list) else kind_of(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mask(text: str) -> str:
    """``text`` with anything that looks like a MAC address replaced by ``<mac>``."""
    return _MAC.sub("<mac>", text)


def invalid(where: str, problem: str) -> AdapterError:
    return AdapterError("invalid", f"{where}: {problem}")


def require(obj: dict[str, Any], key: str, where: str = "") -> Any:
    value = obj.get(key)
    if value is None:
        raise invalid(f"{where}{key}", "missing" if key not in obj else "is null")
    return value


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(where, f"expected an object, got {kind_of(value)}")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(where, f"expected an array, got {kind_of(value)}")
    return value


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, f"expected a string, got {show(value)}")
    return value


def as_int(value: Any, where: str) -> int:
    """A JSON integer: not a boolean, a string or an integral float (the canonical schema's rule)."""
    if value.__class__ is int:
        return value
    raise invalid(where, f"expected an integer, got {show(value)}")


def as_float(value: Any, where: str) -> float:
    """A finite JSON number (an integer or a float): not a boolean or a string."""
    cls = value.__class__
    if cls is float:
        if math.isfinite(value):
            return value  # type: ignore[no-any-return]
    elif cls is int:
        try:
            return float(value)
        except OverflowError:
            raise invalid(where, f"{show(value)} is too large for a number") from None
    raise invalid(where, f"expected a number, got {show(value)}")


def number_from_text(value: Any, where: str) -> float:
    """A number, or a plain decimal written as text (``"12"``, ``"-3.5"``), for the fields a vendor
    documents as text. Nothing looser: no spaces, signs other than ``-``, exponents, hex or NaN."""
    if value.__class__ is str:
        if _DECIMAL.fullmatch(value):
            return float(value)
        raise invalid(where, f"expected a decimal number (as text), got {show(value)}")
    return as_float(value, where)


def int_from_text(value: Any, where: str) -> int:
    """An integer, or one written as text in plain decimal digits (``"864000"``), for the fields a
    vendor documents as text. Not ``" 7 "``, ``"+7"``, ``"7.0"`` or ``"1e3"``."""
    if value.__class__ is str:
        if len(value) <= 20 and _INTEGER.fullmatch(value):
            return int(value)
        raise invalid(where, f"expected an integer (as text), got {show(value)}")
    return as_int(value, where)


def opt_list(obj: dict[str, Any], key: str, where: str = "") -> list[Any]:
    """A list that may be absent or null (then empty); anything else must be an array."""
    value = obj.get(key)
    return [] if value is None else as_list(value, f"{where}{key}")


def opt_object(obj: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = obj.get(key)
    return {} if value is None else as_object(value, f"{where}{key}")


def opt_int(obj: dict[str, Any], key: str, where: str = "") -> int | None:
    value = obj.get(key)
    return None if value is None else as_int(value, f"{where}{key}")


def opt_count(obj: dict[str, Any], key: str, where: str = "") -> int | None:
    """A counter that may be absent: a non-negative integer. For counters an adapter adds up (a
    negative one would be hidden in the sum instead of refused by the schema's range)."""
    value = opt_int(obj, key, where)
    if value is not None and value < 0:
        raise invalid(f"{where}{key}", f"a counter cannot be negative, got {value}")
    return value


def opt_float(obj: dict[str, Any], key: str, where: str = "") -> float | None:
    value = obj.get(key)
    return None if value is None else as_float(value, f"{where}{key}")


# --- time ------------------------------------------------------------------------------------------
# A timestamp is an EpochNs (schemas/timestamps.py): integer nanoseconds, exact whatever the source.
_SCALE = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def timestamp_ns(moment: EpochNs) -> int:
    """A reading's time as a plain int of nanoseconds. An EpochNs already is one: this stays for the
    callers written when timestamps were datetimes (the KPI stage); new code uses ``message.ts``."""
    return int(moment)


def from_epoch(value: Any, where: str, unit: str = "s") -> EpochNs:
    """A JSON number of ``unit`` (s, ms, us, ns) since the epoch; ``auto`` tells the unit from the
    magnitude. A float is taken as its shortest decimal, which is what the sender wrote whenever a
    double can hold it (``1780271974.134364`` s is ...134364000 ns, where the float times 10**9 is
    ...134363904); a double holds about 16 digits, so epoch seconds keep microseconds at best:
    senders that need nanoseconds send an integer. Not a string or a boolean."""
    number: int | float = as_int(value, where) if value.__class__ is int else as_float(value, where)
    if unit == "auto":
        magnitude = abs(number)
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    scale = _SCALE[unit]
    ns = number * scale if number.__class__ is int else round(Decimal(repr(number)) * scale)
    if not TIME_MIN_NS <= ns <= TIME_MAX_NS:
        raise invalid(where, f"{show(value)} is not a usable time (outside 1677-2262)")
    return from_ns(ns)


def from_rfc3339(value: Any, where: str) -> EpochNs:
    """An RFC 3339 string, to the nanosecond (the canonical ``ts`` rule)."""
    text = as_str(value, where)
    try:
        return parse_rfc3339(text)
    except ValueError as error:
        raise invalid(where, f"{show(text)}: {error}") from None


# --- validation ------------------------------------------------------------------------------------
def build(model: type[M], data: dict[str, Any], origin: str) -> M:
    """Validate ``data`` as a canonical ``model``; problems are named by canonical field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise AdapterError("invalid", describe(error, origin)) from None


def describe(error: ValidationError, origin: str, limit: int = 4) -> str:
    problems = error.errors(include_url=False, include_input=False)
    parts = []
    for problem in problems[:limit]:
        location = ".".join(str(part) for part in problem["loc"]) or "(message)"
        parts.append(f"{location}: {problem['msg'].removeprefix('Value error, ')}")
    if len(problems) > limit:
        parts.append(f"... and {len(problems) - limit} more")
    return f"{origin} does not make a valid reading: " + "; ".join(parts)
