"""A reader for InfluxDB line protocol, as Telegraf's ``influx`` serializer writes it.

``measurement[,tag=value...] field=value[,field=value...] [timestamp_ns]``, one point per line;
blank lines and ``#`` comments are skipped. Escapes: ``\\,`` ``\\ `` in the measurement, plus ``\\=``
in tag keys, tag values and field keys; string field values are double-quoted with ``\\"`` and
``\\\\``. Integers end in ``i`` (``u`` for unsigned), booleans are ``t``/``true``/``f``/``false`` in
any of their documented spellings, anything else is a float. A malformed line raises
:class:`AdapterError` (``bad_line_protocol``) naming the line and what is wrong with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from collector.ingest.adapters.base import AdapterError, mask
from collector.ingest.lineprotocol import TIME_MAX_NS, TIME_MIN_NS

# Possessive quantifiers (Python 3.11+): runs are taken whole and never backtracked into.
_HEAD = re.compile(r"((?:[^\\ ]++|\\.)++) ((?:[^\\ \"]++|\\.|\"(?:[^\"\\]++|\\.)*+\")++)(?: (-?[0-9]+))? *$")
_SPLIT = re.compile(r"(?<!\\),")
_TAG = re.compile(r"((?:[^=\\]|\\.)+)=(.+)$")
_PAIR = r"(?:[^=,\\]++|\\.)++=(?:\"(?:[^\"\\]++|\\.)*+\"|[^,\"]++)"
_FIELDS = re.compile(f"{_PAIR}(?:,{_PAIR})*+")
_FIELD_ALL = re.compile(r"((?:[^=,\\]++|\\.)++)=(\"(?:[^\"\\]++|\\.)*+\"|[^,\"]++)")
_UNESCAPE = re.compile(r"\\([,= ])")
_UNESCAPE_STRING = re.compile(r"\\([\"\\])")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


@dataclass(slots=True)
class Point:
    name: str
    tags: dict[str, str]
    fields: dict[str, Any]
    timestamp_ns: int | None
    where: str  # "line 3"


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def _value(text: str, where: str, key: str) -> Any:
    if text[0] == '"':
        body = text[1:-1]
        return _UNESCAPE_STRING.sub(r"\1", body) if "\\" in body else body
    last = text[-1]
    if last in "iu":
        try:
            number = int(text[:-1])
        except ValueError:
            raise AdapterError(
                "bad_line_protocol", f"{where}: field {key!r}: {mask(repr(text))} is not an integer"
            ) from None
        if last == "u" and number < 0:
            raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: unsigned {mask(repr(text))} is negative")
        return number
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        number_f = float(text)
    except ValueError:
        problem = f"{mask(repr(text))} is not a number, boolean or quoted string"
        raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: {problem}") from None
    if not math.isfinite(number_f):
        raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: {mask(repr(text))} is not a finite number")
    return number_f


def _fields(text: str, where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if '"' not in text and "\\" not in text:  # the common case: no strings, no escapes
        for part in text.split(","):
            key, equals, raw = part.partition("=")
            if not equals or not key or not raw:
                raise AdapterError("bad_line_protocol", f"{where}: field {mask(repr(part))} is not key=value")
            fields[key] = _value(raw, where, key)
        return fields
    if _FIELDS.fullmatch(text) is None:  # findall alone would skip what does not match
        raise AdapterError("bad_line_protocol", f"{where}: cannot read the fields from {mask(repr(text[:60]))}")
    found = _FIELD_ALL.findall(text)
    escaped = "\\" in text
    for key, raw in found:
        name = _unescape(key) if escaped else key
        fields[name] = _value(raw, where, name)
    return fields


def _stamp(text: str, where: str) -> int:
    stamp = int(text)  # ASCII digits with an optional minus, checked by the caller
    if not TIME_MIN_NS <= stamp <= TIME_MAX_NS:
        raise AdapterError(
            "bad_line_protocol",
            f"{where}: timestamp {text[:40]} is outside InfluxDB's range (64-bit nanoseconds, 1677 to 2262)",
        )
    return stamp


def _problem(line: str) -> str:
    return "no fields" if " " not in line.strip() else "expected 'measurement[,tags] fields [timestamp]'"


def parse(text: str) -> list[Point]:
    points = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {number}"
        if "\\" not in line and '"' not in line:  # the common case: nothing escaped, no strings
            pieces = line.rstrip(" ").split(" ")
            if len(pieces) == 2:
                series, field_text, stamp = pieces[0], pieces[1], None
            elif len(pieces) == 3 and pieces[2].removeprefix("-").isdigit() and pieces[2].isascii():
                series, field_text, stamp = pieces
            else:
                raise AdapterError("bad_line_protocol", f"{where}: {_problem(line)}: {mask(repr(line[:60]))}")
            if not series or not field_text:
                raise AdapterError("bad_line_protocol", f"{where}: {_problem(line)}: {mask(repr(line[:60]))}")
        else:
            head = _HEAD.match(line)
            if head is None:
                raise AdapterError("bad_line_protocol", f"{where}: {_problem(line)}: {mask(repr(line[:60]))}")
            series, field_text, stamp = head.groups()
        parts = _SPLIT.split(series)
        if not parts[0]:
            raise AdapterError("bad_line_protocol", f"{where}: no measurement name")
        tags: dict[str, str] = {}
        for part in parts[1:]:
            tag = _TAG.match(part)  # an empty part (",,") does not match either
            if tag is None:
                raise AdapterError("bad_line_protocol", f"{where}: tag {mask(repr(part))} is not key=value")
            tags[_unescape(tag.group(1))] = _unescape(tag.group(2))
        points.append(
            Point(
                _unescape(parts[0]),
                tags,
                _fields(field_text, where),
                _stamp(stamp, where) if stamp is not None else None,
                where,
            )
        )
    return points
