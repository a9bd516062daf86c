"""The shipped deploy/mosquitto/city-telemetry.conf on the real mosquitto: accepted as written, and
its queueing settings hold what an absent collector's session must get."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

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
from tests.security.shipped import COLLECTOR_ACCOUNT, gateway, local_copy, with_password

pytestmark = pytest.mark.servers

MESSAGES = 5000  # five times mosquitto's default max_queued_messages
PUBLISHER = gateway("publisher")  # one account publishing for many devices


def count(influxdb: InfluxDB) -> int:
    series = influxdb.query("SELECT count(num_clients) FROM ap_clients", DATABASE)
    return int(series[0]["values"][0][1]) if series else 0


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
    passwords = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    config_file = local_copy(folder, port, password_file, keep_queue_settings=shipped, acl_extra=PUBLISHER)
    broker = Mosquitto(folder, port, config_file=config_file)
    broker.start()
    try:
        config = collector_config(
            broker,
            influxdb,
            tmp_path,
            MQTT__USERNAME=f'"{COLLECTOR_ACCOUNT}"',
            MQTT__PASSWORD=passwords[COLLECTOR_ACCOUNT],
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
    passwords = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, tls_port = tmp_path / "mosquitto", free_port()
    tls_lines = {  # the commented-out block, taken in with our port and files
        "# listener 8883": f"listener {tls_port} 127.0.0.1",
        "# cafile /etc/mosquitto/ca_certificates/city-ca.crt": f"cafile {pki.ca.cert}",
        "# certfile /etc/mosquitto/certs/broker.crt": f"certfile {pki.broker.cert}",
        "# keyfile /etc/mosquitto/certs/broker.key": f"keyfile {pki.broker.key}",
        "# require_certificate true": "require_certificate true",
        "# use_username_as_clientid true": "use_username_as_clientid true",
    }
    broker = Mosquitto(
        folder,
        tls_port,
        config_file=local_copy(folder, free_port(), password_file, more=tls_lines, acl_extra=PUBLISHER),
    )
    broker.start()
    try:
        security = mqtt_security(
            tmp_path, pki.ca.cert, pki.collector, username=COLLECTOR_ACCOUNT, password=passwords[COLLECTOR_ACCOUNT]
        )
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
    passwords = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    broker = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_extra=PUBLISHER))
    broker.start()
    try:
        config = collector_config(
            broker,
            influxdb,
            tmp_path,
            MQTT__USERNAME=f'"{COLLECTOR_ACCOUNT}"',
            MQTT__PASSWORD=passwords[COLLECTOR_ACCOUNT],
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
    passwords = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    folder = tmp_path / "mosquitto"
    broker = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_extra=PUBLISHER))
    broker.start()
    limit = 262144
    try:
        config = collector_config(
            broker,
            influxdb,
            tmp_path,
            MQTT__USERNAME=f'"{COLLECTOR_ACCOUNT}"',
            MQTT__PASSWORD=passwords[COLLECTOR_ACCOUNT],
        )
        async with running_collector(config) as collector:
            topic, payload, _ = samples.ap_clients(1, samples.recent())
            body = json.dumps(payload).encode()
            largest = body + b" " * (limit - len(body))  # valid JSON of exactly max_payload_bytes
            publisher = Publisher(port, setup=with_password("publisher", passwords["publisher"]))
            publisher.publish(topic, largest)
            publisher.close()
            await wait_until(lambda: collector.counters["acked"] == 1, what="the largest payload")
            too_large = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="too-large")
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
