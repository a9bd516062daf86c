"""paho-mqtt's private attributes: present in the installed paho, and a paho without them refused at start-up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.source import paho_internals
from collector.source.config import MqttConfig
from collector.source.mqtt import _PUBACK, MqttSource, topic_of
from collector.source.paho_internals import UnsupportedPaho


def client() -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311, manual_ack=True)


def test_the_installed_paho_has_every_internal_we_use() -> None:
    c = client()
    paho_internals.check(c)
    lock = paho_internals.callback_lock(c)
    assert lock.acquire(False)
    lock.release()
    # The PUBACKs of a batch become one packet in paho's output queue, byte for byte.
    paho_internals.queue_packet(c, _PUBACK, b"\x40\x02\x00\x07\x40\x02\x01\x00")
    assert c.want_write()
    message = mqtt.MQTTMessage(mid=3, topic=b"a/\xff/b")
    assert paho_internals.raw_topic(message) == b"a/\xff/b"


def test_a_topic_that_is_not_utf8_keeps_its_readable_part() -> None:
    assert topic_of(mqtt.MQTTMessage(mid=1, topic=b"bxl/v1/\xff/x")) == "bxl/v1/\ufffd/x"
    assert topic_of(mqtt.MQTTMessage(mid=1, topic="bxl/é".encode())) == "bxl/é"


@pytest.mark.parametrize(
    ("attribute", "replacement", "named"),
    [
        ("_in_callback_mutex", None, "Client._in_callback_mutex"),
        ("_in_callback_mutex", threading.RLock(), "reentrant"),
        ("_packet_queue", lambda packet, command: None, "Client._packet_queue"),
        ("_packet_queue", None, "Client._packet_queue"),
        ("_create_socket", None, "Client._create_socket"),
        ("_create_socket", lambda host: None, "Client._create_socket"),
    ],
)
def test_a_paho_without_a_client_internal_is_refused_naming_it(attribute: str, replacement: Any, named: str) -> None:
    c = client()
    setattr(c, attribute, replacement)
    with pytest.raises(UnsupportedPaho, match=named) as refused:
        paho_internals.check(c)
    assert "paho-mqtt 2." in str(refused.value) and "install" in str(refused.value)


def test_a_paho_whose_message_lacks_the_raw_topic_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Message:
        def __init__(self, mid: int, topic: bytes) -> None:
            self.mid, self.topic_bytes = mid, topic

    monkeypatch.setattr(paho_internals.mqtt, "MQTTMessage", Message)
    with pytest.raises(UnsupportedPaho, match=r"MQTTMessage\._topic"):
        paho_internals.check(client())


def test_the_source_refuses_to_start_on_such_a_paho(monkeypatch: pytest.MonkeyPatch) -> None:
    def renamed(self: mqtt.Client, packet: bytes) -> None:  # a release that changed the signature
        raise AssertionError("never called")

    monkeypatch.setattr(mqtt.Client, "_packet_queue", renamed)
    with pytest.raises(UnsupportedPaho, match="_packet_queue"):
        MqttSource(MqttConfig(), ["bxl/#"])


def test_the_daemon_says_why_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.app import cli

    def renamed(self: mqtt.Client, packet: bytes) -> None:
        raise AssertionError("never called")

    monkeypatch.setattr(mqtt.Client, "_packet_queue", renamed)
    monkeypatch.setenv("CITY_TELEMETRY__DEAD_LETTER__FILE", f'"{tmp_path / "dead.jsonl"}"')
    monkeypatch.setenv("CITY_TELEMETRY__SPOOL__FOLDER", f'"{tmp_path / "spool"}"')
    monkeypatch.setenv("CITY_TELEMETRY__LOG__LEVEL", '"error"')
    try:
        assert cli.main(["run"]) == 2
    finally:
        from collector.ops.logs import configure_logging

        configure_logging("warning", "console")
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("city-telemetry run: cannot start: paho-mqtt ") and "Client._packet_queue" in error
