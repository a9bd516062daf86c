"""The MQTT topic convention: which topic levels are literal and which become tags.

The default is ``bxl/v1/{nis}/{site}/{kind}/{device}/{message}``: ``nis`` is the municipality's NIS
code, ``site`` the location, ``kind`` the device class (``ap``, ``switch``, ``router``, ``cpe``...),
``device`` the device id and ``message`` what the payload is (``metrics``, ``clients``,
``interfaces``, ``probe``, ``state``, ``event``). Every named level except ``message`` becomes an
InfluxDB tag. A pattern must name ``device`` and ``message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"^\{([a-z][a-z0-9_]*)\}$")
# \Z, not $: "$" also matches before a final newline, and "site\n" must not pass for a level.
_LEVEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")

# The payload schema each ``message`` level may carry.
MESSAGE_SCHEMAS: dict[str, frozenset[str]] = {
    "metrics": frozenset({"ap.metrics/1"}),
    "clients": frozenset({"ap.clients/1"}),
    "interfaces": frozenset({"if.counters/1"}),
    "probe": frozenset({"link.probe/1"}),
    "state": frozenset({"device.state/1"}),
    "event": frozenset({"device.event/1"}),
}


class TopicError(ValueError):
    """A topic that does not follow the convention."""


@dataclass(frozen=True, slots=True)
class TopicMatch:
    tags: tuple[tuple[str, str], ...]  # sorted by key, ``message`` excluded
    device: str
    message: str


class TopicPattern:
    """Parses topics of one pattern; remembers the topics it has seen (one entry per series)."""

    def __init__(self, pattern: str, cache_size: int = 200_000) -> None:
        levels = pattern.split("/")
        self.pattern = pattern
        self._levels: list[tuple[bool, str]] = []  # (is_placeholder, name_or_literal)
        names: list[str] = []
        for level in levels:
            found = _PLACEHOLDER.match(level)
            if found:
                names.append(found.group(1))
                self._levels.append((True, found.group(1)))
            elif not level or "{" in level or "}" in level or level in ("+", "#"):
                raise ValueError(f"topic pattern {pattern!r}: bad level {level!r}")
            else:
                self._levels.append((False, level))
        if len(set(names)) != len(names):
            raise ValueError(f"topic pattern {pattern!r}: a name is used twice")
        for required in ("device", "message"):
            if required not in names:
                raise ValueError(f"topic pattern {pattern!r}: must contain {{{required}}}")
        # Subscribe to everything below the root level, so that a device publishing a malformed
        # topic (wrong version, extra level) gets a dead letter that says why, instead of silence.
        root_named, root = self._levels[0]
        self.subscription = "#" if root_named else f"{root}/#"
        self._cache: dict[str, TopicMatch] = {}
        self._cache_size = cache_size

    def parse(self, topic: str) -> TopicMatch:
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        match = self._parse(topic)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # a flood of new topics must not grow memory without bound
        self._cache[topic] = match
        return match

    def _parse(self, topic: str) -> TopicMatch:
        levels = topic.split("/")
        if len(levels) != len(self._levels):
            raise TopicError(f"expected {len(self._levels)} levels ({self.pattern}), got {len(levels)}")
        values: dict[str, str] = {}
        for (named, text), value in zip(self._levels, levels, strict=True):
            if not named:
                if value != text:
                    raise TopicError(f"level {text!r} expected, got {value!r}")
                continue
            if not _LEVEL_VALUE.match(value):
                raise TopicError(f"level {{{text}}} has a bad value {value!r} (allowed: A-Z a-z 0-9 . _ -)")
            values[text] = value
        message = values.pop("message")
        if message not in MESSAGE_SCHEMAS:
            raise TopicError(f"unknown message level {message!r}; known: {', '.join(sorted(MESSAGE_SCHEMAS))}")
        return TopicMatch(tags=tuple(sorted(values.items())), device=values["device"], message=message)

    def build(self, **values: str) -> str:
        """The topic for the given level values (used by simulators and tests)."""
        return "/".join(values[text] if named else text for named, text in self._levels)
