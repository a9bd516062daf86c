"""/healthz and /metrics of a running collector."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_metrics_count_what_happened_and_health_follows_the_broker(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path, HEALTH__LISTEN='"127.0.0.1:0"')
    async with running_collector(config) as collector:
        base = f"http://127.0.0.1:{collector.health_port}"
        for i in range(7):
            topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
        publisher.publish(samples.topic("21004", "s", "ap", "ap-1", "metrics"), b"{not json")
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == 8, what="commit")
        status, body = await asyncio.to_thread(get, f"{base}/metrics")
        assert status == 200
        assert "city_telemetry_received_total 8\n" in body
        assert "city_telemetry_acked_total 8\n" in body
        assert "city_telemetry_lines_written_total 7\n" in body
        assert 'city_telemetry_rejected_by_reason_total{reason="bad_json"} 1\n' in body
        assert "city_telemetry_up 1\n" in body
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 200 and json.loads(body)["healthy"] is True
        await asyncio.to_thread(mosquitto.stop)
        await wait_until(lambda: not collector.source.connected.is_set(), what="disconnect seen")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 503 and json.loads(body)["mqtt_connected"] is False
        await asyncio.to_thread(mosquitto.start)
        await wait_until(lambda: collector.source.connected.is_set(), timeout_s=40, what="reconnect")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 200 and json.loads(body)["status"] == "healthy"


async def test_health_is_degraded_while_influxdb_is_away_and_healthy_once_the_spool_drained(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(
        mosquitto, influxdb, tmp_path, HEALTH__LISTEN='"127.0.0.1:0"', SPOOL__AFTER_S="0.5", LOG__STATS_EVERY_S="0.2"
    )
    async with running_collector(config) as collector:
        base = f"http://127.0.0.1:{collector.health_port}"
        topic, payload, _ = samples.link_probe(0, samples.recent(offset_s=0))
        publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        await wait_until(lambda: collector.counters["lines_written"] == 1, what="first write")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "healthy")

        await asyncio.to_thread(influxdb.stop)  # the real influxd, gone
        for i in range(1, 6):
            topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        await wait_until(lambda: collector.counters["lines_spooled"] == 5, what="spooled while InfluxDB is away")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        health = json.loads(body)
        assert status == 200  # degraded, not failed: restarting the collector would not help
        assert health["status"] == "degraded" and health["degraded"] is True and health["healthy"] is True
        assert health["spool_lines"] == 5 and health["influxdb_error"]
        metrics = (await asyncio.to_thread(get, f"{base}/metrics"))[1]
        assert "city_telemetry_degraded 1\n" in metrics and "city_telemetry_up 1\n" in metrics
        assert collector.stats()["health"] == "degraded"  # what the collector_stats log line says

        await asyncio.to_thread(influxdb.start)
        await wait_until(lambda: collector.counters["lines_drained"] == 5, timeout_s=60, what="spool drained")
        await wait_until(lambda: collector.health()[0] == "healthy", what="healthy again")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert (status, json.loads(body)["status"]) == (200, "healthy")
        metrics = (await asyncio.to_thread(get, f"{base}/metrics"))[1]
        assert "city_telemetry_degraded 0\n" in metrics
    assert len(points(influxdb, "SELECT * FROM link_probe")) == 6


def test_run_refuses_a_taken_health_port_in_one_line_before_connecting(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # a real listener holds the port
        port = taken.getsockname()[1]
        config = tmp_path / "collector.toml"
        config.write_text(
            f'[mqtt]\nport = {mosquitto.port}\nclient_id = "port-taken-test"\n'
            f'[influxdb]\nurl = "{influxdb.url}"\n[health]\nlisten = "127.0.0.1:{port}"\n'
            f'[dead_letter]\nfile = "{tmp_path / "dead.jsonl"}"\n[spool]\nfolder = "{tmp_path / "spool"}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "collector.app.cli", "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("city-telemetry run: cannot listen on health.listen 127.0.0.1:") and "in use" in last
    assert "mqtt_connected" not in done.stderr
    assert "port-taken-test" not in mosquitto.log_path.read_text()  # the broker never saw us
