"""Aggregation levels (device -> site -> municipality -> region) and k-anonymity for published figures.

Contract: ``group(places, level)`` maps each key of a level to the devices under it (a site is
(nis, site); an unknown device groups by its topic tags, see enrich.py). Figures that are sums
(volumes, up time, sessions) add up across a level; figures that are not (peaks, percentiles,
distinct clients) are recomputed from the readings of the group's devices, never summed or averaged
from the level below. ``suppress`` hides a client count below k (10 by default) wherever KPIs leave
the operator's hands (exports, a public page): a small count at one place and day can single out a
person.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def suppress(count: int, k: int = K_ANONYMITY) -> int | None:
    """``count`` unless it is between 1 and ``k - 1`` (then None, shown as "< k"). Zero is shown: it
    singles nobody out."""
    return None if 0 < count < k else count
