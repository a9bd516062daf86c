"""The collector daemon, wired: MQTT source -> ingest pipeline -> delivery committer -> InfluxDB sink.

This module only connects the parts and runs their tasks; each policy lives with its layer:
what a message means in ``collector/ingest``, when it is durable and acknowledged in
``collector/delivery/committer.py``, how the broker session behaves in ``collector/source``. The
collaborators can be passed in (tests do), else they are built from the config.

Memory is bounded by the source: it stops reading once ``mqtt.receive_maximum`` messages are held
unacknowledged, and the broker keeps the rest (docs/delivery.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from collector.app.config import Config
from collector.delivery.committer import Committer
from collector.delivery.deadletter import DeadLetters
from collector.delivery.spool import Spool
from collector.delivery.stamps import FILE_NAME as STAMPS_FILE
from collector.delivery.stamps import StampLedger
from collector.ingest.pipeline import DecodeOptions, Pipeline, Stage
from collector.ingest.routing import build_routes
from collector.ingest.topics import TopicPattern
from collector.kpi.compute import KpiConfig
from collector.kpi.engine import KpiEngine
from collector.kpi.enrich import Places, parse_places
from collector.kpi.pseudonym import PseudonymError, Pseudonymiser
from collector.kpi.stage import KpiStage
from collector.ops.health import HealthServer, Status, assess, assess_ready, bind_listener
from collector.ops.selfstats import SelfStatsReporter
from collector.ops.systemd import Notifier
from collector.sink.influxdb import InfluxWriter
from collector.sink.query import InfluxQuery, QueryError
from collector.source.mqtt import MqttSource, topic_of

log = structlog.get_logger("collector.app.service")

# Messages handled before giving the event loop a turn (about 5 ms of work). InfluxDB's answer to a
# write is read in several loop turns; at 2,000 messages (70 ms) per turn a 50-ms write took 300-400 ms
# whenever messages were flowing, the writer fell behind, and the backlog drain into InfluxDB ran at
# 11,000-13,000 msg/s instead of 16,000-18,000 (docs/performance.md, "The consumer's turn").
DRAIN_CHUNK = 100
SEED_TIMEOUT_S = 5.0
KPI_READY_WAIT_S = 30.0
KPI_FINAL_S = 10.0  # at stop, for the last days' KPIs


def build_kpi_engine(config: Config, stage: KpiStage | None) -> KpiEngine:
    """The KPI engine the config describes (the live collector's, or ``kpi recompute``'s)."""
    inventory = config.inventory
    kpi = config.kpi
    return KpiEngine(
        KpiConfig(
            period_s=kpi.report_period_s,
            clients_period_s=kpi.clients_every_s,
            missed_reports=kpi.missed_reports,
            will_delay_s=config.limits.will_delay_s,
            k_anonymity=kpi.k_anonymity,
            clients_bucket_s=kpi.clients_bucket_s,
            day_reads=kpi.day_reads,
        ),
        # the document [inventory] read at start-up: the file is read once, for the pipeline and for this
        parse_places(inventory.document, str(inventory.file)) if inventory.file is not None else Places(),
        InfluxQuery(config.influxdb),
        InfluxWriter(config.influxdb.for_kpis()),  # KPI points: their own retention policy or bucket
        stage=stage,
        state_file=(kpi.state_file or config.spool.folder / "kpi-state.json") if stage is not None else None,
        lateness_s=kpi.lateness_s,
        grains=kpi.grains,
        day_every_s=kpi.day_every_s,
        late_every_s=kpi.late_every_s,
        process_nice=kpi.process_nice,
    )


def build_pipeline(config: Config, stages: Sequence[Stage] = ()) -> Pipeline:
    """The ingest pipeline the config describes."""
    inventory = config.inventory
    return Pipeline(
        TopicPattern(config.topics.pattern),
        DecodeOptions(
            routes=build_routes(config.routing),
            max_payload_bytes=config.limits.max_payload_bytes,
            max_future_s=config.limits.max_future_s,
            max_past_s=config.limits.max_past_s,
            max_devices=config.limits.max_devices,
            known_devices=inventory.device_ids if inventory.require_known else None,
            will_delay_s=config.limits.will_delay_s,
            will_max_lag_s=config.limits.will_max_lag_s,
        ),
        max_series=config.limits.max_series,
        stages=stages,
    )


class CannotStart(Exception):
    """Something the collector needs on this machine is not there: a folder it cannot create, a file
    it cannot open or read. The message names the config key, for ``run`` to print (exit 2)."""


@contextlib.contextmanager
def _needs(key: str, path: object) -> Iterator[None]:
    """Turn a failure to set up ``key``'s file or folder into a :class:`CannotStart` naming it."""
    try:
        yield
    except (OSError, PseudonymError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise CannotStart(
            f"{key} = {str(path)!r}: {reason} (check that the path exists or can be created, and that "
            "the collector's user may use it)"
        ) from None


def _check_writable(path: Path) -> None:
    """Make ``path``'s folder if missing and write then remove a file beside ``path`` (OSError if not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = path.with_name(f".{path.name}.probe")
    probe.write_bytes(b"")
    probe.unlink()


class Collector:
    def __init__(
        self,
        config: Config,
        *,
        pipeline: Pipeline | None = None,
        source: MqttSource | None = None,
        writer: InfluxWriter | None = None,
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.config = config
        self.kpi_stage: KpiStage | None = None
        if config.kpi.enabled:
            with _needs("kpi.pseudonym_key_file", config.kpi.pseudonym_key_file):
                self.kpi_stage = KpiStage(Pseudonymiser.from_key_file(config.kpi.pseudonym_key_file))
        self.pipeline = pipeline or build_pipeline(config, [self.kpi_stage] if self.kpi_stage else [])
        self.source = source or MqttSource(config.mqtt, config.subscriptions)
        self.writer = writer or InfluxWriter(config.influxdb)
        if dead_letters is None:
            topic = config.dead_letter.topic
            with _needs("dead_letter.file", config.dead_letter.file):
                dead_letters = DeadLetters.from_config(
                    config.dead_letter,
                    publish=(lambda payload: self.source.publish(topic, payload)) if topic else None,
                )
        self.dead_letters = dead_letters
        if spool is None and config.spool.enabled:
            with _needs("spool.folder", config.spool.folder):
                spool = Spool(config.spool.folder, config.spool.max_bytes, config.spool.segment_bytes)
        self.spool = spool
        self.counters: Counter[str] = Counter()
        # A redelivered last will keeps the stamp it got first (delivery/stamps.py); in the spool
        # folder, which is each worker's own.
        with _needs("spool.folder", config.spool.folder):
            self.stamps = StampLedger(
                config.spool.folder / STAMPS_FILE, connected_since=lambda: getattr(self.source, "connected_at", None)
            )
        self.pipeline.receipts = self.stamps
        self.kpi = build_kpi_engine(config, self.kpi_stage) if self.kpi_stage is not None else None
        if self.kpi is not None and self.kpi.state_file is not None:
            # Every acknowledgement waits on this file (engine.py, before_ack): one that cannot be
            # written would hold every message in the broker, so it is found now, not at the first batch.
            with _needs("kpi.state_file", self.kpi.state_file):
                _check_writable(self.kpi.state_file)
        self.committer = Committer(
            config.batch,
            config.spool,
            sink=self.writer,
            spool=self.spool,
            dead_letters=self.dead_letters,
            acknowledger=self.source,
            counters=self.counters,
            before_ack=self.kpi.before_ack if self.kpi is not None else None,
            stamps=self.stamps,
        )
        # The statistics go to InfluxDB through a writer of their own, never the committer (collector/ops/selfstats.py).
        self.self_stats: SelfStatsReporter | None = None
        if config.ops.self_stats_every_s > 0:
            self.self_stats = SelfStatsReporter(
                config.ops.self_stats_every_s,
                self.stats,
                InfluxWriter(config.influxdb),
                {"instance": config.mqtt.client_id, "host": socket.gethostname()},
                observed=self.writer,
            )
        self.health_port: int | None = None  # where /healthz and /metrics listen, once started
        self.notifier = Notifier()  # systemd's READY/WATCHDOG/STATUS; inert outside Type=notify
        self._influxdb_answered = False  # InfluxDB answered the start-up query (for /readyz)
        self._stopping = False

    # -- what the rest of the app (and tests) read ------------------------------------------
    @property
    def backpressure(self) -> bool:
        return self.committer.backpressure

    @property
    def drain_rate_lines_s(self) -> float:
        return self.committer.drain_rate_lines_s

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, grace_s: float = 10.0) -> bool:
        """Run until ``stop`` is set, then commit what was received (for up to ``grace_s``).

        Returns False if it stopped because an internal task failed (the daemon then exits non-zero,
        so that systemd restarts it); nothing unacknowledged is lost either way.
        """
        log.info(
            "collector_starting",
            subscriptions=self.source.subscriptions,
            client_id=self.config.mqtt.client_id,
            influxdb=self.config.influxdb.url,
            api=self.config.influxdb.api,
            kpi=self.kpi is not None,
            client_pseudonyms=(
                "off"
                if self.kpi_stage is None
                else "keyed (kpi.pseudonym_key_file)"
                if self.kpi_stage.pseudonymiser.shared
                else "random daily key in memory (one process only; set kpi.pseudonym_key_file)"
            ),
        )
        health = None
        if self.config.health.listen is not None:  # bound before connecting: a taken port stops us here
            health = HealthServer(bind_listener(self.config.health.listen), self.stats, self.health, self.ready)
        await self._seed_last_seen()
        self.source.start()
        if health is not None:
            await health.start()
            self.health_port = health.port
        consumer = asyncio.create_task(self._consume(), name="consume")
        flusher = asyncio.create_task(self.committer.run_flusher(), name="flush")
        drainer = asyncio.create_task(self.committer.run_drainer(), name="drain-spool")
        reporter = asyncio.create_task(self._report_loop(), name="report")
        systemd = asyncio.create_task(self.notifier.run(self.source.subscribed, self.stats), name="systemd")
        self_stats = asyncio.create_task(self.self_stats.run(), name="self-stats") if self.self_stats else None
        kpi = None
        if self.kpi is not None:
            cfg = self.config.kpi
            kpi = asyncio.create_task(self.kpi.run(cfg.every_s, self._stored, cfg.presence_retention_days), name="kpi")
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
        self.notifier.stopping()
        systemd.cancel()
        consumer.cancel()
        reporter.cancel()
        if self_stats is not None:
            self_stats.cancel()
        if kpi is not None:
            kpi.cancel()
        try:
            async with asyncio.timeout(grace_s):
                self._take_messages()  # what paho already received
                await self.committer.finish()
        except TimeoutError:
            log.warning(
                "shutdown_grace_expired",
                unwritten_lines=len(self.committer.batch.lines),
                note="unacknowledged messages stay in the broker session",
            )
        if self.kpi is not None and not failed:
            # The last readings' windows, if they are all stored; else the state file keeps them pending.
            # Nothing more arrives: a window that late readings kept touching need not wait for quiet.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KPI_FINAL_S):
                    await self.kpi.cycle(self._stored_now, stopping=True)
        if self_stats is not None:
            await asyncio.gather(self_stats, return_exceptions=True)
        if self.self_stats is not None:
            await self.self_stats.final()  # the final counts, before the source and writers close
        self.committer.abandon()
        flusher.cancel()
        drainer.cancel()
        await asyncio.gather(consumer, flusher, reporter, drainer, stopper, systemd, return_exceptions=True)
        self.notifier.close()
        if kpi is not None:
            await asyncio.gather(kpi, return_exceptions=True)
            await self.kpi_query_close()
        self.source.stop()
        if health is not None:
            await health.stop()
        await self.writer.close()
        self.dead_letters.close()
        if self.spool is not None:
            self.spool.close()
        self._log_stats("collector_stopped")
        return not failed

    async def _seed_last_seen(self) -> None:
        """Each device's newest stored timestamp, so that a will queued while the collector was away
        is not stored after the state that followed it (ingest/decode.py, ``_stamp_will``)."""
        statement = (
            f'SELECT last("seq") FROM /.*/ WHERE time > now() - {int(self.config.limits.max_past_s)}s GROUP BY "device"'
        )
        query = InfluxQuery(self.config.influxdb)
        try:
            async with asyncio.timeout(SEED_TIMEOUT_S):
                found = await query.query(statement)
        except (QueryError, TimeoutError) as error:
            if "database not found" in str(error):
                self._influxdb_answered = True
                return  # a new database: no device has a past yet
            log.warning(
                "last_seen_not_loaded",
                error=str(error) or type(error).__name__,
                hint="InfluxDB did not answer at start: a last will queued while the collector was away "
                "is stored at its receipt, which may be after the device's next state",
            )
            return
        finally:
            await query.close()
        self._influxdb_answered = True
        last_seen = self.pipeline.decoder.last_seen_ns
        for series in found:
            device = series.tags.get("device")
            if device and series.values:
                last_seen[device] = max(last_seen.get(device, 0), int(series.values[-1][0]))
        log.info("last_seen_loaded", devices=len(last_seen))

    async def _stored(self) -> bool:
        """True once everything received so far is in InfluxDB (committed, nothing left in the spool):
        the KPI engine reads it back, so it waits for this (at most KPI_READY_WAIT_S)."""
        target = self.counters["received"]
        deadline = time.monotonic() + KPI_READY_WAIT_S
        while time.monotonic() < deadline:
            committed = self.counters["messages_committed"] >= target
            if committed and (self.spool is None or self.spool.empty) and self.writer.last_error is None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _stored_now(self) -> bool:
        stored = self.counters["messages_committed"] >= self.counters["received"]
        return stored and (self.spool is None or self.spool.empty) and self.writer.last_error is None

    async def kpi_query_close(self) -> None:
        if self.kpi is not None:
            self.kpi.close()
            await self.kpi.query.close()
            await self.kpi.writer.close()

    # -- consuming --------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            await self.source.wait_for_messages()
            while self._take_messages() >= DRAIN_CHUNK:
                await asyncio.sleep(0)

    def _take_messages(self) -> int:
        """Run what has arrived through the pipeline into the committer's batch; returns the count."""
        batch = self.committer.batch
        received_ns = time.time_ns()
        process = self.pipeline.process
        taken = 0
        for message, generation in self.source.drain(DRAIN_CHUNK):
            taken += 1
            topic = topic_of(message)
            qos = message.qos
            packet_id = message.mid if qos else 0  # QoS 0 is never redelivered
            result = process(topic, message.payload, message.retain, received_ns, packet_id, message.dup)
            if isinstance(result, list):
                batch.lines.extend(result)
            else:
                dead = self.dead_letters
                record = dead.record(result.reason, result.detail, topic, message.payload, received_ns, message.retain)
                if dead.note(record):  # False: a refused retained message already dead-lettered
                    batch.dead.append(record)
            if qos:
                batch.acks.append((generation, message.mid))
        if taken:
            self.counters["received"] += taken
            self.committer.batch_grew(taken)
        return taken

    # -- reporting --------------------------------------------------------------------------
    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.log.stats_every_s)
            self._log_stats("collector_stats")

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "rejected_by_reason": dict(self.dead_letters.counts),
            **self.dead_letters.stats(),
            "pending_lines": len(self.committer.batch.lines),
            "write_requests": self.writer.requests,
            "write_retries": self.writer.retries,
            "write_answered": self.writer.answered,
            "write_seconds": round(self.writer.answered_s, 6),
            "series_keys": len(self.pipeline.keys),
            **self.source.stats(),
            "retained_wills_skipped": self.pipeline.retained_wills_skipped,
            "wills_stamped_early": self.pipeline.decoder.wills_stamped_early,
            **self.stamps.stats(),
            **(self.kpi.stats() if self.kpi is not None else {}),
            "spool_bytes": self.spool.bytes if self.spool is not None else 0,
            "spool_lines": self.spool.lines if self.spool is not None else 0,
            "spool_lost_records": self.spool.lost_records if self.spool is not None else 0,
            "spool_lost_bytes": self.spool.lost_bytes if self.spool is not None else 0,
            "drain_rate_lines_s": round(self.committer.drain_rate_lines_s),
            "backpressure": self.committer.backpressure,
            **(self.self_stats.counters() if self.self_stats is not None else {}),
            "health": self.health()[0],
        }

    def health(self) -> tuple[Status, dict[str, Any]]:
        """healthy, degraded (InfluxDB away or spool not drained) or unhealthy (collector/ops/health.py)."""
        return assess(
            mqtt_connected=self.source.connected.is_set(),
            backpressure=self.committer.backpressure,
            influxdb_error=self.writer.last_error,
            spool_lines=self.spool.lines if self.spool else 0,
            broker_dropping=self.source.broker_dropping,
            broker_dropped_seen=self.source.broker_dropped_seen,
            ack_blocked=self.committer.ack_blocked,
        )

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Whether a reading published now is collected and stored (``/readyz``, collector/ops/health.py)."""
        return assess_ready(
            subscribed=self.source.subscribed.is_set(),
            influxdb_error=self.writer.last_error,
            influxdb_answered=self._influxdb_answered or self.writer.requests > 0,
            backpressure=self.committer.backpressure,
            ack_blocked=self.committer.ack_blocked,
        )

    def log_diagnostics(self) -> None:
        tasks = {
            task.get_name(): "".join(f"{f.f_code.co_name}:{f.f_lineno} " for f in task.get_stack())
            for task in asyncio.all_tasks()
        }
        log.info("collector_diagnostics", stopping=self._stopping, tasks=tasks, **self.stats())

    def _log_stats(self, event: str) -> None:
        log.info(event, **self.stats())
