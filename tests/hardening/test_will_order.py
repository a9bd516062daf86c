"""A last will queued while the collector was away must not be stored after the device's next state.

Reproduces the outside report on the real broker and database: the collector stopped, a device's
will (no timestamp) published, then the device back with ``online`` and its own time; when the
collector starts it receives both, in that order. Stamped at receipt, the will came out later than
the ``online`` and ``last(up)`` said the AP was down while it was up.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

TOPIC = samples.topic("21004", "gare-du-midi", "ap", "ap-1", "state")


def state(value: str, **fields: object) -> bytes:
    return json.dumps({"schema": "device.state/1", "device_id": "ap-1", "state": value, **fields}).encode()


async def test_a_queued_will_stays_before_the_online_that_followed_it(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path)
    last_report = samples.recent(-3600)
    back = last_report + timedelta(minutes=10)
    async with running_collector(config) as collector:
        publisher.publish(TOPIC, state("online", ts=samples.iso(last_report), seq=1))
        publisher.flush()
        await wait_until(lambda: collector.counters["acked"] >= 1, what="first state stored")
    # The collector is away (its session persists): the broker queues the will, then the comeback.
    publisher.publish(TOPIC, state("lost", reason="connection lost"))
    publisher.publish(TOPIC, state("online", ts=samples.iso(back), seq=1))
    publisher.flush()
    async with running_collector(config) as collector:  # a new process: what it knew is gone
        await wait_until(lambda: collector.counters["acked"] >= 2, what="backlog stored")
    rows = points(influxdb, "SELECT state, up, stamped_on_receipt FROM device_state WHERE device = 'ap-1'")
    assert [(row["state"], row["up"], row["stamped_on_receipt"]) for row in rows] == [
        ("online", 1, False),
        ("lost", 0, True),
        ("online", 1, False),
    ]
    assert rows[1]["time"] == samples.ns(last_report) + 45 * 10**9  # 1.5 keepalives after its last report
    last = points(influxdb, "SELECT last(up) FROM device_state WHERE device = 'ap-1'")
    assert last[0]["last"] == 1 and last[0]["time"] == samples.ns(back)
