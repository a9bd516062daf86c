"""Ingest benchmark: how many messages a second one collector process takes, on this machine.

Three figures, measured in one run so their ratios mean something on a shared machine:
1. pipeline only: decode + validate + normalise + line protocol, no I/O;
2. bare paho subscriber: how fast a Python MQTT client alone receives the same backlog and decodes
   each payload's JSON (the ceiling);
3. end to end: a backlog of N messages queued in mosquitto for the collector's persistent session,
   then the collector started and timed until every message is in InfluxDB and acknowledged.
Also the collector's peak memory (RSS) during 3, and the CPU time that the collector, mosquitto and
the database (influxd or the stand-in) each spent on those messages: on a small machine the three
share the cores, so what influxd and mosquitto need per message bounds any collector's rate there.

Run: make bench  (or .venv/bin/python -m bench.ingest --messages 100000)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.latency import cpu_seconds
from collector.app.config import load_config
from collector.app.service import Collector
from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from collector.ingest.pipeline import Pipeline
from collector.ingest.topics import TopicPattern
from collector.kpi.pseudonym import Pseudonymiser
from collector.kpi.stage import KpiStage
from collector.ops.logs import configure_logging
from tests import samples


def make_messages(n: int) -> list[tuple[str, bytes]]:
    """A realistic mix: per 10 messages, 6 ap.metrics (2 radios), 2 ap.clients, 1 if.counters, 1 probe."""
    kinds = [samples.ap_metrics] * 6 + [samples.ap_clients] * 2 + [samples.if_counters, samples.link_probe]
    base = samples.recent(offset_s=-1800)
    out = []
    for i in range(n):
        build = kinds[i % 10]
        topic, payload, _ = build(i % 997, base)
        payload["ts"] = samples.iso(base + timedelta(milliseconds=i))
        out.append((topic, json.dumps(payload).encode()))
    return out


def new_pipeline(*, kpi: bool) -> Pipeline:
    """The collector's pipeline for the bench's topics, with the KPI stage or without."""
    stages = [KpiStage(Pseudonymiser(b"bench secret of 32 bytes........"))] if kpi else []
    return Pipeline(TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}"), stages=stages)


def bench_pipeline(messages: list[tuple[str, bytes]], kpi: bool = False) -> float:
    pipeline = new_pipeline(kpi=kpi)
    now = time.time_ns()
    started = time.perf_counter()
    lines = 0
    for topic, payload in messages:
        result = pipeline.process(topic, payload, False, now)
        assert isinstance(result, list), result
        lines += len(result)
    return len(messages) / (time.perf_counter() - started)


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # At most 20,000 outstanding: packet ids are 16-bit, and paho refuses a publish whose id is in use.
    for start in range(0, len(messages), 20_000):
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages[start : start + 20_000]]
        for info in infos:
            info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def forget_session(port: int, client_id: str, protocol: str) -> None:
    """End a measured client's persistent session, so that the next backlog is not queued for it too.

    Each run subscribes a session of its own to "bxl/#"; left in the broker, every later backlog is
    also queued (and saved every second) for each earlier, offline session, and mosquitto's CPU per
    message grows with their number: that made the later runs of one bench slower than the earlier."""
    if protocol == "5":
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", port, clean_start=True)  # no session expiry: gone at DISCONNECT
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        client.connect("127.0.0.1", port)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError(f"could not end the session of {client_id}")
    client.disconnect()
    client.loop_stop()


def bench_bare_subscriber(port: int, messages: list[tuple[str, bytes]], protocol: str = "5") -> float:
    """Receive rate of a bare paho client (manual acks, persistent session) draining a backlog,
    decoding each payload's JSON and nothing more: the ceiling issue 10 defines.

    ``protocol``: "5" or "3.1.1" (bench/sizing.py measures both). Until 6 Dec it acknowledged
    without decoding, so the ceilings recorded before then are about 5 µs a message too high
    (docs/performance.md, "The ceiling decodes JSON")."""
    version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
    done = threading.Event()
    received = 0

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        json.loads(message.payload)
        received += 1
        client.ack(message.mid, message.qos)
        if received == len(messages):
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-bare-{protocol}",
            protocol=version,
            manual_ack=True,
            clean_session=None if protocol == "5" else False,
        )
        client.on_message = on_message
        if protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            props.ReceiveMaximum = 20000
            client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            client.connect("127.0.0.1", port)
        return client

    client = connect()
    client.subscribe("bxl/#", qos=1)
    client.loop(1.0)
    client.disconnect()
    publish_all(port, messages)
    client = connect()
    started = time.perf_counter()
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    forget_session(port, f"bench-bare-{protocol}", protocol)
    return received / elapsed


@dataclass(frozen=True)
class DrainRun:
    """One collector draining the backlog: its rate, and CPU seconds per message of each process."""

    rate: float
    peak_rss_mib: float
    collector_cpu_us: float
    mosquitto_cpu_us: float
    database_cpu_us: float

    def cpu_line(self, database: str) -> str:
        return (
            f"CPU µs per message: collector {self.collector_cpu_us:.0f}, mosquitto {self.mosquitto_cpu_us:.0f}, "
            f"{database} {self.database_cpu_us:.0f}"
        )


async def bench_collector(
    mosquitto: Mosquitto,
    database_pid: int,
    influx_url: str,
    folder: Path,
    messages: list[tuple[str, bytes]],
    client_id: str,
    protocol: str = "5",
    kpi: bool = True,
) -> DrainRun:
    env = {
        "CITY_TELEMETRY__MQTT__PROTOCOL": f'"{protocol}"',
        "CITY_TELEMETRY__MQTT__PORT": str(mosquitto.port),
        "CITY_TELEMETRY__MQTT__CLIENT_ID": f'"{client_id}"',
        "CITY_TELEMETRY__INFLUXDB__URL": f'"{influx_url}"',
        "CITY_TELEMETRY__DEAD_LETTER__FILE": f'"{folder / "dead.jsonl"}"',
        "CITY_TELEMETRY__SPOOL__FOLDER": f'"{folder / "spool"}"',
        "CITY_TELEMETRY__LOG__STATS_EVERY_S": "3600",
        "CITY_TELEMETRY__KPI__ENABLED": str(kpi).lower(),
    }
    config = load_config(None, env)
    # First run creates the session and its subscription; then the backlog is queued for it.
    first = Collector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    while first.source.connects == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    stop.set()
    await task
    await asyncio.to_thread(publish_all, mosquitto.port, messages)

    collector = Collector(config)
    stop = asyncio.Event()
    assert mosquitto.process is not None
    # The collector runs in this process; the bench's own polling below costs a few milliseconds.
    cpu_before = (time.process_time(), cpu_seconds(mosquitto.process.pid), cpu_seconds(database_pid))
    started = time.perf_counter()
    task = asyncio.create_task(collector.run(stop))
    while collector.counters["acked"] < len(messages):
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    cpu_after = (time.process_time(), cpu_seconds(mosquitto.process.pid), cpu_seconds(database_pid))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stop.set()
    await task
    assert collector.counters["rejected"] == 0
    await asyncio.to_thread(forget_session, mosquitto.port, client_id, protocol)
    spent = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    per_message_us = [seconds * 1e6 / len(messages) for seconds in spent]
    return DrainRun(len(messages) / elapsed, peak_rss / 1024, *per_message_us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    configure_logging("warning", "console")
    messages = make_messages(args.messages)
    lines_per_message = (
        sum(
            len(r)
            for r in (new_pipeline(kpi=False).process(t, p, False, time.time_ns()) for t, p in messages[:1000])
            if isinstance(r, list)
        )
        / 1000
    )
    pipeline_rate = bench_pipeline(messages)
    pipeline_kpi_rate = bench_pipeline(messages, kpi=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mosquitto = Mosquitto(folder / "mosquitto")
        influxdb = InfluxDB(folder / "influxdb")
        mosquitto.start()
        influxdb.start()
        null_port = free_port()
        null_influx = subprocess.Popen([sys.executable, "-m", "bench.null_influx", str(null_port)])
        try:
            bare_rate = bench_bare_subscriber(mosquitto.port, messages)
            bare_rate_311 = bench_bare_subscriber(mosquitto.port, messages, "3.1.1")
            null_url = f"http://127.0.0.1:{null_port}"
            assert influxdb.process is not None
            null = asyncio.run(bench_collector(mosquitto, null_influx.pid, null_url, folder, messages, "bench-null"))
            null_311 = asyncio.run(
                bench_collector(mosquitto, null_influx.pid, null_url, folder, messages, "bench-null-311", "3.1.1")
            )
            null_311_off = asyncio.run(
                bench_collector(
                    mosquitto, null_influx.pid, null_url, folder, messages, "bench-null-311-nokpi", "3.1.1", False
                )
            )
            influx = asyncio.run(
                bench_collector(mosquitto, influxdb.process.pid, influxdb.url, folder, messages, "bench-collector")
            )
            influx_311 = asyncio.run(
                bench_collector(
                    mosquitto, influxdb.process.pid, influxdb.url, folder, messages, "bench-collector-311", "3.1.1"
                )
            )
        finally:
            null_influx.terminate()
            mosquitto.stop()
            influxdb.stop()
    print(f"messages: {len(messages)} ({lines_per_message:.1f} lines each on average)")
    print(f"pipeline only (no I/O):        {pipeline_rate:>9,.0f} msg/s")
    print(f"  with the KPI stage:          {pipeline_kpi_rate:>9,.0f} msg/s ({pipeline_kpi_rate / pipeline_rate:.2f})")
    print(f"bare paho subscriber (ceiling): {bare_rate:>9,.0f} msg/s")
    print(f"  the same over MQTT 3.1.1:    {bare_rate_311:>9,.0f} msg/s")
    print(f"collector, InfluxDB stand-in:  {null.rate:>9,.0f} msg/s (an endpoint that accepts at once)")
    print(f"  {null.cpu_line('stand-in')}")
    print(f"  the same over MQTT 3.1.1:    {null_311.rate:>9,.0f} msg/s")
    print(f"  {null_311.cpu_line('stand-in')}")
    print(
        f"  3.1.1, KPI engine off:       {null_311_off.rate:>9,.0f} msg/s "
        f"(with it on: {null_311.rate / null_311_off.rate:.2f} of that)"
    )
    print(
        f"collector end to end:          {influx.rate:>9,.0f} msg/s "
        f"({influx.rate * lines_per_message:,.0f} lines/s into InfluxDB)"
    )
    print(f"  {influx.cpu_line('influxd')}")
    print(f"  the same over MQTT 3.1.1:    {influx_311.rate:>9,.0f} msg/s")
    print(f"  {influx_311.cpu_line('influxd')}")
    print(
        f"ratios to the bare subscriber, same protocol: MQTT 5 stand-in {null.rate / bare_rate:.2f}, "
        f"InfluxDB {influx.rate / bare_rate:.2f}; MQTT 3.1.1 stand-in {null_311.rate / bare_rate_311:.2f}, "
        f"InfluxDB {influx_311.rate / bare_rate_311:.2f}"
    )
    cores = os.cpu_count() or 1
    servers_us = influx_311.mosquitto_cpu_us + influx_311.database_cpu_us
    print(
        f"{cores} cores: mosquitto and influxd alone need {servers_us:.0f} µs of CPU per message (3.1.1), so even a "
        f"collector that cost nothing would store at most {cores * 1e6 / servers_us:,.0f} msg/s on this machine "
        f"({cores * 1e6 / servers_us / bare_rate_311:.2f} of the bare subscriber)"
    )
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak RSS of the process:       {influx.peak_rss_mib:>9,.0f} MiB")


if __name__ == "__main__":
    main()
