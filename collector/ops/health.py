"""``/healthz`` and ``/metrics`` (Prometheus text format) over HTTP, for systemd, Grafana and alerting.

Three states, so that an operator can tell "the database is away but nothing is lost" from "working"
and from "not working" (docs/delivery.md, "Health"):

- ``healthy`` (HTTP 200): connected to the broker, readings reach InfluxDB, nothing waits on disk;
- ``degraded`` (HTTP 200): readings are safe but not in InfluxDB yet: its last write failed, or the
  spool still holds readings (spooling, or draining after an outage). Dashboards are behind;
- ``unhealthy`` (HTTP 503): not connected to the broker, the spool is full (backpressure), or
  acknowledgements wait on a local file that cannot be written (the KPI state file, the receipt
  stamps: nothing is lost, the broker keeps the messages, but nothing moves either).

Degraded answers 200 because restarting the collector would not bring InfluxDB back; it is shown in
the body, in the ``city_telemetry_degraded`` gauge and in the statistics log line.

``/readyz`` answers a narrower question, for a load balancer, an orchestrator or a deployment
script: is a reading published now collected and stored? Ready (HTTP 200) when all of:

- the broker granted the telemetry subscriptions on the current connection (SUBACK; not merely
  connected: a broker that refuses a subscription in its SUBACK leaves the collector connected and
  unready. Mosquitto 2.0.11 grants a subscription its ACL denies, and delivers nothing on it);
- InfluxDB has answered since start (the start-up query or a write) and its last write did not fail;
- the spool is not full (no backpressure), and no acknowledgement waits on a local file.

Otherwise 503, with the failing conditions in the body. ``/healthz`` is for "should someone act or
restart it", ``/readyz`` for "is it doing its job right now" (docs/operations.md).

The listening socket is bound by :func:`bind_listener` before the collector connects to the broker,
so a port already taken stops the start with one clear line instead of a traceback after subscribing;
aiohttp then serves that socket (``SockSite``, its public API), which also tells us the port.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web

Status = Literal["healthy", "degraded", "unhealthy"]
Stats = Callable[[], dict[str, Any]]
Health = Callable[[], tuple[Status, dict[str, Any]]]
Ready = Callable[[], tuple[bool, dict[str, Any]]]

_HELP = {
    "received": "MQTT messages received",
    "messages_committed": "messages made durable (stored, spooled or dead-lettered)",
    "acked": "messages acknowledged to the broker",
    "rejected": "messages dead-lettered",
    "lines_written": "lines accepted by InfluxDB",
    "lines_spooled": "lines appended to the disk spool",
    "lines_drained": "lines written from the spool to InfluxDB",
    "write_requests": "HTTP write requests to InfluxDB",
    "write_retries": "InfluxDB writes retried",
    "write_answered": "HTTP write requests InfluxDB answered",
    "write_seconds": "seconds InfluxDB took to answer the write requests (divide by write_answered: mean latency)",
    "self_stats_written": "statistics points written to InfluxDB (ops.self_stats_every_s)",
    "self_stats_failures": "statistics points InfluxDB did not take",
    "backpressure_episodes": "times the spool was full",
    "mqtt_connects": "MQTT connections made",
    "mqtt_disconnects": "MQTT connections lost",
    "mqtt_read_pauses": "times reading stopped because mqtt.receive_maximum or mqtt.max_held_bytes was reached",
    "mqtt_connect_failures": "MQTT connection attempts that failed or were refused",
    "mqtt_held_messages": "messages received and not yet durable",
    "mqtt_held_bytes": "payload bytes of the messages received and not yet durable",
    "broker_dropped": "messages the broker dropped at its queue limits since it started (all clients; $SYS)",
    "broker_dropped_seen": "rises of the broker's drop count seen by this collector",
    "pending_lines": "lines waiting for the next write",
    "spool_bytes": "bytes in the disk spool",
    "spool_lines": "lines in the disk spool",
    "drain_rate_lines_s": "lines per second of the last spool drain",
    "series_keys": "series keys cached",
    "retained_wills_skipped": "retained last wills not stored again",
    "receipt_stamps_held": "stamps of receipt-stamped messages (last wills) kept for a redelivery",
    "receipt_stamps_reused": "redelivered messages stored at the stamp they got first",
    "receipt_stamps_dropped": "receipt stamps dropped because the ledger was full (a redelivery may be stored twice)",
    "spool_lost_records": "spool records found unreadable at start-up and quarantined",
    "spool_lost_bytes": "bytes of the spool found unreadable at start-up and quarantined",
    "dead_letter_bytes_cut": "payload and topic bytes left out of dead-letter excerpts",
    "dead_letter_records_cut": "dead letters whose payload, topic or line was cut to an excerpt",
    "dead_letter_rotations": "times the dead-letter file was rotated",
    "dead_letter_files_deleted": "old dead-letter files deleted (keep_files)",
    "dead_letter_bytes_deleted": "bytes of old dead-letter files deleted",
    "dead_letter_reopens": "times the dead-letter file was reopened (SIGHUP, or moved away)",
    "dead_letter_file_bytes": "bytes in the current dead-letter file",
    "retained_rejections_repeated": "refused retained messages seen again and not dead-lettered again",
    "workers": "worker processes the supervisor runs (run --workers N)",
    "workers_running": "worker processes running now",
    "worker_restarts": "workers restarted by the supervisor after they exited",
    "kpi_process_peak_rss_bytes": "peak resident memory of the KPI engine's process (with workers: the largest)",
}
_GAUGES = {
    "pending_lines",
    "spool_bytes",
    "spool_lines",
    "drain_rate_lines_s",
    "series_keys",
    "backpressure",
    "dead_letter_file_bytes",
    "mqtt_held_messages",
    "mqtt_held_bytes",
    "kpi_days_pending",
    "kpi_windows_pending",
    "kpi_windows_not_final",
    "kpi_process_peak_rss_bytes",
    "receipt_stamps_held",
    "workers",
    "workers_running",
}


def is_gauge(key: str) -> bool:
    """Whether the statistic ``key`` is a gauge (a level now) rather than a counter (a running total)."""
    return key in _GAUGES


def assess(
    *,
    mqtt_connected: bool,
    backpressure: bool,
    influxdb_error: str | None,
    spool_lines: int,
    broker_dropping: bool = False,
    broker_dropped_seen: int = 0,
    ack_blocked: str | None = None,
) -> tuple[Status, dict[str, Any]]:
    """The health state and the facts behind it (the body of ``/healthz``). Unhealthy too while the
    broker is dropping messages at its queue limits: readings are being lost before they reach us."""
    status: Status
    if not mqtt_connected or backpressure or broker_dropping or ack_blocked is not None:
        status = "unhealthy"
    elif influxdb_error is not None or spool_lines > 0:
        status = "degraded"
    else:
        status = "healthy"
    detail = {
        "mqtt_connected": mqtt_connected,
        "broker_dropping": broker_dropping,
        "broker_dropped_seen": broker_dropped_seen,
        "backpressure": backpressure,
        "influxdb_error": influxdb_error,
        "spool_lines": spool_lines,
        "ack_blocked": ack_blocked,
    }
    return status, detail


def assess_ready(
    *,
    subscribed: bool,
    influxdb_error: str | None,
    influxdb_answered: bool,
    backpressure: bool,
    ack_blocked: str | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Readiness and the facts behind it (the body of ``/readyz``; the conditions are in the module doc)."""
    ready = subscribed and influxdb_answered and influxdb_error is None and not backpressure and ack_blocked is None
    return ready, {
        "subscribed": subscribed,
        "influxdb_answered": influxdb_answered,
        "influxdb_error": influxdb_error,
        "backpressure": backpressure,
        "ack_blocked": ack_blocked,
    }


def render_metrics(stats: dict[str, Any], status: Status) -> str:
    out = []
    for key, value in sorted(stats.items()):
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            name = f"city_telemetry_{key}" + ("" if key in _GAUGES else "_total")
            kind = "gauge" if key in _GAUGES else "counter"
            out.append(f"# HELP {name} {_HELP.get(key, key.replace('_', ' '))}")
            out.append(f"# TYPE {name} {kind}")
            out.append(f"{name} {value}")
    for name, label, help_text in (
        ("rejected_by_reason", "reason", "messages dead-lettered, by reason"),
        ("retained_repeats_by_reason", "reason", "refused retained messages seen again, not dead-lettered again"),
    ):
        out.append(f"# HELP city_telemetry_{name}_total {help_text}")
        out.append(f"# TYPE city_telemetry_{name}_total counter")
        for reason, count in sorted(stats.get(name, {}).items()):
            out.append(f'city_telemetry_{name}_total{{{label}="{reason}"}} {count}')
    out.append("# HELP city_telemetry_up 1 when connected to the broker and not pushing back (healthy or degraded)")
    out.append("# TYPE city_telemetry_up gauge")
    out.append(f"city_telemetry_up {int(status != 'unhealthy')}")
    out.append(
        "# HELP city_telemetry_degraded 1 while readings wait for InfluxDB (its writes fail, or the spool holds some)"
    )
    out.append("# TYPE city_telemetry_degraded gauge")
    out.append(f"city_telemetry_degraded {int(status == 'degraded')}")
    return "\n".join(out) + "\n"


class HealthPortUnavailable(Exception):
    """``health.listen`` cannot be bound; the message is one line for the operator."""


def bind_listener(listen: str) -> socket.socket:
    """Bind and listen on ``host:port`` now (port 0: any free one), or raise HealthPortUnavailable."""
    host, port_text = listen.rsplit(":", 1)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.create_server(address, family=family)  # SO_REUSEADDR: a restart is not refused
    except OSError as error:
        reason = error.strerror or str(error)
        raise HealthPortUnavailable(
            f"cannot listen on health.listen {listen}: {reason}; is another process (or collector) using it? "
            f"(check: ss -ltnp 'sport = :{port_text}'), or set another port"
        ) from None
    sock.setblocking(False)
    return sock


class HealthServer:
    def __init__(self, sock: socket.socket, stats: Stats, health: Health, ready: Ready | None = None) -> None:
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._stats, self._health, self._ready = stats, health, ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self._ready is not None:
            app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._sock.close()

    async def _healthz(self, request: web.Request) -> web.Response:
        status, detail = self._health()
        body = {"status": status, "healthy": status != "unhealthy", "degraded": status == "degraded", **detail}
        return web.json_response(body, status=503 if status == "unhealthy" else 200)

    async def _readyz(self, request: web.Request) -> web.Response:
        assert self._ready is not None
        ready, detail = self._ready()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        status, _ = self._health()
        return web.Response(text=render_metrics(self._stats(), status), content_type="text/plain", charset="utf-8")
