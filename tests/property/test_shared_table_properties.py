"""SharedTableProperties reads every MQTT 5 property block as paho's own Properties does.

The blocks are written by paho's ``Properties.pack`` from random values of every property a
PUBLISH (or a PUBACK, which paho 2.2 decodes through the same class) may carry; both classes read
them, and their values, their lengths and the bytes left after them must be the same.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.source import paho_internals
from collector.source.config import MqttConfig
from collector.source.mqtt import MqttSource
from collector.source.paho_internals import SharedTableProperties

text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
u16 = st.integers(1, 65535)
u32 = st.integers(0, 2**32 - 1)

PUBLISH_PROPERTIES = {
    "PayloadFormatIndicator": st.integers(0, 1),
    "MessageExpiryInterval": u32,
    "ContentType": text,
    "ResponseTopic": text,
    "CorrelationData": st.binary(max_size=20),
    "SubscriptionIdentifier": st.lists(st.integers(1, 268435455), min_size=1, max_size=3),
    "TopicAlias": u16,
    "UserProperty": st.lists(st.tuples(text, text), min_size=1, max_size=3),
}


@st.composite
def publish_properties(draw: st.DrawFn) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, values in PUBLISH_PROPERTIES.items():
        if draw(st.booleans()):
            setattr(properties, name, draw(values))
    return properties


def read(cls: type[Properties], packet_type: int, block: bytes) -> tuple[dict[str, object], int, bool]:
    properties, length = cls(packet_type).unpack(block)  # type: ignore[no-untyped-call]
    return properties.json(), length, properties.isEmpty()


@given(publish_properties(), st.binary(max_size=8))
def test_every_publish_property_block_reads_as_paho_reads_it(properties: Properties, rest: bytes) -> None:
    block = properties.pack() + rest  # type: ignore[no-untyped-call]
    ours = read(SharedTableProperties, PacketTypes.PUBLISH, block)
    assert ours == read(Properties, PacketTypes.PUBLISH, block)
    assert ours[0] == properties.json()  # type: ignore[no-untyped-call]


@given(st.one_of(st.none(), text), st.binary(max_size=8))
def test_a_puback_reason_string_reads_as_paho_reads_it(reason: str | None, rest: bytes) -> None:
    properties = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
    if reason is not None:
        properties.ReasonString = reason
    block = properties.pack() + rest  # type: ignore[no-untyped-call]
    assert read(SharedTableProperties, PacketTypes.PUBACK, block) == read(Properties, PacketTypes.PUBACK, block)


def test_objects_share_tables_but_never_values() -> None:
    first, second = SharedTableProperties(PacketTypes.PUBLISH), SharedTableProperties(PacketTypes.PUBLISH)
    first.unpack(b"\x03\x03\x00\x00")  # ContentType ""
    first.UserProperty = [("a", "b")]
    assert first.names is second.names and first.properties is second.properties
    assert second.json() == {} and second.isEmpty()  # type: ignore[no-untyped-call]
    # An object that already holds values is cleared by an empty block, as paho's is.
    assert first.unpack(b"\x00")[0].json() == {}  # type: ignore[no-untyped-call]
    with pytest.raises(Exception, match="Property name must be one of"):  # paho's own checks still apply
        first.NotAProperty = 1


def test_an_mqtt5_source_makes_paho_decode_publish_with_it() -> None:
    from paho.mqtt import _packet

    MqttSource(MqttConfig(protocol="5"), ["bxl/#"])
    assert vars(_packet)["Properties"] is SharedTableProperties
    assert paho_internals.install_shared_table_properties()  # again: harmless
    # paho's own decoding, as a received PUBLISH goes: QoS 1, topic "a/b", packet id 7, one user property.
    user = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    user.UserProperty = ("site", "x")
    body = b"\x00\x03a/b\x00\x07" + user.pack() + b"payload"  # type: ignore[no-untyped-call]
    packet = _packet.decode_publish(0x32, body, mqtt.MQTTv5)
    assert (packet.topic, packet.mid, packet.payload) == (b"a/b", 7, b"payload")
    assert packet.properties is not None
    assert packet.properties.json() == {"UserProperty": [("site", "x")]}  # type: ignore[no-untyped-call]
