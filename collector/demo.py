"""``city-telemetry demo``: a local broker and database, a small simulated city, the collector, the result.

Everything runs under ``--state-dir`` and is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collector.config import load_config
from collector.localservers import InfluxDB, Mosquitto
from collector.logs import configure_logging
from collector.service import Collector
from simulators.quickcity import quick_city_messages

MEASUREMENTS = ["ap", "ap_radio", "ap_clients", "netdev", "interface", "link_probe", "device_state", "device_event"]


def run_demo(args: argparse.Namespace) -> int:
    state: Path = args.state_dir
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    configure_logging("warning", "console")
    broker = Mosquitto(state / "mosquitto")
    database = InfluxDB(state / "influxdb")
    try:
        broker.start()
        database.start()
        print(f"mosquitto on 127.0.0.1:{broker.port}, influxd on {database.url} (state in {state}/)")
        config = load_config(
            None,
            {
                "CITY_TELEMETRY__MQTT__PORT": str(broker.port),
                "CITY_TELEMETRY__MQTT__CLIENT_ID": '"city-telemetry-demo"',
                "CITY_TELEMETRY__INFLUXDB__URL": f'"{database.url}"',
                "CITY_TELEMETRY__DEAD_LETTER__FILE": f'"{state / "dead-letter.jsonl"}"',
                "CITY_TELEMETRY__BATCH__MAX_INTERVAL_S": "0.2",
            },
        )
        messages = quick_city_messages(seed=args.seed)
        collector = asyncio.run(_collect(config, broker.port, messages))
        _print_results(database, collector, len(messages), state)
        return 0
    finally:
        broker.stop()
        database.stop()


async def _collect(config: object, port: int, messages: list[tuple[str, bytes]]) -> Collector:
    from collector.config import Config

    assert isinstance(config, Config)
    collector = Collector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop, grace_s=10))
    while collector.source.connects == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-city", protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    started = time.monotonic()
    infos = [publisher.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        while not info.is_published():
            await asyncio.sleep(0.01)
    deadline = time.monotonic() + 60
    while collector.counters["messages_committed"] < len(messages) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    print(f"published {len(messages)} messages; collector committed "
          f"{collector.counters['messages_committed']} in {elapsed:.2f} s")  # fmt: skip
    publisher.disconnect()
    publisher.loop_stop()
    stop.set()
    await task
    return collector


def _print_results(database: InfluxDB, collector: Collector, published: int, state: Path) -> None:
    print("\nstored in InfluxDB (database city_telemetry):")
    for measurement in MEASUREMENTS:
        series = database.query(f'SELECT count(*) FROM "{measurement}"', "city_telemetry")
        count = max(series[0]["values"][0][1:], default=0) if series else 0
        print(f"  {measurement:<14} {count:>6} points")
    print("\nclients per municipality at the last report (SELECT last(num_clients) FROM ap GROUP BY nis):")
    rows = database.rows('SELECT sum("last") FROM (SELECT last(num_clients) FROM ap GROUP BY device, nis) '
                         "GROUP BY nis", "city_telemetry")  # fmt: skip
    for row in sorted(rows, key=lambda r: r["nis"]):
        print(f"  NIS {row['nis']}: {row['sum']} clients")
    print("\nschool links, mean probe loss and RTT:")
    for row in database.rows(
        "SELECT mean(loss_pct), mean(rtt_avg_ms) FROM link_probe GROUP BY device", "city_telemetry"
    ):
        print(f"  {row['device']:<18} loss {row['mean']:.2f} %  rtt {row['mean_1']:.2f} ms")
    rejected = dict(collector.dead_letters.counts)
    print(f"\nrejected (dead-lettered to {state / 'dead-letter.jsonl'}): {sum(rejected.values())} {rejected}")
    for line in (state / "dead-letter.jsonl").read_text().splitlines()[:3]:
        record = json.loads(line)
        print(f"  {record['reason']}: {record['detail'][:100]}")
    print(f"acknowledged to the broker: {collector.counters['acked']} of {published}")
