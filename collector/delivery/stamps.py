"""Receipt stamps that survive a crash: a redelivered message is stored at the time it got first.

A message without a time of its own (a last will the broker publishes for a device, a reading an
adapter stamps on receipt) is stored at a time the collector chose when it received it
(``ingest/decode.py``). If the collector dies after the batch holding it was written to InfluxDB but
before the broker had its PUBACK, the broker sends the message again (persistent session, QoS 1),
and a new choice would store it a second time, at another time: one outage, two wills.

So the choice is kept here, in ``<spool.folder>/receipt-stamps`` (each worker of ``run --workers``
has its own spool folder, and the broker redelivers to the session that had the message), made
durable before the batch holding it is written (:meth:`StampLedger.persist`, which the committer
calls), and reused when the same message comes again (:meth:`StampLedger.recall`).

**The key** is a digest of the topic, the MQTT packet id and the payload. A redelivery keeps all
three: MQTT requires the original packet identifier on a resend (MQTT 5.0 and 3.1.1, section 4.4,
[MQTT-4.4.0-1]) and the DUP flag set [MQTT-3.3.1-1]. Topic and payload alone collide: a device's
will is the same bytes at every outage. The packet id alone collides too: the broker reuses ids
(1 to 65,535) once acknowledged. Only a message with DUP set is looked up; any other is new and
replaces whatever entry had its key. The key is a 128-bit BLAKE2b digest (``ingest/pipeline.py``,
``stamp_key``) of the payload with its MAC-shaped texts masked first: the file holds no topic and no
payload (no device name), only digests and times, and no digest can be brute-forced back to a MAC.
Masking makes two payloads that differ only there digest alike; they would also need the same topic
and packet id, which two messages in flight never share.

**The file** is a header line then one line per stamp (``key received_ns stamp_ns recorded_s``),
appended and fsynced once per batch that has new stamps; a torn last line (a crash during the
append) is skipped, its batch was not written yet. It is rewritten with the live entries only
(atomically) when it holds more than twice as many lines as there are entries, and at least 1,024.

**Expiry.** An entry is needed until the broker has the PUBACK of its message, which cannot be
observed (QoS 1 has no answer to a PUBACK). A PUBACK the collector handed to the socket reaches the
broker even if the process is killed right after (the kernel sends what it was given); one lost with
its connection means a redelivery at the start of the next connection, where the broker sends what
it had in flight first. So an acknowledged entry is dropped once ``settle_s`` (30 s) have passed
since its acknowledgement *and* the MQTT connection has been up for ``settle_s``. Entries read from
the file at start (a previous run's) count as acknowledged at start. Backstops: an entry older than
``max_age_s`` (7 days) is dropped whatever its state, and at most ``max_entries`` (100,000) are
kept, the oldest dropped first (``stamp_ledger_full``). Only receipt-stamped messages have entries:
a city whose devices send their own timestamps keeps a few wills; a feed without timestamps pays one
digest per message and one small append per batch, and holds about 30 s of its messages.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("collector.delivery.stamps")

FILE_NAME = "receipt-stamps"
HEADER = "city-telemetry.receipt-stamps/1"
SETTLE_S = 30.0
EXPIRE_EVERY_S = 1.0
COMPACT_MIN_LINES = 1024
MAX_AGE_S = 7 * 86_400.0
MAX_ENTRIES = 100_000


@dataclass(slots=True)
class _Entry:
    received_ns: int  # when the message was first received
    stamp_ns: int  # the decoder's stamp for a will (0: at receipt), see ingest/decode.py
    recorded_s: float  # wall clock, for max_age_s
    acked_at: float | None  # monotonic; None while its batch is not acknowledged


class StampLedger:
    """The stamps of receipt-stamped messages until their acknowledgement has surely reached the broker.

    The consumer calls :meth:`recall` / :meth:`remember` while it fills a batch; the committer calls
    :meth:`take` when it takes the batch, :meth:`persist` before writing it and :meth:`acked` after
    acknowledging it. One event loop calls all of them.
    """

    def __init__(
        self,
        path: Path,
        *,
        connected_since: Callable[[], float | None] = lambda: None,
        settle_s: float = SETTLE_S,
        max_age_s: float = MAX_AGE_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.path = path
        self.connected_since = connected_since  # monotonic time the current MQTT connection came up
        self.settle_s = settle_s
        self.max_age_s = max_age_s
        self.max_entries = max_entries
        self.entries: dict[str, _Entry] = {}
        self._current: list[str] = []  # keys of the batch being filled
        self._unwritten: list[str] = []  # keys remembered since the last persist
        self._file_lines = 0  # lines in the file (header included): compacted when mostly dead
        self._expired_at = 0.0
        self.reused = 0  # redeliveries stored at their first stamp
        self.recorded = 0
        self.dropped_full = 0
        self._load()

    # -- the consumer's side ----------------------------------------------------------------
    def recall(self, key: str) -> tuple[int, int] | None:
        """(first receipt time, will stamp) of a redelivered message seen before, or None."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        entry.acked_at = None  # in a batch again: kept until that batch is acknowledged
        self._current.append(key)
        self.reused += 1
        return entry.received_ns, entry.stamp_ns

    def remember(self, key: str, received_ns: int, stamp_ns: int) -> None:
        self.entries.pop(key, None)  # re-inserted last: the dict stays in recording order
        self.entries[key] = _Entry(received_ns, stamp_ns, time.time(), None)
        self._current.append(key)
        self._unwritten.append(key)
        self.recorded += 1

    # -- the committer's side ---------------------------------------------------------------
    def take(self) -> list[str]:
        """The keys of the batch the committer takes now (the next batch starts empty)."""
        keys, self._current = self._current, []
        return keys

    def persist(self) -> None:
        """Before a batch is written: make its new stamps durable (one append and fsync, only when
        there are any) and expire what is safely past. OSError: the committer retries."""
        now = time.monotonic()
        if self.entries and now - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = now
            self._expire(now)
        if self._unwritten:
            if self._file_lines > max(COMPACT_MIN_LINES, 2 * len(self.entries)):
                self._compact()
            else:
                self._append()

    def acked(self, keys: list[str]) -> None:
        """The batch holding these keys was acknowledged (or its acknowledgement given up)."""
        now = time.monotonic()
        for key in keys:
            entry = self.entries.get(key)
            if entry is not None and entry.acked_at is None:
                entry.acked_at = now

    # -- inside -----------------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        since = self.connected_since()
        settled = since is not None and now - since >= self.settle_s
        oldest = time.time() - self.max_age_s
        gone = [
            key
            for key, entry in self.entries.items()
            if entry.recorded_s < oldest
            or (settled and entry.acked_at is not None and now - entry.acked_at >= self.settle_s)
        ]
        for key in gone:
            del self.entries[key]
        excess = len(self.entries) - self.max_entries
        if excess > 0:
            for key in list(itertools.islice(self.entries, excess)):  # oldest recorded first
                del self.entries[key]
            self.dropped_full += excess
            log.warning(
                "stamp_ledger_full",
                dropped=excess,
                max_entries=self.max_entries,
                hint="more receipt-stamped messages are unacknowledged than the ledger keeps: a redelivery of "
                "the oldest may be stored twice; is InfluxDB or the broker holding acknowledgements back?",
            )

    @staticmethod
    def _row(key: str, entry: _Entry) -> str:
        return f"{key} {entry.received_ns} {entry.stamp_ns} {entry.recorded_s:.3f}\n"

    def _append(self) -> None:
        rows = [self._row(key, self.entries[key]) for key in self._unwritten if key in self.entries]
        if self._file_lines == 0:
            self._compact()  # no file yet (or an unreadable one): start it with its header
            return
        try:
            with open(self.path, "a", encoding="ascii") as handle:
                handle.write("".join(rows))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self._file_lines = 0  # a partial line may be left: the retry rewrites the whole file
            raise
        self._file_lines += len(rows)
        self._unwritten = []

    def _compact(self) -> None:
        """The file rewritten with the live entries only (atomically: a crash keeps the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        rows = [self._row(key, entry) for key, entry in self.entries.items()]
        with open(temporary, "w", encoding="ascii") as handle:
            handle.write(HEADER + "\n" + "".join(rows))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._file_lines = 1 + len(rows)
        self._unwritten = []

    def _load(self) -> None:
        if not self.path.exists():
            return
        now, oldest = time.monotonic(), time.time() - self.max_age_s
        try:
            text = self.path.read_text(encoding="ascii")
            lines = text.splitlines()
            if not lines or lines[0] != HEADER:
                raise ValueError(f"first line is not {HEADER!r}")
        except (OSError, ValueError) as error:
            log.error(
                "stamp_ledger_unreadable",
                file=str(self.path),
                error=str(error),
                hint="a last will redelivered after a crash may be stored twice, at two times; "
                "the file is written anew at the next receipt-stamped message",
            )
            return
        for line in lines[1:]:
            try:  # a torn last line (a crash during an append) is skipped: its batch was not written
                key, received_ns, stamp_ns, recorded_s = line.split(" ")
                entry = _Entry(int(received_ns), int(stamp_ns), float(recorded_s), now)
            except ValueError:
                continue
            if entry.recorded_s >= oldest and len(key) == 32:
                # A previous run's, acknowledged or not: its redelivery comes first on the next connection.
                self.entries.pop(key, None)
                self.entries[key] = entry
        # Torn (no final newline): the next write rewrites the file rather than append to the torn line.
        self._file_lines = len(lines) if text.endswith("\n") else 0

    def stats(self) -> dict[str, int]:
        return {
            "receipt_stamps_held": len(self.entries),
            "receipt_stamps_reused": self.reused,
            "receipt_stamps_dropped": self.dropped_full,
        }
