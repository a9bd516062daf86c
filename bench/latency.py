"""Publish-to-queryable latency under load: how long a reading takes to be visible to a query.

Through the real processes: a background publisher sends the ``make bench`` message mix at a fixed
rate to mosquitto (QoS 1); ``city-telemetry run`` (a subprocess, shipped defaults but for ports and
folders) collects it into influxd 1.6.7. Meanwhile a probe reading (``link.probe/1`` from a device of
its own) is published every ``--probe-every-s``, and InfluxQL ``/query`` is polled (one keep-alive
connection, ``--poll-s`` apart) for the newest probe stored. A probe's latency is from just before
its publish to the answer of the first query that returns it (so it includes up to one poll period).

With ``--base PATH`` (a checkout of other code, e.g. a worktree at main) every rate is measured for
both codes, interleaved (before, after, after, before, ...) in the same run on the same servers, so
that a shared machine's load falls on both alike; the ratios are printed beside the figures. Also per
run: the collector's and influxd's CPU seconds per 1,000 messages, and the collector's write
requests (from its ``collector_stopped`` log line). Bounded: every run lasts ``--seconds`` plus
start and stop (at most about a minute each).

Run: make bench-latency  (or .venv/bin/python -m bench.latency --base ../latency-base --rates 1500,7500)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.raw_publisher import MAX_UNACKED, RawPublisher
from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples

HERE = Path(__file__).resolve().parent.parent
DATABASE = "latency"
# Starts ``city-telemetry run`` from the checkout given as argv[1], not from the package the venv has
# installed in editable mode (its import finder would win over PYTHONPATH).
LAUNCH = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, sys.argv.pop(1))
from collector.app.cli import main
sys.exit(main())
"""
PROBE_TIMEOUT_S = 10.0  # a probe not visible this long after the load ended counts as lost


# -- the background load (a process of its own, so that it does not share the prober's interpreter) ------
def ready_publisher(port: int, name: str) -> RawPublisher:
    """A load generator's QoS 1 connection; says "ready" and returns at the parent's "go" line.

    It shares the machine with what it measures, so it writes its own packets
    (``bench/raw_publisher.py``): 7 to 15 µs of CPU a message where paho, even trimmed, took 60 to 84."""
    publisher = RawPublisher(port, f"{name}-{os.getpid()}")
    print("ready", flush=True)
    sys.stdin.readline()  # go
    return publisher


def run_load(port: int, rate: float, seconds: float) -> None:
    from bench.ingest import make_messages

    messages = [(topic.encode(), payload) for topic, payload in make_messages(min(int(rate * seconds) + 1, 400_000))]
    publisher = ready_publisher(port, "latency-load")
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = min(int(rate * elapsed), len(messages), sent + MAX_UNACKED - publisher.unacked)
        while sent < due:
            publisher.publish(*messages[sent])
            sent += 1
        publisher.flush()
        time.sleep(0.002)
    offered_s = time.monotonic() - started
    publisher.wait_acked(60)
    publisher.close()
    print(json.dumps({"sent": sent, "seconds": offered_s}), flush=True)


# -- one run: a collector of one code, a load, probes ------------------------------------------------------
@dataclass
class Run:
    variant: str
    rate: float
    latencies_ms: list[float] = field(default_factory=list)
    lost: int = 0
    sent: int = 0
    offered_rate: float = 0.0
    collector_cpu_s: float = 0.0
    influxd_cpu_s: float = 0.0
    write_requests: int = 0
    lines_written: int = 0
    poll_s: float = 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Prober:
    def __init__(self, mosquitto: Mosquitto, influxdb: InfluxDB, device: str) -> None:
        self.device = device
        topic, _, _ = samples.link_probe(0, samples.recent())
        self.topic = topic.replace("cpe-school-000", device)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"latency-probe-{device}")
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.loop_start()
        self.http = http.client.HTTPConnection("127.0.0.1", influxdb.port, timeout=10)
        statement = f'SELECT last("seq") FROM "link_probe" WHERE "device" = \'{device}\''
        self.path = "/query?" + urllib.parse.urlencode({"db": DATABASE, "q": statement})
        self.polls = 0

    def publish(self, seq: int) -> float:
        _, payload, _ = samples.link_probe(seq, datetime.now(UTC))
        payload["device_id"] = self.device
        body = json.dumps(payload).encode()
        sent = time.monotonic()
        self.client.publish(self.topic, body, qos=1)
        return sent

    def newest(self) -> int:
        """The highest probe seq InfluxDB answers with (-1: none yet)."""
        self.polls += 1
        self.http.request("GET", self.path)
        answer = json.loads(self.http.getresponse().read())
        series = answer["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else -1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.http.close()


def collector_config(
    folder: Path, mqtt_port: int, influx_url: str, client_id: str, mqtt_extra: str = "", sections: str = ""
) -> Path:
    """``folder/collector.toml``: the shipped defaults but for ports and folders. ``mqtt_extra``
    goes into ``[mqtt]`` (e.g. a shared group), ``sections`` after the rest (``[health]``, ``[kpi]``)."""
    path = folder / "collector.toml"
    path.write_text(
        f"""
[mqtt]
port = {mqtt_port}
client_id = "{client_id}"
{mqtt_extra}
[influxdb]
url = "{influx_url}"
database = "{DATABASE}"
[dead_letter]
file = "{folder / "dead-letter.jsonl"}"
[spool]
folder = "{folder / "spool"}"
[log]
stats_every_s = 3600
{sections}
"""
    )
    return path


def forget_session(port: int, client_id: str) -> None:
    """A stopped collector's persistent session would queue every later message: end it."""
    from bench.ingest import forget_session as end_session

    end_session(port, client_id, "3.1.1")  # a clean 3.1.1 connection ends an MQTT 5 session too


def one_run(
    number: int,
    variant: str,
    code: Path,
    rate: float,
    args: argparse.Namespace,
    mosquitto: Mosquitto,
    influxdb: InfluxDB,
    folder: Path,
) -> Run:
    run = Run(variant, rate)
    work = folder / f"run-{number:02d}"
    work.mkdir()
    client_id = f"latency-{number:02d}"
    log_path = work / "collector.log"
    with open(log_path, "wb") as log_file:
        config = collector_config(work, mosquitto.port, influxdb.url, client_id)
        collector = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(code), "run", "-c", str(config)],
            cwd=code,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    load = subprocess.Popen(
        [sys.executable, "-m", "bench.latency", "--load", str(mosquitto.port), str(rate), str(args.seconds)],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    prober = Prober(mosquitto, influxdb, f"cpe-lat{number:03d}")
    assert influxdb.process is not None
    influxdb_pid = influxdb.process.pid
    try:
        assert load.stdout is not None and load.stdin is not None
        # Warm up: the first probe proves the collector is subscribed and writing.
        deadline = time.monotonic() + 60
        prober.publish(0)
        while prober.newest() < 0:
            if time.monotonic() > deadline or collector.poll() is not None:
                raise RuntimeError(f"the collector ({variant}) stored nothing; see {log_path}")
            time.sleep(0.05)
            prober.publish(0)
        assert load.stdout.readline().strip() == "ready"
        cpu_collector, cpu_influxd = cpu_seconds(collector.pid), cpu_seconds(influxdb_pid)
        load.stdin.write("go\n")
        load.stdin.flush()
        started = time.monotonic()
        probes_from, end = started + args.warmup_s, started + args.seconds
        sent: dict[int, float] = {}
        seq, next_probe, polls_from = 0, probes_from, 0
        last_answer = time.monotonic()
        while True:
            now = time.monotonic()
            if next_probe <= now < end:
                seq += 1
                sent[seq] = prober.publish(seq)
                next_probe += args.probe_every_s
                if seq == 1:
                    polls_from, poll_started = prober.polls, now
            pending = [s for s in sent if s > len(run.latencies_ms) + run.lost]
            if not pending and now >= end:
                break
            if pending and now > end + PROBE_TIMEOUT_S:
                run.lost = len(pending)
                break
            if pending:
                newest = prober.newest()
                last_answer = time.monotonic()
                while len(run.latencies_ms) + 1 <= newest and len(run.latencies_ms) + 1 in sent:
                    run.latencies_ms.append((last_answer - sent[len(run.latencies_ms) + 1]) * 1000)
            time.sleep(args.poll_s)
        run.poll_s = (last_answer - poll_started) / max(prober.polls - polls_from, 1)
        outcome = json.loads(load.stdout.readline())
        run.sent, run.offered_rate = outcome["sent"], outcome["sent"] / outcome["seconds"]
        load.wait(60)
        # Everything sent is in before the CPU is read: the run's whole cost, not what was done in time.
        time.sleep(1.0)
        run.collector_cpu_s = cpu_seconds(collector.pid) - cpu_collector
        run.influxd_cpu_s = cpu_seconds(influxdb_pid) - cpu_influxd
    finally:
        prober.close()
        if load.poll() is None:
            load.kill()
        collector.send_signal(signal.SIGTERM)
        try:
            collector.wait(60)
        except subprocess.TimeoutExpired:
            collector.kill()
            collector.wait()
        forget_session(mosquitto.port, client_id)
    for line in log_path.read_text().splitlines():
        if '"collector_stopped"' in line:
            stopped = json.loads(line)
            run.write_requests = int(stopped.get("write_requests", 0))
            run.lines_written = int(stopped.get("lines_written", 0))
    return run


# -- the report --------------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    influxd = subprocess.run(["influxd", "version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), {int(memory) // 1024**2} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {influxd}, load average {os.getloadavg()[0]:.1f} at start"
    )


def summarise(runs: list[Run], rates: list[float], variants: list[str]) -> None:
    print()
    print(
        "rate     code    probes lost   p50 ms  p99 ms  max ms  offered/s  "
        "coll.CPU s/1k  influxd CPU s/1k  lines/request"
    )
    for rate in rates:
        figures: dict[str, tuple[float, float]] = {}
        for variant in variants:
            chosen = [r for r in runs if r.rate == rate and r.variant == variant]
            latencies = [x for r in chosen for x in r.latencies_ms]
            sent = sum(r.sent for r in chosen)
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            figures[variant] = (p50, p99)
            per_request = sum(r.lines_written for r in chosen) / max(sum(r.write_requests for r in chosen), 1)
            print(
                f"{rate:>6,.0f}  {variant:<7} {len(latencies):>6} {sum(r.lost for r in chosen):>4} "
                f"{p50:>8.0f} {p99:>7.0f} {max(latencies, default=float('nan')):>7.0f} "
                f"{statistics.fmean(r.offered_rate for r in chosen):>10,.0f} "
                f"{1000 * sum(r.collector_cpu_s for r in chosen) / max(sent, 1):>14.3f} "
                f"{1000 * sum(r.influxd_cpu_s for r in chosen) / max(sent, 1):>17.3f} "
                f"{per_request:>14.0f}"
            )
        if len(variants) == 2:
            (b50, b99), (a50, a99) = figures[variants[0]], figures[variants[1]]
            print(f"        after/before: p50 {a50 / b50:.2f}, p99 {a99 / b99:.2f}")
    poll = statistics.fmean(r.poll_s for r in runs) * 1000
    print(f"mean poll period (the resolution of a latency): {poll:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="a checkout of the code to compare with (e.g. a worktree at main)")
    parser.add_argument("--rates", default="1500,7500", help="background messages/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="load per run (at most 120)")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="load before the first probe")
    parser.add_argument("--repeats", type=int, default=2, help="runs per rate and code (at most 5)")
    parser.add_argument("--probe-every-s", type=float, default=0.05)
    parser.add_argument("--poll-s", type=float, default=0.002, help="pause between two queries")
    parser.add_argument("--json", type=Path, help="also write every run's figures (each probe's latency) here")
    parser.add_argument("--load", nargs=3, metavar=("PORT", "RATE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        run_load(int(args.load[0]), float(args.load[1]), float(args.load[2]))
        return
    args.seconds = min(args.seconds, 120.0)
    args.repeats = max(1, min(args.repeats, 5))
    rates = [float(r) for r in args.rates.split(",")]
    codes = {"after": HERE}
    if args.base is not None:
        codes = {"before": args.base.resolve(), "after": HERE}
    variants = list(codes)
    print(f"machine: {machine()}")
    print("codes: " + ", ".join(f"{name} = {path}" for name, path in codes.items()))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        folder = Path(tmp)
        mosquitto, influxdb = Mosquitto(folder / "mosquitto"), InfluxDB(folder / "influxdb")
        mosquitto.start()
        influxdb.start()
        try:
            number = 0
            for repeat in range(args.repeats):
                for rate in rates:
                    order = variants if (repeat + rates.index(rate)) % 2 == 0 else variants[::-1]
                    for variant in order:
                        number += 1
                        run = one_run(number, variant, codes[variant], rate, args, mosquitto, influxdb, folder)
                        runs.append(run)
                        p50, p99 = percentile(run.latencies_ms, 0.5), percentile(run.latencies_ms, 0.99)
                        print(
                            f"run {number:>2}: {variant:<6} {rate:>6,.0f} msg/s  offered {run.offered_rate:,.0f}/s  "
                            f"p50 {p50:.0f} ms  p99 {p99:.0f} ms  "
                            f"lost probes {run.lost}  requests {run.write_requests}  load avg {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
        finally:
            mosquitto.stop()
            influxdb.stop()
    summarise(runs, rates, variants)
    if args.json is not None:
        args.json.write_text(json.dumps([vars(run) for run in runs]))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (the machine is shared: compare ratios within the run)")


if __name__ == "__main__":
    main()
