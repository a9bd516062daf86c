"""The source's count of held messages returns to zero whatever the threads' interleaving.

paho's thread hands a message over and counts it; the asyncio side takes it, commits it and releases
it. If the release came before the count (the message visible to the consumer first), it was lost,
and the count never came back to zero: `run --drain` waited for ever (seen once in the suite, on a
loaded machine). The test puts the consumer at the worst point: inside the hand-over itself."""

from __future__ import annotations

from collections import deque

import paho.mqtt.client as mqtt

from collector.source.config import MqttConfig
from collector.source.mqtt import MqttSource


class ConsumerAtHandOver(deque):  # type: ignore[type-arg]
    """A queue whose consumer takes, commits and releases every message the moment it is appended."""

    def __init__(self, source: MqttSource) -> None:
        super().__init__()
        self.source = source
        self.taken = 0

    def append(self, item: object) -> None:
        super().append(item)
        taken = sum(1 for _ in self.source.drain(100))
        self.taken += taken
        self.source.release(taken)


def test_a_message_released_at_once_is_not_held_for_ever() -> None:
    source = MqttSource(MqttConfig(), ["bxl/#"])
    queue = ConsumerAtHandOver(source)
    source._queue = queue
    for mid in range(1, 6):
        message = mqtt.MQTTMessage(mid=mid, topic=b"bxl/x")
        message.payload = b"0123456789"
        source._on_message(source.client, None, message)
    assert queue.taken == 5
    assert source.stats()["mqtt_held_messages"] == 0
    assert source.stats()["mqtt_held_bytes"] == 0
