"""When people connect and for how long: the calibrated behaviour of the simulated city.

Calibration (the published Brussels Wi-Fi figures quoted in docs/simulator.md, with their sources):

- Weekly rhythm: Saturday, Sunday and Monday each carry about 16 % of a week's connections, the
  other days about 13 %.
- Daily rhythm: arrivals rise through the morning and peak early in the afternoon, so that the number
  of connected clients peaks at 14-16 h local time; the shape differs by site kind (commuter peaks at
  metro stations, opening hours at libraries and town halls, weekend afternoons in parks), while the
  city-wide share of each weekday stays calibrated.
- Sessions: about 48 % last at most 30 minutes and the mean is about 2.1 h.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

# Monday = 0. Shares of a week's connections (sum 1).
WEEKDAY_SHARE = (0.16, 0.13, 0.13, 0.13, 0.13, 0.16, 0.16)

SESSIONS_PER_AP_DAY = 55.0  # mean arrivals per AP per day at popularity 1 (see docs/simulator.md)

SHORT_SHARE = 0.48
SHORT_MIN_S, SHORT_MODE_S, SHORT_MAX_S = 60.0, 120.0, 1800.0
MEAN_SESSION_S = 2.1 * 3600
_SHORT_MEAN_S = (SHORT_MIN_S + SHORT_MODE_S + SHORT_MAX_S) / 3
LONG_MIN_S = 1800.0
# The long part's mean follows from the overall mean: SHORT_SHARE*short + (1-SHORT_SHARE)*long = MEAN.
LONG_EXTRA_MEAN_S = (MEAN_SESSION_S - SHORT_SHARE * _SHORT_MEAN_S) / (1 - SHORT_SHARE) - LONG_MIN_S
MAX_SESSION_S = 20 * 3600.0

# Arrival weight per local hour 0..23 (weekday, weekend), by site kind.
_BASE = (
    0.3,
    0.2,
    0.1,
    0.1,
    0.1,
    0.2,
    0.6,
    1.4,
    2.4,
    3.2,
    3.9,
    4.5,
    4.7,
    4.6,
    4.2,
    3.5,
    2.8,
    2.2,
    1.7,
    1.3,
    1.0,
    0.7,
    0.5,
    0.4,
)
_WEEKEND = (
    0.5,
    0.4,
    0.3,
    0.1,
    0.1,
    0.1,
    0.2,
    0.4,
    0.9,
    1.6,
    2.6,
    3.6,
    4.4,
    4.8,
    4.6,
    4.0,
    3.2,
    2.5,
    2.0,
    1.6,
    1.2,
    0.9,
    0.7,
    0.6,
)


def _shape(base: tuple[float, ...], changes: Mapping[int, float]) -> tuple[float, ...]:
    return tuple(w * changes.get(h, 1.0) for h, w in enumerate(base))


def _open_hours(base: tuple[float, ...], opens: int, closes: int, outside: float = 0.08) -> tuple[float, ...]:
    return tuple(w if opens <= h < closes else w * outside for h, w in enumerate(base))


HOURLY: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "metro": (_shape(_BASE, {7: 1.8, 8: 1.6, 17: 1.15, 18: 1.15}), _WEEKEND),
    "square": (_BASE, _shape(_WEEKEND, {20: 1.3, 21: 1.3, 22: 1.3})),
    "park": (_shape(_BASE, {20: 0.6, 21: 0.4, 22: 0.3, 23: 0.3}), _shape(_WEEKEND, {0: 0.3, 1: 0.3, 2: 0.3})),
    "library": (_open_hours(_BASE, 10, 19), _open_hours(_WEEKEND, 10, 17)),
    "town_hall": (_open_hours(_BASE, 8, 17), _open_hours(_WEEKEND, 9, 13)),
}
_HOURLY_SUM = {kind: (sum(a), sum(b)) for kind, (a, b) in HOURLY.items()}

# How much busier a weekend day is than a weekday, by kind, before re-calibration to WEEKDAY_SHARE.
WEEKEND_FACTOR = {"metro": 0.8, "square": 1.3, "park": 1.8, "library": 0.6, "town_hall": 0.2}


class ArrivalModel:
    """Arrival rates per AP, calibrated so that the city as a whole follows WEEKDAY_SHARE.

    A kind's weekday/weekend difference is applied and then divided by the popularity-weighted mean
    difference of the city's mix, which keeps each day's city-wide share exactly as calibrated.
    """

    def __init__(self, kind_weight: Mapping[str, float], sessions_per_ap_day: float = SESSIONS_PER_AP_DAY) -> None:
        total = sum(kind_weight.values()) or 1.0
        mix = {kind: w / total for kind, w in kind_weight.items()}
        self.per_day = sessions_per_ap_day
        self._day_factor: dict[tuple[str, int], float] = {}
        for weekday in range(7):
            weekend = weekday >= 5
            raw = {k: (WEEKEND_FACTOR[k] if weekend else 1.0) for k in HOURLY}
            norm = sum(mix.get(k, 0.0) * raw[k] for k in HOURLY) or 1.0
            for kind in HOURLY:
                self._day_factor[(kind, weekday)] = 7 * WEEKDAY_SHARE[weekday] * raw[kind] / norm

    def rate_per_s(self, kind: str, weekday: int, hour: int) -> float:
        """Expected arrivals per second at one AP of popularity 1."""
        weekend = weekday >= 5
        weights = HOURLY[kind][1 if weekend else 0]
        share = weights[hour] / _HOURLY_SUM[kind][1 if weekend else 0]
        return self.per_day * self._day_factor[(kind, weekday)] * share / 3600.0


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def session_duration_s(rng: random.Random) -> float:
    """A duration from the calibrated mix: short (<= 30 min, mode 2 min) or long (30 min + exponential)."""
    if rng.random() < SHORT_SHARE:
        return rng.triangular(SHORT_MIN_S, SHORT_MAX_S, SHORT_MODE_S)
    return min(MAX_SESSION_S, LONG_MIN_S + rng.expovariate(1.0 / LONG_EXTRA_MEAN_S))


def school_load(weekday: int, hour: float) -> float:
    """Mean download utilisation of a school's 100 Mbit/s link (0-1) at a local time."""
    if weekday >= 5:
        return 0.02
    if 8 <= hour < 12:
        return 0.32
    if 12 <= hour < 13:
        return 0.18
    if 13 <= hour < 16:
        return 0.28
    if 16 <= hour < 19:
        return 0.07
    return 0.015
