"""The KPI engine's stage in the ingest pipeline: client pseudonyms, and which days need recomputing.

It sees every validated reading before it is encoded (collector/ingest/pipeline.py, ``Stage``):

- an ``ap.clients/1`` report that lists its clients gets a :class:`~schemas.stored.ClientPresence`
  beside it: the clients as keyed daily pseudonyms (pseudonym.py). The MAC addresses go no further:
  the normaliser never stores them, and the presence record holds only pseudonyms. This is what
  unique clients and sessions are computed from, live or by ``kpi recompute``.
- the 5-minute bucket of event time of every reading (``ts_ns // BUCKET_NS``) is noted as
  *touched*; the engine turns the buckets into the windows (5 min, 1 h, day) within reach of them
  and recomputes those from storage once the reading is durable (engine.py). A late or out-of-order
  reading touches its own past windows, which is how late data rewrites a closed window.

Per message the cost is a type check, an integer division and, for a reading outside the bucket
seen last, a set insertion: the hot path keeps its speed (``make bench`` reports it with the engine
on).
"""

from __future__ import annotations

from datetime import date

from collector.ingest.adapters.base import timestamp_ns
from collector.ingest.decode import Decoded
from collector.kpi.pseudonym import NotAMac, Pseudonymiser
from collector.kpi.windows import BUCKET_NS, day_window, local_date
from schemas.canonical import ApClients
from schemas.stored import ClientPresence


class KpiStage:
    def __init__(self, pseudonymiser: Pseudonymiser) -> None:
        self.pseudonymiser = pseudonymiser
        self.touched: set[int] = set()  # 5-minute buckets with new readings since the engine last looked
        self.newest_ns = 0  # the newest reading time seen: the engine's watermark starts from it
        self.unpseudonymised = 0  # client entries that were not MAC addresses
        self._bucket: int | None = None
        self._day: date | None = None  # the local day of the last client list (its pseudonym key)
        self._day_from = 0
        self._day_to = 0

    def __call__(self, readings: list[Decoded], received_ns: int) -> list[Decoded]:
        extra: list[Decoded] = []
        for reading in readings:
            message = reading.message
            ts = message.ts  # type: ignore[union-attr]  # decode makes canonical readings only
            ts_ns = timestamp_ns(ts) if ts is not None else (reading.stamp_ns or received_ns)
            bucket = ts_ns // BUCKET_NS
            if bucket != self._bucket:
                self._bucket = bucket
                self.touched.add(bucket)
            if ts_ns > self.newest_ns:
                self.newest_ns = ts_ns
            if message.__class__ is ApClients and message.clients is not None:
                if not self._day_from <= ts_ns < self._day_to:
                    self._enter_day(ts_ns)
                extra.append(Decoded(self._presence(message, ts_ns), reading.tags))
        return readings + extra if extra else readings

    def _enter_day(self, ts_ns: int) -> None:
        day = local_date(ts_ns)
        window = day_window(day)
        self._day, self._day_from, self._day_to = day, window.start_ns, window.end_ns

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

    def take_touched(self) -> set[int]:
        """The 5-minute buckets touched since the last call (the engine recomputes the windows around them)."""
        touched, self.touched = self.touched, set()
        self._bucket = None  # the current bucket is noted again at its next reading
        return touched
