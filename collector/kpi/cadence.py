"""How often the devices read back report, against how often the KPI settings say they do.

Availability counts a device down after ``missed_reports`` report periods of silence, a client count
holds for one report period, and a client's session ends after a gap of 1.5 client periods: all take
``kpi.report_period_s`` and ``kpi.clients_every_s`` as how often devices report. A network that
reports every 15 minutes, computed with the 60-s default, is down most of the time and has no
clients at the end of most buckets, and nothing says why. So each read notes every device's typical
gap between readings (the median of the gaps between its distinct reading times), and the engine
warns when the devices' typical gap is more than :data:`SLOWER` times the setting. Pure: what was
read in, a figure out; the engine logs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import median
from typing import NamedTuple

NS = 1_000_000_000
SLOWER = 1.5  # a typical gap beyond this many periods is not jitter: the setting does not fit


def median_gap_s(times: Iterable[int]) -> float | None:
    """The median gap, in seconds, between the distinct ``times`` (ns); None below three of them."""
    distinct = sorted(set(times))
    if len(distinct) < 3:
        return None
    return median([b - a for a, b in pairwise(distinct)]) / NS


class CadenceWarning(NamedTuple):
    """The devices' typical gaps (median over the devices of each one's median gap), where one is
    more than :data:`SLOWER` times its setting; the other is None when it fits or was not seen.
    Both None: what was read fits the settings."""

    report_gap_s: float | None
    clients_gap_s: float | None
    devices: int  # devices whose gaps were measured
    reports_seen: bool = True  # whether any device's gap between reports was measured (else: unknown)
    clients_seen: bool = True  # ... between client lists

    def like(self, other: CadenceWarning | None) -> bool:
        """The same finding within 10 % (device clocks jitter: a median gap of 899.98 s is 900 s)."""
        if other is None:
            return False
        return all(
            (a is None) == (b is None) and (a is None or b is None or abs(a - b) <= 0.1 * max(a, b))
            for a, b in ((self.report_gap_s, other.report_gap_s), (self.clients_gap_s, other.clients_gap_s))
        )


@dataclass(slots=True)
class Cadence:
    """Each device's median gap between reports and between client lists, as reads meet them (a
    device read again, in another span, keeps its latest figure)."""

    reports: dict[str, float] = field(default_factory=dict)
    clients: dict[str, float] = field(default_factory=dict)

    def add(self, device: str, report_times: Iterable[int], client_times: Iterable[int]) -> None:
        gap = median_gap_s(report_times)
        if gap is not None:
            self.reports[device] = gap
        gap = median_gap_s(client_times)
        if gap is not None:
            self.clients[device] = gap

    def check(self, period_s: float, clients_period_s: float) -> CadenceWarning | None:
        """What the reads say of the settings: None when they measured no gap at all (a short read of
        a slow network: too few readings to say), a CadenceWarning otherwise (both gaps None: fits)."""
        if not self.reports and not self.clients:
            return None
        reports = median(self.reports.values()) if self.reports else None
        clients = median(self.clients.values()) if self.clients else None
        slow_reports = reports if reports is not None and reports > SLOWER * period_s else None
        slow_clients = clients if clients is not None and clients > SLOWER * clients_period_s else None
        devices = len(self.reports.keys() | self.clients.keys())
        return CadenceWarning(slow_reports, slow_clients, devices, bool(self.reports), bool(self.clients))
