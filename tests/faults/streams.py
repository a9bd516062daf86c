"""Paced, bounded message streams for the fault tests, and how to count what arrived."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.harness.localservers import InfluxDB
from tests import samples
from tests.conftest import DATABASE


def readings(n: int, devices: int = 500) -> list[tuple[str, bytes]]:
    """``n`` ap.clients messages, each one point with a distinct (device, timestamp)."""
    base = samples.recent(offset_s=-1200)
    out = []
    for i in range(n):
        topic, payload, _ = samples.ap_clients(i % devices, base + timedelta(milliseconds=10 * i))
        payload["seq"] = i
        out.append((topic, json.dumps(payload).encode()))
    return out


def stored_count(influxdb: InfluxDB) -> int:
    series = influxdb.query("SELECT count(num_clients) FROM ap_clients", DATABASE)
    return int(series[0]["values"][0][1]) if series else 0


def stored_seqs(influxdb: InfluxDB) -> list[int]:
    return sorted(int(row["seq"]) for row in influxdb.rows("SELECT seq, num_clients FROM ap_clients", DATABASE))


def _published(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # published while disconnected: paho gave up on it
        return False


class PacedPublisher:
    """Publishes messages at ``rate`` a second from a thread, QoS 1, surviving broker restarts:
    paho resends unacknowledged messages on reconnect, and ``finish`` publishes again any the
    broker never acknowledged (harmless: the same points)."""

    def __init__(self, port: int, messages: list[tuple[str, bytes]], rate: float) -> None:
        self.messages = messages
        self.rate = rate
        self.sent = 0
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fault-publisher", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.client.loop_start()
        self._infos: list[mqtt.MQTTMessageInfo] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for i, (topic, payload) in enumerate(self.messages):
            if self._stop.is_set():
                return
            delay = started + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._infos.append(self.client.publish(topic, payload, qos=1))
            self.sent = i + 1

    def finish(self, timeout_s: float = 120) -> None:
        self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            missing = [i for i, info in enumerate(self._infos) if not _published(info)]
            if not missing:
                break
            time.sleep(1)
            for i in missing:
                if not _published(self._infos[i]):
                    self._infos[i] = self.client.publish(*self.messages[i], qos=1)
        assert all(_published(info) for info in self._infos), "broker never took some messages"
        self.client.disconnect()
        self.client.loop_stop()

    def abort(self) -> None:
        self._stop.set()
        self.client.loop_stop()
