"""``city-telemetry demo``: a local broker and database, a small simulated city, the collector, the result.

The city is the seeded simulator (simulators/, docs/simulator.md) at a small scale: yesterday's local
day, accelerated to a few seconds, with its faults and a share of vendor-flavoured devices. Everything
runs under ``--state-dir`` and is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from collector.app.config import Config, load_config
from collector.app.service import Collector, build_kpi_engine
from collector.harness.localservers import InfluxDB, Mosquitto
from collector.kpi.output import KpiPoint, to_lines
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
        simulation.inventory.write(state / "inventory.json")  # what the KPI engine groups devices by
        config = load_config(
            None,
            {
                "CITY_TELEMETRY__MQTT__PORT": str(broker.port),
                "CITY_TELEMETRY__MQTT__CLIENT_ID": '"city-telemetry-demo"',
                "CITY_TELEMETRY__INFLUXDB__URL": f'"{database.url}"',
                "CITY_TELEMETRY__DEAD_LETTER__FILE": f'"{state / "dead-letter.jsonl"}"',
                "CITY_TELEMETRY__SPOOL__FOLDER": f'"{state / "spool"}"',
                "CITY_TELEMETRY__BATCH__MAX_INTERVAL_S": "0.2",
                "CITY_TELEMETRY__INVENTORY__FILE": f'"{state / "inventory.json"}"',
                "CITY_TELEMETRY__KPI__PSEUDONYM_KEY_FILE": f'"{_demo_key(state)}"',
                # The KPI engine must know how often the simulated devices report.
                "CITY_TELEMETRY__KPI__REPORT_PERIOD_S": str(sim_config.period_s),
                "CITY_TELEMETRY__KPI__CLIENTS_EVERY_S": str(sim_config.period_s * sim_config.clients_every),
                "CITY_TELEMETRY__KPI__CLIENTS_BUCKET_S": str(sim_config.period_s),
            },
        )
        print(
            f"simulated city: seed {args.seed}, {len(simulation.aps)} APs, {len(simulation.switches)} switches, "
            f"{len(simulation.cpes)} school links, 20 % vendor-flavoured; yesterday "
            f"({datetime.fromtimestamp(sim_config.start_ms / 1000, UTC):%Y-%m-%d %H:%M}Z + 24 h) "
            f"published at {speed / 3600:g} simulated hours per second"
        )
        collector, report = asyncio.run(_collect(config, broker.port, simulation, speed))
        _print_results(database, collector, report, simulation, sim_config, state)
        _print_kpis(config, simulation)
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


def _demo_key(state: Path) -> Path:
    """A pseudonym secret for the demo's clients (an operator's is a file they create: docs/privacy.md)."""
    key = state / "pseudonym.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    return key


def _print_kpis(config: Config, simulation: Simulation) -> None:
    """The collector's KPIs per municipality (its engine, from what is stored) beside the ground truth."""
    truth = simulation.truth.result(simulation.meta())

    async def compute() -> dict[str, list[KpiPoint]]:
        engine = build_kpi_engine(config, None)
        try:
            out = {}
            for day in truth["days"]:
                points = await engine.compute_day(date.fromisoformat(day["date"]))
                await engine.writer.write(to_lines(points))
                out[day["date"]] = points
            return out
        finally:
            engine.close()
            await engine.query.close()
            await engine.writer.close()

    computed = asyncio.run(compute())
    print("\nKPIs per municipality: the collector's (KPI engine, from InfluxDB) / the simulator's ground truth")
    print(f"  {'NIS':<6}{'municipality':<22}{'avail %':>16}{'peak':>10}{'mean':>14}{'unique':>12}{'GB':>13}")
    for day in truth["days"]:
        rows = {p.tag("nis"): p.fields for p in computed[day["date"]] if p.measurement == "kpi_municipality"}
        print(f"  {day['date']}")
        for nis, m in day["municipalities"].items():
            k = rows.get(nis)
            if not m["aps"] or k is None:
                continue
            gb = (float(k.get("rx_bytes", 0)) + float(k.get("tx_bytes", 0))) / 1e9
            true_gb = (m["prorata_rx_bytes"] + m["prorata_tx_bytes"]) / 1e9
            print(
                f"  {nis:<6}{m['name_fr'][:21]:<22}"
                f"{float(k.get('ap_availability_pct', 0)):>8.2f}/{m['ap_availability_pct']:<7.2f}"
                f"{k.get('peak_clients', '-')!s:>5}/{m['peak_clients']:<4}"
                f"{float(k.get('mean_clients', 0)):>7.1f}/{m['mean_clients']:<6.1f}"
                f"{k.get('unique_clients', '-')!s:>6}/{m['unique_clients']:<5}"
                f"{gb:>6.2f}/{true_gb:<6.2f}"
            )
    print(
        "  (the collector counts what the reports say: vendor APs that list no clients add no unique clients,\n"
        "   a refused message is not counted, a skewed device clock moves a report to another bucket;\n"
        "   `city-telemetry kpi show --day DAY` prints the stored KPIs)"
    )


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
