"""The benches' own publisher (bench/raw_publisher.py): what a real mosquitto delivers to a paho
subscriber is exactly what was published, whatever the packet's size, and every message is acknowledged."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench import raw_publisher, sizing
from bench.raw_publisher import BrokerRefused, RawPublisher
from collector.harness.localservers import Mosquitto


@pytest.mark.parametrize(
    ("value", "encoded"),
    # The examples of MQTT 3.1.1, table 2.4: the bounds of 1 to 4 bytes.
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_is_the_standard_variable_byte_integer(value: int, encoded: bytes) -> None:
    assert raw_publisher.remaining_length(value) == encoded


def subscriber(
    port: int, protocol: MQTTProtocolVersion, expected: int, topic_filter: str = "t/#"
) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], threading.Event]:
    received: list[mqtt.MQTTMessage] = []
    done = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{protocol}", protocol=protocol)

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)
        if len(received) >= expected:
            done.set()

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe(topic_filter, qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    return client, received, done


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_every_message_arrives_intact_and_is_acknowledged(mosquitto: Mosquitto, protocol: MQTTProtocolVersion) -> None:
    # Sizes across the 1-, 2- and 3-byte remaining lengths, a topic that is not ASCII, an empty payload.
    sizes = [0, 1, 100, 122, 123, 124, 200, 16_370, 16_380, 16_390, 70_000, 300_000]
    messages = [(f"t/ç/{n}".encode(), bytes(i % 251 for i in range(n))) for n in sizes]
    messages += [(f"t/many/{i}".encode(), b'{"seq": %d}' % i) for i in range(5_000)]
    client, received, done = subscriber(mosquitto.port, protocol, len(messages))
    publisher = RawPublisher(mosquitto.port, "raw-test")
    publisher._next_id = 65_530  # the packet id wraps from 65,535 to 1 (0 is not a packet id)
    try:
        for index, (topic, payload) in enumerate(messages):
            publisher.publish(topic, payload)
            if index % 500 == 0:
                publisher.flush()
        assert publisher.wait_acked(30)
        assert publisher.sent == publisher.acked == len(messages) and publisher.unacked == 0
        assert done.wait(30)
    finally:
        publisher.close()
        client.loop_stop()
        client.disconnect()
    assert [(m.topic.encode(), m.payload, m.qos, m.retain) for m in received] == [
        (topic, payload, 1, False) for topic, payload in messages
    ]


def test_a_broker_that_goes_away_is_an_error_not_a_silent_stall(mosquitto: Mosquitto) -> None:
    publisher = RawPublisher(mosquitto.port, "raw-gone")
    publisher.publish(b"t/x", b"1")
    assert publisher.wait_acked(10)
    mosquitto.kill()
    with pytest.raises((BrokerRefused, OSError)):
        for _ in range(100):  # the first writes may still fit in the kernel's buffer
            publisher.publish(b"t/x", b"1")
            publisher.flush()
            publisher.wait_acked(0.05)
    publisher.sock.close()


def test_the_sizing_publisher_sends_message_i_from_device_i_mod_n_stamped_base_plus_i_us(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rate, seconds, devices = 4000.0, 0.6, 7
    base_us = int(datetime(2026, 12, 5, 13, 59, 59, 999_000, tzinfo=UTC).timestamp() * 1_000_000)  # a second ends
    client, received, _ = subscriber(mosquitto.port, mqtt.MQTTv311, 10**9, "#")
    monkeypatch.setattr("sys.stdin", io.StringIO("go\n"))
    try:
        sizing.publish(mosquitto.port, rate, seconds, devices, base_us, tmp_path / "progress")
        sent = json.loads(capsys.readouterr().out.splitlines()[-1])["sent"]
        deadline = time.monotonic() + 10
        while len(received) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # nothing more than was sent
        assert len(received) == sent == int((tmp_path / "progress").read_text()) > rate * seconds / 2
    finally:
        client.loop_stop()
        client.disconnect()
    mix = sizing.templates()
    for i, message in enumerate(received):
        topic, payload, _ = mix[i % len(mix)]
        device = ("ap-%06d" if "/ap/" in topic else "cpe-school-%06d") % (i % devices)
        stamp = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=base_us + i)
        expected = json.loads(payload.replace(sizing.DEVICE_MARK, device))
        expected["ts"] = stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
        assert (message.topic, json.loads(message.payload)) == (topic.replace(sizing.DEVICE_MARK, device), expected)
