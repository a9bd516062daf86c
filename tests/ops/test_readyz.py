"""``/readyz`` of a running collector follows the subscription and InfluxDB (collector/ops/health.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, running_collector, wait_until
from tests.integration.test_health import get

pytestmark = pytest.mark.servers


async def test_readyz_is_ready_when_subscribed_and_influxdb_answers_and_not_otherwise(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path, HEALTH__LISTEN='"127.0.0.1:0"')
    async with running_collector(config) as collector:
        base = f"http://127.0.0.1:{collector.health_port}"
        await wait_until(collector.source.subscribed.is_set, what="SUBACK")
        status, body = await asyncio.to_thread(get, f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body) == {
            "ready": True,
            "subscribed": True,
            "influxdb_answered": True,
            "influxdb_error": None,
            "backpressure": False,
            "ack_blocked": None,
        }

        # InfluxDB away: the next write fails, and the collector is not ready (healthz: degraded, 200).
        await asyncio.to_thread(influxdb.stop)
        topic, payload, _ = samples.ap_clients(1, samples.recent())
        publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        await wait_until(lambda: collector.writer.last_error is not None, what="failed write")
        status, body = await asyncio.to_thread(get, f"{base}/readyz")
        assert status == 503
        answer = json.loads(body)
        assert answer["ready"] is False and answer["subscribed"] is True and answer["influxdb_error"]
        status, _ = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 200

        await asyncio.to_thread(influxdb.start)
        await wait_until(lambda: collector.writer.last_error is None, timeout_s=30, what="InfluxDB back")
        status, _ = await asyncio.to_thread(get, f"{base}/readyz")
        assert status == 200

        # The broker away: no subscription, not ready.
        await asyncio.to_thread(mosquitto.stop)
        await wait_until(lambda: not collector.source.subscribed.is_set(), what="subscription lost")
        status, body = await asyncio.to_thread(get, f"{base}/readyz")
        assert status == 503 and json.loads(body)["subscribed"] is False


async def test_acknowledgements_waiting_on_the_kpi_state_file_make_it_unhealthy_and_unready(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    """The trial made the KPI state file unwritable: every acknowledgement waited on it, messages
    stayed in the broker, and /healthz said healthy. It now says so until the file can be written."""
    state = tmp_path / "kpi-state.json"
    config = collector_config(
        mosquitto, influxdb, tmp_path, HEALTH__LISTEN='"127.0.0.1:0"', KPI__STATE_FILE=f'"{state}"'
    )
    async with running_collector(config) as collector:
        base = f"http://127.0.0.1:{collector.health_port}"
        await wait_until(collector.source.subscribed.is_set, what="SUBACK")
        state.unlink(missing_ok=True)
        state.mkdir()  # os.replace onto a folder fails: the state cannot be saved
        topic, payload, _ = samples.ap_clients(1, samples.recent())
        publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        await wait_until(lambda: collector.committer.ack_blocked is not None, what="acknowledgement blocked")
        status, body = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 503 and "KPI state file" in json.loads(body)["ack_blocked"]
        status, body = await asyncio.to_thread(get, f"{base}/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
        assert collector.counters["acked"] == 0

        state.rmdir()
        await wait_until(lambda: collector.counters["acked"] >= 1, timeout_s=30, what="acknowledged once writable")
        status, _ = await asyncio.to_thread(get, f"{base}/healthz")
        assert status == 200
