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

    monkeypatch.setattr(mqtt, "MQTTMessage", Message)  # the module paho_internals uses
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


def test_a_lazy_info_message_is_pahos_message_but_makes_its_info_when_asked() -> None:
    pahos = paho_internals._PAHO_MESSAGE(mid=7, topic=b"bxl/v1/x")
    lazy = paho_internals.LazyInfoMessage(mid=7, topic=b"bxl/v1/x")
    assert isinstance(lazy, paho_internals._PAHO_MESSAGE)
    for slot in paho_internals._MESSAGE_SLOTS - {"info"}:
        assert getattr(lazy, slot) == getattr(pahos, slot), slot
    assert lazy.topic == "bxl/v1/x" and lazy == paho_internals.LazyInfoMessage(mid=7)  # paho compares mids
    with pytest.raises(AttributeError):  # no MQTTMessageInfo (nor its Condition) for a received message
        paho_internals._INFO_SLOT.__get__(lazy, type(lazy))
    info = lazy.info
    assert isinstance(info, mqtt.MQTTMessageInfo) and info.mid == 7 and not info.is_published()
    assert lazy.info is info  # made once
    replacement = mqtt.MQTTMessageInfo(9)
    lazy.info = replacement  # paho's publish() never does, but the attribute stays writable
    assert lazy.info is replacement


def test_threads_asking_a_new_message_for_its_info_all_get_the_same_one() -> None:
    # A published message's info may first be asked for by the publishing thread and by paho's
    # network thread (its PUBACK): two MQTTMessageInfo would leave wait_for_publish waiting forever.
    for _ in range(50):
        message = paho_internals.LazyInfoMessage(mid=1, topic=b"t")
        start = threading.Barrier(6)
        seen: list[mqtt.MQTTMessageInfo] = []

        def ask(
            message: paho_internals.LazyInfoMessage, start: threading.Barrier, seen: list[mqtt.MQTTMessageInfo]
        ) -> None:
            start.wait()
            seen.append(message.info)

        threads = [threading.Thread(target=ask, args=(message, start, seen)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 6 and all(info is seen[0] for info in seen)


def test_lazy_info_messages_are_installed_only_over_the_paho_class_they_were_written_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt, "MQTTMessage", paho_internals._PAHO_MESSAGE)
    assert paho_internals.install_lazy_info_message()
    assert mqtt.MQTTMessage is paho_internals.LazyInfoMessage
    assert paho_internals.install_lazy_info_message()  # again: harmless

    class Renamed:  # a paho release with another message class: left alone, only slower
        pass

    monkeypatch.setattr(mqtt, "MQTTMessage", Renamed)
    assert not paho_internals.install_lazy_info_message()
    assert mqtt.MQTTMessage is Renamed  # type: ignore[comparison-overlap]  # monkeypatched to a foreign class
    monkeypatch.setattr(paho_internals, "_MESSAGE_SLOTS", paho_internals._MESSAGE_SLOTS | {"expiry"})
    monkeypatch.setattr(mqtt, "MQTTMessage", paho_internals._PAHO_MESSAGE)
    assert not paho_internals.install_lazy_info_message()  # slots not the ones known: not installed
    assert mqtt.MQTTMessage is paho_internals._PAHO_MESSAGE


def test_with_lazy_info_messages_paho_still_publishes_receives_and_reports_publication(mosquitto: Any) -> None:
    paho_internals.install_lazy_info_message()
    received: list[mqtt.MQTTMessage] = []
    got = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)
        got.set()

    subscribed = threading.Event()
    subscriber = paho_internals.BufferedClient(CallbackAPIVersion.VERSION2, client_id="lazy-sub")
    subscriber.on_message = on_message
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe("lazy/#", qos=1)
    subscriber.loop_start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lazy-pub")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        assert subscribed.wait(10)
        info = publisher.publish("lazy/one", b"payload", qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published() and info.rc == 0
        assert got.wait(10)
    finally:
        publisher.loop_stop()
        subscriber.loop_stop()
        publisher.disconnect()
        subscriber.disconnect()
    [message] = received
    assert isinstance(message, paho_internals.LazyInfoMessage)
    assert (message.topic, message.payload, message.qos) == ("lazy/one", b"payload", 1)
    with pytest.raises(AttributeError):  # paho never asked a received message for its info
        paho_internals._INFO_SLOT.__get__(message, type(message))
