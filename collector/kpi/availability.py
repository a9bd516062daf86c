"""Device availability from what devices say and what they stop saying.

Contract: ``timeline(reports, marks, policy, from_ns, to_ns)`` turns one device's evidence into
spans ``[start, end)`` that are up or down, covering ``[from_ns, to_ns)``; ``availability(...)``
sums them over a window. Pure: the same evidence in any order gives the same spans.

Evidence, strongest first:

- a **state mark** (``device.state``): ``rebooting``/``offline`` at its time, a **last will** at its
  receipt time minus ``will_delay_s`` (the broker fires it 1.5 keepalives after the device went
  silent), ``online`` when it comes back;
- a periodic **report** with the device's uptime: the device was up from ``ts - uptime`` to ``ts``.
  A boot after the previous report means it was down in between, even if it said nothing (vendor
  devices send no state message; silent outages send no will);
- **silence**: no report for more than ``missed x period_s`` (3 missed reports by default) without
  an uptime that bridges it means down.

When the device went down is known from a mark; without one it is only known to be after its last
report and before the next report was due (or before the boot, if sooner). That interval is
``uncertain``; ``silence_share`` of it (half by default) is counted up, the rest down, and its
length is reported so a KPI can state its error bar. Time before the first evidence in the range
(no lookback given) is counted down and uncertain. A gap in reports bridged by the uptime (the
device kept running, its messages were lost) is up: availability is the device's, not the path's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Report:
    """A periodic message proving the device alive at ``ts_ns`` (metrics, interfaces, a vendor stat)."""

    ts_ns: int
    uptime_s: float | None = None


@dataclass(frozen=True, slots=True)
class StateMark:
    """A ``device.state`` message: ``up`` (online) or not (rebooting, offline, lost). ``will``: it is a
    last will, stamped when received."""

    ts_ns: int
    up: bool
    will: bool = False


@dataclass(frozen=True, slots=True)
class AvailabilityPolicy:
    period_s: float
    missed: int = 3
    will_delay_s: float = 0.0
    silence_share: float = 0.5
    uptime_slack_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Span:
    start_ns: int
    end_ns: int
    up: bool


@dataclass(frozen=True, slots=True)
class Availability:
    up_ns: int
    length_ns: int
    uncertain_ns: int  # time whose state was estimated, not observed

    @property
    def down_ns(self) -> int:
        return self.length_ns - self.up_ns

    @property
    def pct(self) -> float:
        return 100.0 * self.up_ns / self.length_ns if self.length_ns else 100.0


_BOOT, _DOWN, _UP, _ALIVE = 0, 1, 2, 3  # event order at one instant: a boot before the report proving it


def timeline(
    reports: Iterable[Report], marks: Iterable[StateMark], policy: AvailabilityPolicy, from_ns: int, to_ns: int
) -> tuple[list[Span], int]:
    """Up and down spans covering ``[from_ns, to_ns)``, and the uncertain time inside it."""
    period = int(policy.period_s * NS)
    silence = policy.missed * period
    slack = int(policy.uptime_slack_s * NS)
    # (instant, kind, bridged): a report with an uptime is "bridged": the device ran from its boot
    # (an event of its own, when after the previous report) to it, however long it was silent.
    events: list[tuple[int, int, bool]] = []
    previous: int | None = None
    running: list[tuple[int, int]] = []  # [boot, report] intervals the uptime proves the device ran
    for r in sorted(set(reports), key=lambda r: (r.ts_ns, r.uptime_s or 0.0)):
        bridged = False
        if r.uptime_s is not None:
            boot = r.ts_ns - int(r.uptime_s * NS)
            running.append((boot, r.ts_ns))
            if previous is None or boot > previous + slack:
                events.append((boot, _BOOT, False))
            bridged = True
        events.append((r.ts_ns, _ALIVE, bridged))
        previous = r.ts_ns
    for m in set(marks):
        at = m.ts_ns - (int(policy.will_delay_s * NS) if m.will else 0)
        if not m.up and any(boot + slack < at < ts for boot, ts in running):
            continue  # a will while the uptime says it ran: the connection was lost, not the device
        events.append((at, _UP if m.up else _DOWN, False))
    events.sort()

    spans: list[Span] = []
    uncertain: list[tuple[int, int]] = []
    state: bool | None = None  # None: nothing known yet
    since = from_ns
    last_alive: int | None = None

    def switch(at: int, up: bool) -> None:
        nonlocal state, since
        if state is not up:
            if state is not None or at > since:
                spans.append(Span(since, at, bool(state)))
                if state is None:
                    uncertain.append((since, at))
            state, since = up, at

    def went_silent(evidence_at: int) -> None:
        # Up since the last report, then down somewhere before the next report was due.
        assert last_alive is not None
        unknown = min(period, evidence_at - last_alive)
        uncertain.append((last_alive, last_alive + unknown))
        switch(last_alive + int(unknown * policy.silence_share), False)

    for at, kind, bridged in events:
        if kind == _BOOT:
            if state and last_alive is not None and at > last_alive + slack:
                went_silent(at)
            if state is None and at > since:
                switch(at, False)  # not running before this boot
            switch(at, True)
            last_alive = max(at, last_alive or at)
        elif kind == _DOWN:
            if state is not False:
                switch(max(at, last_alive or at), False)
        elif kind == _UP:
            # "online" ends a known down time. While the device is thought up it adds nothing: it is
            # also sent on a mere reconnection, and after a silent outage the boot (dated by the
            # uptime of the next report) is what says the device was down.
            if state is not True:
                switch(at, True)
                last_alive = max(at, last_alive or at)
        else:
            if state and last_alive is not None and not bridged and at - last_alive > silence:
                went_silent(at)  # silent too long and no uptime bridging it
            switch(at, True)
            last_alive = at
    if state and last_alive is not None and to_ns - last_alive > silence:
        went_silent(to_ns)
    if state is None:
        uncertain.append((since, to_ns))
    spans.append(Span(since, max(since, to_ns), bool(state)))
    clipped = [Span(max(s.start_ns, from_ns), min(s.end_ns, to_ns), s.up) for s in spans]
    out = [s for s in clipped if s.end_ns > s.start_ns]
    return _merge(out), sum(max(0, min(b, to_ns) - max(a, from_ns)) for a, b in uncertain)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s in spans:
        if out and out[-1].up == s.up and out[-1].end_ns == s.start_ns:
            out[-1] = Span(out[-1].start_ns, s.end_ns, s.up)
        else:
            out.append(s)
    return out


def availability(
    reports: Iterable[Report], marks: Iterable[StateMark], policy: AvailabilityPolicy, from_ns: int, to_ns: int
) -> Availability:
    """Up time over ``[from_ns, to_ns)``. Give the evidence from ``missed x period`` before the window
    and after it too, so that the state at its edges is known."""
    spans, uncertain = timeline(reports, marks, policy, from_ns, to_ns)
    up = sum(s.end_ns - s.start_ns for s in spans if s.up)
    return Availability(up, to_ns - from_ns, uncertain)


def any_up(timelines: Iterable[list[Span]], from_ns: int, to_ns: int) -> int:
    """Time in ``[from_ns, to_ns)`` during which at least one of the devices was up (a site is
    available when one of its APs is)."""
    ups = sorted((max(s.start_ns, from_ns), min(s.end_ns, to_ns)) for t in timelines for s in t if s.up)
    total, reach = 0, from_ns
    for a, b in ups:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def hotspots(site_up_ns: Iterable[int]) -> int:
    """Hotspot count (U4SSC "Availability of Wi-Fi in public areas"): sites with an AP up at some time
    of the window, from each site's ``any_up`` time."""
    return sum(1 for up in site_up_ns if up > 0)
