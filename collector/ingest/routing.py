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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model, field_validator, model_validator

from collector.ingest.adapters import builtin_adapters
from collector.ingest.adapters.base import Adapter
from collector.ingest.adapters.mapping.adapter import MappingAdapter, MappingConfig, check_kind
from collector.ingest.topics import TopicError, TopicPattern
from collector.settings import Section

Tags = tuple[tuple[str, str], ...]

RouteError = TopicError  # a topic under a route's root that its pattern does not match


@dataclass(slots=True)
class Route:
    name: str
    pattern: TopicPattern
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
class AdapterRouteConfig(Section):
    """One builtin vendor adapter: on or off, its topic pattern, and optionally a fixed ``kind``."""

    enabled: bool = True
    pattern: str
    kind: str | None = Field(None, description="device class for every message; default: the adapter decides")

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        TopicPattern.for_route(value)  # raises ValueError naming the problem
        return value

    @field_validator("kind")
    @classmethod
    def _valid_kind(cls, value: str | None) -> str | None:
        return check_kind(value)


class _RoutingBase(Section):
    """``[routing]``: one section per builtin adapter (``[routing.unifi]`` ...) and the operator's
    declarative mappings (``[[routing.mappings]]``)."""

    mappings: list[MappingConfig] = Field(default_factory=list, max_length=256)

    @model_validator(mode="after")
    def _unique_names(self) -> _RoutingBase:
        names = [m.name for m in self.mappings]
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(builtin_adapters())))
        if clash:
            raise ValueError(f"mappings: names must be unique and differ from the builtin adapters: {clash}")
        return self

    def builtin(self) -> list[tuple[str, AdapterRouteConfig]]:
        return [(name, getattr(self, name)) for name in builtin_adapters()]

    @property
    def subscriptions(self) -> list[str]:
        patterns = [m.pattern for m in self.mappings]
        patterns += [options.pattern for _, options in self.builtin() if options.enabled]
        return list(dict.fromkeys(TopicPattern.for_route(p).subscription for p in patterns))


def _routing_model() -> Any:
    """The ``[routing]`` model: a section per adapter the registry finds, defaulting to its pattern."""
    sections: dict[str, Any] = {}
    for name, info in builtin_adapters().items():
        # A section of its own, so that a partial [routing.<name>] keeps the adapter's default pattern.
        section = create_model(
            f"{name.capitalize()}RouteConfig",
            __base__=AdapterRouteConfig,
            __module__=__name__,
            pattern=(str, info.default_pattern),
            **info.settings,
        )
        sections[name] = (section, section())  # type: ignore[call-arg]
    return create_model("RoutingConfig", __base__=_RoutingBase, __module__=__name__, **sections)


if TYPE_CHECKING:
    RoutingConfig = _RoutingBase
else:
    RoutingConfig = _routing_model()


def build_routes(config: _RoutingBase) -> list[Route]:
    """Mappings first (an operator's own rule wins), then the enabled builtin adapters."""
    routes = [Route(m.name, m.topic_pattern, MappingAdapter(m), m.kind) for m in config.mappings]
    adapters = builtin_adapters()
    for name, options in config.builtin():
        if options.enabled:
            pattern = TopicPattern.for_route(options.pattern)
            info = adapters[name]
            adapter = info.factory(**{key: getattr(options, key) for key in info.settings})
            routes.append(Route(name, pattern, adapter, options.kind))
    return routes


def subscriptions(canonical: str, routes: _RoutingBase) -> list[str]:
    """The canonical root's subscription plus every route's, leaving out any that another covers
    (overlapping subscriptions would make the broker deliver a message twice)."""
    filters = list(dict.fromkeys([canonical, *routes.subscriptions]))
    prefixes = [tuple(f.split("/")[:-1]) for f in filters]  # every filter here is "<levels>/#" or "#"
    kept = []
    for i, prefix in enumerate(prefixes):
        covered = any(
            j != i and len(other) < len(prefix) and prefix[: len(other)] == other for j, other in enumerate(prefixes)
        )
        if not covered:
            kept.append(filters[i])
    return kept
