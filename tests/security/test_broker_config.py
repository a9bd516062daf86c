"""The shipped deploy/mosquitto/city-telemetry.conf on the real mosquitto: accepted as written, and
its queueing settings hold what an absent collector's session must get."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port, write_password_file
from tests import samples
from tests.conftest import DATABASE, Publisher, collector_config, running_collector, wait_until
from tests.security.conftest import (
    SecureBroker,
    link_probes,
    mqtt_security,
    new_secret,
    stored_probes,
    tls_publisher,
)
from tests.security.pki import Pki

pytestmark = pytest.mark.servers

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "city-telemetry.conf"
QUEUE_SETTINGS = ("max_queued_messages ", "max_queued_bytes ")
MESSAGES = 5000  # five times mosquitto's default max_queued_messages


def local_copy(
    folder: Path, port: int, password_file: Path, keep_queue_settings: bool = True, more: dict[str, str] | None = None
) -> Path:
    """The shipped file with only its port, paths and password file changed (and ``user root`` when we
    are root: mosquitto would otherwise switch to its own user, which cannot enter our folders).
    ``more`` replaces further whole lines, e.g. to take the commented-out TLS listener in."""
    replacements = {
        "persistence_location /var/lib/mosquitto/": f"persistence_location {folder / 'data'}/",
        "listener 1883": f"listener {port} 127.0.0.1",
        "password_file /etc/mosquitto/passwd": f"password_file {password_file}",
        **(more or {}),
    }
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    for original in replacements:
        assert lines.count(original) == 1, f"{SHIPPED} no longer has the line {original!r}"
    adjusted = [replacements.get(line, line) for line in lines]
    if not keep_queue_settings:
        adjusted = [line for line in adjusted if not line.startswith(QUEUE_SETTINGS)]
    if os.geteuid() == 0:
        adjusted.insert(0, "user root")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    copy = folder / "city-telemetry.conf"
    copy.write_text("\n".join(adjusted) + "\n", encoding="utf-8")
    return copy


def count(influxdb: InfluxDB) -> int:
    series = influxdb.query("SELECT count(num_clients) FROM ap_clients", DATABASE)
    return int(series[0]["values"][0][1]) if series else 0


def with_password(user: str, password: str) -> Callable[[mqtt.Client], None]:
    return lambda client: client.username_pw_set(user, password)


async def settled(value: Callable[[], int], quiet_s: float = 1.5, timeout_s: float = 30.0) -> int:
    """``value()`` once it has not changed for ``quiet_s``."""
    loop = asyncio.get_running_loop()
    last, changed_at = value(), loop.time()
    deadline = changed_at + timeout_s
    while loop.time() - changed_at < quiet_s:
        assert loop.time() < deadline, "still changing"
        await asyncio.sleep(0.05)
        if (now := value()) != last:
            last, changed_at = now, loop.time()
    return last


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped", "without its queue settings"])
async def test_an_absent_collector_gets_every_queued_message_across_a_broker_restart(
    shipped: bool, influxdb: InfluxDB, tmp_path: Path
) -> None:
    passwords = {"collector": new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    config_file = local_copy(folder, port, password_file, keep_queue_settings=shipped)
    broker = Mosquitto(folder, port, config_file=config_file)
    broker.start()
    try:
        config = collector_config(
            broker, influxdb, tmp_path, MQTT__USERNAME='"collector"', MQTT__PASSWORD=passwords["collector"]
        )
        async with running_collector(config):
            pass  # the collector's persistent session now exists; then it goes away
        publisher = Publisher(port, setup=with_password("publisher", passwords["publisher"]))
        for i in range(MESSAGES):
            topic, payload, _ = samples.ap_clients(i, samples.recent(offset_s=i * 0.01))
            publisher.publish(topic, json.dumps(payload))
        publisher.close()  # every message acknowledged by the broker
        broker.stop()  # persistence: the queue is saved, and loaded again
        broker.start()
        async with running_collector(config) as collector:
            if shipped:
                await wait_until(lambda: collector.counters["acked"] == MESSAGES, what="every queued message")
            else:
                await settled(lambda: collector.counters["acked"])
    finally:
        broker.kill()
    if shipped:
        assert count(influxdb) == MESSAGES
    else:  # mosquitto's defaults drop what the shipped settings keep: this test can tell them apart
        assert 0 < count(influxdb) <= 1000 < MESSAGES


async def test_the_shipped_tls_listener_lines_take_the_collector_with_certificate_and_password(
    influxdb: InfluxDB, pki: Pki, tmp_path: Path
) -> None:
    passwords = {"collector": new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, tls_port = tmp_path / "mosquitto", free_port()
    tls_lines = {  # the commented-out block, taken in with our port and files
        "# listener 8883": f"listener {tls_port} 127.0.0.1",
        "# cafile /etc/mosquitto/ca_certificates/city-ca.crt": f"cafile {pki.ca.cert}",
        "# certfile /etc/mosquitto/certs/broker.crt": f"certfile {pki.broker.cert}",
        "# keyfile /etc/mosquitto/certs/broker.key": f"keyfile {pki.broker.key}",
        "# require_certificate true": "require_certificate true",
    }
    broker = Mosquitto(folder, tls_port, config_file=local_copy(folder, free_port(), password_file, more=tls_lines))
    broker.start()
    try:
        security = mqtt_security(tmp_path, pki.ca.cert, pki.collector, password=passwords["collector"])
        config = collector_config(broker, influxdb, tmp_path, **security)
        secure = SecureBroker(broker, password_file, passwords)
        messages, expected = link_probes(10)
        async with running_collector(config) as collector:
            publisher = tls_publisher(secure, pki)
            for topic, payload in messages:
                publisher.publish(topic, payload)
            publisher.close()
            await wait_until(lambda: collector.counters["acked"] == len(messages), what="acks")
    finally:
        broker.kill()
    assert stored_probes(influxdb) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))


async def test_an_absent_collector_gets_every_acknowledged_message_across_a_broker_crash(
    influxdb: InfluxDB, tmp_path: Path
) -> None:
    """Issue 13.13: the shipped config saves its store every second, so a SIGKILL loses at most the
    last seconds. Here it comes 2.5 s after the broker acknowledged the last message: nothing may be
    lost (with the old "autosave_interval 60" every one of them was)."""
    passwords = {"collector": new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    broker = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file))
    broker.start()
    try:
        config = collector_config(
            broker, influxdb, tmp_path, MQTT__USERNAME='"collector"', MQTT__PASSWORD=passwords["collector"]
        )
        async with running_collector(config):
            pass  # the collector's persistent session now exists; then it goes away
        publisher = Publisher(port, setup=with_password("publisher", passwords["publisher"]))
        for i in range(MESSAGES):
            topic, payload, _ = samples.ap_clients(i, samples.recent(offset_s=i * 0.01))
            publisher.publish(topic, json.dumps(payload))
        publisher.close()  # every message acknowledged by the broker
        await asyncio.sleep(2.5)
        broker.kill()
        broker.start()
        async with running_collector(config) as collector:
            await settled(lambda: collector.counters["acked"], quiet_s=3.0)
    finally:
        broker.kill()
    assert count(influxdb) == MESSAGES


async def test_the_shipped_max_packet_size_takes_the_largest_payload_the_collector_stores(
    influxdb: InfluxDB, tmp_path: Path
) -> None:
    """max_packet_size matches limits.max_payload_bytes (256 KiB): a payload of exactly that size is
    stored; a packet beyond the 4 KiB allowance never reaches the collector (the broker disconnects
    its sender)."""
    passwords = {"collector": new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    broker = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file))
    broker.start()
    limit = 262144
    try:
        config = collector_config(
            broker, influxdb, tmp_path, MQTT__USERNAME='"collector"', MQTT__PASSWORD=passwords["collector"]
        )
        async with running_collector(config) as collector:
            topic, payload, _ = samples.ap_clients(1, samples.recent())
            body = json.dumps(payload).encode()
            largest = body + b" " * (limit - len(body))  # valid JSON of exactly max_payload_bytes
            publisher = Publisher(port, setup=with_password("publisher", passwords["publisher"]))
            publisher.publish(topic, largest)
            publisher.close()
            await wait_until(lambda: collector.counters["acked"] == 1, what="the largest payload")
            too_large = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="too-large")
            too_large.username_pw_set("publisher", passwords["publisher"])
            too_large.connect("127.0.0.1", port)
            too_large.loop_start()
            info = too_large.publish(topic, body + b" " * (limit + 4096), qos=1)
            await asyncio.sleep(2.0)
            too_large.loop_stop()
            assert not info.is_published()
            assert collector.counters["received"] == 1
    finally:
        broker.kill()
    assert count(influxdb) == 1
