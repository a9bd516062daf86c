"""InfluxDB line protocol, written by hand because it is the hottest code we have.

Escaping rules (docs.influxdata.com, "Line protocol", special characters): measurement names escape
commas and spaces; tag keys, tag values and field keys escape commas, equals signs and spaces;
string field values escape double quotes and backslashes. Line protocol has no escape for a
newline, and InfluxDB 1.x does not unescape backslashes in tags, so values that would need
either are refused (EncodeError) instead of being stored wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

FieldValue = int | float | str | bool


class EncodeError(ValueError):
    """A value that cannot be written as line protocol without changing it."""


_MEASUREMENT_TABLE = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_TABLE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _check_name_text(text: str, what: str) -> None:
    if not text:
        raise EncodeError(f"empty {what}")
    if "\n" in text or "\r" in text or "\\" in text:
        raise EncodeError(f"{what} {text!r} contains a newline or backslash")


def escape_measurement(name: str) -> str:
    _check_name_text(name, "measurement")
    if name.startswith("#"):
        raise EncodeError(f"measurement {name!r} would read as a comment")
    return name.translate(_MEASUREMENT_TABLE)


def escape_key(text: str, what: str = "tag") -> str:
    """Escape a tag key, tag value or field key."""
    _check_name_text(text, what)
    return text.translate(_KEY_TABLE)


def format_field_value(value: FieldValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise EncodeError(f"integer {value} is outside InfluxDB's 64-bit range")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{value} is not a finite number")
        return repr(value)
    if "\n" in value or "\r" in value:
        raise EncodeError("string field contains a newline")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,k=v,...`` with tags sorted by key (InfluxDB's own order) and empty ones left out."""
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        if value:
            parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, 'tag value')}")
    return ",".join(parts)


def encode_fields(fields: Iterable[tuple[str, FieldValue | None]]) -> str:
    """``k=v,...`` leaving out None values; at least one field must remain."""
    text = ",".join(
        f"{escape_key(key, 'field key')}={format_field_value(value)}" for key, value in fields if value is not None
    )
    if not text:
        raise EncodeError("a point needs at least one field")
    return text


def encode_line(series: str, fields: Iterable[tuple[str, FieldValue | None]], timestamp_ns: int) -> str:
    return f"{series} {encode_fields(fields)} {timestamp_ns}"
