"""``/healthz`` and ``/metrics`` (Prometheus text format) over HTTP, for systemd, Grafana and alerting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

Stats = Callable[[], dict[str, Any]]
Health = Callable[[], tuple[bool, dict[str, Any]]]

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
}
_GAUGES = {"pending_lines", "spool_bytes", "spool_lines", "drain_rate_lines_s", "series_keys"}
_GAUGES |= {"mqtt_held_messages", "mqtt_held_bytes"}


def render_metrics(stats: dict[str, Any], healthy: bool) -> str:
    out = []
    for key, value in sorted(stats.items()):
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float):
            name = f"city_telemetry_{key}" + ("" if key in _GAUGES or key == "backpressure" else "_total")
            kind = "gauge" if key in _GAUGES or key == "backpressure" else "counter"
            out.append(f"# HELP {name} {_HELP.get(key, key.replace('_', ' '))}")
            out.append(f"# TYPE {name} {kind}")
            out.append(f"{name} {value}")
    out.append("# HELP city_telemetry_rejected_by_reason_total messages dead-lettered, by reason")
    out.append("# TYPE city_telemetry_rejected_by_reason_total counter")
    for reason, count in sorted(stats.get("rejected_by_reason", {}).items()):
        out.append(f'city_telemetry_rejected_by_reason_total{{reason="{reason}"}} {count}')
    out.append("# HELP city_telemetry_up 1 when connected to the broker and not pushing back")
    out.append("# TYPE city_telemetry_up gauge")
    out.append(f"city_telemetry_up {int(healthy)}")
    return "\n".join(out) + "\n"


class HealthServer:
    def __init__(self, host: str, port: int, stats: Stats, health: Health) -> None:
        self.host, self.port = host, port
        self._stats, self._health = stats, health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, detail = self._health()
        return web.json_response({"healthy": healthy, **detail}, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        healthy, _ = self._health()
        return web.Response(text=render_metrics(self._stats(), healthy), content_type="text/plain", charset="utf-8")
