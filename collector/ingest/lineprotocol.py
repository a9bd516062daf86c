"""InfluxDB line protocol, written by hand because it is the hottest code we have.

Escaping rules (docs.influxdata.com, "Line protocol", special characters): measurement names escape
commas and spaces; tag keys, tag values and field keys escape commas, equals signs and spaces;
string field values escape double quotes and backslashes.

What line protocol cannot carry is refused (EncodeError) instead of being stored wrongly. Each rule
below was found by writing to a real InfluxDB 1.x (tests/property/test_lineprotocol_roundtrip.py):

- a newline in a name or string (there is no escape for it; a batch is split on newlines);
- a backslash in a measurement, tag or field key name: InfluxDB 1.x reads backslashes there in two
  ways (as escaping the next character when it splits a line, as escaping the character after it
  when it cuts a name), so ``a\\`` eats the separator that follows and ``a\\ b`` ends a name early;
  2.x and 3.x parsers differ again. Topic levels and canonical identifiers never contain one;
- a measurement starting with ``#`` (a comment), or with a tab or NUL, and a field key starting with
  a tab or NUL: InfluxDB skips those as whitespace and would store a different name;
- the tag key or field key ``time``: InfluxDB refuses the point, or (a field among others) drops
  that field without a word;
- integers beyond 64 bits, NaN and infinities, timestamps outside InfluxDB's
  [-2^63 + 2, 2^63 - 2] ns ("time outside range");
- a series key plus a field key longer than 65,535 bytes (with the 4-byte separator InfluxDB puts
  between them): "max key length exceeded".
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
TIME_MIN_NS = INT64_MIN + 2
TIME_MAX_NS = INT64_MAX - 1
MAX_KEY_BYTES = 65_535  # InfluxDB 1.x MaxKeyLength: series key + "#!~#" + field key

FieldValue = int | float | str | bool


class EncodeError(ValueError):
    """A value that cannot be written as line protocol without changing it."""


_MEASUREMENT_TABLE = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_TABLE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# A UTF-8 character is at most 4 bytes: below this many characters no key can reach MAX_KEY_BYTES.
_SHORT_KEY_CHARS = (MAX_KEY_BYTES - 4) // 4
# One encoded field, as this module writes it: a key (escapes only, no other backslash), "=", then a
# quoted string (with \" and \\ escapes) or a bare value.
_ENCODED_FIELD = re.compile(r'((?:[^\\=]++|\\.)++)=(?:"(?:[^"\\]++|\\.)*+"|[^,]*+),?')
# Escaped field keys: the normaliser uses a small fixed set, so a lookup replaces the checks.
_FIELD_KEYS: dict[str, str] = {}
_FIELD_KEYS_MAX = 4096
_CACHED_KEY_CHARS = 64  # longer keys are escaped each time: the cache stays small whatever arrives


def _check_name_text(text: str, what: str) -> None:
    if not text:
        raise EncodeError(f"empty {what}")
    if "\n" in text or "\r" in text or "\\" in text:
        raise EncodeError(f"{what} {text[:80]!r} contains a newline or backslash")


def escape_measurement(name: str) -> str:
    _check_name_text(name, "measurement")
    if name[0] in "#\t\x00":
        raise EncodeError(f"measurement {name[:80]!r} would read as a comment or start with whitespace")
    return name.translate(_MEASUREMENT_TABLE)


def escape_key(text: str, what: str = "tag") -> str:
    """Escape a tag key, tag value or field key."""
    _check_name_text(text, what)
    return text.translate(_KEY_TABLE)


def _new_field_key(key: str) -> str:
    _check_name_text(key, "field key")
    if key == "time":
        raise EncodeError("field key 'time' is refused by InfluxDB")
    if key[0] in "\t\x00":
        raise EncodeError(f"field key {key[:80]!r} starts with whitespace InfluxDB would skip")
    escaped = key.translate(_KEY_TABLE)
    if len(key) <= _CACHED_KEY_CHARS:
        if len(_FIELD_KEYS) >= _FIELD_KEYS_MAX:
            _FIELD_KEYS.clear()  # a flood of new keys (event attributes) must not grow memory without bound
        _FIELD_KEYS[key] = escaped
    return escaped


def format_field_value(value: FieldValue) -> str:
    cls = value.__class__  # exact types first: a float or a plain int is nearly every value
    if cls is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise EncodeError(f"{value} is not a finite number")
        return repr(value)
    if cls is int:
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            raise EncodeError(f"integer {value} is outside InfluxDB's 64-bit range")
        return f"{value}i"
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
            if key == "time":
                raise EncodeError("tag key 'time' is refused by InfluxDB")
            parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, 'tag value')}")
    return ",".join(parts)


def encode_field(key: str, value: FieldValue) -> str:
    """One ``k=v``: the key escaped (and checked) as a field key, the value as :func:`format_field_value`."""
    return f"{_FIELD_KEYS.get(key) or _new_field_key(key)}={format_field_value(value)}"


def _encoded(fields: Iterable[tuple[str, FieldValue | None]]) -> list[str]:
    """:func:`encode_field` of each field that is not None (written out: it runs per field)."""
    keys = _FIELD_KEYS
    return [
        f"{keys.get(key) or _new_field_key(key)}={format_field_value(value)}"
        for key, value in fields
        if value is not None
    ]


def encode_line(series: str, fields: Iterable[tuple[str, FieldValue | None]], timestamp_ns: int) -> str:
    """One line: ``series`` (from :func:`series_key`), the fields that are not None, the time. The
    fields are encoded first, then :func:`join_line` checks the line: with a bad value and a bad time,
    the error names the value."""
    return join_line(series, _encoded(fields), timestamp_ns)


def join_line(series: str, fields: list[str], timestamp_ns: int) -> str:
    """One line from fields already encoded (``k=v`` each: :func:`encode_field`, :class:`FieldWriter`).
    The checks of every line: a time InfluxDB can hold, a field at least, keys within its limit."""
    if not TIME_MIN_NS <= timestamp_ns <= TIME_MAX_NS:
        raise EncodeError(f"timestamp {timestamp_ns} ns is outside InfluxDB's range")
    if not fields:
        raise EncodeError("a point needs at least one field")
    text = ",".join(fields)
    if len(series) + len(text) > _SHORT_KEY_CHARS:
        _check_key_bytes(series, text)
    return f"{series} {text} {timestamp_ns}"


_isfinite = math.isfinite


class FieldWriter:
    """The fields of one fixed shape (a canonical model's), read from an object's attributes.

    Most of the ingest path's own CPU was line protocol (docs/performance.md, "Profile"): a list of
    (name, value) pairs per line, a key lookup and a function call per value. Here each key is
    escaped and checked once, when the writer is made; the values come from one ``attrgetter`` call;
    floats, plain ints and None (left out) are handled inline, anything else by
    :func:`format_field_value`. The output is :func:`encode_line`'s, value for value
    (tests/property/test_field_writer.py). Names are plain attribute names: ``attrgetter`` would read
    ``a.b`` as ``obj.a.b``, so a dotted name is refused.
    """

    __slots__ = ("_get", "_prefixes")

    def __init__(self, *names: str) -> None:
        if len(names) < 2:  # attrgetter of one name returns the value itself, not a tuple
            raise ValueError("a FieldWriter needs two names or more")
        if any("." in name for name in names):
            raise ValueError("a FieldWriter reads plain attributes: no name may contain a dot")
        self._get: Callable[[object], tuple[FieldValue | None, ...]] = operator.attrgetter(*names)
        self._prefixes = tuple((_FIELD_KEYS.get(name) or _new_field_key(name)) + "=" for name in names)

    def fields(self, obj: object) -> list[str]:
        """``k=v`` for each attribute that is not None, in the order of the names."""
        out: list[str] = []
        for prefix, value in zip(self._prefixes, self._get(obj), strict=True):
            cls = value.__class__
            if cls is float:
                if not _isfinite(value):  # type: ignore[arg-type]
                    raise EncodeError(f"{value} is not a finite number")
                out.append(prefix + repr(value))
            elif cls is int:
                if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                    raise EncodeError(f"integer {value} is outside InfluxDB's 64-bit range")
                out.append(f"{prefix}{value}i")
            elif value is not None:
                out.append(prefix + format_field_value(value))
        return out


def _check_key_bytes(series: str, fields_text: str) -> None:
    """InfluxDB keeps each field under series key + separator + field key, at most 65,535 bytes."""
    series_bytes = len(series.encode())
    for found in _ENCODED_FIELD.finditer(fields_text):
        if series_bytes + 4 + len(found.group(1).encode()) > MAX_KEY_BYTES:
            raise EncodeError(
                f"series key {series[:60]!r}... and field key {found.group(1)[:60]!r}... exceed "
                f"InfluxDB's {MAX_KEY_BYTES} bytes"
            )
