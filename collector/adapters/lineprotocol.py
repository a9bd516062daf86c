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

from collector.adapters.base import AdapterError

_HEAD = re.compile(r"((?:[^\\ ]|\\.)+) ((?:[^\\ \"]|\\.|\"(?:[^\"\\]|\\.)*\")+)(?: (-?[0-9]+))? *$")
_SPLIT = re.compile(r"(?<!\\),")
_TAG = re.compile(r"((?:[^=\\]|\\.)+)=(.+)$")
_FIELD = re.compile(r"((?:[^=,\\]|\\.)+)=(\"(?:[^\"\\]|\\.)*\"|[^,\"]+)(?:,|$)")
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
            raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: {text!r} is not an integer") from None
        if last == "u" and number < 0:
            raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: unsigned {text!r} is negative")
        return number
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        number_f = float(text)
    except ValueError:
        raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: {text!r} is not a number, boolean or "
                                                "quoted string") from None  # fmt: skip
    if not math.isfinite(number_f):
        raise AdapterError("bad_line_protocol", f"{where}: field {key!r}: {text!r} is not a finite number")
    return number_f


def _fields(text: str, where: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if '"' not in text and "\\" not in text:  # the common case: no strings, no escapes
        for part in text.split(","):
            key, equals, raw = part.partition("=")
            if not equals or not key or not raw:
                raise AdapterError("bad_line_protocol", f"{where}: field {part!r} is not key=value")
            fields[key] = _value(raw, where, key)
        return fields
    position = 0
    while position < len(text):
        found = _FIELD.match(text, position)
        if found is None:
            raise AdapterError("bad_line_protocol", f"{where}: cannot read the fields from {text[position:][:40]!r}")
        key = _unescape(found.group(1))
        fields[key] = _value(found.group(2), where, key)
        position = found.end()
    if text.endswith(","):
        raise AdapterError("bad_line_protocol", f"{where}: the field list ends with a comma")
    return fields


def parse(text: str) -> list[Point]:
    points = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {number}"
        head = _HEAD.match(line)
        if head is None:
            problem = "no fields" if " " not in line.strip() else "expected 'measurement[,tags] fields [timestamp]'"
            raise AdapterError("bad_line_protocol", f"{where}: {problem}: {line[:60]!r}")
        series, field_text, stamp = head.groups()
        parts = _SPLIT.split(series)
        if not parts[0]:
            raise AdapterError("bad_line_protocol", f"{where}: no measurement name")
        tags: dict[str, str] = {}
        for part in parts[1:]:
            tag = _TAG.match(part)  # an empty part (",,") does not match either
            if tag is None:
                raise AdapterError("bad_line_protocol", f"{where}: tag {part!r} is not key=value")
            tags[_unescape(tag.group(1))] = _unescape(tag.group(2))
        points.append(Point(_unescape(parts[0]), tags, _fields(field_text, where),
                            int(stamp) if stamp is not None else None, where))  # fmt: skip
    return points
