"""/healthz and /metrics of a running collector."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, running_collector, wait_until

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
        assert (await asyncio.to_thread(get, f"{base}/healthz"))[0] == 200
