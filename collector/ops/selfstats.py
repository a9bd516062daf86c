"""The collector's own statistics, written to InfluxDB beside the readings (as Telegraf's ``internal`` input).

Every ``ops.self_stats_every_s`` seconds (0: off) the collector writes what ``/metrics`` shows as
points, so that a Grafana on InfluxDB alone can show and alert on the collector's health
(deploy/grafana/, dashboard *Collector health*) without a Prometheus:

- one point of ``city_telemetry_collector`` tagged ``instance`` (``mqtt.client_id``) and ``host``,
  whose fields are the numeric statistics (counters since the process started, the committer's from
  0 before they first count; gauges as they are; a boolean as 0/1), ``health`` (text) and
  ``health_code`` (0 healthy, 1 degraded, 2 unhealthy), and ``write_latency_ms`` /
  ``write_latency_max_ms``: the mean and slowest answer of InfluxDB to the collector's writes over the
  interval (absent when there was no write);
- one point of ``city_telemetry_rejected`` per rejection reason seen so far, tagged ``reason``, with
  ``messages`` (dead-lettered, since the start) and ``retained_repeats``.

The points go through a writer of their own (the sink's :class:`InfluxWriter`, another instance),
never through the committer: they are not messages, nothing is acknowledged for them, they are not
spooled, and a failing write neither blocks ingest nor changes the collector's health. A write that
fails is counted (``self_stats_failures``), logged once per run of failures with a hint, and the
next interval writes a fresh point: the counters are cumulative, so a lost point loses no count.

:func:`stats_lines` is pure (statistics in, line protocol out); :class:`SelfStatsReporter` is the
loop around it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from collector.ingest.lineprotocol import EncodeError, FieldValue, encode_line, series_key
from collector.sink.influxdb import InfluxWriter, WriteAborted, WriteStalled

log = structlog.get_logger("collector.ops.selfstats")

MEASUREMENT = "city_telemetry_collector"
REJECTED_MEASUREMENT = "city_telemetry_rejected"
HEALTH_CODES = {"healthy": 0, "degraded": 1, "unhealthy": 2}
FINAL_WRITE_S = 2.0  # at stop, the last point is tried this long
# The committer's counters exist once they first count; the point has them from the start (0), so
# that a dashboard shows 0 rather than "no data" and a rate over a first rise has a point before it.
COUNTERS = (
    "received",
    "messages_committed",
    "acked",
    "rejected",
    "lines_written",
    "lines_spooled",
    "lines_drained",
    "backpressure_episodes",
    "batches_abandoned",
)


def stats_lines(
    stats: Mapping[str, Any], tags: Mapping[str, str], ts_ns: int, extra: Mapping[str, FieldValue] | None = None
) -> list[str]:
    """The statistics as line protocol: the collector's point, then one point per rejection reason."""
    fields: dict[str, FieldValue] = dict.fromkeys(COUNTERS, 0)
    for key, value in stats.items():
        if isinstance(value, bool):
            fields[key] = int(value)
        elif isinstance(value, int | float):
            fields[key] = value
    health = stats.get("health")
    if isinstance(health, str):
        fields["health"] = health
        fields["health_code"] = HEALTH_CODES.get(health, 2)
    fields.update(extra or {})
    tag_items = sorted(tags.items())
    lines = [encode_line(series_key(MEASUREMENT, tag_items), sorted(fields.items()), ts_ns)]
    rejected: Mapping[str, int] = stats.get("rejected_by_reason", {})
    repeats: Mapping[str, int] = stats.get("retained_repeats_by_reason", {})
    for reason in sorted(set(rejected) | set(repeats)):
        reason_fields = [("messages", int(rejected.get(reason, 0))), ("retained_repeats", int(repeats.get(reason, 0)))]
        lines.append(
            encode_line(series_key(REJECTED_MEASUREMENT, [*tag_items, ("reason", reason)]), reason_fields, ts_ns)
        )
    return lines


class SelfStatsReporter:
    """Writes :func:`stats_lines` every ``every_s`` through its own writer, best effort."""

    def __init__(
        self,
        every_s: float,
        stats: Callable[[], dict[str, Any]],
        writer: InfluxWriter,
        tags: Mapping[str, str],
        observed: InfluxWriter | None = None,
    ) -> None:
        self.every_s = every_s
        self._stats = stats
        self.writer = writer
        self.tags = dict(tags)
        self._observed = observed  # the ingest writer, whose answer times become write_latency_*
        self._seen = (observed.answered, observed.answered_s) if observed is not None else (0, 0.0)
        self.written = 0
        self.failures = 0
        self._failing = False

    def counters(self) -> dict[str, int]:
        return {"self_stats_written": self.written, "self_stats_failures": self.failures}

    def _latency(self) -> dict[str, FieldValue]:
        if self._observed is None:
            return {}
        answered, seconds = self._observed.answered, self._observed.answered_s
        count, total = answered - self._seen[0], seconds - self._seen[1]
        self._seen = (answered, seconds)
        slowest = self._observed.take_slowest()
        if count <= 0:
            return {}
        return {"write_latency_ms": round(1000 * total / count, 3), "write_latency_max_ms": round(1000 * slowest, 3)}

    async def write_once(self, timeout_s: float) -> bool:
        """One point now; False (counted, logged) if InfluxDB did not take it within ``timeout_s``."""
        try:
            lines = stats_lines(self._stats(), self.tags, time.time_ns(), self._latency())
        except EncodeError as bad:  # a tag (client id, host name) line protocol cannot carry
            self._failed(str(bad), "mqtt.client_id and the host name must be writable as InfluxDB tags")
            return False
        error: str | None = None
        try:
            async with asyncio.timeout(timeout_s):
                report = await self.writer.write(lines, give_up_after_s=timeout_s)
            if report.refused:
                error = report.refused[0][1]
        except (WriteStalled, TimeoutError) as failure:
            error = str(failure) or type(failure).__name__
        except WriteAborted:
            error = "stopping"
        if error is not None:
            self._failed(
                error,
                "is InfluxDB reachable and writable (the collector's own data goes to the same "
                "database)? a field type conflict means another program writes this measurement",
            )
            return False
        self.written += 1
        if self._failing:
            self._failing = False
            log.info("self_stats_recovered", failures=self.failures)
        return True

    def _failed(self, error: str, hint: str) -> None:
        self.failures += 1
        if not self._failing:  # once per run of failures; self_stats_failures counts them all
            self._failing = True
            log.warning("self_stats_write_failed", error=error, measurement=MEASUREMENT, hint=hint)

    async def run(self) -> None:
        """Every ``every_s`` until cancelled; a write takes at most one interval."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.write_once(timeout_s=max(1.0, self.every_s))
            except Exception as error:  # a bug here must not end the statistics, nor anything else
                self._failed(repr(error), "a bug in the collector's statistics; please report it with this line")

    async def final(self) -> None:
        """The last point at stop (the final counts), if InfluxDB takes it quickly; then close."""
        await self.write_once(timeout_s=FINAL_WRITE_S)
        await self.writer.close()
