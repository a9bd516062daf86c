"""``city-telemetry kpi recompute --grain`` and ``kpi show --grain/--at`` on the real InfluxDB: the
windows asked for, and only those, are written; a table shows the window asked for."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB
from collector.kpi.billing import month_window
from collector.kpi.windows import NS, day_window, local_date
from tests.integration.test_influx_setup import run_cli

pytestmark = pytest.mark.servers

DATABASE = "city_telemetry"
PERIOD_NS = 300 * NS


def ap_lines(device: str, start_ns: int, reports: int) -> list[str]:
    """An AP reporting every 5 minutes: its clients, and 64-bit uplink counters growing 1 MB a report."""
    return [
        f"ap,device={device},kind=ap,nis=21004,site=s1 uptime_s={1000 + 300 * i},num_clients={i % 4}i,"
        f"uplink_rx_bytes={10**6 * i}i,uplink_tx_bytes={2 * 10**6 * i}i {start_ns + i * PERIOD_NS}"
        for i in range(reports)
    ]


def test_recompute_writes_the_grains_asked_for_and_show_prints_one_window(influxdb: InfluxDB) -> None:
    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS  # 10:00 local
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(ap_lines("ap-1", ten, 13) + ap_lines("ap-2", ten, 13)))

    settings = {"KPI__REPORT_PERIOD_S": "300", "KPI__CLIENTS_EVERY_S": "300"}
    done = run_cli(influxdb.url, "kpi", "recompute", "--from", day.isoformat(), "--grain", "1h", **settings)
    assert done.returncode == 0, done.stderr
    assert f"[1/1] {day} (1h): " in done.stdout and "KPI points written" in done.stdout
    assert "kpi_report_period_mismatch" not in done.stderr  # the settings fit the devices
    grains = {row["grain"] for row in influxdb.rows('SELECT * FROM "kpi_region"', DATABASE)}
    assert grains == {"1h"}
    hours = influxdb.rows('SELECT "rx_bytes", "tx_bytes" FROM "kpi_device" WHERE "device" = \'ap-1\'', DATABASE)
    # 12 MB received by the uplink over 10:00-11:00, all in the 10:00 hour (the last report is at 11:00).
    assert [(row["time"], row["tx_bytes"]) for row in hours] == [(ten, 12 * 10**6), (ten + 3600 * NS, 0)]

    shown = run_cli(
        influxdb.url, "kpi", "show", "--day", str(day), "--level", "device", "--grain", "1h", "--at", "10:30"
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:2] == ["from", "device"]
    body = [line.split() for line in lines[1:]]
    assert [(row[0][:5], row[1]) for row in body] == [("10:00", "ap-1"), ("10:00", "ap-2")]

    none = run_cli(influxdb.url, "kpi", "show", "--day", str(day), "--level", "device", "--grain", "5m")
    assert none.returncode == 1
    assert "no device KPIs stored" in none.stdout and "grain 5m" in none.stdout
    month = run_cli(influxdb.url, "kpi", "show", "--day", str(day), "--level", "device", "--grain", "month")
    assert month.returncode == 1  # no inventory, so no link capacities: a recompute would not help
    assert "billing points need the links' capacities: set [inventory] file" in month.stdout
    assert "recompute" not in month.stdout


def test_show_refuses_at_with_a_day_instead_of_ignoring_it(capsys: pytest.CaptureFixture[str]) -> None:
    from collector.app.cli import main

    assert main(["kpi", "show", "--day", "2026-11-27", "--at", "18:00"]) == 2
    assert "--at picks one window of --grain 1h or 5m" in capsys.readouterr().err
    assert main(["kpi", "show", "--day", "2026-11-27", "--at", "18:00", "--grain", "month", "--level", "device"]) == 2
    assert "a month has one point" in capsys.readouterr().err
    assert main(["kpi", "show", "--day", "2026-03-29", "--at", "02:30", "--grain", "1h"]) == 2
    assert "2026-03-29 has no 02:30: the clocks went forward" in capsys.readouterr().err


def test_show_month_prints_the_billing_point_of_the_days_month(influxdb: InfluxDB) -> None:
    day = local_date(time.time_ns()) - timedelta(days=40)
    month = month_window(day)
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(
        DATABASE,
        f"kpi_device,device=cpe-1,kind=cpe,grain=month school_billing_in_p95_bps=84000000,"
        f"school_billing_out_p95_bps=21500000,school_billing_p95_bps=84000000,billing_samples=8000i,"
        f"billing_buckets=8640i,final=true {month.start_ns}",
    )
    shown = run_cli(influxdb.url, "kpi", "show", "--day", str(day), "--level", "device", "--grain", "month")
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()
    assert header.split()[:2] == ["device", "p95"]
    assert row.split() == ["cpe-1", "84.00", "21.50", "84.00", "8000", "8640", "yes"]
    # A switch's billing point has its kind as prefix (billing.py): shown in the same columns.
    influxdb.write(
        DATABASE,
        f"kpi_device,device=sw-1,kind=switch,grain=month switch_billing_in_p95_bps=753259.893,"
        f"switch_billing_out_p95_bps=1000000,switch_billing_p95_bps=1000000,billing_samples=110i,"
        f"billing_buckets=8640i,final=true {month.start_ns}",
    )
    both = run_cli(influxdb.url, "kpi", "show", "--day", str(day), "--level", "device", "--grain", "month")
    assert [line.split() for line in both.stdout.splitlines()[1:]] == [
        ["cpe-1", "84.00", "21.50", "84.00", "8000", "8640", "yes"],
        ["sw-1", "0.75", "1.00", "1.00", "110", "8640", "yes"],
    ]
    wrong = run_cli(influxdb.url, "kpi", "show", "--day", str(day), "--level", "site", "--grain", "month")
    assert wrong.returncode == 2 and "--level device" in wrong.stderr


def test_recompute_says_when_the_devices_report_less_often_than_the_settings_say(influxdb: InfluxDB) -> None:
    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(ap_lines("ap-1", ten, 13) + ap_lines("ap-2", ten, 13)))
    done = run_cli(influxdb.url, "kpi", "recompute", "--from", day.isoformat(), "--grain", "day")  # 60 s assumed
    assert done.returncode == 0, done.stderr
    [warning] = [line for line in done.stderr.splitlines() if "kpi_report_period_mismatch" in line]
    assert "report_gap_s=300.0" in warning and "report_period_s=60.0" in warning and "devices=2" in warning
    assert "clients_gap_s=None" in warning  # no client lists were stored: nothing to say of them
    assert "set kpi.report_period_s" in warning


async def test_windows_whose_readings_still_arrive_are_written_not_final(influxdb: InfluxDB) -> None:
    """The rule itself, in the KPI process's job on the real InfluxDB: a closed window still receiving
    readings is written final=false, and true once they stopped (test_engine_schedule.py: when)."""
    from collector.app.config import load_config
    from collector.kpi.compute import KpiConfig
    from collector.kpi.engine import _compute_windows
    from collector.kpi.enrich import Places
    from collector.kpi.windows import window_of

    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(ap_lines("ap-1", ten, 13)))
    target = load_config(None, {"CITY_TELEMETRY__INFLUXDB__URL": f'"{influxdb.url}"'}).influxdb
    settings = KpiConfig(period_s=300.0, clients_period_s=300.0)
    hour = window_of(ten, "1h")
    lateness_ns = 4 * 3600 * NS
    for arriving, final in ((frozenset({hour}), False), (frozenset(), True)):
        computed = await _compute_windows(
            target, target, Places(), settings, [hour], time.time_ns(), lateness_ns, arriving
        )
        assert [(w, f) for w, f, _ in computed.windows] == [(hour, final)]
        rows = influxdb.rows('SELECT "final" FROM "kpi_device" WHERE "grain" = \'1h\'', DATABASE)
        assert rows and {row["final"] for row in rows} == {final}


async def test_an_open_window_is_computed_over_what_has_happened_of_it(influxdb: InfluxDB) -> None:
    """An AP reporting from 10:00 (up since 09:43:20 by its uptime) and the watermark at 10:30: its
    hour is 100 % available so far, its day 46 min 40 s of the 630 minutes since midnight, not of
    1,440. Computed again once the day is over, the same points (start, grain) cover the whole window."""
    from collector.app.config import load_config
    from collector.kpi.compute import KpiConfig
    from collector.kpi.engine import _compute_windows
    from collector.kpi.enrich import Places
    from collector.kpi.windows import window_of

    day = local_date(time.time_ns()) - timedelta(days=3)
    whole_day = day_window(day)
    ten = whole_day.start_ns + 10 * 3600 * NS
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(ap_lines("ap-1", ten, 7)))  # 10:00 to 10:30, every 5 minutes
    target = load_config(None, {"CITY_TELEMETRY__INFLUXDB__URL": f'"{influxdb.url}"'}).influxdb
    settings = KpiConfig(period_s=300.0, clients_period_s=300.0)
    hour = window_of(ten, "1h")
    now = ten + 30 * 60 * NS  # the newest reading: the watermark
    computed = await _compute_windows(target, target, Places(), settings, [hour, whole_day], now, 3600 * NS)
    assert sorted((w.grain, f) for w, f, _ in computed.windows) == [("1h", False), ("day", False)]

    def availability() -> dict[str, float]:
        rows = influxdb.rows('SELECT "availability_pct", "grain" FROM "kpi_device"', DATABASE)
        return {row["grain"]: row["availability_pct"] for row in rows}

    up_min = 30 + 1000 / 60
    assert availability() == {"1h": pytest.approx(100.0), "day": pytest.approx(100.0 * up_min / 630)}
    later = whole_day.end_ns + 3600 * NS
    await _compute_windows(target, target, Places(), settings, [hour, whole_day], later, 3600 * NS)
    # Up until half a report period after the last report (10:32:30), then silent.
    whole = {"1h": pytest.approx(100.0 * 32.5 / 60), "day": pytest.approx(100.0 * (up_min + 2.5) / 1440)}
    assert availability() == whole


def test_show_public_hides_every_small_count_not_only_the_unique_clients() -> None:
    """The trial saw "<10" for unique clients beside "9" sessions: one figure gave the other away."""
    from collector.app.kpi_cli import render
    from collector.kpi.output import KpiPoint

    day = day_window(local_date(time.time_ns()) - timedelta(days=3)).start_ns
    fields = {"peak_clients": 4, "mean_clients": 1.5, "unique_clients": 9, "sessions": 9, "rx_bytes": 5 * 10**9}
    small = KpiPoint("kpi_site", (("grain", "day"), ("site", "belgica")), day, {**fields, "final": True})
    big = KpiPoint(
        "kpi_site",
        (("grain", "day"), ("site", "flagey")),
        day,
        {**fields, "peak_clients": 40, "mean_clients": 12.5, "unique_clients": 300, "sessions": 420, "final": True},
    )
    header, *rows = render([small, big], "site", 10).splitlines()
    assert header.split() == ["site", "peak", "mean", "unique", "sessions", "rx", "GB", "final"]
    assert rows[0].split() == ["belgica", "<10", "<10", "<10", "<10", "5.00", "yes"]
    assert rows[1].split() == ["flagey", "40", "12.50", "300", "420", "5.00", "yes"]
    # For the operator, nothing is hidden.
    assert render([small], "site").splitlines()[1].split() == ["belgica", "4", "1.50", "9", "9", "5.00", "yes"]


def test_at_on_the_days_the_clocks_change() -> None:
    """02:30 does not exist on the last Sunday of March, and happens twice on the last of October."""
    from datetime import date
    from datetime import time as time_of_day

    from collector.app.kpi_cli import windows_at

    half_past_two = time_of_day(2, 30)
    assert windows_at(date(2026, 3, 29), half_past_two, "1h") == []
    first, second = windows_at(date(2026, 10, 25), half_past_two, "1h")
    assert second - first == 3600 * NS  # 02:00+02:00, then 02:00+01:00 an hour later
    assert first == day_window(date(2026, 10, 25)).start_ns + 2 * 3600 * NS
    assert windows_at(date(2026, 10, 25), half_past_two, "5m") == [first + 1800 * NS, second + 1800 * NS]
    assert windows_at(date(2026, 11, 23), half_past_two, "1h") == [
        day_window(date(2026, 11, 23)).start_ns + 2 * 3600 * NS
    ]
    assert windows_at(date(2026, 3, 29), time_of_day(3, 0), "1h") == [
        day_window(date(2026, 3, 29)).start_ns + 2 * 3600 * NS
    ]


def test_a_day_of_client_lists_alone_has_its_client_kpis(influxdb: InfluxDB) -> None:
    """An AP whose firmware sends only ap.clients/1 (no ap.metrics): its clients are still counted."""
    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS
    pids = ["a" * 32, "b" * 32, "c" * 32]
    lines = [
        f'ap_client_presence,device=ap-1,kind=ap,nis=21004,site=s1 pids="{",".join(pids[: 1 + i % 3])}",'
        f"clients={1 + i % 3}i {ten + i * PERIOD_NS}"
        for i in range(6)
    ]
    lines += [
        f"ap_clients,device=ap-1,kind=ap,nis=21004,site=s1 num_clients={1 + i % 3}i,good_rf_clients=1i "
        f"{ten + i * PERIOD_NS}"
        for i in range(6)
    ]
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(lines))
    settings = {"KPI__REPORT_PERIOD_S": "300", "KPI__CLIENTS_EVERY_S": "300"}
    done = run_cli(influxdb.url, "kpi", "recompute", "--from", day.isoformat(), "--grain", "day", **settings)
    assert done.returncode == 0, done.stderr
    rows = influxdb.rows('SELECT "unique_clients" FROM "kpi_device" WHERE "device" = \'ap-1\'', DATABASE)
    assert [row["unique_clients"] for row in rows] == [3]


def test_recompute_of_5_minute_windows_alone_brings_the_billing_month_up_to_date(
    influxdb: InfluxDB, tmp_path: Path
) -> None:
    """The billing month is made from the 5-minute points: recomputing only those (after a fix, say)
    must bring it up to date, not leave the month's figures of before."""
    import json

    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS
    inventory = tmp_path / "inventory.json"
    cpe = {"device": "cpe-1", "kind": "cpe", "nis": "21004", "site": "school-1", "link_capacity_mbps": 100}
    cpe["ports"] = [{"name": "wan0", "speed_mbps": 100, "peer": "core"}]
    inventory.write_text(json.dumps({"format": "city-telemetry.inventory/1", "devices": [cpe]}))
    lines = []
    for i in range(13):  # 10:00 to 11:00, 5 minutes apart, 50 Mbit/s in
        ts = ten + i * PERIOD_NS
        lines.append(f"netdev,device=cpe-1,kind=cpe,nis=21004,site=school-1 sys_uptime_s={10**6 + 300 * i} {ts}")
        octets = i * 50 * 10**6 // 8 * 300
        lines.append(
            f"interface,device=cpe-1,ifname=wan0,kind=cpe,nis=21004,site=school-1 oper_up=1i,"
            f"in_octets={octets}i,out_octets={octets // 10}i {ts}"
        )
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(lines))
    settings = {"KPI__REPORT_PERIOD_S": "300", "INVENTORY__FILE": json.dumps(str(inventory))}
    done = run_cli(influxdb.url, "kpi", "recompute", "--from", day.isoformat(), "--grain", "5m", **settings)
    assert done.returncode == 0, done.stderr
    (month,) = influxdb.rows('SELECT * FROM "kpi_device" WHERE "grain" = \'month\'', DATABASE)
    assert month["school_billing_in_p95_bps"] == pytest.approx(50e6) and month["billing_samples"] == 12
