"""Sizing benchmark: the figures a user needs to size a deployment, measured in one run on this machine.

Real processes throughout, loopback only: mosquitto, influxd 1.6.7 (and ``bench/null_influx.py``, an
endpoint that accepts every write at once), ``city-telemetry run`` as a subprocess with the shipped
defaults (KPI engine on) but for ports, folders and, with 2 workers, ``mqtt.shared_group`` and a
pseudonym key file. Phases (each can be shortened or skipped):

1. ceiling: a bare paho subscriber draining a backlog, MQTT 3.1.1 and 5 (``bench.ingest``'s code);
2. sustained: stepped offered rates, each held ``--step-seconds``; a step is lossless when every
   published message is stored (counted in InfluxDB; in the stand-in's case, acknowledged by the
   collector, from its ``/metrics``) and the backlog left at the end of the step drains within
   ``--drain-bound-s``. The rates tried are a bisection over the ``--rates`` ladder (at most
   ``--max-steps`` steps). With ``--workers`` 1 and 2, into InfluxDB and into the stand-in;
3. latency: publish-to-queryable p50/p99 at half the sustained rate (``bench.latency``'s run);
4. CPU seconds per million readings (collector processes, influxd apart) from phase 2's steps;
5. memory: the collector's peak RSS with 1,000 / 10,000 / 100,000 distinct devices, and its RSS
   sampled over a soak (``--soak-seconds``) at 10,000 devices; the KPI engine's process apart (its
   peak follows the readings of the day it reads back, ``bench/kpi_memory.py``);
6. outage: influxd stopped ``--outage-s`` while publishing at a fixed rate, then restarted: time
   until the backlog is stored, and the rate of that drain.

The machine's description and the load average during each phase are printed with the figures: on
a shared machine, compare figures measured in the same run. Every loop is bounded in count and time.

Run: make bench-sizing  (SIZING_ARGS="--step-seconds 20 --soak-seconds 60 --outage-s 30" for a short one)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import latency, raw_publisher
from bench.ingest import bench_bare_subscriber, make_messages
from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from tests import samples

HERE = Path(__file__).resolve().parent.parent
DATABASE = latency.DATABASE  # the latency probe queries this database
# One template per kind of the ``make bench`` mix: per 10 messages 6 ap.metrics, 2 ap.clients, 1
# if.counters, 1 link.probe. Each kind has a site of its own, which the stored-count query uses.
MIX = [samples.ap_metrics] * 6 + [samples.ap_clients] * 2 + [samples.if_counters, samples.link_probe]
DEVICE_MARK, TS_MARK = "@DEV@", "@TS@"


# -- pure parts (tests/bench/test_sizing.py) ---------------------------------------------------------------
def next_rate(ladder: list[float], results: dict[float, bool], max_steps: int) -> float | None:
    """The next offered rate to try: a bisection over the sorted ``ladder`` given the steps done
    (rate -> lossless). None when the answer is known or ``max_steps`` were run."""
    if len(results) >= max_steps:
        return None
    low, high = 0, len(ladder) - 1
    for index, rate in enumerate(ladder):
        if rate in results:
            if results[rate]:
                low = max(low, index + 1)
            else:
                high = min(high, index - 1)
    if low > high:
        return None
    return ladder[(low + high) // 2]


def sustained(results: dict[float, bool]) -> float | None:
    """The highest lossless rate below every lossy one (None if none was lossless)."""
    lossy = min((rate for rate, ok in results.items() if not ok), default=float("inf"))
    ok = [rate for rate, good in results.items() if good and rate < lossy]
    return max(ok) if ok else None


def cpu_per_million(cpu_s: float, messages: int) -> float:
    return cpu_s * 1_000_000 / messages if messages else float("nan")


def sizing_line(devices: int, period_s: float, sustained_rate: float, cpu_per_m: float, influx_per_m: float) -> str:
    """One line of the sizing guide: the load of ``devices`` reporting every ``period_s``."""
    rate = devices / period_s
    cores = rate * (cpu_per_m + influx_per_m) / 1_000_000
    share = rate / sustained_rate
    return (
        f"{devices:,} devices every {period_s:g} s = {rate:,.0f} msg/s: {share:.0%} of one collector's "
        f"sustained rate, about {cores:.2f} core (collector and influxd)"
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


# -- the publisher (a process of its own) ------------------------------------------------------------------
def templates() -> list[tuple[str, str, str]]:
    """(topic, payload, site) per message of the mix, with marks for the device id and the time."""
    sentinel = datetime(2001, 1, 1, tzinfo=UTC)
    out = []
    for build in MIX:
        topic, payload, rows = build(0, sentinel)
        device = payload["device_id"]
        payload["device_id"] = DEVICE_MARK
        payload["ts"] = TS_MARK
        out.append((topic.replace(device, DEVICE_MARK), json.dumps(payload), str(rows[0]["site"])))
    return out


def device_name(kind_topic: bytes, number: int) -> bytes:
    return b"ap-%06d" % number if b"/ap/" in kind_topic else b"cpe-school-%06d" % number


def publish(port: int, rate: float, seconds: float, devices: int, base_us: int, progress: Path) -> None:
    """Publish the mix at ``rate`` for ``seconds`` (QoS 1), message i stamped base + i microseconds,
    from device i % devices; writes the count sent to ``progress`` every 0.5 s."""
    mix = [(t.encode(), p.encode()) for t, p, _ in templates()]
    device_mark, ts_mark = DEVICE_MARK.encode(), TS_MARK.encode()
    publisher = latency.ready_publisher(port, "sizing-pub")
    started = time.monotonic()
    sent, last_note = 0, 0.0
    second, prefix = -1, b""
    # At most MAX_UNACKED unacknowledged (16-bit packet ids): a broker slower than ``rate`` holds the
    # publisher back, and the offered rate says so.
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(rate * elapsed), sent + raw_publisher.MAX_UNACKED - publisher.unacked)
        while sent < due:
            topic, payload = mix[sent % 10]
            device = device_name(topic, sent % devices)
            now_s, micros = divmod(base_us + sent, 1_000_000)
            if now_s != second:  # the stamp's date and time change once a second of stamps
                second = now_s
                prefix = datetime.fromtimestamp(now_s, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
            stamp = b"%s.%06dZ" % (prefix, micros)
            publisher.publish(
                topic.replace(device_mark, device), payload.replace(device_mark, device).replace(ts_mark, stamp)
            )
            sent += 1
        publisher.flush()
        if elapsed - last_note > 0.5:
            progress.write_text(str(sent))
            last_note = elapsed
        time.sleep(0.002)
    offered_s = time.monotonic() - started
    publisher.wait_acked(60)
    progress.write_text(str(sent))
    publisher.close()
    print(json.dumps({"sent": sent, "seconds": offered_s}), flush=True)


class Publisher:
    """``publish`` in a subprocess: start() returns once connected, go() starts the clock."""

    def __init__(self, port: int, rate: float, seconds: float, devices: int, folder: Path) -> None:
        self.base_us = int((time.time() - 3600) * 1_000_000)  # an hour ago: inside the collector's window
        self.rate, self.seconds = rate, seconds
        self.progress = folder / f"progress-{self.base_us}"
        self.progress.write_text("0")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.sizing",
                "--publish",
                str(port),
                str(rate),
                str(seconds),
                str(devices),
                str(self.base_us),
                str(self.progress),
            ],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the publisher did not start")

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def sent_so_far(self) -> int:
        try:
            return int(self.progress.read_text() or 0)
        except ValueError:
            return 0

    def result(self) -> tuple[int, float]:
        """(messages sent, offered rate); waits at most the run's length plus a minute."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.process.wait(60)
        if not line.strip():
            raise RuntimeError(f"the publisher failed (exit {self.process.returncode})")
        outcome = json.loads(line)
        return int(outcome["sent"]), outcome["sent"] / outcome["seconds"]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- counting what is stored -------------------------------------------------------------------------------
def expected_per_kind(sent: int) -> dict[str, int]:
    """Messages of each kind's site among the first ``sent`` of the mix."""
    counts: dict[str, int] = {}
    for index, (_, _, site) in enumerate(templates()):
        counts[site] = counts.get(site, 0) + (sent // 10) + (1 if index < sent % 10 else 0)
    return counts


class StoredCounter:
    """Messages stored in InfluxDB between two stamps: per kind, the points of the kind's first
    measurement (one per message, uniquely stamped), queried by site and time."""

    def __init__(self, influxdb: InfluxDB) -> None:
        self.port = influxdb.port
        self.queries = []
        sentinel = datetime(2001, 1, 1, tzinfo=UTC)
        for build in dict.fromkeys(MIX):
            _, _, rows = build(0, sentinel)
            first = rows[0]
            measurement = first["_measurement"]
            same = [r for r in rows if r["_measurement"] == measurement]
            value = next(
                k
                for k in first
                if isinstance(first[k], (int, float)) and not isinstance(first[k], bool) and k != "time"
            )
            self.queries.append((measurement, value, str(first["site"]), len(same)))

    def count(self, base_us: int, sent: int) -> int:
        """Messages of ``base_us .. base_us + sent`` stored (the smallest over the kinds, scaled)."""
        if sent == 0:
            return 0
        expected = expected_per_kind(sent)
        low, high = base_us * 1000, (base_us + sent) * 1000
        fractions = []
        for measurement, value, site, per_message in self.queries:
            statement = (
                f'SELECT count("{value}") FROM "{measurement}" WHERE "site" = \'{site}\' '
                f"AND time >= {low} AND time < {high}"
            )
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request("GET", "/query?" + urllib.parse.urlencode({"db": DATABASE, "q": statement}))
                answer = json.loads(connection.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError):
                return -1
            finally:
                connection.close()
            series = answer.get("results", [{}])[0].get("series")
            stored = int(series[0]["values"][0][1]) // per_message if series else 0
            fractions.append(stored / expected[site] if expected[site] else 1.0)
        return round(min(fractions) * sent)


def metric(port: int, name: str) -> float:
    """A value from the collector's (or supervisor's) /metrics; -1 when not answered."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
    except (OSError, http.client.HTTPException):
        return -1
    for line in text.splitlines():
        if line.startswith(f"city_telemetry_{name} ") or line.startswith(f"city_telemetry_{name}_total "):
            return float(line.split()[1])
    return -1


# -- the collector as a subprocess -------------------------------------------------------------------------
def process_role(pid: int) -> str:
    """``kpi`` for a KPI engine process (multiprocessing's spawn), ``helper`` for multiprocessing's
    resource tracker, ``collector`` for the rest."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "gone"
    if b"spawn_main" in command:
        return "kpi"
    return "helper" if b"resource_tracker" in command else "collector"


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the supervisor's workers), from /proc."""
    out, todo = [], [pid]
    for _ in range(100):
        if not todo:
            break
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Collector:
    """``city-telemetry run [--workers N]`` with the shipped defaults but for ports and folders."""

    def __init__(
        self,
        folder: Path,
        mosquitto: Mosquitto,
        influx_url: str,
        workers: int,
        name: str,
        key_file: Path,
        kpi: bool = True,
    ) -> None:
        self.folder = folder / name
        self.folder.mkdir()
        self.health_port = free_port()
        self.client_id = f"sizing-{name}"
        shared = f'shared_group = "{self.client_id}"' if workers > 1 else ""
        key = (
            "[kpi]\n"
            + (f'pseudonym_key_file = "{key_file}"\n' if workers > 1 else "")
            + ("" if kpi else "enabled = false\n")
        )
        config = latency.collector_config(
            self.folder,
            mosquitto.port,
            influx_url,
            self.client_id,
            shared,
            f'[health]\nlisten = "127.0.0.1:{self.health_port}"\n{key}',
        )
        command = [str(HERE / ".venv/bin/city-telemetry"), "run", "-c", str(config)]
        if workers > 1:
            command += ["--workers", str(workers)]
        self.workers = workers
        self.log = open(self.folder / "collector.log", "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, cwd=self.folder, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while metric(self.health_port, "mqtt_connects") < workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the collector did not connect; see {self.folder / 'collector.log'}")
            time.sleep(0.2)
        time.sleep(0.5)  # subscribed

    def cpu_s(self) -> float:
        total = 0.0
        for pid in process_tree(self.process.pid):
            with contextlib.suppress(OSError):
                total += latency.cpu_seconds(pid)
        return total

    def rss_kib(self, key: str = "VmRSS", role: str = "collector") -> int:
        """The largest RSS (or peak, ``VmHWM``) of the collector's processes in ``role``: ``collector``
        (the process, or the supervisor and each worker) or ``kpi`` (the KPI engine's spawned process,
        whose peak follows a day's readings, not the ingest: docs/performance.md, "KPI process")."""
        return max(
            (status_kib(pid, key) for pid in process_tree(self.process.pid) if process_role(pid) == role), default=0
        )

    def acked(self) -> int:
        return int(metric(self.health_port, "acked"))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


# -- phases ------------------------------------------------------------------------------------------------
@dataclass
class Step:
    config: str
    rate: float
    offered: float = 0.0
    sent: int = 0
    stored_at_end: int = 0
    drain_s: float | None = None
    lossless: bool = False
    collector_cpu_s: float = 0.0
    influxd_cpu_s: float = 0.0
    load: float = 0.0


@dataclass
class Report:
    machine: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    ceiling: dict[str, float] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    sustained: dict[str, float | None] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    memory: list[dict[str, float]] = field(default_factory=list)
    soak: list[tuple[float, float]] = field(default_factory=list)
    outage: dict[str, float] = field(default_factory=dict)
    loads: dict[str, list[float]] = field(default_factory=dict)


class Servers:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mosquitto = Mosquitto(folder / "mosquitto")
        self.influxdb = InfluxDB(folder / "influxdb")
        self.null_port = free_port()
        self.null: subprocess.Popen[bytes] | None = None
        self.key_file = folder / "pseudonym.key"
        self.key_file.write_bytes(secrets.token_bytes(32))
        self.key_file.chmod(0o600)

    def start(self) -> None:
        self.mosquitto.start()
        self.influxdb.start()
        self.influxdb.query(f'CREATE DATABASE "{DATABASE}"')
        self.null = subprocess.Popen([sys.executable, "-m", "bench.null_influx", str(self.null_port)], cwd=HERE)

    def stop(self) -> None:
        if self.null is not None:
            self.null.terminate()
            self.null.wait(10)
        self.mosquitto.stop()
        self.influxdb.stop()

    def influxd_cpu_s(self) -> float:
        assert self.influxdb.process is not None
        return latency.cpu_seconds(self.influxdb.process.pid)


class LoadSampler:
    """The 1-minute load average every 5 s while a phase runs."""

    def __init__(self, report: Report, phase: str) -> None:
        self.samples = report.loads.setdefault(phase, [])
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self.stop.wait(5):
                return

    def __enter__(self) -> LoadSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)


def wait_stored(count: Any, sent: int, bound_s: float) -> tuple[int, float | None]:
    """Poll ``count()`` until it reaches ``sent`` (or ``bound_s`` passes): (last count, seconds taken)."""
    started = time.monotonic()
    stored = count()
    while stored < sent and time.monotonic() - started < bound_s:
        time.sleep(0.5)
        stored = count()
    return stored, (time.monotonic() - started) if stored >= sent else None


def run_step(
    servers: Servers, collector: Collector, config: str, sink: str, rate: float, args: argparse.Namespace
) -> Step:
    step = Step(config, rate)
    counter = StoredCounter(servers.influxdb)
    publisher = Publisher(servers.mosquitto.port, rate, args.step_seconds, 1000, servers.folder)
    acked_before = collector.acked()
    cpu_c, cpu_i = collector.cpu_s(), servers.influxd_cpu_s()
    try:
        publisher.go()
        step.sent, step.offered = publisher.result()
    finally:
        publisher.kill()

    def count() -> int:
        if sink == "influxdb":
            return counter.count(publisher.base_us, step.sent)
        return collector.acked() - acked_before

    step.stored_at_end = count()
    _, step.drain_s = wait_stored(count, step.sent, args.drain_bound_s)
    step.lossless = step.drain_s is not None and step.offered >= 0.95 * rate
    if step.drain_s is None:  # let the backlog go before the next step (bounded), so that it starts clean
        wait_stored(count, step.sent, 30)
    step.collector_cpu_s = collector.cpu_s() - cpu_c
    step.influxd_cpu_s = servers.influxd_cpu_s() - cpu_i
    step.load = os.getloadavg()[0]
    print(
        f"  {config}: {rate:,.0f} msg/s offered {step.offered:,.0f}/s, sent {step.sent:,}, stored at end "
        f"{step.stored_at_end:,}, drained in {step.drain_s if step.drain_s is None else round(step.drain_s, 1)} s "
        f"-> {'lossless' if step.lossless else 'NOT sustained'}  (load {step.load:.1f}); CPU s per million: "
        f"collector {cpu_per_million(step.collector_cpu_s, step.sent):,.0f}, "
        f"influxd {cpu_per_million(step.influxd_cpu_s, step.sent):,.0f}",
        flush=True,
    )
    return step


def phase_ceiling(report: Report, servers: Servers, args: argparse.Namespace) -> None:
    messages = make_messages(args.ceiling_messages)
    with LoadSampler(report, "ceiling"):
        for protocol in ("3.1.1", "5"):
            report.ceiling[protocol] = bench_bare_subscriber(servers.mosquitto.port, messages, protocol)
            print(f"  bare subscriber, MQTT {protocol}: {report.ceiling[protocol]:,.0f} msg/s", flush=True)
    # Their persistent sessions would make the broker queue every later message for them.
    for client_id in ("bench-bare-5", "bench-bare-3.1.1"):  # bench.ingest.bench_bare_subscriber's
        latency.forget_session(servers.mosquitto.port, client_id)


def phase_sustained(report: Report, servers: Servers, args: argparse.Namespace) -> None:
    ladder = sorted(float(r) for r in args.rates.split(","))
    for workers in args.workers:
        for sink in args.sinks:
            config = f"{workers}w-{sink}" + ("" if args.kpi == "on" else "-kpi-off")
            url = servers.influxdb.url if sink == "influxdb" else f"http://127.0.0.1:{servers.null_port}"
            results: dict[float, bool] = {}
            with LoadSampler(report, f"sustained {config}"):
                collector = Collector(
                    servers.folder, servers.mosquitto, url, workers, config, servers.key_file, args.kpi == "on"
                )
                try:
                    while (rate := next_rate(ladder, results, args.max_steps)) is not None:
                        step = run_step(servers, collector, config, sink, rate, args)
                        report.steps.append(step)
                        results[rate] = step.lossless
                finally:
                    collector.stop()
                    latency.forget_session(servers.mosquitto.port, collector.client_id)
                    for k in range(1, workers + 1):
                        if workers > 1:
                            latency.forget_session(servers.mosquitto.port, f"{collector.client_id}-{k}")
            report.sustained[config] = sustained(results)
            print(f"  {config}: sustained {report.sustained[config]}", flush=True)


def phase_latency(report: Report, servers: Servers, args: argparse.Namespace) -> None:
    rate = (report.sustained.get("1w-influxdb") or args.latency_rate) / 2
    options = argparse.Namespace(seconds=args.latency_seconds, warmup_s=2.0, probe_every_s=0.05, poll_s=0.002)
    folder = servers.folder / "latency"
    folder.mkdir()
    with LoadSampler(report, "latency"):
        run = latency.one_run(1, "now", HERE, rate, options, servers.mosquitto, servers.influxdb, folder)
    report.latency = {
        "rate": rate,
        "offered": run.offered_rate,
        "probes": len(run.latencies_ms),
        "lost": run.lost,
        "p50_ms": latency.percentile(run.latencies_ms, 0.5),
        "p99_ms": latency.percentile(run.latencies_ms, 0.99),
        "collector_cpu_s_per_m": cpu_per_million(run.collector_cpu_s, run.sent),
        "influxd_cpu_s_per_m": cpu_per_million(run.influxd_cpu_s, run.sent),
    }
    print(f"  latency at {rate:,.0f} msg/s: {report.latency}", flush=True)


def phase_memory(report: Report, servers: Servers, args: argparse.Namespace) -> None:
    rate = args.memory_rate
    for devices in args.devices:
        soak = devices == 10_000
        seconds = max(args.memory_seconds, 1.2 * devices / rate) + (args.soak_seconds if soak else 0)
        name = memory_phase({"devices": devices})
        with LoadSampler(report, name):
            collector = Collector(servers.folder, servers.mosquitto, servers.influxdb.url, 1, name, servers.key_file)
            publisher = Publisher(servers.mosquitto.port, rate, seconds, devices, servers.folder)
            try:
                publisher.go()
                started = time.monotonic()
                while publisher.process.poll() is None and time.monotonic() - started < seconds + 60:
                    if soak:
                        report.soak.append((time.monotonic() - started, collector.rss_kib() / 1024))
                    time.sleep(min(10.0, seconds / 20))
                sent, offered = publisher.result()
                counter = StoredCounter(servers.influxdb)
                base_us = publisher.base_us
                stored, _ = wait_stored(lambda: counter.count(base_us, sent), sent, 60)  # noqa: B023 (called here)
                peak = collector.rss_kib("VmHWM") / 1024
                kpi_peak = collector.rss_kib("VmHWM", "kpi") / 1024
            finally:
                publisher.kill()
                collector.stop()
                latency.forget_session(servers.mosquitto.port, collector.client_id)
        report.memory.append(
            {
                "devices": devices,
                "seconds": seconds,
                "sent": sent,
                "stored": stored,
                "offered": offered,
                "peak_mib": peak,
                "kpi_peak_mib": kpi_peak,
            }
        )
        print(
            f"  {devices:,} devices: peak RSS {peak:,.0f} MiB (KPI process {kpi_peak:,.0f} MiB), "
            f"sent {sent:,}, stored {stored:,}",
            flush=True,
        )


def phase_outage(report: Report, servers: Servers, args: argparse.Namespace) -> None:
    rate = args.outage_rate or 0.5 * (report.sustained.get("1w-influxdb") or args.latency_rate)
    lead, tail = 10.0, args.outage_tail_s
    seconds = lead + args.outage_s + tail
    counter = StoredCounter(servers.influxdb)
    with LoadSampler(report, "outage"):
        collector = Collector(servers.folder, servers.mosquitto, servers.influxdb.url, 1, "outage", servers.key_file)
        publisher = Publisher(servers.mosquitto.port, rate, seconds, 1000, servers.folder)
        spool_peak = 0.0
        try:
            publisher.go()
            started = time.monotonic()
            time.sleep(lead)
            servers.influxdb.stop()
            while time.monotonic() - started < lead + args.outage_s:
                spool_peak = max(spool_peak, metric(collector.health_port, "spool_lines"))
                time.sleep(1.0)
            servers.influxdb.start(timeout_s=90)  # a busy machine's influxd may take long to open its data
            restarted = time.monotonic()
            backlog_at_restart = publisher.sent_so_far() - max(
                counter.count(publisher.base_us, publisher.sent_so_far()), 0
            )
            stored_at_restart = max(counter.count(publisher.base_us, publisher.sent_so_far()), 0)
            drained_s: float | None = None
            stored = stored_at_restart
            while time.monotonic() - restarted < tail + 120:
                sent_now = publisher.sent_so_far()
                stored = counter.count(publisher.base_us, sent_now)
                if stored >= sent_now - rate * 1.5:  # the backlog is down to what arrived in the last second or so
                    drained_s = time.monotonic() - restarted
                    break
                time.sleep(1.0)
            sent, _ = publisher.result()
            final, _ = wait_stored(lambda: counter.count(publisher.base_us, sent), sent, 120)
        finally:
            publisher.kill()
            collector.stop()
            latency.forget_session(servers.mosquitto.port, collector.client_id)
    report.outage = {
        "rate": rate,
        "outage_s": args.outage_s,
        "backlog_at_restart": backlog_at_restart,
        "spool_peak_lines": spool_peak,
        "drain_s": drained_s if drained_s is not None else float("nan"),
        "drain_msg_s": (stored - stored_at_restart) / drained_s if drained_s else float("nan"),
        "sent": sent,
        "stored": final,
    }
    print(f"  outage: {report.outage}", flush=True)


# -- the report --------------------------------------------------------------------------------------------
def load_text(samples_: list[float]) -> str:
    return f"{min(samples_):.1f}-{max(samples_):.1f}" if samples_ else "-"


def verdict(step: Step) -> str:
    """Why a step is or is not sustained."""
    if step.lossless:
        return "yes"
    if step.drain_s is None:
        return "no: backlog did not drain"
    return "not reached: the publisher offered < 95 %, all stored"


def from_json(data: dict[str, Any]) -> Report:
    """A report written by ``--json`` (for ``--render``)."""
    report = Report(**data)
    report.steps = [Step(**step) for step in data["steps"]]
    report.soak = [(float(t), float(m)) for t, m in data["soak"]]
    return report


def memory_phase(entry: dict[str, float]) -> str:
    return f"memory-{entry['devices']:.0f}"


def render(report: Report) -> str:
    out = [f"machine: {report.machine}", f"arguments: {json.dumps(report.args)}", ""]
    ceiling = report.ceiling
    if ceiling:
        out.append(
            table(
                ["bare paho subscriber (ceiling)", "msg/s", "load avg"],
                [[f"MQTT {p}", f"{r:,.0f}", load_text(report.loads.get("ceiling", []))] for p, r in ceiling.items()],
            )
        )
        out.append("")
    if report.steps:
        rows = []
        for step in report.steps:
            total = step.collector_cpu_s
            rows.append(
                [
                    step.config,
                    f"{step.rate:,.0f}",
                    f"{step.offered:,.0f}",
                    f"{step.sent:,}",
                    f"{max(step.sent - step.stored_at_end, 0):,}",
                    "-" if step.drain_s is None else f"{step.drain_s:.1f}",
                    verdict(step),
                    f"{cpu_per_million(total, step.sent):,.0f}",
                    f"{cpu_per_million(step.influxd_cpu_s, step.sent):,.0f}",
                    f"{step.load:.1f}",
                ]
            )
        out.append(
            table(
                [
                    "config",
                    "rate",
                    "offered/s",
                    "sent",
                    "backlog at end",
                    "drain s",
                    "lossless",
                    "collector CPU s/M",
                    "influxd CPU s/M",
                    "load",
                ],
                rows,
            )
        )
        out.append("")
        for config, rate in report.sustained.items():
            bare = ceiling.get("5")
            ratio = f" ({rate / bare:.2f} of the MQTT 5 bare subscriber)" if rate and bare else ""
            out.append(
                f"sustained lossless, {config}: "
                + ("none of the rates tried" if rate is None else f"{rate:,.0f} msg/s")
                + ratio
            )
        out.append("")
    if report.latency:
        lat = report.latency
        out.append(
            f"latency at {lat['rate']:,.0f} msg/s (offered {lat['offered']:,.0f}): p50 {lat['p50_ms']:.0f} ms, "
            f"p99 {lat['p99_ms']:.0f} ms, {lat['probes']:.0f} probes, {lat['lost']:.0f} lost "
            f"(load {load_text(report.loads.get('latency', []))})"
        )
    for entry in report.memory:
        out.append(
            f"peak RSS with {entry['devices']:,.0f} devices: {entry['peak_mib']:,.0f} MiB "
            f"(KPI process {entry.get('kpi_peak_mib', float('nan')):,.0f} MiB) "
            f"({entry['seconds']:.0f} s at {entry['offered']:,.0f} msg/s, sent {entry['sent']:,.0f}, "
            f"stored {entry['stored']:,.0f}; load {load_text(report.loads.get(memory_phase(entry), []))})"
        )
    if report.soak:
        values = [mib for _, mib in report.soak]
        quarter = max(1, len(values) // 4)
        out.append(
            f"soak (10,000 devices, {report.soak[-1][0]:.0f} s): "
            f"RSS first quarter max {max(values[:quarter]):.0f} MiB, "
            f"last quarter max {max(values[-quarter:]):.0f} MiB, overall {min(values):.0f}-{max(values):.0f} MiB"
        )
    if report.outage:
        o = report.outage
        out.append(
            f"outage {o['outage_s']:.0f} s at {o['rate']:,.0f} msg/s: "
            f"backlog {o['backlog_at_restart']:,.0f} msg at restart "
            f"(spool peak {o['spool_peak_lines']:,.0f} lines), drained in {o['drain_s']:.1f} s while publishing "
            f"({o['drain_msg_s']:,.0f} msg/s stored during the drain), "
            f"sent {o['sent']:,.0f}, stored {o['stored']:,.0f} "
            f"(load {load_text(report.loads.get('outage', []))})"
        )
    return "\n".join(out)


def machine() -> str:
    mosquitto = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[:1]
    return f"{latency.machine()}, {mosquitto[0] if mosquitto else 'mosquitto ?'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Phases: " + __doc__.split("Phases")[1]
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--phases", default="ceiling,sustained,latency,memory,outage", help="which, comma-separated")
    parser.add_argument("--ceiling-messages", type=int, default=100_000, help="backlog for the bare subscriber")
    parser.add_argument("--rates", default="2000,4000,6000,8000,10000,12000,15000,20000", help="the ladder of msg/s")
    parser.add_argument("--step-seconds", type=float, default=120.0, help="how long each rate is held (at most 900)")
    parser.add_argument("--max-steps", type=int, default=4, help="steps per configuration (at most 10)")
    parser.add_argument("--drain-bound-s", type=float, default=10.0, help="a step's end backlog must drain within")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--sinks", default="influxdb,stand-in", help="influxdb and/or stand-in")
    parser.add_argument(
        "--kpi",
        choices=["on", "off"],
        default="on",
        help="the KPI engine in the sustained phase (off: the ingest alone; the KPI process recomputes "
        "the windows its readings touch, and every reading of this bench falls in the same few)",
    )
    parser.add_argument("--latency-seconds", type=float, default=30.0, help="load of the latency run (at most 120)")
    parser.add_argument("--latency-rate", type=float, default=4000.0, help="sustained rate to assume if not measured")
    parser.add_argument("--devices", default="1000,10000,100000", help="device counts of the memory phase")
    parser.add_argument("--memory-rate", type=float, default=2000.0, help="msg/s of the memory phase")
    parser.add_argument("--memory-seconds", type=float, default=30.0, help="at least this long per device count")
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="added to the 10,000-device run")
    parser.add_argument("--outage-s", type=float, default=600.0, help="how long influxd is stopped")
    parser.add_argument("--outage-rate", type=float, default=0.0, help="msg/s during the outage (0: half sustained)")
    parser.add_argument("--outage-tail-s", type=float, default=120.0, help="publishing after the restart")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--render", type=Path, help="print the report of a --json file and exit")
    parser.add_argument("--publish", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        port, rate, seconds, devices, base_us, progress = args.publish
        publish(int(port), float(rate), float(seconds), int(devices), int(base_us), Path(progress))
        return
    if args.render:
        print(render(from_json(json.loads(args.render.read_text()))))
        return
    args.step_seconds = min(args.step_seconds, 900.0)
    args.max_steps = max(1, min(args.max_steps, 10))
    args.latency_seconds = min(args.latency_seconds, 120.0)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.sinks = args.sinks.split(",")
    args.devices = [int(d) for d in args.devices.split(",")]
    phases = args.phases.split(",")
    report = Report(
        machine=machine(), args={k: v for k, v in vars(args).items() if k not in {"publish", "json", "render"}}
    )
    print(f"machine: {report.machine}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sizing-") as tmp:
        servers = Servers(Path(tmp))
        servers.start()
        try:
            for name, phase in (
                ("ceiling", phase_ceiling),
                ("sustained", phase_sustained),
                ("latency", phase_latency),
                ("memory", phase_memory),
                ("outage", phase_outage),
            ):
                if name in phases:
                    print(f"{name} (at {time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
                    try:
                        phase(report, servers, args)
                    except Exception as error:  # one phase failing leaves the others
                        print(f"  {name} FAILED: {error!r}", flush=True)
                        report.loads.setdefault(f"{name} failed: {error!r}", [])
        finally:
            servers.stop()
    print(f"\nwhole run: {time.monotonic() - started:.0f} s\n")
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), default=str))


if __name__ == "__main__":
    main()
