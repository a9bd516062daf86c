"""A simulated day through mosquitto, the collector (KPI engine on) and InfluxDB; the KPIs it writes
compared with the simulator's ground truth (simulators/truth.py)."""

from __future__ import annotations

import dataclasses
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.app.config import Config
from collector.app.service import build_kpi_engine
from collector.harness.localservers import InfluxDB, Mosquitto
from collector.kpi.engine import day_points
from collector.kpi.output import TAG_KEYS
from collector.kpi.raw import device_parts, read_raw, stored_devices
from collector.kpi.windows import TZ, day_window, local_date, midnight_ns
from collector.sink.query import InfluxQuery
from simulators.city import SimConfig, Simulation
from simulators.faults import FaultConfig
from tests.conftest import collector_config, points, running_collector, wait_until
from tests.simulated import publish_all

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]  # about 100 s alone; bounded for a busy machine


def simulated_day(
    faults: str, scale: float, period_s: int = 300, clients_every: int = 1
) -> tuple[date, Simulation, list[Any]]:
    day = local_date(time.time_ns()) - timedelta(days=2)
    config = SimConfig(
        start_ms=midnight_ns(day, TZ) // 10**6,
        scale=scale,
        period_s=period_s,
        clients_every=clients_every,
        faults=FaultConfig.parse(faults),
    )
    simulation = Simulation(config)
    items = list(simulation.items())
    return day, simulation, items


async def run_day(
    mosquitto: Mosquitto,
    influxdb: InfluxDB,
    tmp_path: Path,
    simulation: Simulation,
    items: list[Any],
    inventory: Path,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Publish the day, wait until every message is committed and every touched KPI window computed;
    the simulator's truth. Each phase is bounded by ``timeout_s``."""
    period = simulation.config.period_s
    config = kpi_config(mosquitto, influxdb, tmp_path, inventory, period, period * simulation.config.clients_every)
    async with running_collector(config) as collector:
        await publish_all(mosquitto.port, items, timeout_s)
        committed = lambda: collector.counters["messages_committed"] >= len(items)  # noqa: E731
        await wait_until(committed, timeout_s=timeout_s, what="commit")
        engine = collector.kpi
        assert engine is not None
        started = time.monotonic()
        # Computed, and final: the day is long closed, so its windows are final once no reading of them
        # has come for quiet_s (a window computed while its readings still came is computed again then).
        settled = lambda: engine.stats()["kpi_windows_pending"] == engine.stats()["kpi_windows_not_final"] == 0  # noqa: E731
        await wait_until(settled, timeout_s=timeout_s, what="KPIs")
        print(f"KPI windows computed {time.monotonic() - started:.1f} s after the last commit", engine.stats())
    return simulation.truth.result(simulation.meta())


def kpi_config(
    mosquitto: Mosquitto,
    influxdb: InfluxDB,
    tmp_path: Path,
    inventory: Path,
    period_s: int = 300,
    clients_every_s: int = 300,
) -> Config:
    return collector_config(
        mosquitto,
        influxdb,
        tmp_path,
        inventory__file=f'"{inventory}"',
        kpi__report_period_s=str(period_s),
        kpi__clients_every_s=str(clients_every_s),
        kpi__every_s="1",
        kpi__pseudonym_key_file=f'"{write_key(tmp_path)}"',
    )


def write_key(tmp_path: Path) -> Path:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"a test secret of thirty-two bytes")
    return key


CLIENT_FIGURES = (
    ("peak_clients", "peak_clients_5m"),
    ("mean_clients", "mean_clients_5m"),
    ("unique_clients", "unique_clients"),
)


def kpi_rows(influxdb: InfluxDB, measurement: str, key: str, day_ns: int) -> dict[str, dict[str, Any]]:
    """The day points of the local day starting at ``day_ns``, by ``key`` (the day before and after
    have points too: readings within the lookback of midnight touch them)."""
    statement = f'SELECT * FROM "{measurement}" WHERE "grain" = \'day\' AND time = {day_ns}'
    return {row[key]: row for row in points(influxdb, statement)}


def skewed_devices(items: list[Any]) -> set[str]:
    """Devices whose clock the simulator skewed: their reports near midnight carry the other day's time."""
    return {item.device for item in items if any(label.startswith("clock_skew") for label in item.labels)}


def compare(truth_day: dict[str, Any], influxdb: InfluxDB, skewed: set[str] | None = None) -> list[str]:
    """Every difference from the truth beyond the issue's tolerances (an empty list: all match).

    A device with a skewed clock (``skewed``) reports the day's first or last minutes on the other
    day, as its timestamps say: the reports cannot tell its day exactly (docs/kpis.md, "Checked against
    the simulator"). Its availability is checked within the skew's share of the day, its client figures
    not at all, and a municipality with such an AP has its client figures checked within 0.1 %."""
    skewed = skewed or set()
    max_skew_pp = 100 * FaultConfig().max_skew_s / truth_day["period_s"]
    day_ns = midnight_ns(date.fromisoformat(truth_day["date"]), TZ)
    municipalities = kpi_rows(influxdb, "kpi_municipality", "nis", day_ns)
    devices = kpi_rows(influxdb, "kpi_device", "device", day_ns)
    problems = []
    for device, expected in truth_day["devices"].items():
        got = devices.get(device)
        if got is None:
            problems.append(f"{device}: no KPI row")
            continue
        # Availability within 0.1 pp; for a device that is not an AP, plus what was estimated (a link
        # reported every 5 minutes whose silent outage began at an unknown moment between two reports).
        slack = 0.1 + (0 if expected["kind"] == "ap" else 100 * got["uncertain_s"] / truth_day["period_s"])
        slack += max_skew_pp if device in skewed else 0
        if abs(got["availability_pct"] - expected["availability_pct"]) > slack:
            problems.append(f"{device}: availability {got['availability_pct']} vs {expected['availability_pct']}")
        if expected["kind"] == "ap" and device not in skewed:
            # Concurrent clients by the KPI definition (5-minute buckets; the truth's *_5m figures).
            for key, theirs in CLIENT_FIGURES:
                if abs((got[key] or 0) - expected[theirs]) > 1e-3:
                    problems.append(f"{device}: {key} {got[key]} vs {expected[theirs]}")
            for mine, theirs in (("rx_bytes", "prorata_rx_bytes"), ("tx_bytes", "prorata_tx_bytes")):
                if abs(got[mine] - expected[theirs]) > 0.001 * max(expected[theirs], 1):
                    problems.append(f"{device}: {mine} {got[mine]} vs {expected[theirs]}")
    for nis, expected in truth_day["municipalities"].items():
        got = municipalities[nis]
        near = any(d in skewed and e["nis"] == nis for d, e in truth_day["devices"].items())
        for key, theirs in CLIENT_FIGURES:
            if abs((got[key] or 0) - expected[theirs]) > (1e-3 * max(expected[theirs], 1) if near else 1e-3):
                problems.append(f"{nis}: {key} {got[key]} vs {expected[theirs]}")
        if abs(got["ap_availability_pct"] - expected["ap_availability_pct"]) > 0.1:
            problems.append(f"{nis}: availability {got['ap_availability_pct']} vs {expected['ap_availability_pct']}")
        for mine, theirs in (("rx_bytes", "prorata_rx_bytes"), ("tx_bytes", "prorata_tx_bytes")):
            if abs(got[mine] - expected[theirs]) > 0.001 * max(expected[theirs], 1):
                problems.append(f"{nis}: {mine} {got[mine]} vs {expected[theirs]}")
        if "school_utilisation_in_p95_pct" in expected:
            p95 = got.get("school_utilisation_in_p95_pct")
            if p95 is None or abs(p95 - expected["school_utilisation_in_p95_pct"]) > 0.1:
                problems.append(f"{nis}: school p95 {p95} vs {expected['school_utilisation_in_p95_pct']}")
    return problems


def grains_add_up(influxdb: InfluxDB, day: date) -> list[str]:
    """The 5-minute and hourly windows of the day, against the day's own figures: volumes and
    sessions add up exactly (AP counters are 64-bit: no wrap to resolve), the day's peak is the peak
    of its hours and of its 5-minute windows, the day's mean the mean of its 5-minute windows (one
    client bucket each)."""
    window = day_window(day)
    problems = []
    for level, key in (("municipality", "nis"), ("region", "region"), ("site", "site")):
        rows = points(
            influxdb, f'SELECT * FROM "kpi_{level}" WHERE time >= {window.start_ns} AND time < {window.end_ns}'
        )
        by: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            by.setdefault((row[key], row["grain"]), []).append(row)
        for (name, grain), found in sorted(by.items()):
            if grain != "day":
                continue
            (whole,) = found
            hours, fives = by.get((name, "1h"), []), by.get((name, "5m"), [])
            if len(hours) != 24 or len(fives) != 288:
                problems.append(f"{level} {name}: {len(hours)} hours, {len(fives)} 5-minute windows")
                continue
            for field in ("rx_bytes", "tx_bytes", "sessions"):
                for grain_rows in (hours, fives):
                    total = sum(r.get(field) or 0 for r in grain_rows)
                    if total != (whole.get(field) or 0):
                        problems.append(f"{level} {name} {field}: {total} over {len(grain_rows)} vs {whole.get(field)}")
            if whole.get("peak_clients") is not None:
                # A window in which no AP of the group reported its clients has no peak (None).
                peaks = [max(r.get("peak_clients") or 0 for r in rows) for rows in (hours, fives)]
                if peaks != [whole["peak_clients"]] * 2:
                    problems.append(f"{level} {name}: peak_clients {peaks} vs {whole['peak_clients']}")
                mean = sum(r.get("mean_clients") or 0 for r in fives) / len(fives)
                if abs(mean - whole["mean_clients"]) > 1e-6:
                    problems.append(f"{level} {name}: mean_clients {mean} vs {whole['mean_clients']}")
    return problems


async def slices_equal_reads(config: Config, day: date) -> bool:
    """A window cut from the day's read (what the engine computes from) is what a read of the window
    alone returns."""
    engine = build_kpi_engine(config, None)
    settings = engine.settings
    await engine.query.close()
    await engine.writer.close()
    reach = int(settings.lookback_s * 10**9)
    window = day_window(day)
    query = InfluxQuery(config.influxdb)
    try:
        whole = await read_raw(query, window.start_ns - reach, window.end_ns + reach)
        for hour in (0, 12, 23):
            start = window.start_ns + hour * 3600 * 10**9
            direct = await read_raw(query, start - reach, start + 3600 * 10**9 + reach)
            cut = whole.slice(start - reach, start + 3600 * 10**9 + reach)
            nonempty = {k: v for k, v in direct.devices.items() if v.slice(direct.from_ns, direct.to_ns) is not None}
            if cut.devices != nonempty or len(nonempty) < 10:
                return False
    finally:
        await query.close()
    return True


async def parts_equal_one_read(config: Config, day: date) -> list[str]:
    """The day read back in parts of the devices (``kpi.day_reads``) gives the points of one read of
    everything, and the parts are disjoint, cover every device and are not all in one part."""
    engine = build_kpi_engine(config, None)
    places, settings = engine.places, engine.settings
    await engine.query.close()
    await engine.writer.close()
    window = day_window(day)
    problems = []
    by_reads = {}
    for reads in (1, 2, 8, 36, 100):  # 100: two character positions
        chosen = dataclasses.replace(settings, day_reads=reads)
        by_reads[reads] = await day_points(config.influxdb, places, chosen, window, True)
    if len(by_reads[1]) < 100:
        problems.append(f"only {len(by_reads[1])} day points")
    for reads, found in by_reads.items():
        if found != by_reads[1]:
            problems.append(f"{reads} reads: {len(found)} points differ from one read's {len(by_reads[1])}")
    reach = int(settings.lookback_s * 10**9)
    query = InfluxQuery(config.influxdb)
    try:
        whole = await read_raw(query, window.start_ns - reach, window.end_ns + reach)
        largest = len(whole.devices) / 5  # 8 parts: at most a fifth of the devices in one
        for count in (8, 100):  # one character position, and a grid of two (finer, not even: 127 names)
            parts = [
                set(raw.devices)
                for part in device_parts(await stored_devices(query), count)
                for raw in [await read_raw(query, window.start_ns - reach, window.end_ns + reach, part)]
            ]
            if sum(len(p) for p in parts) != len(whole.devices) or set().union(*parts) != set(whole.devices):
                problems.append(f"{count} parts of {[len(p) for p in parts]} devices, one read {len(whole.devices)}")
            if max(len(p) for p in parts) > largest:
                problems.append(f"unbalanced {count} parts: {[len(p) for p in parts]} devices")
            largest = max(len(p) for p in parts) - 1  # more parts, a smaller largest one
    finally:
        await query.close()
    return problems


async def all_kpi_points(influxdb: InfluxDB) -> dict[tuple[str, ...], dict[str, Any]]:
    """Every stored KPI point, by measurement, tags and time."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for level in ("device", "site", "municipality", "region"):
        for row in points(influxdb, f'SELECT * FROM "kpi_{level}"'):
            tags = tuple(f"{k}={row[k]}" for k in sorted(TAG_KEYS) if row.get(k) is not None)
            fields = {k: v for k, v in row.items() if k not in TAG_KEYS and k not in ("time", "_measurement")}
            out[(level, str(row["time"]), *tags)] = {k: v for k, v in fields.items() if v is not None}
    return out


def differences(live: dict[tuple[str, ...], dict[str, Any]], again: dict[tuple[str, ...], dict[str, Any]]) -> list[str]:
    """What differs between two sets of KPI points, readably (an empty list: point for point equal)."""
    out = []
    for key in sorted(live.keys() | again.keys()):
        a, b = live.get(key), again.get(key)
        if a != b:
            if a is None or b is None:
                out.append(f"{key}: {'only recomputed' if a is None else 'only live'}")
            else:
                fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                out.append(f"{key}: " + ", ".join(f"{k} live {a.get(k)} recomputed {b.get(k)}" for k in fields))
    return out


async def recompute(config: Config, days: list[date]) -> None:
    engine = build_kpi_engine(config, None)
    try:
        for day in days:
            await engine.recompute_day(day)
    finally:
        engine.close()
        await engine.query.close()
        await engine.writer.close()


async def test_kpis_of_a_simulated_day_equal_the_truth_and_a_recompute(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    """The default faults, except those that destroy what a report says: a truncated or oversized
    message cannot be counted by anyone, while the truth still counts what it carried."""
    day, simulation, items = simulated_day("default,malformed=0,oversized=0", 0.1)
    inventory = tmp_path / "inventory.json"
    simulation.inventory.write(inventory)
    truth = await run_day(mosquitto, influxdb, tmp_path, simulation, items, inventory)
    (truth_day,) = [d for d in truth["days"] if d["date"] == day.isoformat()]
    problems = compare(truth_day, influxdb, skewed_devices(items))
    assert problems == [], "\n".join(problems[:40])
    mismatched = grains_add_up(influxdb, day)
    assert mismatched == [], "\n".join(mismatched[:40])
    assert await slices_equal_reads(kpi_config(mosquitto, influxdb, tmp_path, inventory), day)
    in_parts = await parts_equal_one_read(kpi_config(mosquitto, influxdb, tmp_path, inventory), day)
    assert in_parts == [], "\n".join(in_parts)
    live = await all_kpi_points(influxdb)
    assert len(live) > 150
    assert {tag for key in live for tag in key if tag.startswith("grain=")} == {
        "grain=5m",
        "grain=1h",
        "grain=day",
        "grain=month",  # the school links' billing month
    }
    await recompute(
        kpi_config(mosquitto, influxdb, tmp_path, inventory), [day - timedelta(days=1), day, day + timedelta(days=1)]
    )
    differ = differences(live, await all_kpi_points(influxdb))
    assert differ == [], "\n".join(differ[:30])  # point for point: one computation, two feeds


async def test_client_pseudonyms_are_deleted_after_their_retention(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    config = collector_config(mosquitto, influxdb, tmp_path)
    now = time.time_ns()
    old, recent = now - 40 * 86400 * 10**9, now - 3 * 86400 * 10**9
    influxdb.query(f"CREATE DATABASE {config.influxdb.database}")
    engine = build_kpi_engine(config, None)
    try:
        lines = [f'ap_client_presence,device=ap-1 pids="aa",clients=1i {t}' for t in (old, recent)]
        assert (await engine.writer.write(lines)).accepted == 2
        assert await engine.purge_presence(30)
        kept = points(influxdb, "SELECT clients FROM ap_client_presence")
        assert [row["time"] for row in kept] == [recent]
    finally:
        engine.close()
        await engine.query.close()
        await engine.writer.close()
