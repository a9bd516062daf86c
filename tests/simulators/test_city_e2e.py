"""A simulated day at the default scale, published by ``city-telemetry simulate`` through a real
mosquitto into the collector, lands in a real InfluxDB without loss; the collector refuses exactly
the faults that are meant to be invalid."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from simulators.city import Item, SimConfig, Simulation
from simulators.publisher import MqttPublisher
from tests.conftest import collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

# A field every point of the measurement has, to count points with.
COUNT_FIELD = {
    "ap": "uptime_s",
    "ap_radio": "channel",
    "ap_clients": "num_clients",
    "netdev": "interfaces_total",
    "interface": "oper_up",
    "link_probe": "sent",
    "device_state": "up",
    "device_event": "severity",
}
REFUSAL = {
    "truncated": "bad_json",
    "garbled": "bad_json",
    "wrong_type": "invalid",
    "out_of_range": "invalid",
    "oversized": "payload_too_large",
}


def expected_points(items: list[Item]) -> tuple[dict[str, set[tuple[str, ...]]], int]:
    """The distinct points each canonical message must become (redeliveries and reordering change
    nothing: a point is measurement + tags + timestamp), and the number of last wills (stamped on
    receipt, one per device)."""
    keys: dict[str, set[tuple[str, ...]]] = {m: set() for m in COUNT_FIELD}
    wills = 0
    for item in items:
        if item.invalid:
            continue
        body = orjson.loads(item.payload)
        d, ts = item.device, body.get("ts")
        if ts is None:
            wills += 1
        elif item.message == "metrics":
            keys["ap"].add((d, ts))
            keys["ap_radio"].update((d, r["band"], ts) for r in body["radios"])
        elif item.message == "clients":
            keys["ap_clients"].add((d, ts))
        elif item.message == "interfaces":
            keys["netdev"].add((d, ts))
            keys["interface"].update((d, i["name"], ts) for i in body["interfaces"])
        elif item.message == "probe":
            keys["link_probe"].add((d, body["target"], ts))
        elif item.message == "state":
            keys["device_state"].add((d, ts))
        elif item.message == "event":
            keys["device_event"].add((d, body["type"], ts))
    return keys, wills


async def test_a_simulated_day_lands_in_influxdb_without_loss(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    # Yesterday-ish: the whole day lies inside the collector's accepted time window.
    start_s = int(time.time()) - 26 * 3600
    start_s -= start_s % 900
    # 15-minute metrics, 30-minute client reports: about 168,000 messages for the day (default faults).
    config = SimConfig(start_ms=start_s * 1000, scale=1.0, period_s=900, clients_every=2)
    t0 = time.monotonic()
    simulation = Simulation(config)
    items = list(simulation.items())
    t_gen = time.monotonic() - t0
    assert len(simulation.aps) == 900 and len(items) > 160_000
    expected, wills = expected_points(items)
    refusals = Counter(
        REFUSAL[next(lb for lb in i.labels if lb.split(":")[0] in ("malformed", "oversized")).split(":")[-1]]
        for i in items
        if i.invalid
    )
    assert refusals and wills

    truth_path = tmp_path / "truth.json"
    start_iso = datetime.fromtimestamp(start_s, UTC).isoformat()
    command = [
        sys.executable,
        "-m",
        "collector.app.cli",
        "simulate",
        "--accelerated",
        "--speed",
        "2880",
        "--clients-every",
        "2",
        "--start",
        start_iso,
        "--port",
        str(mosquitto.port),
        "--quiet",
        "--truth",
        str(truth_path),
        "--max-seconds",
        "150",
    ]
    started = time.monotonic()
    async with running_collector(collector_config(mosquitto, influxdb, tmp_path)) as collector:
        process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=170)
        t_pub = time.monotonic() - started
        assert process.returncode == 0, stderr.decode()
        await wait_until(lambda: collector.counters["messages_committed"] >= len(items), timeout_s=90, what="commit")
        elapsed = time.monotonic() - started
        assert collector.counters["messages_committed"] == len(items)
        assert collector.counters["acked"] == len(items)
    print(
        f"\n{len(items)} messages generated in {t_gen:.1f} s, published in {t_pub:.1f} s, all committed after "
        f"{elapsed:.1f} s ({len(items) / elapsed:,.0f}/s)"
    )
    assert f"published {len(items):,} messages ({len(items):,} acknowledged)" in stderr.decode()

    for measurement, field in COUNT_FIELD.items():
        rows = points(influxdb, f'SELECT count("{field}") FROM "{measurement}"')
        stored = rows[0]["count"] if rows else 0
        extra = wills if measurement == "device_state" else 0
        assert stored == len(expected[measurement]) + extra, measurement
    assert dict(collector.dead_letters.counts) == dict(refusals)

    # The publishing process ran the same seeded day: its ground truth is ours, and the stored data
    # agrees with it where nothing was refused.
    truth = json.loads(truth_path.read_text())
    assert truth["days"] == simulation.truth.result(simulation.meta())["days"]
    peaks = {r["device"]: r["max"] for r in points(influxdb, "SELECT max(num_clients) FROM ap GROUP BY device")}
    damaged = {i.device for i in items if i.invalid and i.message == "metrics"}
    true_peak: dict[str, int] = {}
    for day in truth["days"]:
        for device, entry in day["devices"].items():
            if entry["kind"] == "ap":
                true_peak[device] = max(true_peak.get(device, 0), entry["peak_clients"])
    compared = [d for d in true_peak if d not in damaged]
    assert len(compared) > 750
    assert all(peaks.get(d, 0) == true_peak[d] for d in compared)


async def test_publisher_paces_to_accelerated_time_and_to_a_rate(mosquitto: Mosquitto) -> None:
    start = (int(time.time()) - 7200) * 1000
    small = SimConfig(start_ms=start, scale=0.05, duration_s=3600, period_s=300, clients_every=1)
    items = list(Simulation(small).items())
    publisher = MqttPublisher(port=mosquitto.port, client_id="pace-test")
    try:
        paced = publisher.run(items, speed=3600 / 1.5)  # the simulated hour in 1.5 s
        assert paced.acknowledged == paced.published == len(items)
        assert 1.3 <= paced.elapsed_s <= 6.0
        rated = publisher.run(items[:600], rate=1000)
        assert 0.55 <= rated.elapsed_s <= 4.0 and rated.published == 600
        bounded = publisher.run(items, max_messages=100)
        assert bounded.published == 100 and bounded.stopped_by == "max_messages=100"
    finally:
        publisher.close()
