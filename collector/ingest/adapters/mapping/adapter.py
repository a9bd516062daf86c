"""Declarative mappings: an operator onboards a JSON format without writing Python.

A mapping (``[[routing.mappings]]`` in the config) names a topic pattern, the canonical schema it
produces, where the time is, and for each canonical field a path into the payload with its type and
unit. It is compiled once, when the config is loaded, so ``check-config`` reports every mistake
(an unknown field, a unit that does not convert, a required field left unmapped) and the message
path runs only prepared closures::

    [[routing.mappings]]
    name = "acme-ap"
    pattern = "acme/{nis}/{site}/{device}/status"
    kind = "ap"
    schema = "ap.metrics/1"
    timestamp = { path = "t", format = "epoch_ms" }
    [routing.mappings.fields]
    uptime_s = { path = "sys.up_min", unit = "min" }
    cpu_pct = { path = "sys.load", unit = "fraction" }
    num_clients = { path = "wlan.assoc" }
    [routing.mappings.fields.radios]
    path = "wlan.radios"
    each = { band = { path = "ghz" }, channel = { path = "ch" }, width_mhz = { path = "bw" },
             tx_power_dbm = { path = "txp_mw", unit = "mW" } }

Paths are dot-separated keys, with integers indexing arrays (``radios.0.ch``); ``$`` is the whole
payload. A value goes through ``map`` (a lookup table, keys as text), then ``type`` (default: the
canonical field's type), then ``unit`` (converted to the unit in the canonical field's name) and
``scale`` (a plain factor). Types are checked as strictly as the canonical schema checks them: a
number must be a JSON number (an integer field takes a JSON integer, not ``23.0``), a boolean a
JSON boolean; a format that writes a number as text says so with ``from_text = true`` (then a plain
decimal such as ``"12"`` or ``"-3.5"`` is read, nothing looser). A text field takes a string, or a
number written as its decimal text (``2.4`` -> ``"2.4"``). A missing or null value is an error
unless the field says ``optional = true``. Client MAC addresses cannot be mapped.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from collector.ingest.adapters.base import (
    AdapterError,
    Reading,
    Source,
    as_float,
    as_int,
    build,
    from_epoch,
    from_ns,
    from_rfc3339,
    int_from_text,
    invalid,
    load_json,
    number_from_text,
    show,
)
from collector.ingest.topics import TopicPattern, check_level_value
from collector.settings import Section
from schemas.canonical import SCHEMA_MODELS

Scalar = bool | int | float | str


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Canonical units are in the field names; a mapping converts into them. Each family: suffixes, the
# canonical unit, and the units it accepts as (name -> function to the canonical unit).
_Convert = Callable[[float], float]


def _factor(k: float) -> _Convert:
    return lambda x: x * k


def _dbm_from_mw(x: float) -> float:
    if x <= 0:
        raise ValueError("a power in mW must be positive to convert to dBm")
    return 10.0 * math.log10(x)


_UNITS: list[tuple[tuple[str, ...], str, dict[str, _Convert]]] = [
    (("_dbm",), "dBm", {"dBm": _factor(1), "mW": _dbm_from_mw, "W": lambda x: _dbm_from_mw(x * 1000.0)}),
    (("_db",), "dB", {"dB": _factor(1)}),
    (("_ms",), "ms", {"ms": _factor(1), "s": _factor(1e3), "us": _factor(1e-3), "ns": _factor(1e-6)}),
    (
        ("_s",),
        "s",
        {
            "s": _factor(1),
            "ms": _factor(1e-3),
            "us": _factor(1e-6),
            "ns": _factor(1e-9),
            "min": _factor(60),
            "h": _factor(3600),
            "d": _factor(86400),
            "cs": _factor(0.01),
        },
    ),
    (("_pct",), "percent", {"percent": _factor(1), "fraction": _factor(100), "permille": _factor(0.1)}),
    (
        ("_bytes", "_octets"),
        "B",
        {
            "B": _factor(1),
            "bit": _factor(1 / 8),
            "kB": _factor(1e3),
            "MB": _factor(1e6),
            "GB": _factor(1e9),
            "KiB": _factor(1024),
            "MiB": _factor(1024**2),
            "GiB": _factor(1024**3),
        },
    ),
    (("_mbps",), "Mbps", {"bps": _factor(1e-6), "kbps": _factor(1e-3), "Mbps": _factor(1), "Gbps": _factor(1e3)}),
    (("_mhz",), "MHz", {"Hz": _factor(1e-6), "kHz": _factor(1e-3), "MHz": _factor(1), "GHz": _factor(1e3)}),
    (("_c",), "C", {"C": _factor(1), "F": lambda x: (x - 32.0) * 5.0 / 9.0, "K": lambda x: x - 273.15}),
]

_ENVELOPE = {"schema_id", "device_id", "ts"}
_PATH = re.compile(r"^(\$|[^.\s]+(\.[^.\s]+)*)$")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def unit_family(name: str) -> tuple[str, dict[str, _Convert]] | None:
    for suffixes, canonical, units in _UNITS:
        if name.endswith(suffixes):
            return canonical, units
    return None


# --- configuration ---------------------------------------------------------------------------------
class FieldSpec(Section):
    """Where one canonical field comes from, and how its value is converted."""

    path: str | None = Field(None, description="dot path into the payload; '$' is the whole payload")
    const: Scalar | None = Field(None, description="a fixed value instead of a path")
    type: Literal["int", "float", "str", "bool"] | None = Field(None, description="default: the canonical type")
    unit: str | None = Field(None, description="the payload's unit, converted to the canonical field's")
    scale: float | None = Field(None, description="multiply by this (after unit conversion)")
    map: dict[str, Scalar] | None = Field(None, description="lookup table: payload value (as text) -> value")
    optional: bool = Field(False, description="a missing or null value leaves the field out instead of rejecting")
    from_text: bool = Field(False, description='the payload writes this number as text, e.g. "12.5"')
    each: dict[str, FieldSpec] | None = Field(None, description="for list fields: the fields of each element")
    fields: dict[str, FieldSpec] | None = Field(None, description="for object fields (event attributes)")

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str | None) -> str | None:
        if value is not None and not _PATH.match(value):
            raise ValueError(f"path {value!r}: dot-separated keys without spaces, or '$'")
        return value


class TimestampSpec(Section):
    path: str
    format: Literal["rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "epoch_auto"] = "epoch_auto"


class MappingConfig(Section):
    """One ``[[routing.mappings]]`` entry."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    pattern: str = Field(description="topic pattern: literal levels, {name} levels become tags, + ignored")
    schema_id: str = Field(alias="schema", description="the canonical schema produced, e.g. ap.metrics/1")
    kind: str | None = Field(None, description="device class tag, unless the pattern has a {kind} level")
    timestamp: TimestampSpec | None = Field(None, description="default: the time the collector received it")
    fields: dict[str, FieldSpec]

    _compiled: CompiledMapping | None = PrivateAttr(None)
    _topic_pattern: TopicPattern | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _compiles(self) -> MappingConfig:
        pattern = TopicPattern.for_route(self.pattern)
        check_kind(self.kind)
        if self.kind is None and "kind" not in pattern.names:
            raise ValueError('needs kind = "..." or a {kind} level in the pattern')
        # Compiled once, here: check-config reports what does not compile, and the adapter reuses it.
        self._compiled = compile_mapping(self)
        self._topic_pattern = pattern
        return self

    @property
    def compiled(self) -> CompiledMapping:
        assert self._compiled is not None  # set by the validator
        return self._compiled

    @property
    def topic_pattern(self) -> TopicPattern:
        assert self._topic_pattern is not None  # set by the validator
        return self._topic_pattern


def check_kind(value: str | None) -> str | None:
    """A ``kind`` setting must be usable as a tag value (like a topic level)."""
    return None if value is None else check_level_value(value, "kind")


# --- compiling -------------------------------------------------------------------------------------
Extract = Callable[[Any, str], Any]  # (payload node, location prefix) -> value or MISSING


def _compile_path(path: str) -> Callable[[Any], Any]:
    if path == "$":
        return lambda node: node
    steps = [(part, int(part) if part.lstrip("-").isdigit() else None) for part in path.split(".")]

    def get(node: Any) -> Any:
        for key, index in steps:
            if isinstance(node, dict):
                node = node.get(key, MISSING)
            elif isinstance(node, list) and index is not None and -len(node) <= index < len(node):
                node = node[index]
            else:
                return MISSING
        return node

    return get


def _map_key(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _base_type(annotation: Any) -> Any:
    """int, float, str, bool, a model class, list[...] or dict[...] behind Optional/Annotated/Literal."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            annotation = options[0] if len(options) == 1 else options
            if isinstance(annotation, list):  # EventAttribute: str | int | float | bool
                return "scalar"
        elif origin is Literal:
            return type(get_args(annotation)[0])
        else:
            return annotation


def _scalar_converter(name: str, spec: FieldSpec, target: Any, where: str) -> Callable[[Any, str], Any]:
    kind = spec.type or {int: "int", float: "float", str: "str", bool: "bool"}.get(target)
    if kind is None:
        kind = "any"
    family = unit_family(name)
    to_canonical: _Convert | None = None
    if spec.unit is not None:
        if family is None:
            raise ValueError(f"{where}: {name} has no unit (units are in canonical field names); use scale")
        canonical, units = family
        if spec.unit not in units:
            raise ValueError(f"{where}: unit {spec.unit!r} does not convert to {canonical}; known: {sorted(units)}")
        to_canonical = units[spec.unit]
    if (to_canonical is not None or spec.scale is not None) and kind not in ("int", "float"):
        raise ValueError(f"{where}: unit and scale need a numeric type, {name} is {kind}")
    if spec.from_text and kind not in ("int", "float"):
        raise ValueError(f"{where}: from_text reads numbers, {name} is {kind}")
    table = spec.map
    scale = spec.scale
    read_int = int_from_text if spec.from_text else as_int
    read_number = number_from_text if spec.from_text else as_float

    def convert(raw: Any, location: str) -> Any:
        if table is not None:
            key = _map_key(raw)
            if key not in table:
                known = ", ".join(sorted(table)[:8])
                raise invalid(location, f"value {show(raw)} is not in the mapping's table (known: {known})")
            raw = table[key]
        if kind == "int" and to_canonical is None and scale is None:
            return read_int(raw, location)
        if kind in ("int", "float"):
            number = read_number(raw, location)
            try:
                if to_canonical is not None:
                    number = to_canonical(number)
            except ValueError as error:
                raise invalid(location, str(error)) from None
            if scale is not None:
                number *= scale
            if not math.isfinite(number):
                raise invalid(location, f"{show(raw)} converts to {number}, not a finite number")
            return round(number) if kind == "int" else number
        if kind == "str":
            if isinstance(raw, str):
                return raw
            if raw.__class__ is int or raw.__class__ is float:
                return _map_key(raw)
            raise invalid(location, f"expected text, got {show(raw)}")
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            raise invalid(location, f"expected true or false, got {show(raw)}")
        if isinstance(raw, dict | list):
            raise invalid(location, f"expected a single value, got {show(raw)}")
        return raw

    return convert


def _compile_field(name: str, spec: FieldSpec, annotation: Any, where: str) -> Extract:
    target = _base_type(annotation)
    is_list = get_origin(target) is list
    is_dict = get_origin(target) is dict
    if (spec.path is None) == (spec.const is None):
        raise ValueError(f"{where}: give either path or const")
    if is_list:
        item = get_args(target)[0]
        if spec.each is None or not (isinstance(item, type) and issubclass(item, BaseModel)):
            raise ValueError(f"{where}: {name} is a list; map its elements with each = {{...}}")
        if spec.path is None:
            raise ValueError(f"{where}: {name} needs a path to an array")
        return _compile_list(spec.path, _compile_object(item, spec.each, f"{where}.each"), spec.optional)
    if is_dict:
        if spec.fields is None or spec.path is None:
            raise ValueError(f"{where}: {name} is an object; give path and fields = {{...}}")
        for key in spec.fields:
            if not _ATTRIBUTE.match(key):
                raise ValueError(f"{where}.fields: key {key!r} must match {_ATTRIBUTE.pattern}")
        inner = {key: _compile_field(key, sub, Any, f"{where}.fields.{key}") for key, sub in spec.fields.items()}
        return _compile_dict(spec.path, inner, spec.optional)
    if spec.each is not None or spec.fields is not None:
        raise ValueError(f"{where}: {name} is a single value; each/fields do not apply")
    if spec.const is not None:
        constant = _scalar_converter(name, spec, target, where)(spec.const, where)
        return lambda node, prefix: constant
    assert spec.path is not None
    get = _compile_path(spec.path)
    convert = _scalar_converter(name, spec, target, where)
    path, optional = spec.path, spec.optional

    def extract(node: Any, prefix: str) -> Any:
        raw = get(node)
        if raw is MISSING or raw is None:
            if optional:
                return MISSING
            raise invalid(f"{prefix}{path}", f"{'missing' if raw is MISSING else 'is null'} (maps to {name})")
        return convert(raw, f"{prefix}{path}")

    return extract


def _compile_object(
    model: type[BaseModel], specs: dict[str, FieldSpec], where: str
) -> Callable[[Any, str], dict[str, Any]]:
    model_fields = model.model_fields
    compiled: list[tuple[str, Extract]] = []
    problems: list[str] = []  # every mistake at once, so that check-config names them all
    for name, spec in specs.items():
        if name == "clients" or name == "mac":
            problems.append(
                f"{where}.{name}: client entries cannot be mapped: client MAC addresses never "
                "leave the adapter; map the summary fields instead"
            )
        elif name in _ENVELOPE or name not in model_fields:
            known = sorted(set(model_fields) - _ENVELOPE - {"clients"})
            problems.append(
                f"{where}: {name!r} is not a field of {_model_name(model)} that can be mapped; "
                f"known: {', '.join(known)}"
            )
        else:
            try:
                compiled.append((name, _compile_field(name, spec, model_fields[name].annotation, f"{where}.{name}")))
            except ValueError as error:
                problems.append(str(error))
    for name, info in model_fields.items():
        if info.is_required() and name not in specs and name not in _ENVELOPE and name != "seq":
            problems.append(f"{where}: required field {name!r} of {_model_name(model)} is not mapped")
    if problems:
        raise ValueError("; ".join(problems))

    def extract(node: Any, prefix: str) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, get in compiled:
            value = get(node, prefix)
            if value is not MISSING:
                data[name] = value
        return data

    return extract


def _compile_list(path: str, element: Callable[[Any, str], dict[str, Any]], optional: bool) -> Extract:
    get = _compile_path(path)

    def extract(node: Any, prefix: str) -> Any:
        items = get(node)
        if items is MISSING or items is None:
            if optional:
                return MISSING
            raise invalid(f"{prefix}{path}", "missing")
        if not isinstance(items, list):
            raise invalid(f"{prefix}{path}", f"expected an array, got {show(items)}")
        return [element(item, f"{prefix}{path}.{i}.") for i, item in enumerate(items)]

    return extract


def _compile_dict(path: str, inner: dict[str, Extract], optional: bool) -> Extract:
    get = _compile_path(path)

    def extract(node: Any, prefix: str) -> Any:
        obj = get(node)
        if obj is MISSING or obj is None:
            if optional:
                return MISSING
            raise invalid(f"{prefix}{path}", "missing")
        data = {}
        for key, sub in inner.items():
            value = sub(obj, f"{prefix}{path}.")
            if value is not MISSING:
                data[key] = value
        return data

    return extract


def _model_name(model: type[BaseModel]) -> str:
    schema = model.model_fields.get("schema_id")
    if schema is not None:
        return str(get_args(schema.annotation)[0])
    return model.__name__


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    name: str
    schema: str
    model: type[BaseModel]
    extract: Callable[[Any, str], dict[str, Any]]
    timestamp: Callable[[Any], Any] | None
    timestamp_path: str
    timestamp_format: str


def compile_mapping(config: MappingConfig) -> CompiledMapping:
    model = SCHEMA_MODELS.get(config.schema_id)
    if model is None:
        raise ValueError(f"schema {config.schema_id!r} is unknown; known: {', '.join(sorted(SCHEMA_MODELS))}")
    extract = _compile_object(model, config.fields, "fields")
    stamp = config.timestamp
    return CompiledMapping(
        name=config.name,
        schema=config.schema_id,
        model=model,
        extract=extract,
        timestamp=_compile_path(stamp.path) if stamp else None,
        timestamp_path=stamp.path if stamp else "",
        timestamp_format=stamp.format if stamp else "",
    )


class MappingAdapter:
    """Runs one compiled mapping."""

    def __init__(self, config: MappingConfig) -> None:
        self.name = config.name
        self.mapping = config.compiled
        self._needs_seq = "seq" in self.mapping.model.model_fields and "seq" not in config.fields
        self._seq_required = self._needs_seq and self.mapping.model.model_fields["seq"].is_required()

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        mapping = self.mapping
        document = load_json(payload)
        data = mapping.extract(document, "")
        data["schema"] = mapping.schema
        data["device_id"] = source.device
        if mapping.timestamp is not None:
            raw = mapping.timestamp(document)
            if raw is MISSING or raw is None:
                raise invalid(mapping.timestamp_path, "missing (the mapping's timestamp)")
            if mapping.timestamp_format == "rfc3339":
                data["ts"] = from_rfc3339(raw, mapping.timestamp_path)
            else:
                data["ts"] = from_epoch(raw, mapping.timestamp_path, mapping.timestamp_format.removeprefix("epoch_"))
        elif mapping.schema != "device.state/1":
            data["ts"] = from_ns(received_ns)
        if self._seq_required:
            data["seq"] = 0
        if source.kind is None:  # pragma: no cover - the config requires a kind or a {kind} level
            raise AdapterError("invalid", f"mapping {self.name!r}: no kind")
        message = build(mapping.model, data, f"mapping {self.name!r}")
        return [Reading(source.kind, message)]  # type: ignore[arg-type]
