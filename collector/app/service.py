"""The collector daemon: MQTT source -> pipeline -> batches -> InfluxDB sink, acknowledging in batches.

A message is acknowledged to the broker only after everything it produced is durable: its lines
accepted (or refused for good and dead-lettered) by InfluxDB, or its refusal appended to the
dead-letter file. Until then the broker keeps it in our persistent session, so a crash loses
nothing; the broker stops sending once ``mqtt.receive_maximum`` messages are unacknowledged, which
is what bounds our memory while InfluxDB is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog

from collector.app.config import Config
from collector.delivery.deadletter import DeadLetters, make_record
from collector.delivery.spool import Spool
from collector.ingest.pipeline import Pipeline
from collector.ops.health import HealthServer
from collector.sink.influxdb import InfluxWriter, WriteAborted, WriteReport, WriteStalled
from collector.source.mqtt import MqttSource, Publication, topic_of

log = structlog.get_logger("collector.app.service")

DRAIN_CHUNK = 2000  # messages handled before giving the event loop a turn


def _published(handle: object) -> bool:
    """Whether the broker acknowledged a publish of ours (MqttSource.publish)."""
    return isinstance(handle, Publication) and handle.done


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (connection generation, packet id)
    dead: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0


class Collector:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pipeline = Pipeline.from_config(config)
        self.source = MqttSource(config.mqtt, config.subscriptions)
        self._stopping = False
        self._abandon_writes = False
        self.writer = InfluxWriter(config.influxdb, should_stop=lambda: self._abandon_writes)
        dl_topic = config.dead_letter.topic
        self.dead_letters = DeadLetters(
            config.dead_letter.file,
            publish=(lambda payload: self.source.publish(dl_topic, payload)) if dl_topic else None,
            log_every_s=config.dead_letter.log_every_s,
        )
        spool_cfg = config.spool
        self.spool = (
            Spool(spool_cfg.folder, spool_cfg.max_bytes, spool_cfg.segment_bytes) if spool_cfg.enabled else None
        )
        self._spool_has_data = asyncio.Event()
        if self.spool is not None and not self.spool.empty:
            self._spool_has_data.set()  # left by an earlier run: drain it first
        self.backpressure = False  # spool full: messages are not acknowledged until it drains
        self.drain_rate_lines_s = 0.0
        self.counters: Counter[str] = Counter()
        self.health_port: int | None = None  # where /healthz and /metrics listen, once started
        self._batch = Batch()
        self._flush_now = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever nothing is waiting to be written
        self._idle.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, grace_s: float = 10.0) -> bool:
        """Run until ``stop`` is set, then flush what was received (for up to ``grace_s``).

        Returns False if it stopped because an internal task failed (the daemon then exits non-zero,
        so that systemd restarts it); nothing unacknowledged is lost either way.
        """
        log.info("collector_starting", subscriptions=self.config.subscriptions,
                 influxdb=self.config.influxdb.url, api=self.config.influxdb.api)  # fmt: skip
        self.source.start()
        health = None
        if self.config.health.listen is not None:
            host, port = self.config.health.listen.rsplit(":", 1)
            health = HealthServer(host, int(port), self.stats, self.health)
            await health.start()
            self.health_port = health.port
        consumer = asyncio.create_task(self._consume(), name="consume")
        flusher = asyncio.create_task(self._flush_loop(), name="flush")
        reporter = asyncio.create_task(self._report_loop(), name="report")
        drainer = asyncio.create_task(self._drain_spool_loop(), name="drain-spool")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({consumer, flusher, drainer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        failed = False
        for task in done:
            if task is not stopper and (task.cancelled() or task.exception() is not None):
                failed = True
                error = "cancelled" if task.cancelled() else repr(task.exception())
                log.error("collector_task_failed", task=task.get_name(), error=error)
        stopper.cancel()
        self._stopping = True
        consumer.cancel()
        reporter.cancel()
        self._flush_now.set()
        try:
            async with asyncio.timeout(grace_s):
                await self._drain_on_stop()
        except TimeoutError:
            log.warning("shutdown_grace_expired", unwritten_lines=len(self._batch.lines),
                        note="unacknowledged messages stay in the broker session")  # fmt: skip
        self._abandon_writes = True
        flusher.cancel()
        drainer.cancel()
        await asyncio.gather(consumer, flusher, reporter, drainer, stopper, return_exceptions=True)
        self.source.stop()
        if health is not None:
            await health.stop()
        await self.writer.close()
        self.dead_letters.close()
        if self.spool is not None:
            self.spool.close()
        self._log_stats("collector_stopped")
        return not failed

    async def _drain_on_stop(self) -> None:
        # Take what paho already received, then let the flusher write it all.
        self._take_messages()
        while self._batch.messages or not self._idle.is_set():
            self._flush_now.set()
            await asyncio.sleep(0.01)

    # -- consuming --------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            await self.source.wait_for_messages()
            while self._take_messages() >= DRAIN_CHUNK:
                await asyncio.sleep(0)

    def _take_messages(self) -> int:
        """Run what has arrived through the pipeline into the current batch; returns the count."""
        batch = self._batch
        received_ns = time.time_ns()
        process = self.pipeline.process
        taken = 0
        for message, generation in self.source.drain(DRAIN_CHUNK):
            taken += 1
            topic = topic_of(message)
            result = process(topic, message.payload, message.retain, received_ns)
            if isinstance(result, list):
                batch.lines.extend(result)
            else:
                record = make_record(result.reason, result.detail, topic, message.payload, received_ns)
                self.dead_letters.note(record)
                batch.dead.append(record)
            if message.qos:
                batch.acks.append((generation, message.mid))
        if taken:
            batch.messages += taken
            self.counters["received"] += taken
            self._idle.clear()
            if len(batch.lines) >= self.config.batch.max_lines:
                self._flush_now.set()
        return taken

    # -- writing ----------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        interval = self.config.batch.max_interval_s
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the wait completes, and this loop would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._flush_now.wait()
            self._flush_now.clear()
            batch = self._batch
            if not batch.messages:
                self._idle.set()
                continue
            self._batch = Batch()
            await self._commit(batch)
            if not self._batch.messages:
                self._idle.set()

    async def _commit(self, batch: Batch) -> None:
        """Make the batch durable, then acknowledge its messages (in receive order).

        Durable means written to InfluxDB or, when InfluxDB has failed to take it for
        ``spool.after_s`` (or older readings are still spooled), appended to the disk spool.
        """
        try:
            await self._make_durable_and_ack(batch)
        finally:
            self.source.release(batch.messages)  # acknowledged or abandoned, it leaves memory

    async def _make_durable_and_ack(self, batch: Batch) -> None:
        await self._write_dead_letters(batch.dead)
        size = self.config.batch.max_lines
        refused: list[dict[str, Any]] = []
        unwritten: list[str] = []
        try:
            for start in range(0, len(batch.lines), size):
                chunk = batch.lines[start : start + size]
                if self.spool is not None and (unwritten or not self.spool.empty):
                    unwritten.extend(chunk)  # keep order: nothing overtakes what is spooled
                    continue
                try:
                    report = await self.writer.write(
                        chunk, give_up_after_s=self.config.spool.after_s if self.spool is not None else None
                    )
                except WriteStalled:
                    unwritten.extend(chunk)
                    continue
                refused.extend(self._account(report))
            if unwritten:
                await self._spool(unwritten)
        except WriteAborted:
            self.counters["batches_abandoned"] += 1
            return  # not acknowledged: the broker redelivers these messages to the next run
        await self._write_dead_letters(refused)
        self.counters["acked"] += self.source.ack(batch.acks)
        self.counters["messages_committed"] += batch.messages
        self.counters["rejected"] += len(batch.dead)

    def _account(self, report: WriteReport) -> list[dict[str, Any]]:
        """Count a write; dead-letter records for the lines InfluxDB refused."""
        self.counters["lines_written"] += report.accepted
        records = []
        for line, reason in report.refused:
            record = make_record("influxdb_rejected", reason, None, None, time.time_ns(), line=line)
            self.dead_letters.note(record)
            records.append(record)
        return records

    async def _spool(self, lines: list[str]) -> None:
        """Append to the spool, waiting while it is full (the broker holds the messages meanwhile).

        Records are at most ``batch.max_lines`` lines. While waiting, a spool that has drained empty
        means InfluxDB is taking writes again, so the lines are offered to it directly: a record
        larger than the whole spool must not wait for ever.
        """
        assert self.spool is not None
        size = self.config.batch.max_lines
        for start in range(0, len(lines), size):
            chunk = lines[start : start + size]
            while not await self._spool_or_write(chunk):
                if self._abandon_writes:
                    raise WriteAborted()
                await asyncio.sleep(0.2)
        if self.backpressure:
            self.backpressure = False
            log.info("backpressure_off", spool_bytes=self.spool.bytes)
        self._spool_has_data.set()

    async def _spool_or_write(self, chunk: list[str]) -> bool:
        """One attempt to make ``chunk`` durable; False if it has to wait (spool full)."""
        assert self.spool is not None
        try:
            if self.spool.append(chunk):
                self.counters["lines_spooled"] += len(chunk)
                self._spool_has_data.set()  # now, not after the whole batch: a later chunk may have to wait
                return True
            reason = f"spool full ({self.spool.bytes} of {self.spool.max_bytes} bytes)"
        except OSError as error:
            reason = f"spool write failed: {error}"
        if not self.backpressure:
            self.backpressure = True
            self.counters["backpressure_episodes"] += 1
            log.error("backpressure_on", reason=reason,
                      note="not acknowledging: the broker keeps the messages until the spool drains")  # fmt: skip
        if self.spool.empty:
            try:
                report = await self.writer.write(chunk, give_up_after_s=self.config.spool.after_s)
            except WriteStalled:
                return False
            await self._write_dead_letters(self._account(report))
            return True
        return False

    async def _drain_spool_loop(self) -> None:
        """Write spooled lines to InfluxDB, oldest first, in large batches."""
        if self.spool is None:
            await asyncio.Future()  # no spool: nothing to drain, ever
        assert self.spool is not None
        spool = self.spool
        chunk_lines = max(self.config.batch.max_lines, 5000)
        while True:
            await self._spool_has_data.wait()
            started, drained = time.monotonic(), 0
            log.info("spool_draining", spool_bytes=spool.bytes, spool_lines=spool.lines)
            while (chunk := spool.peek(chunk_lines)) is not None:
                report = await self.writer.write(chunk.lines)
                await self._write_dead_letters(self._account(report))
                spool.consume(chunk)
                drained += len(chunk.lines)
                self.counters["lines_drained"] += len(chunk.lines)
                # Timed from when InfluxDB took writes again, not from when it went away.
                begin = max(started, self.writer.recovered_at)
                self.drain_rate_lines_s = drained / max(time.monotonic() - begin, 1e-3)
            self._spool_has_data.clear()
            log.info("spool_drained", lines=drained, lines_per_s=round(self.drain_rate_lines_s))

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
                handles = self.dead_letters.write(records)
                break
            except OSError as error:
                log.error("dead_letter_write_failed", error=str(error), records=len(records), retry_in_s=1.0)
                if self._abandon_writes:
                    raise WriteAborted() from None
                await asyncio.sleep(1.0)
        if self.dead_letters.path is not None:
            return
        while not all(_published(h) for h in handles):
            if self._abandon_writes:
                raise WriteAborted()
            await asyncio.sleep(0.01)

    # -- reporting --------------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.log.stats_every_s)
            self._log_stats("collector_stats")

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "rejected_by_reason": dict(self.dead_letters.counts),
            "pending_lines": len(self._batch.lines),
            "write_requests": self.writer.requests,
            "write_retries": self.writer.retries,
            "series_keys": len(self.pipeline.keys),
            **self.source.stats(),
            "retained_wills_skipped": self.pipeline.retained_wills_skipped,
            "spool_bytes": self.spool.bytes if self.spool is not None else 0,
            "spool_lines": self.spool.lines if self.spool is not None else 0,
            "drain_rate_lines_s": round(self.drain_rate_lines_s),
            "backpressure": self.backpressure,
        }

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy: connected to the broker, able to make what arrives durable, and the broker not dropping."""
        connected = self.source.connected.is_set()
        dropping = self.source.broker_dropping
        detail = {
            "mqtt_connected": connected,
            "broker_dropping": dropping,
            "broker_dropped_seen": self.source.broker_dropped_seen,
            "backpressure": self.backpressure,
            "influxdb_error": self.writer.last_error,
            "spool_lines": self.spool.lines if self.spool else 0,
        }
        return connected and not self.backpressure and not dropping, detail

    def log_diagnostics(self) -> None:
        tasks = {task.get_name(): "".join(f"{f.f_code.co_name}:{f.f_lineno} " for f in task.get_stack())
                 for task in asyncio.all_tasks()}  # fmt: skip
        log.info("collector_diagnostics", stopping=self._stopping, tasks=tasks, **self.stats())

    def _log_stats(self, event: str) -> None:
        log.info(event, **self.stats())
