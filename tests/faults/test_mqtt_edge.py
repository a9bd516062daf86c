"""The MQTT edge under a backlog, with payloads of many megabytes, and past the broker's own limits.

All on the real mosquitto, with the shipped deploy/mosquitto/city-telemetry.conf where the broker's
settings matter (tests/security/shipped.py makes the local copy).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port, write_password_file
from collector.ops.health import render_metrics
from tests import samples
from tests.conftest import Publisher, collector_config, running_collector, wait_until
from tests.daemon import start_daemon, wait_for_log
from tests.faults.proxy import FaultyInfluxProxy
from tests.faults.streams import readings, stored_count, stored_seqs
from tests.security.conftest import new_secret
from tests.security.shipped import COLLECTOR_ACCOUNT, gateway, local_copy, with_password

pytestmark = [pytest.mark.servers, pytest.mark.slow]


class ShippedBroker:
    """The shipped broker config on a loopback port, with a collector and a publisher account."""

    def __init__(self, tmp_path: Path, more: dict[str, str] | None = None) -> None:
        self.passwords = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
        password_file = write_password_file(tmp_path / "passwd", self.passwords)
        self.port = free_port()
        folder = tmp_path / "mosquitto"
        self.server = Mosquitto(
            folder,
            self.port,
            config_file=local_copy(folder, self.port, password_file, more=more, acl_extra=gateway("publisher")),
        )

    def publisher(self) -> Publisher:
        return Publisher(self.port, setup=with_password("publisher", self.passwords["publisher"]))

    def collector_settings(self) -> dict[str, str]:
        return {"MQTT__USERNAME": f'"{COLLECTOR_ACCOUNT}"', "MQTT__PASSWORD": self.passwords[COLLECTOR_ACCOUNT]}


def publish_all(broker: ShippedBroker, messages: list[tuple[str, bytes]]) -> None:
    publisher = broker.publisher()
    for topic, payload in messages:
        publisher.publish(topic, payload)
    publisher.close()  # every message acknowledged by the broker


async def test_a_backlog_far_beyond_receive_maximum_keeps_the_connection(influxdb: InfluxDB, tmp_path: Path) -> None:
    """Issue 13.8. mosquitto puts the backlog in flight (its window does not hold once PUBACKs flow),
    so its PINGRESP waits behind it; the collector pauses reading at receive_maximum, and every InfluxDB
    write takes longer than the keep-alive. The connection must last: no "Keep alive timeout", no
    redelivery, every reading stored once."""
    broker = ShippedBroker(tmp_path)
    broker.server.start()
    messages = readings(2000, devices=200)
    proxy = FaultyInfluxProxy(influxdb.url, delay_s=6.0)  # each write outlasts keepalive_s = 5
    await proxy.start()
    try:
        config = collector_config(
            broker.server,
            proxy.url,
            tmp_path,
            MQTT__KEEPALIVE_S="5",
            MQTT__RECEIVE_MAXIMUM="500",
            BATCH__MAX_LINES="500",
            SPOOL__ENABLED="false",
            **broker.collector_settings(),
        )
        async with running_collector(config):
            pass  # the session exists; the backlog is queued for it while the collector is away
        await asyncio.to_thread(publish_all, broker, messages)
        async with running_collector(config) as collector:
            await wait_until(lambda: collector.counters["acked"] >= len(messages), timeout_s=120, what="all acked")
            source = collector.source
            assert source.read_pauses >= 1  # reading was paused for longer than the keep-alive
            assert (source.connects, source.disconnects) == (1, 0)
            assert collector.counters["received"] == len(messages)  # nothing delivered twice
    finally:
        await proxy.stop()
        broker.server.kill()
    assert stored_seqs(influxdb) == list(range(len(messages)))


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stored_or_none(influxdb: InfluxDB) -> int:
    try:
        return stored_count(influxdb)
    except RuntimeError:  # the collector has not created the database yet
        return 0


def test_payloads_of_8_mib_are_held_within_max_held_bytes(tmp_path: Path) -> None:
    """Issue 13.7: 16 refused payloads of 8 MiB, each followed by a valid reading, while InfluxDB is
    away (no spool). A batch waits whole for InfluxDB, its dead-letter records (whole payloads, for
    now) with it, so without a byte bound the daemon keeps taking them: measured peak RSS +377 MiB.
    With mqtt.max_held_bytes 32 MiB it stops reading at the bound (+145 MiB: each held payload byte
    is also in its record and its JSON line). Then every valid reading is stored, every refusal kept."""
    count, size, bound = 16, 8 * 1024 * 1024, 32 * 1024 * 1024
    mosquitto = Mosquitto(tmp_path / "mosquitto", extra_config="max_packet_size 16777216\n")
    influxdb = InfluxDB(tmp_path / "influxdb")
    mosquitto.start()
    config = tmp_path / "collector.toml"
    dead_letters = tmp_path / "dead-letter.jsonl"
    config.write_text(f"""
[mqtt]
port = {mosquitto.port}
client_id = "big-payloads"
max_held_bytes = {bound}
[influxdb]
url = "{influxdb.url}"
retry_max_s = 0.5
[batch]
max_interval_s = 0.1
[spool]
enabled = false
[dead_letter]
file = "{dead_letters}"
[log]
stats_every_s = 1.0
""")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_for_log(log, "mqtt_connected")
        time.sleep(1.0)
        baseline = vm_rss_mib(daemon.pid)
        publisher = Publisher(mosquitto.port)
        base = samples.recent(offset_s=-60)
        for i in range(count):
            topic, payload, _ = samples.ap_clients(i, base)
            payload["seq"] = i
            publisher.publish(topic, b"x" * size)  # payload_too_large (limits.max_payload_bytes 256 KiB)
            publisher.publish(topic, json.dumps(payload))
        publisher.close()
        wait_for_log(log, "mqtt_reading_paused")
        time.sleep(3.0)  # a collector without the byte bound would now take the rest
        influxdb.start()
        deadline = time.monotonic() + 90
        while stored_or_none(influxdb) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        peak = vm_hwm_mib(daemon.pid)
    finally:
        daemon.kill()
        daemon.wait(10)
        mosquitto.kill()
    print(f"RSS baseline {baseline:.0f} MiB, peak {peak:.0f} MiB")
    try:
        assert stored_seqs(influxdb) == list(range(count))
    finally:
        influxdb.kill()
    with open(dead_letters, encoding="utf-8") as file:
        reasons = [json.loads(line)["reason"] for line in file]
    assert reasons == ["payload_too_large"] * count
    paused = [json.loads(line) for line in log.read_text().splitlines() if '"mqtt_reading_paused"' in line]
    assert paused and all(p["held_bytes"] <= bound + size for p in paused)
    assert peak - baseline < 220  # with the count bound alone: +377 MiB


async def test_messages_the_broker_drops_are_reported_with_its_count(influxdb: InfluxDB, tmp_path: Path) -> None:
    """Issue 13.14, the shipped config with its bounds scaled down: the collector cannot take anything
    (InfluxDB away, no spool), the broker drops what its queue cannot hold, and the collector says so
    in its statistics, /metrics, /healthz and an error event, with the broker's own count."""
    scaled = {
        "max_queued_messages 2000000": "max_queued_messages 100",
        "max_inflight_messages 10000": "max_inflight_messages 50",
        "persistent_client_expiration 30d": "persistent_client_expiration 30d\nsys_interval 1",
    }
    broker = ShippedBroker(tmp_path, more=scaled)
    broker.server.start()
    influxdb.stop()
    messages = readings(1000, devices=100)
    try:
        config = collector_config(
            broker.server, influxdb, tmp_path, SPOOL__ENABLED="false", **broker.collector_settings()
        )
        async with running_collector(config) as collector:
            source = collector.source
            await wait_until(lambda: source.broker_dropped is not None, timeout_s=10, what="the drop counter")
            assert source.broker_dropped == 0 and collector.health()[0] != "unhealthy"
            await asyncio.to_thread(publish_all, broker, messages)
            await wait_until(lambda: source.broker_dropped_seen >= 850, timeout_s=15, what="the drops seen")
            await asyncio.sleep(2.5)  # two more $SYS intervals: the count is final
            dropped = source.broker_dropped_seen
            status, detail = collector.health()
            metrics = render_metrics(collector.stats(), status)
            await asyncio.to_thread(influxdb.start)
            await wait_until(lambda: collector.counters["acked"] >= len(messages) - dropped, what="the rest acked")
    finally:
        broker.server.kill()
    # 50 in flight and 100 queued were kept; the broker counted the rest, and so did the collector.
    assert dropped == len(messages) - 150
    assert status == "unhealthy" and detail["broker_dropping"] and detail["broker_dropped_seen"] == dropped
    assert re.search(rf"^city_telemetry_broker_dropped_seen_total {dropped}$", metrics, re.M)
    assert stored_count(influxdb) == len(messages) - dropped


async def test_with_dead_letters_on_a_topic_only_a_refusal_is_acknowledged_once_the_broker_has_it(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    """No dead-letter file: a refused message is acknowledged only after the broker acknowledged its
    dead letter (MqttSource.publish's Publication, from paho's public on_publish)."""
    config = collector_config(mosquitto, influxdb, tmp_path, DEAD_LETTER__TOPIC='"city-telemetry/dead-letter"')
    config = config.model_copy(update={"dead_letter": config.dead_letter.model_copy(update={"file": None})})
    watcher = Publisher(mosquitto.port, client_id="dead-letter-watcher")
    copies: list[bytes | bytearray] = []
    watcher.client.on_message = lambda client, userdata, message: copies.append(message.payload)
    watcher.client.subscribe("city-telemetry/dead-letter", qos=1)
    try:
        async with running_collector(config) as collector:
            publisher = Publisher(mosquitto.port)
            for i in range(200):
                topic, payload, _ = samples.ap_clients(i, samples.recent(offset_s=-i))
                publisher.publish(topic, b"not json" if i % 2 else json.dumps(payload))
            publisher.close()
            await wait_until(lambda: collector.counters["acked"] == 200, what="every message acknowledged")
            assert collector.counters["rejected"] == 100
        await wait_until(lambda: len(copies) == 100, timeout_s=10, what="the dead letters")
    finally:
        watcher.close()
    assert sorted(json.loads(c)["reason"] for c in copies) == ["bad_json"] * 100
    assert stored_count(influxdb) == 100
