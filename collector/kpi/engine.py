"""The KPI engine: which days to (re)compute, when, and writing their KPIs. Two feeds, one computation.

- **Live** (in the collector): the KPI stage notes the local day of every reading (stage.py). Every
  ``kpi.every_s`` the engine waits until what was received so far is in InfluxDB (committed, spool
  drained), reads each touched day back (raw.py), computes it (day.py) and writes its rows. A late
  reading touches its own past day, which is then recomputed and rewritten: a KPI point is
  identified by its tags and time, so a rewrite replaces it.
- **Recompute** (``city-telemetry kpi recompute``): the same :meth:`KpiEngine.recompute_day` for
  every day of a range, from what is stored.

Because both compute from storage, KPIs do not depend on one process seeing all of a device's
messages, or seeing them in order: several collectors on a shared subscription, a restart or a
SIGKILL change nothing, as long as each touched day is recomputed once its readings are stored. The
touched days are therefore kept in a small state file, written before the messages that touched
them are acknowledged (the committer's ``before_ack`` hook), and cleared only once the day's rows
are written.

A day's rows carry ``final=false`` until the newest reading time seen has passed the day's end by
``kpi.lateness_s``: until then, readings of that day may still arrive, and the figures say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path

import structlog

from collector.kpi.compute import KpiConfig, compute_window
from collector.kpi.enrich import Places
from collector.kpi.output import KpiPoint, to_lines, to_point
from collector.kpi.raw import DeviceRaw, read_raw, to_readings
from collector.kpi.stage import KpiStage
from collector.kpi.windows import NS, day_window
from collector.sink.config import InfluxConfig
from collector.sink.influxdb import InfluxWriter
from collector.sink.query import InfluxQuery, QueryError

log = structlog.get_logger("collector.kpi.engine")

PURGE_EVERY_S = 3600.0


class KpiEngine:
    def __init__(
        self,
        settings: KpiConfig,
        places: Places,
        query: InfluxQuery,
        writer: InfluxWriter,
        *,
        stage: KpiStage | None = None,
        state_file: Path | None = None,
        lateness_s: float = 4 * 3600.0 + 600.0,
    ) -> None:
        self.settings = settings
        self.places = places
        self.query = query
        self.writer = writer
        self.stage = stage
        self.state_file = state_file
        self.lateness_ns = int(lateness_s * NS)
        self.dirty: set[date] = self._load_state()
        self._persisted: frozenset[date] = frozenset(self.dirty)
        self.days_computed = 0
        self.rows_written = 0
        self.failures = 0
        self.last_error: str | None = None
        self._pool: ProcessPoolExecutor | None = None
        self.presence_purges = 0

    # -- state: the touched days survive a crash --------------------------------------------
    def _load_state(self) -> set[date]:
        if self.state_file is None or not self.state_file.exists():
            return set()
        try:
            return {date.fromisoformat(d) for d in json.loads(self.state_file.read_text())["dirty_days"]}
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error(
                "kpi_state_unreadable",
                file=str(self.state_file),
                error=str(error),
                hint="the days to recompute are unknown: run `city-telemetry kpi recompute` for recent days",
            )
            return set()

    def before_ack(self) -> None:
        """Called by the committer before it acknowledges a batch: make the touched days durable."""
        if self.stage is not None:
            self.dirty |= self.stage.take_touched()
        if self.state_file is not None and self._persisted != self.dirty:
            self._write_state()

    def _write_state(self) -> None:
        assert self.state_file is not None
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"dirty_days": sorted(d.isoformat() for d in self.dirty)}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_file)
        self._persisted = frozenset(self.dirty)

    # -- computing --------------------------------------------------------------------------
    async def compute_day(self, day: date) -> list[KpiPoint]:
        """The day's KPI points at every level, from what is stored (compute.py does the arithmetic).

        Reading a day back and computing it takes seconds of CPU for a city: it runs in a process of
        its own (one, reused), so that ingest keeps its event loop and the machine's other core."""
        # Final once past the day's end by the allowed lateness, by the clock or by the readings' own time
        # (a replayed backlog runs ahead of neither).
        newest = max(self.stage.newest_ns if self.stage is not None else 0, time.time_ns())
        job = (self.query.config, self.places, self.settings, day, newest, self.lateness_ns)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, compute_day_job, job)
        except BrokenProcessPool as error:
            self._pool = None
            raise QueryError(f"the KPI process died: {error}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def recompute_day(self, day: date) -> int:
        """Compute one day from storage and write its rows; returns how many were written."""
        rows = await self.compute_day(day)
        if not rows:
            return 0
        report = await self.writer.write(to_lines(rows))
        if report.refused:
            raise QueryError(f"InfluxDB refused {len(report.refused)} KPI lines: {report.refused[0][1]}")
        self.days_computed += 1
        self.rows_written += report.accepted
        return report.accepted

    # -- live -------------------------------------------------------------------------------
    async def run(
        self, every_s: float, ready: Callable[[], Awaitable[bool]], presence_retention_days: int | None = None
    ) -> None:
        """Every ``every_s``: once ``ready()`` says what was received is stored, recompute touched days;
        and every hour, delete the client pseudonyms older than ``presence_retention_days``."""
        purged_at = 0.0
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.cycle(ready)
            except Exception as error:  # a KPI bug must not stop ingest, nor go unnoticed
                self.failures += 1
                log.error(
                    "kpi_cycle_failed",
                    error=repr(error),
                    hint="a bug in the KPI engine: ingest goes on, the days stay pending; please report it",
                )
            if presence_retention_days is not None and time.monotonic() - purged_at >= PURGE_EVERY_S:
                purged_at = time.monotonic()
                await self.purge_presence(presence_retention_days)

    async def purge_presence(self, days: int) -> bool:
        """Delete the stored client pseudonyms (``ap_client_presence``) older than ``days``: they are
        pseudonymous data, kept only as long as the KPIs that need them can be recomputed
        (docs/privacy.md). InfluxQL ``DELETE`` works on 1.x; on 2.x/3.x the bucket's retention does it."""
        try:
            await self.query.query(f'DELETE FROM "ap_client_presence" WHERE time < now() - {int(days)}d')
        except QueryError as error:
            log.warning(
                "presence_purge_failed",
                error=str(error),
                hint="on InfluxDB 2.x/3.x give the bucket a retention of kpi.presence_retention_days",
            )
            return False
        self.presence_purges += 1
        return True

    async def cycle(self, ready: Callable[[], Awaitable[bool]]) -> int:
        """One pass: returns how many days were recomputed."""
        if self.stage is not None:
            self.dirty |= self.stage.take_touched()
        if not self.dirty or not await ready():
            return 0
        done = 0
        for day in sorted(self.dirty):
            try:
                rows = await self.recompute_day(day)
            except (QueryError, OSError) as error:
                self.failures += 1
                if str(error) != self.last_error:
                    log.warning(
                        "kpi_compute_failed",
                        day=day.isoformat(),
                        error=str(error),
                        hint="InfluxDB unreachable or refusing; the day stays pending and is retried",
                    )
                self.last_error = str(error)
                break
            self.last_error = None
            self.dirty.discard(day)
            done += 1
            log.info("kpi_day_computed", day=day.isoformat(), rows=rows)
        if self.state_file is not None and self._persisted != self.dirty:
            with contextlib.suppress(OSError):
                self._write_state()
        return done

    def stats(self) -> dict[str, int]:
        return {
            "kpi_days_pending": len(self.dirty | (self.stage.touched if self.stage is not None else set())),
            "kpi_days_computed": self.days_computed,
            "kpi_rows_written": self.rows_written,
            "kpi_failures": self.failures,
        }


Job = tuple[InfluxConfig, Places, KpiConfig, date, int, int]


def _exit_with_parent(parent: int) -> None:
    """In the KPI process: end when the collector is gone (a SIGKILLed parent cannot stop its pool)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def compute_day_job(job: Job) -> list[KpiPoint]:
    """One day's KPI points (runs in the KPI process): read back, compute, mark final."""
    return asyncio.run(_compute_day(*job))


async def _compute_day(
    influx: InfluxConfig, places: Places, settings: KpiConfig, day: date, newest_ns: int, lateness_ns: int
) -> list[KpiPoint]:
    window = day_window(day)
    before = int(settings.lookback_s * NS)
    after = int(settings.lookahead_s * NS)
    query = InfluxQuery(influx)
    try:
        raw = await read_raw(query, window.start_ns - before, window.end_ns + after)
    finally:
        await query.close()
    if not raw.any_within(window.start_ns, window.end_ns):
        return []  # nothing was reported that day: nothing to say (not a day of zeros)
    for device in places.devices:  # a device of the inventory that said nothing was down
        raw.devices.setdefault(device, DeviceRaw(device))
    readings = [to_readings(d, places.place(d.device, d.tags)) for d in raw.devices.values()]
    rows = compute_window(readings, window, settings)
    final = newest_ns >= window.end_ns + lateness_ns
    return [to_point(row, places, final=final) for row in rows]
