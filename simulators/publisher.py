"""Publishing simulated items to a real broker: paho-mqtt 2.x, QoS 1, paced, bounded, with progress.

One MQTT connection carries the whole city (100,000 device connections would test the broker, not
the collector); last wills are therefore published by the simulator at the moment the broker would
fire them. Pacing follows the items' simulated publish times scaled by ``speed`` (1 = real time,
1440 = a day per minute, 0 = as fast as possible), or a fixed ``rate`` in messages per second.
Every run is bounded by the generator's end and, optionally, by a message count and a wall time.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulators.city import Item
from simulators.payloads import iso_ms


class PublishError(RuntimeError):
    """The broker could not be reached or refused us."""


@dataclass(slots=True)
class PublishReport:
    published: int = 0
    acknowledged: int = 0
    elapsed_s: float = 0.0
    max_lag_s: float = 0.0  # how far publishing fell behind the pace
    stopped_by: str = "end of run"
    by_message: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Progress:
    """A one-line status on a terminal (rewritten in place), or a line every ``every_s`` elsewhere."""

    def __init__(self, stream: TextIO | None = None, every_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s if every_s is not None else (0.25 if self.tty else 10.0)
        self._next = 0.0

    def update(self, report: PublishReport, sim_ms: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now < self._next:
            return
        self._next = now + self.every_s
        text = (
            f"sim {iso_ms(sim_ms)[:19]}Z  published {report.published:,} ({report.rate:,.0f}/s)  "
            f"acked {report.acknowledged:,}  lag {report.max_lag_s:.1f} s"
        )
        if self.tty:
            self.stream.write("\r" + text + ("\n" if final else "\x1b[K"))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class MqttPublisher:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "city-simulator",
        window: int = 20_000,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.window = window
        self._connected = False
        self.client.on_connect = self._on_connect
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as error:
            raise PublishError(f"cannot connect to {host}:{port}: {error}") from None
        self.client.loop_start()
        deadline = time.monotonic() + connect_timeout_s
        while not self._connected and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._connected:
            self.close()
            raise PublishError(f"no CONNACK from {host}:{port} within {connect_timeout_s} s")

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object
    ) -> None:
        self._connected = not getattr(reason, "is_failure", False)

    def run(
        self,
        items: Iterable[Item],
        speed: float = 0.0,
        rate: float | None = None,
        max_messages: int | None = None,
        max_seconds: float | None = None,
        progress: Progress | None = None,
    ) -> PublishReport:
        report = PublishReport()
        pending: deque[mqtt.MQTTMessageInfo] = deque()
        started = time.monotonic()
        sim0: int | None = None
        sim_ms = 0
        for item in items:
            if max_messages is not None and report.published >= max_messages:
                report.stopped_by = f"max_messages={max_messages}"
                break
            now = time.monotonic()
            if max_seconds is not None and now - started > max_seconds:
                report.stopped_by = f"max_seconds={max_seconds}"
                break
            sim_ms = item.at_ms
            if sim0 is None:
                sim0 = item.at_ms
            target: float | None = None
            if rate:
                target = started + report.published / rate
            elif speed > 0:
                target = started + (item.at_ms - sim0) / 1000 / speed
            if target is not None:
                if target > now + 0.002:
                    time.sleep(min(target - now, max(0.0, (max_seconds or 1e9) - (now - started))))
                else:
                    report.max_lag_s = max(report.max_lag_s, now - target)
            info = self.client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
                raise PublishError(f"publish failed: {mqtt.error_string(info.rc)}")
            pending.append(info)
            report.published += 1
            report.by_message[item.message] = report.by_message.get(item.message, 0) + 1
            while pending and pending[0].is_published():
                pending.popleft()
                report.acknowledged += 1
            while len(pending) >= self.window:  # bound memory: wait for the broker to catch up
                pending.popleft().wait_for_publish(30.0)
                report.acknowledged += 1
            if progress is not None:
                report.elapsed_s = time.monotonic() - started
                progress.update(report, sim_ms)
        deadline = time.monotonic() + 60.0
        while pending and time.monotonic() < deadline:
            pending[0].wait_for_publish(max(0.1, deadline - time.monotonic()))
            if pending[0].is_published():
                pending.popleft()
                report.acknowledged += 1
        report.elapsed_s = time.monotonic() - started
        if progress is not None:
            progress.update(report, sim_ms, final=True)
        return report

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
