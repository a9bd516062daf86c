"""``city-telemetry demo``: a local broker and database, a small simulated city, the collector, the result.

The city is the seeded simulator (simulators/, docs/simulator.md) at a small scale: yesterday's local
day, accelerated to a few seconds, with its faults and a share of vendor-flavoured devices. Everything
runs under ``--state-dir`` and is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.app.config import Config, load_config
from collector.app.service import Collector
from collector.harness.localservers import InfluxDB, Mosquitto
from collector.ops.logs import configure_logging
from simulators.city import SimConfig, Simulation
from simulators.cli import DAY_PER_MINUTE, build_config
from simulators.publisher import MqttPublisher, PublishReport

MEASUREMENTS = ["ap", "ap_radio", "ap_clients", "netdev", "interface", "link_probe", "device_state", "device_event"]
DEMO_SCALE = 0.05  # about 45 APs, 9 school links, 19 switches
DEMO_SPEED = 8 * DAY_PER_MINUTE  # a simulated day in about 8 seconds


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
                "CITY_TELEMETRY__SPOOL__FOLDER": f'"{state / "spool"}"',
                "CITY_TELEMETRY__BATCH__MAX_INTERVAL_S": "0.2",
            },
        )
        simulate = argparse.Namespace(
            accelerated=True,
            start=None,
            seed=args.seed,
            scale=DEMO_SCALE,
            duration="1d",
            period=None,
            clients_every=None,
            vendor_share=0.2,
            faults="default",
            no_client_lists=False,
            speed=DEMO_SPEED,
        )
        sim_config, speed = build_config(simulate)
        simulation = Simulation(sim_config)
        print(
            f"simulated city: seed {args.seed}, {len(simulation.aps)} APs, {len(simulation.switches)} switches, "
            f"{len(simulation.cpes)} school links, 20 % vendor-flavoured; yesterday "
            f"({datetime.fromtimestamp(sim_config.start_ms / 1000, UTC):%Y-%m-%d %H:%M}Z + 24 h) "
            f"published at {speed / 3600:g} simulated hours per second"
        )
        collector, report = asyncio.run(_collect(config, broker.port, simulation, speed))
        _print_results(database, collector, report, simulation, sim_config, state)
        return 0
    finally:
        broker.stop()
        database.stop()


async def _collect(config: Config, port: int, simulation: Simulation, speed: float) -> tuple[Collector, PublishReport]:
    collector = Collector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop, grace_s=10))
    deadline = time.monotonic() + 30
    while collector.source.connects == 0:
        if time.monotonic() > deadline or task.done():
            stop.set()
            await task
            raise RuntimeError(
                f"the collector could not connect to the demo broker: {collector.source.last_connect_error}"
            )
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    reports: list[PublishReport] = []

    def publish() -> None:
        publisher = MqttPublisher(port=port, client_id="demo-city")
        try:
            reports.append(publisher.run(simulation.items(), speed=speed, max_seconds=40.0))
        finally:
            publisher.close()

    thread = threading.Thread(target=publish, name="simulated-city")
    thread.start()
    while thread.is_alive() and time.monotonic() - started < 60:
        await asyncio.sleep(0.1)
    thread.join(timeout=5)
    report = reports[0] if reports else PublishReport(stopped_by="publisher failed")
    deadline = time.monotonic() + 30
    while collector.counters["messages_committed"] < report.published and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    print(
        f"published {report.published} messages ({report.rate:,.0f}/s); collector committed "
        f"{collector.counters['messages_committed']} in {elapsed:.2f} s"
    )
    stop.set()
    await task
    return collector, report


def _print_results(
    database: InfluxDB,
    collector: Collector,
    report: PublishReport,
    simulation: Simulation,
    sim_config: SimConfig,
    state: Path,
) -> None:
    print("\nstored in InfluxDB (database city_telemetry):")
    for measurement in MEASUREMENTS:
        series = database.query(f'SELECT count(*) FROM "{measurement}"', "city_telemetry")
        count = max(series[0]["values"][0][1:], default=0) if series else 0
        print(f"  {measurement:<14} {count:>6} points")
    truth = simulation.truth.result(simulation.meta())
    start_ns, end_ns = sim_config.start_ms * 1_000_000, sim_config.end_ms * 1_000_000
    stored_peak = {
        row["nis"]: row["max"]
        for row in database.rows(
            f"SELECT max(s) FROM (SELECT sum(num_clients) AS s FROM ap WHERE time >= {start_ns} AND time < {end_ns} "
            "GROUP BY time(15m), nis) GROUP BY nis",
            "city_telemetry",
        )
    }
    print("\nthe simulated day per municipality: ground truth (simulator state) and the peak stored in InfluxDB")
    print(f"  {'NIS':<6}{'municipality':<24}{'APs':>4}{'avail %':>9}{'peak':>6}{'stored':>7}{'unique':>8}{'GB':>7}")
    for day in truth["days"]:
        for nis, m in day["municipalities"].items():
            if not m["aps"]:
                continue
            volume = (m["rx_bytes"] + m["tx_bytes"]) / 1e9
            stored = stored_peak.get(nis, 0)
            print(
                f"  {nis:<6}{m['name_fr'][:23]:<24}{m['aps']:>4}{m['ap_availability_pct']:>9.2f}"
                f"{m['peak_clients']:>6}{stored:>7}{m['unique_clients']:>8}{volume:>7.1f}"
            )
    print(
        "  (a stored peak can differ by a few clients: devices with a skewed clock report into the next or "
        "previous quarter hour)"
    )
    print("\nschool links, mean probe loss and RTT:")
    for row in database.rows(
        "SELECT mean(loss_pct), mean(rtt_avg_ms) FROM link_probe GROUP BY device", "city_telemetry"
    ):
        print(f"  {row['device']:<18} loss {row['mean']:.2f} %  rtt {row['mean_1']:.2f} ms")
    faults = {k.split(":", 1)[1]: v for k, v in sorted(simulation.stats.items()) if k.startswith("fault:")}
    print(f"\nfaults the simulator injected: {faults}")
    rejected = dict(collector.dead_letters.counts)
    print(f"rejected (dead-lettered to {state / 'dead-letter.jsonl'}): {sum(rejected.values())} {rejected}")
    for line in (state / "dead-letter.jsonl").read_text().splitlines()[:3]:
        record: dict[str, Any] = json.loads(line)
        print(f"  {record['reason']}: {record['detail'][:100]}")
    print(f"acknowledged to the broker: {collector.counters['acked']} of {report.published}")
