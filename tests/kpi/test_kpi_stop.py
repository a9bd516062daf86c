"""The running collector's KPI points: what its last pass at a clean stop computes, and their tags.

engine.py's schedule (tests/kpi/test_engine_schedule.py) lets a closed 5-minute window touched again
soon after it was computed wait until its readings stop coming; ``stopping=True`` makes the last pass
not wait, since nothing more arrives. Here, on the real mosquitto and influxd, the collector's own
stop must pass it: a late reading's figure is in the window's point after the stop, and was not
before. The device is in no inventory: its point is tagged with the place its readings were stored
under (docs/kpis.md), not "unknown".
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from collector.kpi.windows import window_of
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until
from tests.kpi.test_kpi_e2e import write_key

pytestmark = [pytest.mark.servers, pytest.mark.timeout(180)]

DEVICE = 7  # ap-0007, of gare-du-midi in 21004 (tests/samples.py)


def device_point(influxdb: InfluxDB, start_ns: int) -> dict[str, Any] | None:
    rows = points(influxdb, f"SELECT * FROM kpi_device WHERE grain = '5m' AND time = {start_ns}")
    return rows[0] if rows else None


def peak_clients(influxdb: InfluxDB, start_ns: int) -> int | None:
    point = device_point(influxdb, start_ns)
    return None if point is None else point["peak_clients"]


def report(ts_ns: int, clients: int) -> tuple[str, bytes]:
    """An ``ap.metrics/1`` report of ``clients`` clients at ``ts_ns``."""
    topic, payload, _ = samples.ap_metrics(DEVICE, datetime.fromtimestamp(ts_ns / 10**9, UTC))
    payload["num_clients"] = clients
    return topic, json.dumps(payload).encode()


async def test_a_stop_computes_the_window_a_late_reading_left_waiting(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    config = collector_config(
        mosquitto,
        influxdb,
        tmp_path,
        kpi__every_s="1",
        kpi__report_period_s="300",
        kpi__pseudonym_key_file=f'"{write_key(tmp_path)}"',
        kpi__process_nice="0",  # the stop's last pass has 10 s: not to be lost to a busy machine here
    )
    window = window_of(time.time_ns() - 1800 * 10**9, "5m")  # closed 25 to 30 minutes ago
    publisher = Publisher(mosquitto.port)
    try:
        async with running_collector(config) as collector:
            engine = collector.kpi
            assert engine is not None
            publisher.publish(*report(window.start_ns + 60 * 10**9, 2))
            publisher.flush()
            await wait_until(lambda: collector.counters["messages_committed"] >= 1, 20, "the first reading")
            await wait_until(lambda: peak_clients(influxdb, window.start_ns) == 2, 20, "the window's first KPIs")
            # From here a pass waits until no reading of the window has come for an hour (two passes
            # of quiet, made long) or kpi.late_every_s (300 s) since it was computed: only the stop's
            # last pass may compute it before the test ends.
            engine.quiet_s = 3600.0
            publisher.publish(*report(window.start_ns + 120 * 10**9, 9))
            publisher.flush()
            await wait_until(lambda: collector.counters["messages_committed"] >= 2, 20, "the late reading")
            await wait_until(lambda: window in engine.pending, 10, "the window pending again")
            for _ in range(3):  # three passes (every_s = 1): the window still waits
                await asyncio.sleep(1.0)
                assert window in engine.pending
                assert peak_clients(influxdb, window.start_ns) == 2
    finally:
        publisher.close()
    point = device_point(influxdb, window.start_ns)
    assert point is not None and point["peak_clients"] == 9
    place = {key: point[key] for key in ("device", "kind", "site", "nis")}
    assert place == {"device": "ap-0007", "kind": "ap", "site": "gare-du-midi", "nis": "21004"}
    assert point["unknown_devices"] == 1
