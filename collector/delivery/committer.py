"""Write, then acknowledge: the delivery policy between the pipeline and the broker.

A message is acknowledged only after everything it produced is durable: its lines accepted (or
refused for good and dead-lettered) by InfluxDB, or appended to the disk spool, and its own refusal
in the dead-letter store. Until then the broker keeps it in our persistent session, so a crash loses
nothing. In detail:

1. The app's consumer fills :attr:`Committer.batch` (lines, dead-letter records, acknowledgements) and
   calls :meth:`Committer.batch_grew`. The flusher commits the batch as soon as it is free: one batch
   is in flight at a time, and what arrives meanwhile forms the next one. So a batch is as large as
   the load makes it: a lone reading at low load is written at once instead of waiting for a timer,
   and at high load a batch holds whatever arrived during the previous write (sent in requests of at
   most ``batch.max_lines``), so a slower write makes the next batch larger and the per-request cost
   is shared by more lines. ``batch.linger_s`` (default 0) lets a free flusher wait that long for more
   lines (or a full ``batch.max_lines``) before it writes, for a database that charges per request;
   ``batch.max_interval_s`` is kept for old configuration files and no longer has an effect
   (docs/delivery.md, "Batching").
2. Refusals are written to the dead-letter store first (a failed write is retried; nothing is
   acknowledged meanwhile).
3. Lines go to the sink. If it has failed to take them for ``spool.after_s`` (or older lines are
   still spooled: nothing overtakes them), they are appended to the spool instead. A full spool is
   backpressure: the batch waits, unacknowledged, while the broker holds the rest.
4. Lines the sink refuses for good are dead-lettered; then the batch's messages are acknowledged,
   in receive order, and released from the source's memory bound.

Before any line of a batch is written, the stamps chosen on receipt for its messages (last wills)
are made durable (``delivery/stamps.py``): killed after the write and before the broker has the
PUBACK, the next run stores the redelivered message at the same time, not at a second one.

The spool drainer writes spooled lines back, oldest first. Every wait is on an event (the spool
drained a chunk, the flusher settled, a dead letter was published, the committer was abandoned),
never a polling loop (and no timer, unless ``batch.linger_s`` is set). The collaborators are passed
in, so this policy is tested in-process with an in-memory sink and acknowledger
(tests/unit/test_committer.py) as well as on real servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from collector.delivery.config import BatchConfig, SpoolConfig
from collector.delivery.deadletter import DeadLetters
from collector.delivery.spool import Spool
from collector.delivery.stamps import StampLedger
from collector.sink.influxdb import WriteAborted, WriteReport, WriteStalled

log = structlog.get_logger("collector.delivery.committer")

SPOOL_RETRY_S = 1.0  # a spool append that failed (disk error) is tried again this often
DEAD_LETTER_RETRY_S = 1.0


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (connection generation, packet id)
    dead: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0


class Acknowledger(Protocol):
    """The source's side of delivery (collector/source/mqtt.py implements it)."""

    def ack(self, acks: list[tuple[int, int]]) -> int:
        """Acknowledge (generation, packet id) pairs in order; returns how many were sent."""
        ...

    def release(self, count: int) -> None:
        """``count`` messages are no longer held in memory (acknowledged or given up)."""
        ...


class LineSink(Protocol):
    """The sink's side of delivery (collector/sink/influxdb.py implements it)."""

    recovered_at: float  # time.monotonic() when writes last started to succeed again

    async def write(self, lines: list[str], give_up_after_s: float | None = None) -> WriteReport:
        """Accepted or refused for good; WriteStalled after ``give_up_after_s`` of failures;
        WriteAborted once aborted."""
        ...

    def abort(self) -> None:
        """Stop retrying: pending and later writes raise WriteAborted."""
        ...


async def _wait(event: asyncio.Event, timeout_s: float | None = None) -> None:
    """Until ``event`` is set, or ``timeout_s`` has passed."""
    if timeout_s is None:
        await event.wait()
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


class Committer:
    def __init__(
        self,
        batch_config: BatchConfig,
        spool_config: SpoolConfig,
        *,
        sink: LineSink,
        spool: Spool | None,
        dead_letters: DeadLetters,
        acknowledger: Acknowledger,
        counters: Counter[str] | None = None,
        before_ack: Callable[[], None] | None = None,
        stamps: StampLedger | None = None,
    ) -> None:
        self.max_lines = batch_config.max_lines
        self.linger_s = batch_config.linger_s
        self.spool_after_s = spool_config.after_s
        self.sink = sink
        self.spool = spool
        self.dead_letters = dead_letters
        self.acknowledger = acknowledger
        self.counters: Counter[str] = Counter() if counters is None else counters
        self.before_ack = before_ack  # e.g. the KPI engine making its touched days durable
        self.stamps = stamps  # receipt stamps, durable before the batch holding them is written
        self.batch = Batch()
        self.backpressure = False  # spool full: messages are not acknowledged until it drains
        self.drain_rate_lines_s = 0.0
        self.abandoned = False
        # Why acknowledgements wait on a local file (the receipt stamps, the KPI state), or None: the
        # readings are safe in the broker, but nothing moves until the file can be written again.
        self.ack_blocked: str | None = None
        self._flush_now = asyncio.Event()  # the batch grew (or finish/abandon): a free flusher commits it
        self._full = asyncio.Event()  # the batch reached max_lines (or finish/abandon): stop lingering
        self._settled = asyncio.Event()  # the flusher finished a pass (set, then cleared by whoever waits)
        self._idle = asyncio.Event()  # nothing is being committed
        self._idle.set()
        self._abandon = asyncio.Event()
        self._spool_has_data = asyncio.Event()
        self._spool_room = asyncio.Event()  # the drainer consumed a chunk: a full spool may take more
        if spool is not None and not spool.empty:
            self._spool_has_data.set()  # left by an earlier run: drain it first

    # -- the consumer's side ----------------------------------------------------------------
    def batch_grew(self, messages: int) -> None:
        """``messages`` more were added to :attr:`batch`: a free flusher commits it now (or after
        ``batch.linger_s``); a busy one takes it as soon as its write is done."""
        self.batch.messages += messages
        self._idle.clear()
        self._flush_now.set()
        if len(self.batch.lines) >= self.max_lines:
            self._full.set()

    async def finish(self) -> None:
        """Commit everything received so far (the caller bounds the wait)."""
        while self.batch.messages or not self._idle.is_set():
            self._settled.clear()
            self._flush_now.set()
            self._full.set()  # no lingering: everything is there
            await self._settled.wait()

    def abandon(self) -> None:
        """Stop waiting for anything: what is not acknowledged stays in the broker's session."""
        self.abandoned = True
        self.sink.abort()
        for event in (self._abandon, self._flush_now, self._full, self._settled, self._spool_room):
            event.set()

    # -- flushing ---------------------------------------------------------------------------
    async def run_flusher(self) -> None:
        """Commit the batch whenever the flusher is free and the batch is not empty.

        Free and nothing waiting: sleep until :meth:`batch_grew` (no timer; with ``linger_s``, then
        wait that long for more). Done with a commit and messages waiting: commit them at once,
        without lingering: they already waited for a whole write.
        """
        while True:
            if not self.batch.messages:
                self._idle.set()
                self._settled.set()
                self._flush_now.clear()
                await self._flush_now.wait()
                if self.linger_s > 0 and not self._full.is_set():
                    await _wait(self._full, self.linger_s)
            self._flush_now.clear()
            self._full.clear()
            batch = self.batch
            if batch.messages:
                self._idle.clear()
                self.batch = Batch()
                await self.commit(batch)
            self._settled.set()

    async def commit(self, batch: Batch) -> None:
        """Make the batch durable, then acknowledge its messages (in receive order)."""
        stamps = self.stamps.take() if self.stamps is not None else []  # now: the next batch is filling
        try:
            await self._make_durable_and_ack(batch, stamps)
        finally:
            self.acknowledger.release(batch.messages)  # acknowledged or abandoned, it leaves memory

    async def _make_durable_and_ack(self, batch: Batch, stamps: list[str]) -> None:
        refused: list[dict[str, Any]] = []
        unwritten: list[str] = []
        try:
            await self._persist_stamps()
            await self._write_dead_letters(batch.dead)
            size = self.max_lines
            for start in range(0, len(batch.lines), size):
                chunk = batch.lines[start : start + size]
                if self.spool is not None and (unwritten or not self.spool.empty):
                    unwritten.extend(chunk)  # keep order: nothing overtakes what is spooled
                    continue
                try:
                    give_up = self.spool_after_s if self.spool is not None else None
                    report = await self.sink.write(chunk, give_up_after_s=give_up)
                except WriteStalled:
                    unwritten.extend(chunk)
                    continue
                refused.extend(self._account(report))
            if unwritten:
                await self._spool_lines(unwritten)
            await self._write_dead_letters(refused)
            await self._run_before_ack()
        except WriteAborted:
            self.counters["batches_abandoned"] += 1
            return  # not acknowledged: the broker redelivers these messages to the next run
        self.counters["acked"] += self.acknowledger.ack(batch.acks)
        if self.stamps is not None and stamps:
            self.stamps.acked(stamps)
        self.counters["messages_committed"] += batch.messages
        self.counters["rejected"] += len(batch.dead)

    def _account(self, report: WriteReport) -> list[dict[str, Any]]:
        """Count a write; dead-letter records for the lines InfluxDB refused."""
        self.counters["lines_written"] += report.accepted
        records = []
        for line, reason in report.refused:
            record = self.dead_letters.record("influxdb_rejected", reason, None, None, time.time_ns(), line=line)
            self.dead_letters.note(record)
            records.append(record)
        return records

    async def _persist_stamps(self) -> None:
        """The batch's receipt stamps durable before its lines are written (a failure is retried)."""
        while self.stamps is not None:
            try:
                self.stamps.persist()
                self.ack_blocked = None
                return
            except OSError as error:
                self.ack_blocked = f"receipt stamps {self.stamps.path}: {error.strerror or error}"
                log.error(
                    "stamp_ledger_write_failed",
                    error=str(error),
                    file=str(self.stamps.path),
                    retry_in_s=DEAD_LETTER_RETRY_S,
                    hint="the receipt-stamp file in the spool folder cannot be written: check its disk",
                )
                if self.abandoned:
                    raise WriteAborted() from None
                await _wait(self._abandon, DEAD_LETTER_RETRY_S)

    async def _run_before_ack(self) -> None:
        """What must be durable before an acknowledgement besides the data (a failure is retried)."""
        while self.before_ack is not None:
            try:
                self.before_ack()
                self.ack_blocked = None
                return
            except OSError as error:
                self.ack_blocked = f"KPI state file: {error}"
                log.error(
                    "before_ack_failed",
                    error=str(error),
                    retry_in_s=DEAD_LETTER_RETRY_S,
                    hint="the KPI state file cannot be written: check its disk",
                )
                if self.abandoned:
                    raise WriteAborted() from None
                await _wait(self._abandon, DEAD_LETTER_RETRY_S)

    # -- spooling ---------------------------------------------------------------------------
    async def _spool_lines(self, lines: list[str]) -> None:
        """Append to the spool, waiting while it is full (the broker holds the messages meanwhile).

        Records are at most ``batch.max_lines`` lines. While waiting, a spool that has drained empty
        means InfluxDB is taking writes again, so the lines are offered to it directly: a record
        larger than the whole spool must not wait for ever.
        """
        assert self.spool is not None
        size = self.max_lines
        for start in range(0, len(lines), size):
            chunk = lines[start : start + size]
            while not await self._spool_or_write(chunk):
                if self.abandoned:
                    raise WriteAborted()
                self._spool_room.clear()
                await _wait(self._spool_room, SPOOL_RETRY_S)
        if self.backpressure:
            self.backpressure = False
            log.info("backpressure_off", spool_bytes=self.spool.bytes)

    async def _spool_or_write(self, chunk: list[str]) -> bool:
        """One attempt to make ``chunk`` durable; False if it has to wait (spool full)."""
        assert self.spool is not None
        try:
            if self.spool.append(chunk):
                self.counters["lines_spooled"] += len(chunk)
                self._spool_has_data.set()  # now, not after the whole batch: a later chunk may have to wait
                return True
            size = sum(len(line) for line in chunk) + len(chunk)  # about the record's bytes
            reason = (
                f"spool full: {len(chunk)} lines (about {size} bytes) do not fit in what is left, "
                f"{self.spool.bytes} of {self.spool.max_bytes} bytes in use"
            )
        except OSError as error:
            reason = f"spool write failed: {error}"
        if not self.backpressure:
            self.backpressure = True
            self.counters["backpressure_episodes"] += 1
            log.error(
                "backpressure_on",
                reason=reason,
                note="not acknowledging: the broker keeps the messages until the spool drains",
            )
        if self.spool.empty:
            try:
                report = await self.sink.write(chunk, give_up_after_s=self.spool_after_s)
            except WriteStalled:
                return False
            await self._write_dead_letters(self._account(report))
            return True
        return False

    async def run_drainer(self) -> None:
        """Write spooled lines to InfluxDB, oldest first, in large batches."""
        if self.spool is None:
            await asyncio.Future()  # no spool: nothing to drain, ever
        assert self.spool is not None
        spool = self.spool
        chunk_lines = max(self.max_lines, 5000)
        while True:
            await self._spool_has_data.wait()
            started, drained = time.monotonic(), 0
            log.info("spool_draining", spool_bytes=spool.bytes, spool_lines=spool.lines)
            while (chunk := spool.peek(chunk_lines)) is not None:
                report = await self.sink.write(chunk.lines)
                await self._write_dead_letters(self._account(report))
                spool.consume(chunk)
                self._spool_room.set()
                drained += len(chunk.lines)
                self.counters["lines_drained"] += len(chunk.lines)
                # Timed from when InfluxDB took writes again, not from when it went away.
                begin = max(started, self.sink.recovered_at)
                self.drain_rate_lines_s = drained / max(time.monotonic() - begin, 1e-3)
            self._spool_has_data.clear()
            log.info("spool_drained", lines=drained, lines_per_s=round(self.drain_rate_lines_s))

    # -- dead letters -----------------------------------------------------------------------
    async def _write_dead_letters(self, records: list[dict[str, Any]]) -> None:
        """Make refusals durable: the fsynced file, or (with no file) the broker's PUBACK of the topic.

        A failed file write (disk full) is retried without acknowledging anything meanwhile.
        With a file, the MQTT copy is not waited for: while reading is paused (docs/delivery.md) the
        broker's PUBACK could not be read, and the file already keeps the record.
        """
        if not records:
            return
        while True:
            try:
                published = self.dead_letters.write(records)
                break
            except OSError as error:
                log.error(
                    "dead_letter_write_failed",
                    error=str(error),
                    records=len(records),
                    retry_in_s=DEAD_LETTER_RETRY_S,
                    hint="check the dead-letter file's disk: full, read-only or gone",
                )
                if self.abandoned:
                    raise WriteAborted() from None
                await _wait(self._abandon, DEAD_LETTER_RETRY_S)
        if self.dead_letters.path is not None or not published:
            return
        await self._until_published(published)

    async def _until_published(self, published: list[Awaitable[object]]) -> None:
        everything: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*published))
        abandoned: asyncio.Future[Any] = asyncio.ensure_future(self._abandon.wait())
        try:
            await asyncio.wait({everything, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandoned.cancel()
        if not everything.done():
            everything.cancel()
            raise WriteAborted()
