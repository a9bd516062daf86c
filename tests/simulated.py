"""Publishing a simulated city's messages from a test: one copy for the KPI and Grafana tests.

``publish_all`` runs the simulator's publisher (QoS 1, as fast as the broker acknowledges) in a
thread of its own and waits for it from the event loop without blocking it, so that an in-process
collector on the same loop keeps receiving while the day is published.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from simulators.publisher import MqttPublisher


async def publish_all(port: int, items: Sequence[Any], max_seconds: float) -> None:
    """Publish ``items`` to the broker on ``port`` (client id ``simulated-city``), at most ``max_seconds``."""

    def publish() -> None:
        publisher = MqttPublisher(port=port, client_id="simulated-city")
        try:
            publisher.run(iter(items), speed=0.0, max_seconds=max_seconds)
        finally:
            publisher.close()

    thread = threading.Thread(target=publish)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.2)
