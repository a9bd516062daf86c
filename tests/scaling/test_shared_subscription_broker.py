"""How mosquitto 2.0.11 treats an offline member of a shared subscription (docs/scaling.md), measured.

A member that is offline with a persistent session keeps its round-robin share: the broker queues
those messages for it, does not hand them to the online members, and delivers them when it comes
back, even if it then unsubscribes (which is what ``run --drain`` relies on). If its session expires
first, they are dropped: neither it nor the others ever receive them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.harness.localservers import Mosquitto

pytestmark = pytest.mark.servers
FILTER = "$share/g/t/#"


class Member:
    def __init__(self, port: int, client_id: str, expiry_s: int | None = None) -> None:
        self.got: list[int] = []
        self.session_present: bool | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda client, userdata, message: self.got.append(int(message.payload))
        self.client.on_connect = self._on_connect
        self.unsubscribed = False
        self.client.on_unsubscribe = lambda *args: setattr(self, "unsubscribed", True)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 0xFFFFFFFF if expiry_s is None else expiry_s
        self.client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        self.client.loop_start()
        wait(lambda: self.session_present is not None)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, *args: object) -> None:
        self.session_present = flags.session_present

    def subscribe(self) -> None:
        self.client.subscribe(FILTER, qos=1)

    def leave(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def publish(port: int, numbers: range) -> None:
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    infos = [publisher.publish("t/x", str(n), qos=1) for n in numbers]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()


def test_an_offline_member_keeps_its_share_until_it_returns(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        a, b = Member(broker.port, "a"), Member(broker.port, "b")
        a.subscribe()
        b.subscribe()
        time.sleep(0.3)
        b.leave()
        publish(broker.port, range(100))
        wait(lambda: len(a.got) >= 50)
        time.sleep(0.5)
        assert len(a.got) == 50  # round robin: b's half is not handed to a
        b = Member(broker.port, "b")
        assert b.session_present
        b.client.unsubscribe(FILTER)  # what run --drain does: the queued share still comes
        wait(lambda: len(b.got) >= 50 and b.unsubscribed)
        assert b.unsubscribed
        assert sorted(a.got + b.got) == list(range(100))
        publish(broker.port, range(100, 110))  # after the UNSUBSCRIBE, a takes everything
        wait(lambda: len(a.got) >= 60)
        time.sleep(0.3)
        assert len(b.got) == 50 and len(a.got) == 60
        a.leave()
        b.leave()
    finally:
        broker.kill()


def test_an_offline_members_share_is_dropped_when_its_session_expires(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        a, b = Member(broker.port, "a"), Member(broker.port, "b", expiry_s=1)
        a.subscribe()
        b.subscribe()
        time.sleep(0.3)
        b.leave()
        publish(broker.port, range(100))
        wait(lambda: len(a.got) >= 50)
        time.sleep(3.0)  # b's session expires (1 s), with its queued half
        b = Member(broker.port, "b", expiry_s=1)
        assert not b.session_present
        time.sleep(0.5)
        assert b.got == [] and len(a.got) == 50  # the other half is gone: nobody received it
        a.leave()
        b.leave()
    finally:
        broker.kill()


def test_retained_messages_go_to_each_member_that_subscribes(tmp_path: Path) -> None:
    """MQTT 5 (4.8.2) says a shared subscription receives no retained messages; mosquitto 2.0.11 sends
    them to every member as it subscribes (so each worker stores them once: idempotent writes)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        publisher.publish("t/state", "1", qos=1, retain=True).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
        a, b = Member(broker.port, "a"), Member(broker.port, "b")
        a.subscribe()
        b.subscribe()
        wait(lambda: len(a.got) + len(b.got) >= 2)
        time.sleep(0.3)
        assert (a.got, b.got) == ([1], [1])
        a.leave()
        b.leave()
    finally:
        broker.kill()
