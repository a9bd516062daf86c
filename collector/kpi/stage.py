"""The KPI engine's stage in the ingest pipeline: client pseudonyms, and which days need recomputing.

It sees every validated reading before it is encoded (collector/ingest/pipeline.py, ``Stage``):

- an ``ap.clients/1`` report that lists its clients gets a :class:`~schemas.stored.ClientPresence`
  beside it: the clients as keyed daily pseudonyms (pseudonym.py). The MAC addresses go no further:
  the normaliser never stores them, and the presence record holds only pseudonyms. This is what
  unique clients and sessions are computed from, live or by ``kpi recompute``.
- the local day of every reading is noted as *touched*, so the engine recomputes that day's KPIs
  from storage once the reading is durable (engine.py). A late or out-of-order reading touches its
  own (past) day, which is how late data rewrites a closed window.

Per message the cost is a type check and, for a reading outside the day seen last, one date
computation: the hot path keeps its speed (``make bench`` reports it with the engine on).
"""

from __future__ import annotations

from datetime import date, timedelta

from collector.ingest.adapters.base import timestamp_ns
from collector.ingest.decode import Decoded
from collector.kpi.pseudonym import NotAMac, Pseudonymiser
from collector.kpi.windows import day_window, local_date
from schemas.canonical import ApClients
from schemas.stored import ClientPresence


class KpiStage:
    def __init__(self, pseudonymiser: Pseudonymiser, reach_s: float = 1200.0) -> None:
        self.pseudonymiser = pseudonymiser
        # A reading this close to midnight also changes the neighbouring day's KPIs (a counter
        # interval, an outage, a session crosses it): that day is touched too (compute.KpiConfig.lookback_s).
        self._reach_ns = int(reach_s * 1e9)
        self.touched: set[date] = set()  # local days with new readings since the engine last looked
        self.newest_ns = 0  # the newest reading time seen: the engine's watermark starts from it
        self.unpseudonymised = 0  # client entries that were not MAC addresses
        self._day: date | None = None
        self._day_from = 0
        self._day_to = 0

    def __call__(self, readings: list[Decoded], received_ns: int) -> list[Decoded]:
        extra: list[Decoded] = []
        for reading in readings:
            message = reading.message
            ts = message.ts  # type: ignore[union-attr]  # decode makes canonical readings only
            ts_ns = timestamp_ns(ts) if ts is not None else (reading.stamp_ns or received_ns)
            if not self._day_from <= ts_ns < self._day_to:
                self._enter_day(ts_ns)
            if ts_ns - self._day_from < self._reach_ns or self._day_to - ts_ns <= self._reach_ns:
                self._touch_neighbour(ts_ns)
            if ts_ns > self.newest_ns:
                self.newest_ns = ts_ns
            if message.__class__ is ApClients and message.clients is not None:
                extra.append(Decoded(self._presence(message, ts_ns), reading.tags))
        return readings + extra if extra else readings

    def _enter_day(self, ts_ns: int) -> None:
        day = local_date(ts_ns)
        window = day_window(day)
        self._day, self._day_from, self._day_to = day, window.start_ns, window.end_ns
        self.touched.add(day)

    def _touch_neighbour(self, ts_ns: int) -> None:
        assert self._day is not None
        if ts_ns - self._day_from < self._reach_ns:
            self.touched.add(self._day - timedelta(days=1))
        if self._day_to - ts_ns <= self._reach_ns:
            self.touched.add(self._day + timedelta(days=1))

    def _presence(self, message: ApClients, ts_ns: int) -> ClientPresence:
        assert message.clients is not None and self._day is not None
        pids: set[str] = set()
        skipped = 0
        day = self._day
        for client in message.clients:
            pid = self.pseudonymiser.pid(client.mac, day)
            if isinstance(pid, NotAMac):
                skipped += 1
            else:
                pids.add(pid)
        self.unpseudonymised += skipped
        return ClientPresence(message.device_id, ts_ns, tuple(sorted(pids)), skipped)

    def take_touched(self) -> set[date]:
        """The days touched since the last call (the engine recomputes them)."""
        touched, self.touched = self.touched, set()
        if self._day is not None:
            self._day_from = self._day_to = 0  # the current day is noted again at its next reading
        return touched
