"""Topic patterns: which topic levels are literal, which become tags, and which are ignored.

One parser serves both uses:

- the **canonical convention** (``TopicPattern(text)``), by default
  ``bxl/v1/{nis}/{site}/{kind}/{device}/{message}``: ``nis`` is the municipality's NIS code, ``site``
  the location, ``kind`` the device class (``ap``, ``switch``, ``router``, ``cpe``...), ``device`` the
  device id and ``message`` what the payload is (``metrics``, ``clients``, ``interfaces``, ``probe``,
  ``state``, ``event``). Every named level except ``message`` becomes an InfluxDB tag. It must name
  ``device`` and ``message``; its first level may be a placeholder (the collector then subscribes to
  ``#``).
- **route patterns** of vendor adapters and mappings (``TopicPattern.for_route(text)``): literal
  levels, ``{name}`` placeholders (tags) and ``+`` (any value, not stored). They must start with a
  literal level (the root the collector subscribes to) and name ``device``.

A level value is 1-64 characters of ``A-Z a-z 0-9 . _ -``: anything else could not be a safe tag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_PLACEHOLDER = re.compile(r"^\{([a-z][a-z0-9_]*)\}$")
# \Z, not $: "$" also matches before a final newline, and "site\n" must not pass for a level.
LEVEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")

# The payload schema each ``message`` level may carry.
MESSAGE_SCHEMAS: dict[str, frozenset[str]] = {
    "metrics": frozenset({"ap.metrics/1"}),
    "clients": frozenset({"ap.clients/1"}),
    "interfaces": frozenset({"if.counters/1"}),
    "probe": frozenset({"link.probe/1"}),
    "state": frozenset({"device.state/1"}),
    "event": frozenset({"device.event/1"}),
}

LevelKind = Literal["literal", "named", "any"]


class TopicError(ValueError):
    """A topic that its pattern does not match; the message says which level and why."""


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """A canonical topic, parsed."""

    tags: tuple[tuple[str, str], ...]  # sorted by key, ``message`` excluded
    device: str
    message: str


def check_level_value(value: str, what: str) -> str:
    """``value`` if it may be a topic level or tag value; else a ValueError naming ``what``."""
    if not LEVEL_VALUE.match(value):
        raise ValueError(f"{what} {value!r}: allowed are A-Z a-z 0-9 . _ -, 1-64 characters")
    return value


class TopicPattern:
    """A parsed pattern. Matching a topic costs one split and one pass over its levels."""

    def __init__(
        self,
        pattern: str,
        *,
        required: tuple[str, ...] = ("device", "message"),
        allow_any: bool = False,
        literal_root: bool = False,
        subscribe_below: Literal["root", "prefix"] = "root",
    ) -> None:
        self.pattern = pattern
        self.levels: tuple[tuple[LevelKind, str], ...] = tuple(
            self._level(pattern, text, allow_any) for text in pattern.split("/")
        )
        names = [text for kind, text in self.levels if kind == "named"]
        if len(set(names)) != len(names):
            raise ValueError(f"topic pattern {pattern!r}: a name is used twice")
        for name in required:
            if name not in names:
                raise ValueError(f"topic pattern {pattern!r}: must contain {{{name}}}")
        if literal_root and self.levels[0][0] != "literal":
            raise ValueError(f"topic pattern {pattern!r}: must start with a literal level (what we subscribe to)")
        prefix = []
        for kind, text in self.levels:
            if kind != "literal":
                break
            prefix.append(text)
        self.names = tuple(names)
        self.prefix = tuple(prefix)
        self.root = prefix[0] if prefix else None
        # The canonical convention subscribes to everything below its root, so that a device publishing
        # a malformed topic (wrong version, extra level) gets a dead letter that says why, not silence.
        # A route subscribes below its whole literal prefix: the levels above may belong to others.
        below = self.prefix if subscribe_below == "prefix" else self.prefix[:1]
        self.subscription = "/".join(below) + "/#" if below else "#"

    @classmethod
    def for_route(cls, pattern: str) -> TopicPattern:
        """A vendor adapter's or mapping's pattern: ``+`` allowed, a literal root, ``{device}`` named."""
        return cls(pattern, required=("device",), allow_any=True, literal_root=True, subscribe_below="prefix")

    @staticmethod
    def _level(pattern: str, text: str, allow_any: bool) -> tuple[LevelKind, str]:
        found = _PLACEHOLDER.match(text)
        if found:
            return "named", found.group(1)
        if text == "+" and allow_any:
            return "any", "+"
        if not text or "{" in text or "}" in text or "#" in text or "+" in text:
            raise ValueError(f"topic pattern {pattern!r}: bad level {text!r}")
        return "literal", text

    def claims(self, levels: Sequence[str]) -> bool:
        """Whether a topic (split into levels) is under this pattern's literal prefix."""
        return tuple(levels[: len(self.prefix)]) == self.prefix

    def match(self, levels: Sequence[str]) -> dict[str, str]:
        """The named levels' values; TopicError if the topic does not fit the pattern."""
        if len(levels) != len(self.levels):
            raise TopicError(f"expected {len(self.levels)} levels ({self.pattern}), got {len(levels)}")
        values: dict[str, str] = {}
        for (kind, text), value in zip(self.levels, levels, strict=True):
            if kind == "literal":
                if value != text:
                    raise TopicError(f"level {text!r} expected ({self.pattern}), got {value!r}")
            elif not LEVEL_VALUE.match(value):
                label = "+" if kind == "any" else f"{{{text}}}"
                raise TopicError(f"level {label} has a bad value {value!r} (allowed: A-Z a-z 0-9 . _ -)")
            elif kind == "named":
                values[text] = value
        return values

    def parse(self, topic: str) -> TopicMatch:
        """A canonical topic: its tags, device and message level; TopicError if it is not one."""
        values = self.match(topic.split("/"))
        message = values.pop("message")
        if message not in MESSAGE_SCHEMAS:
            raise TopicError(f"unknown message level {message!r}; known: {', '.join(sorted(MESSAGE_SCHEMAS))}")
        return TopicMatch(tags=tuple(sorted(values.items())), device=values["device"], message=message)

    def build(self, **values: str) -> str:
        """The topic for the given level values (used by simulators and tests)."""
        return "/".join(text if kind == "literal" else values[text] for kind, text in self.levels)
