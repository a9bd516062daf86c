"""What every adapter shares: the adapter contract, typed access to vendor payloads, time conversions.

An adapter turns one vendor payload into canonical messages (``schemas/canonical.py``), validated, so
that ``collector/ingest/normalise.py`` stores them exactly as it stores a canonical device's. It never
writes, never logs and never keeps a client MAC address: per-client entries are summarised inside
the adapter and dropped. When the payload is not what the adapter expects it raises
:class:`AdapterError` with a stable reason code and a detail that names the problem and where it is
(``uplink.rx_bytes: expected an integer, got 'lots'``); the pipeline turns that into a dead letter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.canonical import CanonicalMessage

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    topic pattern it reads unless the config says otherwise.
    """

    name: str
    factory: Callable[[], Adapter]
    default_pattern: str


# --- decoding ------------------------------------------------------------------------------------
def load_json(payload: bytes | bytearray) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise AdapterError("bad_json", f"not JSON: {error}") from None


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
    """An integer; integral floats and decimal strings (some controllers send numbers as text) too."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise invalid(where, f"expected an integer, got {show(value)}")


def as_float(value: Any, where: str) -> float:
    """A number; decimal strings too (UniFi's ``system-stats`` are strings)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            if number == number and number not in (float("inf"), float("-inf")):
                return number
    raise invalid(where, f"expected a number, got {show(value)}")


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


def opt_float(obj: dict[str, Any], key: str, where: str = "") -> float | None:
    value = obj.get(key)
    return None if value is None else as_float(value, f"{where}{key}")


# --- time ------------------------------------------------------------------------------------------
def timestamp_ns(moment: datetime) -> int:
    """Exact integer nanoseconds (float seconds would lose the microseconds of today's dates)."""
    delta = moment - _EPOCH
    return ((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000


def from_ns(ns: int) -> datetime:
    """Exact (to the microsecond, like every canonical timestamp) from integer nanoseconds."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def from_epoch(value: Any, where: str, unit: str = "s") -> datetime:
    """An epoch number in ``unit`` (s, ms, us, ns); ``auto`` tells the unit from the magnitude."""
    number = as_float(value, where) if not isinstance(value, int) or isinstance(value, bool) else value
    if unit == "auto":
        magnitude = abs(number)
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    try:
        ns = number * scale if isinstance(number, int) else round(number * scale)
        return from_ns(ns)
    except (OverflowError, ValueError):
        raise invalid(where, f"{show(value)} is not a usable time") from None


def from_rfc3339(value: Any, where: str) -> datetime:
    text = as_str(value, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(where, f"{show(text)} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise invalid(where, f"{show(text)} has no UTC offset")
    return moment


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
        parts.append(f"{location}: {problem['msg']}")
    if len(problems) > limit:
        parts.append(f"... and {len(problems) - limit} more")
    return f"{origin} does not make a valid reading: " + "; ".join(parts)
