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

from collector.config import Config
from collector.deadletter import DeadLetters, make_record
from collector.influx import InfluxWriter, WriteAborted
from collector.mqtt_source import MqttSource
from collector.pipeline import Pipeline
from collector.topics import TopicPattern

log = structlog.get_logger("collector.service")

DRAIN_CHUNK = 2000  # messages handled before giving the event loop a turn


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (connection generation, packet id)
    dead: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0
    first_received: float = 0.0


class Collector:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pipeline = Pipeline(
            TopicPattern(config.topics.pattern),
            max_payload_bytes=config.limits.max_payload_bytes,
            max_future_s=config.limits.max_future_s,
            max_past_s=config.limits.max_past_s,
        )
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
        self.counters: Counter[str] = Counter()
        self._batch = Batch()
        self._flush_now = asyncio.Event()
        self._idle = asyncio.Event()  # set whenever nothing is waiting to be written
        self._idle.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, grace_s: float = 10.0) -> None:
        """Run until ``stop`` is set, then flush what was received (for up to ``grace_s``)."""
        log.info("collector_starting", subscriptions=self.config.subscriptions,
                 influxdb=self.config.influxdb.url, api=self.config.influxdb.api)  # fmt: skip
        self.source.start()
        consumer = asyncio.create_task(self._consume(), name="consume")
        flusher = asyncio.create_task(self._flush_loop(), name="flush")
        reporter = asyncio.create_task(self._report_loop(), name="report")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({consumer, flusher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                log.error("collector_task_failed", task=task.get_name(), error=repr(task.exception()))
        self._stopping = True
        consumer.cancel()
        reporter.cancel()
        self._flush_now.set()
        try:
            await asyncio.wait_for(self._drain_on_stop(flusher), timeout=grace_s)
        except TimeoutError:
            log.warning("shutdown_grace_expired", unwritten_lines=len(self._batch.lines),
                        note="unacknowledged messages stay in the broker session")  # fmt: skip
        self._abandon_writes = True
        flusher.cancel()
        await asyncio.gather(consumer, flusher, reporter, stopper, return_exceptions=True)
        self.source.stop()
        await self.writer.close()
        self.dead_letters.close()
        self._log_stats("collector_stopped")

    async def _drain_on_stop(self, flusher: asyncio.Task[None]) -> None:
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
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = message._topic.decode("utf-8", "replace")
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
            if not batch.messages:
                batch.first_received = time.monotonic()
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=interval)
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
        """Make the batch durable, then acknowledge its messages (in receive order)."""
        await self._write_dead_letters(batch.dead)
        size = self.config.batch.max_lines
        refused: list[dict[str, Any]] = []
        try:
            for start in range(0, len(batch.lines), size):
                report = await self.writer.write(batch.lines[start : start + size])
                self.counters["lines_written"] += report.accepted
                for line, reason in report.refused:
                    record = make_record("influxdb_rejected", reason, None, None, time.time_ns(), line=line)
                    self.dead_letters.note(record)
                    refused.append(record)
        except WriteAborted:
            self.counters["batches_abandoned"] += 1
            return  # not acknowledged: the broker redelivers these messages to the next run
        await self._write_dead_letters(refused)
        self.counters["acked"] += self.source.ack(batch.acks)
        self.counters["messages_committed"] += batch.messages
        self.counters["rejected"] += len(batch.dead)

    async def _write_dead_letters(self, records: list[dict[str, Any]]) -> None:
        handles = self.dead_letters.write(records)
        # A dead letter published to MQTT counts as durable once the broker acknowledged it.
        while handles and not all(h.is_published() for h in handles):  # type: ignore[attr-defined]
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
            "mqtt_connects": self.source.connects,
            "mqtt_disconnects": self.source.disconnects,
            "retained_wills_skipped": self.pipeline.retained_wills_skipped,
        }

    def _log_stats(self, event: str) -> None:
        log.info(event, **self.stats())
