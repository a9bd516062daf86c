"""Aggregation levels (device -> site -> municipality -> region) and k-anonymity for published figures.

Contract: ``group(places, level)`` maps each key of a level to the devices under it (a site is
(nis, site); an unknown device groups by its topic tags, see enrich.py). Figures that are sums
(volumes, up time, sessions) add up across a level; figures that are not (peaks, percentiles,
distinct clients) are recomputed from the readings of the group's devices, never summed or averaged
from the level below. ``public_figures`` hides every client and session count below k (10 by
default), and the session durations with them, wherever KPIs leave the operator's hands (exports, a
public page): a small count at one place and day can single out a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from collector.kpi.enrich import Place

LEVELS = ("device", "site", "municipality", "region")
K_ANONYMITY = 10


def group(places: Iterable[Place], level: str) -> dict[str, list[Place]]:
    out: dict[str, list[Place]] = {}
    for p in places:
        out.setdefault(p.level(level), []).append(p)
    return out


def availability_pct(up_and_length: Iterable[tuple[int, int]]) -> float | None:
    """Total up time over total time, for devices of one group (each device weighs its time)."""
    up = length = 0
    for u, n in up_and_length:
        up += u
        length += n
    return 100.0 * up / length if length else None


# Figures that count clients or their sessions at one place and window, and figures that describe
# the sessions themselves (with 3 sessions, their median is one person's stay).
CLIENT_COUNTS = ("unique_clients", "sessions", "peak_clients", "mean_clients")
SESSION_FIGURES = ("session_p50_s", "session_p90_s")

V = TypeVar("V")


def public_figures(fields: Mapping[str, V | None], k: int = K_ANONYMITY) -> dict[str, V | None]:
    """``fields`` as they may leave the operator's hands: each client or session count between 1 and
    ``k - 1`` hidden (None, shown as "< k"; zero singles nobody out), and the session durations with
    the sessions when there are fewer than ``k`` of them. Hiding only the unique clients would leave the same
    small number beside them: the sessions of one day are at least the clients who came."""
    out: dict[str, V | None] = dict(fields)
    for name in CLIENT_COUNTS:
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < k:
            out[name] = None
    if name_hidden(fields, out, "sessions"):
        for name in SESSION_FIGURES:
            if name in out:
                out[name] = None
    return out


def name_hidden(fields: Mapping[str, object], shown: Mapping[str, object], name: str) -> bool:
    """Whether ``public_figures`` hid a figure that had a value."""
    return fields.get(name) is not None and shown.get(name) is None
