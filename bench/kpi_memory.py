"""How much memory the KPI process needs for one day of a city: peak RSS of reading the day back
and of computing its day window, for a number of access points and school links.

The KPI engine computes a day from one read of the day's readings (collector/kpi/raw.py). That
read, not the collector's ingest, decides the KPI process's peak, and it grows with the city: the
question an operator sizing a server asks is "how much for my N devices?". This bench answers it
on a real influxd 1.6.7 with a synthetic day written directly as line protocol, in the stored
layout of docs/data-model.md: every AP reports every ``--period-s`` (``ap`` with uplink counters,
two ``ap_radio`` bands) and its clients every 300 s (``ap_clients`` and ``ap_client_presence``
with ``--clients`` pseudonyms), every school CPE its ``netdev``, ``interface`` counters and a
``link_probe`` every ``--period-s``.

Each measurement runs in a fresh interpreter (peak RSS is per process, ``VmHWM``):

- ``parts``: the engine's day since 6 Dec 2026 (``engine.day_points``): the day read back in
  ``--day-reads`` parts of the devices, one at a time, each device's readings summarised for the
  day before the next part is read; the points are those of one read (tests/kpi/test_kpi_e2e.py);
- ``stream``: one read of the whole day, pieces handed on chunk by chunk (``InfluxQuery.stream``),
  then the day computed from it, as the engine computed a day until then;
- ``whole``: the same rows read as whole answers first (``InfluxQuery.query``: the body, then every
  series parsed, then built into the engine's structures), as the engine read before 4 Dec 2026.

Run: .venv/bin/python -m bench.kpi_memory --aps 900 --schools 175   (about 5 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

from collector.harness.localservers import InfluxDB

HERE = Path(__file__).resolve().parent.parent
DATABASE = "kpi_memory"
DAY = date(2026, 11, 23)
BATCH_LINES = 50_000


def status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def day_lines(aps: int, schools: int, period_s: int, clients: int, stay: int = 1) -> Iterator[list[str]]:
    """The synthetic day, in batches of line protocol (a generator: the bench holds one batch).

    A client stays in its AP's list for ``stay`` client reports in a row (the clients of one AP
    arrive and leave at different reports), then another takes its place. With 1, every report
    lists new pseudonyms only: the most distinct clients and sessions a day can hold."""
    from collector.kpi.windows import NS, day_window

    window = day_window(DAY)
    batch: list[str] = []
    for t in range(window.start_ns, window.end_ns, period_s * NS):
        step = (t - window.start_ns) // (period_s * NS)
        for a in range(aps):
            tags = f"device=ap-{a:05d},kind=ap,nis={21001 + a % 19},site=site-{a // 4:04d}"
            up = step * period_s + 3600
            batch.append(
                f"ap,{tags} uptime_s={up},num_clients={a % 30}i,"
                f"uplink_rx_bytes={step * 1_000_000 + a}i,uplink_tx_bytes={step * 200_000 + a}i {t}"
            )
            for band in ("2.4", "5"):
                batch.append(
                    f"ap_radio,{tags},band={band} cu_total_pct={(a + step) % 90 + 0.5},"
                    f"tx_retries={step * 10}i,tx_total={step * 1000}i {t}"
                )
            every = max(1, 300 // period_s)
            if step % every == 0:
                if stay == 1:
                    pids = ",".join(f"{(a * 7919 + c * 104729 + step) % 2**64:032x}" for c in range(clients))
                else:  # client c of AP a, in its visit (step // every + c) // stay
                    visits = (((step // every + c) // stay) * 15485863 for c in range(clients))
                    pids = ",".join(f"{(a * 7919 + c * 104729 + v) % 2**64:032x}" for c, v in enumerate(visits))
                batch.append(f"ap_clients,{tags} num_clients={clients}i,good_rf_clients={clients // 2}i {t}")
                batch.append(f'ap_client_presence,{tags} pids="{pids}" {t}')
        for s in range(schools):
            tags = f"device=cpe-school-{s:03d},kind=school_cpe,nis={21001 + s % 19},site=school-{s:03d}"
            batch.append(f"netdev,{tags} sys_uptime_s={step * period_s + 7200} {t}")
            octets = step * 50_000_000
            batch.append(
                f"interface,{tags},ifname=wan in_octets={octets}i,out_octets={octets // 3}i,"
                f"in_ucast_pkts={octets // 900}i,out_ucast_pkts={octets // 2700}i,in_errors=0i,out_errors=0i,"
                f"in_discards=0i,out_discards=0i,oper_up=true,speed_mbps=1000i,counter_bits=64i {t}"
            )
            batch.append(f"link_probe,{tags} sent=10i,received=10i,rtt_avg_ms=4.5,jitter_ms=0.3 {t}")
        if len(batch) >= BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def matches(condition: str, name: str) -> bool:
    r"""Whether ``name`` is in the part of ``condition`` (one of ``raw.device_parts``: an RE2 regex made
    of what means the same in Python's ``re`` but for ``$``, RE2's being Python's ``\Z``; ``""``:
    every device)."""
    if not condition:
        return True
    operator, pattern = condition.removeprefix('"device" ').split(" ", 1)
    return (re.search(pattern[1:-1].replace("$", r"\Z"), name) is not None) == (operator == "=~")


def measure(url: str, how: str, rows_expected: int, day_reads: int) -> None:
    """In a fresh interpreter: read the day (``how``), then compute its day window; print JSON."""
    from collector.app.config import load_config
    from collector.kpi.compute import KpiConfig
    from collector.kpi.engine import day_points, window_points
    from collector.kpi.enrich import Places
    from collector.kpi.raw import device_parts, read_raw, stored_devices
    from collector.kpi.windows import NS, day_window
    from collector.sink.query import InfluxQuery, Series, merge_pieces

    config = load_config(
        None,
        {"CITY_TELEMETRY__INFLUXDB__URL": f'"{url}"', "CITY_TELEMETRY__INFLUXDB__DATABASE": f'"{DATABASE}"'},
    ).influxdb
    settings = KpiConfig(day_reads=day_reads)
    window = day_window(DAY)
    query = InfluxQuery(config)
    if how == "whole":  # the read as it was: every answer whole, then iterated
        streamed = query.stream

        async def whole(statement: str, chunk_rows: int = 20_000) -> AsyncIterator[Series]:
            for series in merge_pieces([piece async for piece in streamed(statement, chunk_rows)]):
                yield series

        query.stream = whole  # type: ignore[method-assign]

    async def run() -> dict[str, float]:
        """Everything in one coroutine that returns numbers only: Python 3.11's asyncio.run repr()s
        its task, result included, when it restores the SIGINT handler (signal.getsignal on a
        functools.partial), and the repr of a day's RawData is a string of gigabytes."""
        baseline = status_kib("VmRSS")
        started = time.monotonic()
        if how == "parts":  # reading and computing go part by part: one figure for both, no read_s
            names = await stored_devices(query)
            await query.close()
            conditions = device_parts(names, day_reads)
            largest = max(sum(1 for name in names if matches(c, name)) for c in conditions)
            started = time.monotonic()
            found = await day_points(config, Places(), settings, window, True)
            return {
                "parts": len(conditions),
                "largest_part": largest,
                "devices": sum(1 for p in found if p.measurement == "kpi_device"),
                "points": len(found),
                "baseline_mib": baseline / 1024,
                "peak_mib": status_kib("VmHWM") / 1024,
                "compute_s": time.monotonic() - started,
            }
        try:
            raw = await read_raw(
                query, window.start_ns - int(settings.lookback_s * NS), window.end_ns + int(settings.lookahead_s * NS)
            )
        finally:
            await query.close()
        read_s = time.monotonic() - started
        after_read = status_kib("VmHWM")
        started = time.monotonic()
        points = window_points(raw, window, Places(), settings, True)
        return {
            "devices": len(raw.devices),
            "points": len(points),
            "baseline_mib": baseline / 1024,
            "peak_after_read_mib": after_read / 1024,
            "peak_mib": status_kib("VmHWM") / 1024,
            "read_s": read_s,
            "compute_s": time.monotonic() - started,
        }

    print(json.dumps({"how": how, "rows_expected": rows_expected, **asyncio.run(run())}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aps", type=int, default=900, help="access points (the Brussels network: about 900)")
    parser.add_argument("--schools", type=int, default=175, help="school links (Brussels: 175)")
    parser.add_argument("--period-s", type=int, default=60, help="report period of every device")
    parser.add_argument("--clients", type=int, default=12, help="client pseudonyms in every client report")
    parser.add_argument(
        "--stay",
        type=int,
        default=1,
        help="client reports in a row that a client stays listed by its AP (1: new pseudonyms at every "
        "report, the worst case; 24: two hours, about Brussels' mean session of 2.1 h)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="measurements per way of reading (at most 4)")
    parser.add_argument(
        "--ways", default="parts,stream", help="ways of reading to measure, in turn: parts, stream, whole"
    )
    parser.add_argument(
        "--day-reads",
        default="8",
        help="parts of the devices for 'parts' (kpi.day_reads); several, comma-separated, measure each",
    )
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], args.measure[1], int(args.measure[2]), int(args.measure[3]))
        return
    names = [w.strip() for w in args.ways.split(",") if w.strip()]
    if not names or set(names) - {"parts", "stream", "whole"}:
        parser.error(f"--ways: parts, stream or whole, not {args.ways!r}")
    try:
        reads = [int(n) for n in args.day_reads.split(",")]
    except ValueError:
        parser.error(f"--day-reads: whole numbers, comma-separated, not {args.day_reads!r}")
    ways = [(how, n) for how in names for n in (reads if how == "parts" else reads[:1])]
    with tempfile.TemporaryDirectory(prefix="bench-kpi-memory-") as tmp:
        influxdb = InfluxDB(Path(tmp) / "influxdb")
        influxdb.start()
        try:
            influxdb.query(f'CREATE DATABASE "{DATABASE}"')
            started, rows = time.monotonic(), 0
            for batch in day_lines(args.aps, args.schools, args.period_s, args.clients, args.stay):
                influxdb.write(DATABASE, "\n".join(batch))
                rows += len(batch)
            print(
                f"a day of {args.aps:,} APs and {args.schools:,} school links every {args.period_s} s, "
                f"clients staying {args.stay} report(s): "
                f"{rows:,} rows written in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            for repeat in range(max(1, min(args.repeats, 4))):
                for how, day_reads in ways if repeat % 2 == 0 else reversed(ways):
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "bench.kpi_memory",
                            "--measure",
                            influxdb.url,
                            how,
                            str(rows),
                            str(day_reads),
                        ],
                        cwd=HERE,
                        stdout=subprocess.PIPE,
                        text=True,
                        check=True,
                        timeout=1800,
                    ).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    if how == "parts":
                        print(
                            f"  parts ({day_reads}: {result['parts']}, the largest {result['largest_part']:,} "
                            f"devices): peak RSS {result['peak_mib']:,.0f} MiB (at start "
                            f"{result['baseline_mib']:,.0f}); read and computed in {result['compute_s']:.1f} s, "
                            f"{result['devices']:,} devices, {result['points']:,} KPI points",
                            flush=True,
                        )
                        continue
                    print(
                        f"  {how:6}: peak RSS {result['peak_mib']:,.0f} MiB (after the read "
                        f"{result['peak_after_read_mib']:,.0f}, at start {result['baseline_mib']:,.0f}); "
                        f"read {result['read_s']:.1f} s, day computed in {result['compute_s']:.1f} s "
                        f"(both: {result['read_s'] + result['compute_s']:.1f} s), "
                        f"{result['devices']:,} devices, {result['points']:,} KPI points",
                        flush=True,
                    )
        finally:
            influxdb.stop()


if __name__ == "__main__":
    main()
