"""Fixtures: real mosquitto and influxd processes in temporary folders, and an in-process collector."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.app.config import Config, load_config
from collector.app.service import Collector
from collector.harness.localservers import InfluxDB, Mosquitto
from collector.ops.logs import configure_logging
from tests.daemon import end_started

DATABASE = "city_telemetry"

configure_logging("warning", "console")


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    """A collector process a test started (tests/daemon.py) ends with its test, failed or not."""
    yield
    end_started()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path / "influxdb")
    server.start()
    yield server
    server.kill()


def collector_config(mosquitto: Mosquitto, influxdb: InfluxDB | str, tmp_path: Path, **overrides: str) -> Config:
    url = influxdb if isinstance(influxdb, str) else influxdb.url
    env = {
        "CITY_TELEMETRY__MQTT__PORT": str(mosquitto.port),
        "CITY_TELEMETRY__MQTT__CLIENT_ID": f'"collector-{tmp_path.name}"',
        "CITY_TELEMETRY__INFLUXDB__URL": f'"{url}"',
        "CITY_TELEMETRY__INFLUXDB__RETRY_MAX_S": "1.0",
        "CITY_TELEMETRY__DEAD_LETTER__FILE": f'"{tmp_path / "dead-letter.jsonl"}"',
        "CITY_TELEMETRY__BATCH__MAX_INTERVAL_S": "0.1",
        "CITY_TELEMETRY__SPOOL__FOLDER": f'"{tmp_path / "spool"}"',
    }
    env.update({f"CITY_TELEMETRY__{key.upper()}": value for key, value in overrides.items()})
    return load_config(None, env)


@contextlib.asynccontextmanager
async def running_collector(config: Config, connected: bool = True) -> AsyncIterator[Collector]:
    """A collector running in this event loop, subscribed before the block starts.

    With ``connected=False`` the block starts at once (for brokers that refuse the collector).
    """
    collector = Collector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop, grace_s=5.0))
    if connected:
        await wait_until(lambda: collector.source.connects > 0, timeout_s=10)
        await asyncio.sleep(0.2)  # SUBACK
    try:
        yield collector
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Publisher:
    """A plain QoS 1 MQTT publisher that waits until the broker has every message."""

    def __init__(
        self, port: int, client_id: str = "test-publisher", setup: Callable[[mqtt.Client], None] | None = None
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        if setup is not None:
            setup(self.client)  # e.g. TLS and credentials (tests/security)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        self._pending.append(self.client.publish(topic, payload, qos=qos, retain=retain))

    def flush(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for info in self._pending:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a test message"
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.port)
    yield pub
    with contextlib.suppress(Exception):
        pub.close()


def points(influxdb: InfluxDB, query: str) -> list[dict[str, Any]]:
    return influxdb.rows(query, DATABASE)
