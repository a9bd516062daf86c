"""The KPI engine: which windows to (re)compute, when, and writing their KPIs. Two feeds, one computation.

- **Live** (in the collector): the KPI stage notes the 5-minute buckets of event time its readings
  fall in (stage.py). Before a batch is acknowledged, the buckets become *pending windows*: every
  window of the configured grains (``5m``, ``1h``, ``day``) within ``KpiConfig.lookback_s`` of them,
  since a reading changes the counter interval, outage or session around it. Every ``kpi.every_s``
  the engine waits until what was received so far is in InfluxDB (committed, spool drained) and
  computes the pending windows that are *due*, grouped by local day: for every run of at most 3
  hours of 5-minute and hourly windows it reads the span they need back **once** (raw.py), cuts
  each window's readings from it (``RawData.slice``), computes it (compute.py) and writes its rows;
  a day window is read back in parts of the devices (``day_points``), so that the KPI process never
  holds a whole day of a city's readings. A KPI point is identified by its tags and time, so a
  rewrite replaces it.
- **Due.** A 5-minute or hourly window is due once the watermark has passed its end by
  ``lookahead_s`` (the readings after it that close its last counter interval and outage have then
  arrived): it is written when it closes, once, and again only when a late reading touches it; while
  late readings of it keep coming, at most every ``kpi.late_every_s`` and once more when they stop. A
  day costs a read of the whole day: while its readings keep coming (the open day, or a closed day
  replayed from a backlog) it is computed at most every ``kpi.day_every_s``; a closed day also as
  soon as its readings have stopped coming for two cycles.
  The watermark is the newest reading time seen or the clock, whichever is later.
- **Final.** A window's rows carry ``final=false`` until the watermark has passed its end by
  ``kpi.lateness_s``; such a window is computed once more then, with ``final=true``.
- **Billing.** A closed day's computation also brings its calendar month's billing points up to
  date (billing.py), from the 5-minute points just written.
- **Recompute** (``city-telemetry kpi recompute``): :meth:`KpiEngine.recompute_day` for every day
  of a range and every grain, from what is stored, read the same way.

Because both compute from storage, KPIs do not depend on one process seeing all of a device's
messages, or seeing them in order: several collectors on a shared subscription, a restart or a
SIGKILL change nothing, as long as each touched window is recomputed once its readings are stored.
The pending windows are therefore kept in a small state file, written and fsynced before the messages
that touched them are acknowledged (the committer's ``before_ack`` hook), and cleared only once the
window's rows are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import structlog

from collector.kpi.billing import Month, month_points, month_window
from collector.kpi.cadence import Cadence, CadenceWarning
from collector.kpi.compute import DeviceSummary, KpiConfig, summarise, window_rows
from collector.kpi.enrich import Places
from collector.kpi.output import KpiPoint, to_lines, to_point
from collector.kpi.raw import DeviceRaw, RawData, device_parts, read_raw, stored_devices, to_readings
from collector.kpi.stage import KpiStage
from collector.kpi.windows import (
    GRAINS,
    NS,
    Grain,
    Window,
    closed,
    day_window,
    elapsed,
    touched_by_buckets,
    windows_of_day,
)
from collector.sink.config import InfluxConfig
from collector.sink.influxdb import InfluxWriter
from collector.sink.query import InfluxQuery, QueryError

log = structlog.get_logger("collector.kpi.engine")

PURGE_EVERY_S = 3600.0
WRITE_CHUNK = 20_000  # KPI lines per write: a day of 5-minute windows at city scale is ~400k points


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
        grains: Iterable[Grain] = GRAINS,
        day_every_s: float = 900.0,
        late_every_s: float = 300.0,
        process_nice: int = 10,
    ) -> None:
        self.settings = settings
        self.places = places
        self.query = query
        self.writer = writer
        self.stage = stage
        self.state_file = state_file
        self.lateness_ns = int(lateness_s * NS)
        self.grains: tuple[Grain, ...] = tuple(g for g in GRAINS if g in set(grains))
        self.day_every_s = day_every_s
        self.late_every_s = late_every_s
        self.process_nice = process_nice
        self.reach_ns = int(settings.lookback_s * NS)
        # pending: touched since last computed; in_flight: being computed (a touch meanwhile makes a
        # window pending again); unfinal: written with final=false, computed once more when final.
        self.pending, self.unfinal = self._load_state()
        self.in_flight: set[Window] = set()
        self._unsaved = False
        # Per window (not per reading): the monotonic time it was last computed, and last touched; kept
        # while it may be due again (see due and _forget).
        self._done_at: dict[Window, float] = {}
        self._touched_at: dict[Window, float] = {}
        self.quiet_s = 60.0  # a window not touched for this long has no more readings arriving (run: 2 x every_s)
        self.days_computed = 0
        self.windows_computed = 0
        self.rows_written = 0
        self.failures = 0
        # The KPI process's peak resident memory: a day's readings read back set it (docs/performance.md).
        self.process_peak_rss_bytes = 0
        self.last_error: str | None = None
        self._cadence_warned: CadenceWarning | None = None  # what was last logged, until the settings fit
        self._pool: ProcessPoolExecutor | None = None
        self.presence_purges = 0

    # -- state: the pending windows survive a crash -----------------------------------------
    def _load_state(self) -> tuple[set[Window], set[Window]]:
        if self.state_file is None or not self.state_file.exists():
            return set(), set()
        try:
            state = json.loads(self.state_file.read_text())
            pending = {Window(int(a), int(b), g) for g, a, b in state.get("pending", ()) if g in GRAINS}
            unfinal = {Window(int(a), int(b), g) for g, a, b in state.get("unfinal", ()) if g in GRAINS}
            for day in state.get("dirty_days", ()):  # the state file of a version that computed days only
                pending |= {w for g in self.grains for w in windows_of_day(date.fromisoformat(day), g)}
            return pending, unfinal
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.error(
                "kpi_state_unreadable",
                file=str(self.state_file),
                error=str(error),
                hint="the windows to recompute are unknown: run `city-telemetry kpi recompute` for recent days",
            )
            return set(), set()

    def _take_touched(self) -> None:
        if self.stage is not None:
            buckets = self.stage.take_touched()
            if buckets:
                touched = touched_by_buckets(buckets, self.reach_ns, self.grains)
                now_s = time.monotonic()
                for w in touched:
                    self._touched_at[w] = now_s
                new = touched - self.pending
                if new:
                    self.pending |= new
                    self._unsaved = True

    def before_ack(self) -> None:
        """Called by the committer before it acknowledges a batch: make the touched windows durable."""
        self._take_touched()
        if self.state_file is not None and self._unsaved:
            self._write_state()

    def _write_state(self) -> None:
        """Pending and in-flight windows (a crash mid-computation leaves them to compute), and those
        not yet final; written whole, fsynced, then renamed over the old file."""
        assert self.state_file is not None
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        state = {
            "pending": sorted([w.grain, w.start_ns, w.end_ns] for w in self.pending | self.in_flight),
            "unfinal": sorted([w.grain, w.start_ns, w.end_ns] for w in self.unfinal),
        }
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.state_file)
        self._unsaved = False

    # -- computing --------------------------------------------------------------------------
    def watermark_ns(self) -> int:
        """The newest reading time seen, or the clock if later (a replayed backlog runs ahead of neither)."""
        return max(self.stage.newest_ns if self.stage is not None else 0, time.time_ns())

    def _run(self, function: Callable[[Any], Any], job: Any) -> Awaitable[Any]:
        """Reading back and computing takes seconds of CPU for a city: it runs in a process of its own
        (one, reused), so that ingest keeps its event loop and the machine's other core."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_kpi_process,
                initargs=(os.getpid(), self.process_nice),
            )
        return asyncio.get_running_loop().run_in_executor(self._pool, function, job)

    async def compute_day(self, day: date) -> list[KpiPoint]:
        """The day window's KPI points at every level, from what is stored (not written)."""
        job: DayJob = (self.query.config, self.places, self.settings, day, self.watermark_ns(), self.lateness_ns)
        try:
            result: list[KpiPoint] = await self._run(compute_day_job, job)
        except BrokenProcessPool as error:
            self._pool = None
            raise QueryError(f"the KPI process died: {error}") from None
        return result

    async def compute_windows(self, windows: list[Window], arriving: frozenset[Window] = frozenset()) -> Computed:
        """Compute and write the given windows (one local day's), read back as ``read_chunks`` says,
        and the billing month of a closed day among them. Returns, per window, whether it was final and
        how many points were written, and how many month points. Windows in ``arriving`` are still
        receiving readings: not final yet, whatever the watermark."""
        job: WindowsJob = (
            self.query.config,
            self.writer.config,
            self.places,
            self.settings,
            sorted(windows),
            self.watermark_ns(),
            self.lateness_ns,
            arriving,
        )
        try:
            computed: Computed = await self._run(compute_windows_job, job)
        except BrokenProcessPool as error:
            self._pool = None
            raise QueryError(f"the KPI process died: {error}") from None
        self.windows_computed += len(computed.windows)
        self.days_computed += sum(1 for w, _, _ in computed.windows if w.grain == "day")
        self.rows_written += computed.points
        self.process_peak_rss_bytes = max(self.process_peak_rss_bytes, computed.peak_rss_bytes)
        self._warn_of_cadence(computed.cadence)
        return computed

    def _warn_of_cadence(self, found: CadenceWarning | None) -> None:
        """Log that the devices report less often than the settings say: once, and again only when
        what was seen changes by more than 10 % (every pass would find it again). A pass that could
        not tell (None: too few readings) changes nothing; one that found the settings fit resets."""
        if found is None:
            return
        last = self._cadence_warned
        # What this pass could not measure keeps what an earlier pass found (a short read of a slow
        # network sees too few client lists to say, while its reports fit).
        found = found._replace(
            report_gap_s=found.report_gap_s if found.reports_seen else last and last.report_gap_s,
            clients_gap_s=found.clients_gap_s if found.clients_seen else last and last.clients_gap_s,
        )
        if found.report_gap_s is None and found.clients_gap_s is None:
            self._cadence_warned = None
            return
        if not found.like(last):
            log.warning(
                "kpi_report_period_mismatch",
                report_gap_s=found.report_gap_s,
                report_period_s=self.settings.period_s,
                clients_gap_s=found.clients_gap_s,
                clients_every_s=self.settings.clients_period_s,
                devices=found.devices,
                hint=(
                    "the devices' typical gap between reports (or client lists) is set beside the setting it "
                    "exceeds; set kpi.report_period_s and kpi.clients_every_s to how often devices report, "
                    "or availability counts them down and concurrent clients fall to 0 between reports"
                ),
            )
            self._cadence_warned = found

    def close(self) -> None:
        """Stop the KPI process, even in the middle of a job: a day of windows can take longer than a
        stop may wait, and the interpreter's exit would wait for it. What it had not written stays
        pending in the state file; what it had written is rewritten, identically, next time."""
        if self._pool is not None:
            # ProcessPoolExecutor has no public way to end a running job; its process table is stable
            # across CPython 3.8-3.13.
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.terminate()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def recompute_day(self, day: date, grains: Iterable[Grain] | None = None) -> int:
        """Compute one local day's windows of ``grains`` (default: the configured ones) from storage
        and write their rows; returns how many points were written."""
        chosen = self.grains if grains is None else tuple(grains)
        windows = [w for g in GRAINS if g in chosen for w in windows_of_day(day, g)]
        return (await self.compute_windows(windows)).points

    # -- live -------------------------------------------------------------------------------
    async def run(
        self, every_s: float, ready: Callable[[], Awaitable[bool]], presence_retention_days: int | None = None
    ) -> None:
        """Every ``every_s``: once ``ready()`` says what was received is stored, compute the due windows;
        and every hour, delete the client pseudonyms older than ``presence_retention_days``."""
        purged_at = 0.0
        self.quiet_s = 2 * every_s
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.cycle(ready)
            except Exception as error:  # a KPI bug must not stop ingest, nor go unnoticed
                self.failures += 1
                log.error(
                    "kpi_cycle_failed",
                    error=repr(error),
                    hint="a bug in the KPI engine: ingest goes on, the windows stay pending; please report it",
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

    def due(self, watermark_ns: int, now_s: float, stopping: bool = False) -> list[Window]:
        """The pending windows to compute now, and the written windows that have become final (closed
        by the lateness and no reading of them for ``quiet_s``).

        A 5-minute or hourly window is due once closed: at once the first time; touched again by a late
        reading, at once if it was last computed ``late_every_s`` ago or more, else as soon as no reading
        of it has come for ``quiet_s`` (two passes). While readings of it keep coming (a backlog being
        replayed, a device whose clock lags), computing it on every pass would read back the same span
        every ``every_s`` for as long as they come; this way it is computed at most every
        ``late_every_s``, and once more when they stop. A day costs a read of the whole day: while its
        readings keep coming (the open day, or a closed day replayed) it is computed at most every
        ``day_every_s``, and a closed day as soon as they stop. ``stopping``: the last pass of a process
        that receives nothing more, where a closed 5-minute or hourly window does not wait."""
        lookahead = int(self.settings.lookahead_s * NS)
        never = -1e18
        out = []
        for w in self.pending:
            written_now = closed(w, watermark_ns, lookahead)  # its readings, and those that close it, are in
            every_s = self.day_every_s if w.grain == "day" else self.late_every_s
            long_ago = now_s - self._done_at.get(w, never) >= every_s
            quiet = now_s - self._touched_at.get(w, never) >= self.quiet_s
            if w.grain == "day":
                # Even when stopping: a replayed day's read can outlast what a stop may wait for (the
                # state file keeps it for the next process).
                if long_ago or (written_now and quiet):
                    out.append(w)
            elif written_now and (long_ago or quiet or stopping):
                out.append(w)
        out.extend(
            w
            for w in self.unfinal
            if closed(w, watermark_ns, self.lateness_ns)
            and w not in self.pending
            and not self._arriving(w, now_s)  # even when stopping: the broker may hold more of its readings
        )
        return sorted(out)

    def _arriving(self, window: Window, now_s: float) -> bool:
        """Whether readings of ``window`` came in the last ``quiet_s``: more may follow, so it is not final."""
        return now_s - self._touched_at.get(window, -1e18) < self.quiet_s

    def _forget(self, now_s: float) -> None:
        """Drop the times of windows that can no longer make a difference: not pending, computed and
        touched longer ago than any wait (the state stays the size of the windows in play)."""
        horizon = now_s - max(self.day_every_s, self.late_every_s, self.quiet_s)
        for times in (self._done_at, self._touched_at):
            stale = [w for w, at in times.items() if at < horizon and w not in self.pending]
            for w in stale:
                del times[w]

    async def cycle(self, ready: Callable[[], Awaitable[bool]], stopping: bool = False) -> int:
        """One pass: returns how many windows were computed (``stopping``: see ``due``).

        The due windows leave ``pending`` before ``ready()`` is awaited: a reading that touches one of
        them from then on (it may not be stored when the window is read back) makes it pending again,
        for the next pass, rather than being lost in this one."""
        self._take_touched()
        now_s = time.monotonic()
        due = self.due(self.watermark_ns(), now_s, stopping)
        if not due:
            return 0
        self.pending.difference_update(due)
        self.in_flight.update(due)
        by_day: dict[date, list[Window]] = {}
        for w in due:
            by_day.setdefault(w.local_date(), []).append(w)
        done = 0
        try:
            if not await ready():
                return 0
            # Even on the last pass before a stop: the broker's session may hold more of their readings,
            # for the next process, which finalises them once they stop (the state file keeps them unfinal).
            arriving = frozenset(w for w in due if self._arriving(w, now_s))
            for day, windows in sorted(by_day.items()):
                try:
                    results = await self.compute_windows(windows, arriving & frozenset(windows))
                except (QueryError, OSError) as error:
                    self.failures += 1
                    if str(error) != self.last_error:
                        log.warning(
                            "kpi_compute_failed",
                            day=day.isoformat(),
                            error=str(error),
                            hint="InfluxDB unreachable or refusing; the windows stay pending and are retried",
                        )
                    self.last_error = str(error)
                    break
                self.last_error = None
                for w, final, written in results.windows:
                    self.in_flight.discard(w)
                    self.unfinal.discard(w)
                    if written and not final:
                        self.unfinal.add(w)
                    self._done_at[w] = now_s
                self._unsaved = True
                done += len(results.windows)
                log.info(
                    "kpi_windows_computed",
                    day=day.isoformat(),
                    windows=_count_grains(windows),
                    rows=results.points,
                    month_rows=results.month_points,
                    kpi_process_peak_mib=round(results.peak_rss_bytes / 2**20),
                )
        finally:
            self.pending |= self.in_flight  # not computed (not ready, failed, cancelled): still to do
            self.in_flight.clear()
            self._forget(now_s)
            if self.state_file is not None and self._unsaved:
                with contextlib.suppress(OSError):
                    self._write_state()
        return done

    def stats(self) -> dict[str, int]:
        self._take_touched()
        return {
            "kpi_days_pending": len({w.local_date() for w in self.pending | self.in_flight}),
            "kpi_windows_pending": len(self.pending) + len(self.in_flight),
            "kpi_windows_not_final": len(self.unfinal),
            "kpi_days_computed": self.days_computed,
            "kpi_windows_computed": self.windows_computed,
            "kpi_rows_written": self.rows_written,
            "kpi_failures": self.failures,
            "kpi_process_peak_rss_bytes": self.process_peak_rss_bytes,
        }


def _count_grains(windows: Iterable[Window]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.grain] = counts.get(w.grain, 0) + 1
    return counts


Done = tuple[Window, bool, int]  # a window, whether it was final, how many points were written


@dataclass(frozen=True, slots=True)
class Computed:
    windows: list[Done]
    month_points: int  # billing points (grain month) of the months of closed days
    peak_rss_bytes: int = 0  # the computing process's peak resident memory so far (a day's readings set it)
    cadence: CadenceWarning | None = None  # the devices report less often than the settings say

    @property
    def points(self) -> int:
        return sum(n for _, _, n in self.windows) + self.month_points


DayJob = tuple[InfluxConfig, Places, KpiConfig, date, int, int]
# read from, write to, places, settings, the windows, watermark, lateness, the windows whose readings are still arriving
WindowsJob = tuple[InfluxConfig, InfluxConfig, Places, KpiConfig, list[Window], int, int, frozenset[Window]]


def _start_kpi_process(parent: int, nice: int) -> None:
    """In the KPI process: take a smaller share of the CPU than ingest, and end when the collector is gone.

    Its work can wait and ingest's cannot: reading a window back and computing it takes seconds of
    CPU, and on a machine whose cores are full (the sizing bench's late stream, a backlog drained
    beside InfluxDB) those seconds were taken from ingest, which then fell behind the broker. With
    ``nice`` added (``kpi.process_nice``) the kernel weighs it below the collector's own threads when
    both wait for a core (a weight, not a strict order; under systemd or the kernel's autogroups the
    two share a group, so it ranks the KPI process against ingest, not against influxd). InfluxDB's
    work answering its reads is not lowered. Where lowering the priority is refused (a strict
    seccomp filter), the process runs at the collector's, as it did before the key existed. A
    SIGKILLed parent cannot stop its pool: a thread watches for it."""
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


async def _read_span(influx: InfluxConfig, settings: KpiConfig, windows: list[Window]) -> RawData:
    """One read for all the windows: from lookback before the first to lookahead after the last."""
    before = int(settings.lookback_s * NS)
    after = int(settings.lookahead_s * NS)
    query = InfluxQuery(influx)
    try:
        return await read_raw(query, min(w.start_ns for w in windows) - before, max(w.end_ns for w in windows) + after)
    finally:
        await query.close()


def window_points(raw: RawData, window: Window, places: Places, settings: KpiConfig, final: bool) -> list[KpiPoint]:
    """One window's KPI points, from its readings cut from a wider read (``RawData.slice``), marked
    ``final`` or not (``_compute_windows`` says when a window is)."""
    cut = raw.slice(window.start_ns - int(settings.lookback_s * NS), window.end_ns + int(settings.lookahead_s * NS))
    if not cut.any_within(window.start_ns, window.end_ns):
        return []  # nothing was reported in the window: nothing to say (not a window of zeros)
    summaries = {
        name: summarise(to_readings(d, places.place(name, d.tags)), window, settings) for name, d in cut.devices.items()
    }
    return _points(summaries, window, places, settings, final)


async def day_points(
    influx: InfluxConfig,
    places: Places,
    settings: KpiConfig,
    window: Window,
    final: bool,
    cadence: Cadence | None = None,
) -> list[KpiPoint]:
    """A day window's KPI points, its readings read back in ``settings.day_reads`` parts of the devices
    (``raw.device_parts``), one part at a time: each device's readings become its summary for the day
    (``compute.summarise``: up time, volumes, client buckets, samples) and are let go before the next
    part is read. The points are those of one read of everything: a device is in exactly one part, and
    the levels above are computed from the summaries, in device order, as ``window_points`` does.
    ``cadence``, if given, notes how often each device reported (cadence.py)."""
    lo, hi = window.start_ns - int(settings.lookback_s * NS), window.end_ns + int(settings.lookahead_s * NS)
    summaries: dict[str, DeviceSummary] = {}
    reported = False
    query = InfluxQuery(influx)
    try:
        parts = device_parts(await stored_devices(query), settings.day_reads) if settings.day_reads > 1 else [""]
        for part in parts:
            raw = await read_raw(query, lo, hi, part)
            reported = reported or raw.any_within(window.start_ns, window.end_ns)
            for name in list(raw.devices):
                d = raw.devices.pop(name)  # let the part's readings go as the summaries are made
                if cadence is not None:
                    cadence.add(name, d.reports.times(), d.presence.times())
                summaries[name] = summarise(to_readings(d, places.place(name, d.tags)), window, settings)
            del raw
    finally:
        await query.close()
    if not reported:
        return []  # nothing was reported in the day: nothing to say
    return _points(summaries, window, places, settings, final)


def _points(
    summaries: dict[str, DeviceSummary], window: Window, places: Places, settings: KpiConfig, final: bool
) -> list[KpiPoint]:
    for device in places.devices:  # a device of the inventory that said nothing was down
        if device not in summaries:
            summaries[device] = summarise(to_readings(DeviceRaw(device), places.place(device)), window, settings)
    # In device order: the devices come in the order a read met them, which depends on the span read;
    # sums of floats in another order can differ in the last bit, and live must equal recompute.
    ordered = [summaries[name] for name in sorted(summaries)]
    rows = window_rows(ordered, window, settings)
    seen = {s.place.device: s.place for s in ordered}
    return [to_point(row, places, seen, final=final) for row in rows]


def compute_day_job(job: DayJob) -> list[KpiPoint]:
    """One day window's KPI points (runs in the KPI process): read back, compute, mark final."""
    influx, places, settings, day, newest_ns, lateness_ns = job
    window = day_window(day)
    final = closed(window, newest_ns, lateness_ns)
    return asyncio.run(day_points(influx, places, settings, elapsed(window, newest_ns), final))


READ_CHUNK_NS = 3 * 3600 * NS


def read_chunks(windows: list[Window]) -> list[list[Window]]:
    """The reads that compute ``windows``: a day window on its own (``day_points`` reads it in parts),
    and the 5-minute and hourly windows in runs of at most ``READ_CHUNK_NS`` (3 hours), one read each
    (their span and the lookback and lookahead around it). A live pass's few windows are one read; a
    whole day's 312 are 8, so that no read holds a whole day's readings at once, for 1.2 times the
    reading of one read of the day."""
    chunks: list[list[Window]] = []
    current: list[Window] = []
    for window in sorted(windows, key=lambda w: (w.start_ns, w.end_ns)):
        if window.grain == "day":
            chunks.append([window])
        elif current and window.end_ns - current[0].start_ns > READ_CHUNK_NS:
            chunks.append(current)
            current = [window]
        else:
            current.append(window)
    if current:
        chunks.append(current)
    return chunks


def month_final(
    month: Month, windows: list[Window], newest_ns: int, lateness_ns: int, arriving: frozenset[Window]
) -> bool:
    """Whether a billing month's points are final: the month closed by the lateness, and none of its
    windows computed in this job still receiving readings (the month is made from their points)."""
    if newest_ns < month.end_ns + lateness_ns:
        return False
    return not any(w in arriving and month_window(w.local_date()) == month for w in windows)


def compute_windows_job(job: WindowsJob) -> Computed:
    """Read the span once, compute every window from its slice, write (runs in the KPI process)."""
    return asyncio.run(_compute_windows(*job))


async def _compute_windows(
    influx: InfluxConfig,
    kpi_influx: InfluxConfig,
    places: Places,
    settings: KpiConfig,
    windows: list[Window],
    newest_ns: int,
    lateness_ns: int,
    arriving: frozenset[Window] = frozenset(),
) -> Computed:
    writer = InfluxWriter(kpi_influx)  # the KPI retention policy or bucket (InfluxConfig.for_kpis)
    done: list[Done] = []
    lines: list[str] = []

    async def flush() -> None:
        if lines:
            report = await writer.write(lines)
            if report.refused:
                raise QueryError(f"InfluxDB refused {len(report.refused)} KPI lines: {report.refused[0][1]}")
            lines.clear()

    lookahead = int(settings.lookahead_s * NS)
    month_points_written = 0
    cadence = Cadence()
    try:
        for chunk in read_chunks(windows):
            raw = None  # a day window reads itself, in parts (day_points, which notes the cadence too)
            if chunk[0].grain != "day":
                raw = await _read_span(influx, settings, chunk)
                for name, device in raw.devices.items():
                    cadence.add(name, device.reports.times(), device.presence.times())
            for window in chunk:
                # Final once the lateness has passed and no more of its readings are coming in: a backlog
                # replayed after the lateness would otherwise change figures already marked final.
                final = closed(window, newest_ns, lateness_ns) and window not in arriving
                so_far = elapsed(window, newest_ns)  # an open window: what has happened of it
                if raw is None:
                    points = await day_points(influx, places, settings, so_far, final, cadence)
                else:
                    points = window_points(raw, so_far, places, settings, final)
                lines.extend(to_lines(points))
                done.append((window, final, len(points)))
                if len(lines) >= WRITE_CHUNK:
                    await flush()
            del raw
        await flush()
        # A closed day brings its month's billing figures up to date (from the 5-minute points just
        # written: billing.py); the open day does not, as the month changes by its closed windows only.
        # So do 5-minute windows of a closed day computed without it (`kpi recompute --grain 5m`).
        months = {
            month_window(w.local_date()): w.local_date()
            for w in windows
            if w.grain in ("day", "5m") and closed(day_window(w.local_date()), newest_ns, lookahead)
        }
        if months:
            query = InfluxQuery(kpi_influx)
            try:
                for month, day in sorted(months.items(), key=lambda item: item[0].start_ns):
                    final = month_final(month, windows, newest_ns, lateness_ns, arriving)
                    points = await month_points(query, places, day, newest_ns, final=final)
                    lines.extend(to_lines(points))
                    await flush()
                    month_points_written += len(points)
            finally:
                await query.close()
    finally:
        await writer.close()
    return Computed(
        done, month_points_written, peak_rss_bytes(), cadence.check(settings.period_s, settings.clients_period_s)
    )


def peak_rss_bytes() -> int:
    """This process's own peak resident memory: ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss``: the KPI process is started by fork and exec (multiprocessing's spawn), and
    Linux carries the forked copy's resident size across the exec into ``ru_maxrss``, so the KPI
    process reported the collector's size at the time it was started as its own (a test process
    holding a simulated day made it 14.8 GB where the KPI process itself held about 0.5).
    ``ru_maxrss`` (KiB) stays the fallback where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
