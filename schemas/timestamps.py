"""The time of a reading, kept to the nanosecond the device sent.

A canonical ``ts`` is an RFC 3339 string with up to nine fractional digits. Python's ``datetime``
stops at microseconds, so two events of one device 1 ns apart would become one point; InfluxDB
stores nanoseconds. A timestamp is therefore an :class:`EpochNs`: an ``int`` of nanoseconds since
1970-01-01T00:00:00Z. Being an ``int``, the rest of the code (normalise, the time window, the KPI
engine) compares, subtracts and writes it as it is, with no conversion and no loss.

What is read (RFC 3339 section 5.6, the forms devices send): ``YYYY-MM-DDTHH:MM:SS``, an optional
fraction of 1 to 9 digits, then ``Z`` or an offset ``+HH:MM``/``-HH:MM`` (``-00:00``, "offset
unknown", is read as UTC). ``T`` and ``Z`` may be lower case. Refused: no offset (a local time is
ambiguous), more than nine fractional digits (they cannot be stored; rounding would be a guess),
a leap second ``:60`` (InfluxDB and Python have none), a 24:00, a space instead of ``T``, anything else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The shape is checked here; the calendar (day of month, hours, offset) by datetime.fromisoformat.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# The whole seconds of recent times, by their text without the fraction: devices report on the same
# seconds, so most messages skip the calendar arithmetic. Bounded: cleared when full.
_SECONDS: dict[str, int] = {}
_SECONDS_MAX = 4096


class EpochNs(int):
    """Nanoseconds since the Unix epoch (UTC). An ``int`` with a readable ``repr`` and ``isoformat``.

    Only a validated time is an EpochNs: the canonical schemas accept one as ``ts`` (what adapters
    build with :func:`from_ns`), and refuse a plain integer, which in a payload would be a number
    of unknown unit."""

    __slots__ = ()

    def isoformat(self) -> str:
        """RFC 3339 in UTC with as many fractional digits as needed (none, or up to nine)."""
        seconds, fraction = divmod(int(self), NS_PER_S)
        try:
            moment = _EPOCH + timedelta(seconds=seconds)
        except OverflowError:
            return f"{int(self)} ns since 1970"
        text = moment.replace(tzinfo=None).isoformat(timespec="seconds")
        return f"{text}.{fraction:09d}".rstrip("0") + "Z" if fraction else f"{text}Z"

    def __repr__(self) -> str:
        return f"EpochNs({self.isoformat()!r})"

    # str() and f-strings give the digits, as for any int: line protocol writes the time with them.
    __str__ = int.__repr__


def parse_rfc3339(text: str) -> EpochNs:
    """The exact nanoseconds of an RFC 3339 time; ValueError saying what is wrong otherwise."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError("not an RFC 3339 time with a UTC offset, e.g. 2026-11-28T14:00:00.250Z")
    fraction = found.group(1)
    if fraction is not None and len(fraction) > 9:
        raise ValueError(f"{len(fraction)} fractional digits: at most 9 (nanoseconds) can be stored")
    whole = text[:19] + found.group(2)
    ns = _SECONDS.get(whole)
    if ns is None:
        try:
            moment = datetime.fromisoformat(whole.upper())  # the calendar, at C speed, to the second
        except ValueError as error:
            raise ValueError(f"not a valid time: {error}") from None
        delta = moment - _EPOCH
        ns = (delta.days * 86_400 + delta.seconds) * NS_PER_S
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[whole] = ns
    if fraction is not None:
        ns += int(fraction.ljust(9, "0"))
    return EpochNs(ns)


def validate_timestamp(value: Any) -> EpochNs:
    """The pydantic validator of a canonical ``ts``: an RFC 3339 string, or an EpochNs an adapter built."""
    if value.__class__ is EpochNs:
        return value
    if isinstance(value, str):
        return parse_rfc3339(value)
    raise ValueError(f"expected an RFC 3339 time string, got {type(value).__name__}")


def from_ns(ns: int) -> EpochNs:
    return EpochNs(ns)


def from_datetime(moment: datetime) -> EpochNs:
    """Exact nanoseconds of an aware datetime (microsecond precision, as datetimes have)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no UTC offset")
    delta = moment - _EPOCH
    return EpochNs(((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000)
