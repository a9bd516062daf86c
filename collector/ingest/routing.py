"""Which code reads a topic: the canonical pipeline, a vendor adapter or a declarative mapping.

A route is a topic pattern and what decodes its payloads. Pattern levels are literals, ``{name}``
placeholders, whose values become InfluxDB tags, or ``+`` (any value, not stored). A pattern must
start with a literal level (its *root*, what the collector subscribes to) and name ``{device}``.
The builtin vendor routes name ``nis``, ``site`` and ``device`` so that a vendor device's series
carry the same tags as a canonical device's; the adapter, the route's ``kind`` setting or a
``{kind}`` level supplies ``kind``.

Resolution of one topic, cached per topic (the hot path pays one dict lookup):

1. the first route, in order (mappings, then the builtin adapters), whose pattern matches;
2. else the canonical pattern, if the topic is under its root: it parses it or says why not
   (``bad_topic``), exactly as before routes existed;
3. else, if some route's root matches, that route says why the rest does not (``bad_topic``);
4. else ``no_route``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.ingest.adapters.base import Adapter
from collector.ingest.adapters.mapping.adapter import MappingAdapter, MappingConfig
from collector.ingest.adapters.meraki.adapter import MerakiAdapter
from collector.ingest.adapters.openwrt.adapter import NetJsonAdapter
from collector.ingest.adapters.telegraf.adapter import TelegrafAdapter
from collector.ingest.adapters.unifi.adapter import UnifiAdapter
from collector.ingest.topics import _LEVEL_VALUE as LEVEL_VALUE

Tags = tuple[tuple[str, str], ...]

_PLACEHOLDER = re.compile(r"^\{([a-z][a-z0-9_]*)\}$")


class RouteError(ValueError):
    """A topic under a route's root that its pattern does not match."""


class RoutePattern:
    """``root/{name}/+/...``: literal, named and ignored (``+``) levels."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.levels: list[tuple[Literal["literal", "named", "any"], str]] = []
        names: list[str] = []
        for level in pattern.split("/"):
            found = _PLACEHOLDER.match(level)
            if found:
                names.append(found.group(1))
                self.levels.append(("named", found.group(1)))
            elif level == "+":
                self.levels.append(("any", "+"))
            elif not level or "{" in level or "}" in level or "#" in level or "+" in level:
                raise ValueError(f"topic pattern {pattern!r}: bad level {level!r}")
            else:
                self.levels.append(("literal", level))
        if len(set(names)) != len(names):
            raise ValueError(f"topic pattern {pattern!r}: a name is used twice")
        if "device" not in names:
            raise ValueError(f"topic pattern {pattern!r}: must contain {{device}}")
        if self.levels[0][0] != "literal":
            raise ValueError(f"topic pattern {pattern!r}: must start with a literal level (what we subscribe to)")
        prefix = []
        for what, text in self.levels:
            if what != "literal":
                break
            prefix.append(text)
        self.prefix = tuple(prefix)
        self.subscription = "/".join(self.prefix) + "/#"
        self.names = tuple(names)

    def claims(self, levels: Sequence[str]) -> bool:
        """Whether the topic is under this pattern's literal prefix."""
        return tuple(levels[: len(self.prefix)]) == self.prefix

    def match(self, levels: Sequence[str]) -> dict[str, str]:
        if len(levels) != len(self.levels):
            raise RouteError(f"expected {len(self.levels)} levels ({self.pattern}), got {len(levels)}")
        values: dict[str, str] = {}
        for (what, text), value in zip(self.levels, levels, strict=True):
            if what == "literal":
                if value != text:
                    raise RouteError(f"level {text!r} expected ({self.pattern}), got {value!r}")
            elif not LEVEL_VALUE.match(value):
                label = "+" if what == "any" else f"{{{text}}}"
                raise RouteError(f"level {label} has a bad value {value!r} (allowed: A-Z a-z 0-9 . _ -)")
            elif what == "named":
                values[text] = value
        return values


@dataclass(slots=True)
class Route:
    name: str
    pattern: RoutePattern
    adapter: Adapter
    kind: str | None = None  # the route's ``kind`` setting


@dataclass(slots=True)
class AdapterTarget:
    """A topic resolved to a route: the device, and the tags per kind (cached, built once)."""

    route: Route
    device: str
    kind: str | None  # from a {kind} level or the route's setting
    base: Tags  # topic tags without ``kind``
    _by_kind: dict[str, Tags] = field(default_factory=dict)

    def tags(self, kind: str) -> Tags:
        tags = self._by_kind.get(kind)
        if tags is None:
            tags = self._by_kind[kind] = tuple(sorted((*self.base, ("kind", kind))))
        return tags


def resolve(routes: Sequence[Route], topic: str) -> AdapterTarget | RouteError | None:
    """The route for ``topic``; a RouteError if a route's root claims it but its pattern does not
    match; None if no route claims it."""
    levels = topic.split("/")
    first_error: RouteError | None = None
    for route in routes:
        if not route.pattern.claims(levels):
            continue
        try:
            values = route.pattern.match(levels)
        except RouteError as error:
            if first_error is None:
                first_error = RouteError(f"route {route.name!r}: {error}")
            continue
        device = values["device"]
        kind = values.pop("kind", None) or route.kind
        return AdapterTarget(route, device, kind, tuple(sorted(values.items())))
    return first_error


# --- configuration ---------------------------------------------------------------------------------
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_pattern(value: str) -> str:
    RoutePattern(value)  # raises ValueError naming the problem
    return value


def _check_kind(value: str | None) -> str | None:
    if value is not None and not LEVEL_VALUE.match(value):
        raise ValueError(f"kind {value!r}: allowed are A-Z a-z 0-9 . _ -, 1-64 characters")
    return value


class AdapterRouteConfig(_Section):
    """One builtin vendor adapter: on or off, its topic pattern, and optionally a fixed ``kind``."""

    enabled: bool = True
    pattern: str
    kind: str | None = Field(None, description="device class for every message; default: the adapter decides")

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        return _check_pattern(value)

    @field_validator("kind")
    @classmethod
    def _valid_kind(cls, value: str | None) -> str | None:
        return _check_kind(value)


class UnifiRouteConfig(AdapterRouteConfig):
    pattern: str = "unifi/{nis}/{site}/{device}/stat"


class OpenWrtRouteConfig(AdapterRouteConfig):
    pattern: str = "openwrt/{nis}/{site}/{device}/monitoring"


class TelegrafRouteConfig(AdapterRouteConfig):
    pattern: str = "telegraf/{nis}/{site}/{device}/+"


class MerakiRouteConfig(AdapterRouteConfig):
    pattern: str = "meraki/{nis}/{site}/{device}/alert"


class RoutingConfig(_Section):
    """``[routing]``: the vendor adapters and the operator's declarative mappings."""

    unifi: UnifiRouteConfig = UnifiRouteConfig()
    openwrt: OpenWrtRouteConfig = OpenWrtRouteConfig()
    telegraf: TelegrafRouteConfig = TelegrafRouteConfig()
    meraki: MerakiRouteConfig = MerakiRouteConfig()
    mappings: list[MappingConfig] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _unique_names(self) -> RoutingConfig:
        names = [m.name for m in self.mappings]
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(BUILTIN)))
        if clash:
            raise ValueError(f"mappings: names must be unique and differ from the builtin adapters: {clash}")
        return self

    def builtin(self) -> list[tuple[str, AdapterRouteConfig]]:
        return [(name, getattr(self, name)) for name in BUILTIN]

    @property
    def subscriptions(self) -> list[str]:
        patterns = [m.pattern for m in self.mappings]
        patterns += [options.pattern for _, options in self.builtin() if options.enabled]
        return list(dict.fromkeys(RoutePattern(p).subscription for p in patterns))


BUILTIN: dict[str, type[Adapter]] = {
    "unifi": UnifiAdapter,
    "openwrt": NetJsonAdapter,
    "telegraf": TelegrafAdapter,
    "meraki": MerakiAdapter,
}


def build_routes(config: RoutingConfig) -> list[Route]:
    """Mappings first (an operator's own rule wins), then the enabled builtin adapters."""
    routes = [Route(m.name, RoutePattern(m.pattern), MappingAdapter(m), m.kind) for m in config.mappings]
    for name, options in config.builtin():
        if options.enabled:
            routes.append(Route(name, RoutePattern(options.pattern), BUILTIN[name](), options.kind))
    return routes


def subscriptions(canonical: str, routes: RoutingConfig) -> list[str]:
    """The canonical root's subscription plus every route's, leaving out any that another covers
    (overlapping subscriptions would make the broker deliver a message twice)."""
    filters = list(dict.fromkeys([canonical, *routes.subscriptions]))
    prefixes = [tuple(f.split("/")[:-1]) for f in filters]  # every filter here is "<levels>/#" or "#"
    kept = []
    for i, prefix in enumerate(prefixes):
        covered = any(j != i and len(other) < len(prefix) and prefix[: len(other)] == other
                      for j, other in enumerate(prefixes))  # fmt: skip
        if not covered:
            kept.append(filters[i])
    return kept
