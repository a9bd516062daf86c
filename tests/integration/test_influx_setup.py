"""``city-telemetry influxdb setup`` (a subprocess) on the real influxd 1.6.7, and a collector that then
writes its KPI points into their own retention policy and its raw readings into the default one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.app.config import ConfigError, load_config
from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from collector.kpi.windows import local_date
from tests import samples
from tests.conftest import DATABASE, Publisher, collector_config, running_collector, wait_until

pytestmark = pytest.mark.servers


def run_cli(influxdb_url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``city-telemetry <args>`` with the default config, the URL and ``settings`` from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITY_TELEMETRY__")}
    env["CITY_TELEMETRY__INFLUXDB__URL"] = json.dumps(influxdb_url)
    env.update({f"CITY_TELEMETRY__{key.upper()}": value for key, value in settings.items()})
    command = [sys.executable, "-m", "collector.app.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def setup(influxdb: InfluxDB, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(influxdb.url, "influxdb", "setup", *args, **settings)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def retention_policies(influxdb: InfluxDB) -> list[tuple[str, str, bool]]:
    """(name, duration as InfluxDB shows it, default) of every policy of the database."""
    (series,) = influxdb.query(f"SHOW RETENTION POLICIES ON {DATABASE}")
    rows = [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
    return [(row["name"], row["duration"], row["default"]) for row in rows]


KPI_RP = {"INFLUXDB__KPI_RETENTION_POLICY": '"kpi"'}


def test_setup_creates_exactly_the_policies_then_changes_nothing_then_alters_a_duration(influxdb: InfluxDB) -> None:
    first = setup(influxdb, **KPI_RP)
    assert retention_policies(influxdb) == [("raw", "2160h0m0s", True), ("kpi", "0s", False)]  # 90 days, for ever
    assert first.stdout.splitlines() == [
        "database city_telemetry: created, with retention policy raw, 90d (default)",
        "retention policy kpi: created, infinite",
        "now: raw 90d (default), kpi infinite",
        "2 change(s) made",
    ]

    second = setup(influxdb, **KPI_RP)
    assert retention_policies(influxdb) == [("raw", "2160h0m0s", True), ("kpi", "0s", False)]
    assert second.stdout.splitlines() == [
        "database city_telemetry: exists",
        "retention policy raw: unchanged, 90d (default)",
        "retention policy kpi: unchanged, infinite",
        "now: raw 90d (default), kpi infinite",
        "nothing changed",
    ]

    third = setup(influxdb, "--raw-days", "30", "--kpi-days", "800", **KPI_RP)
    assert retention_policies(influxdb) == [("raw", "720h0m0s", True), ("kpi", "19200h0m0s", False)]
    assert third.stdout.splitlines()[1:3] == [
        "retention policy raw: altered, duration 90d -> 30d",
        "retention policy kpi: altered, duration infinite -> 800d",
    ]
    assert third.stdout.splitlines()[-1] == "2 change(s) made"


def test_setup_after_the_collector_made_the_database_keeps_autogen_and_says_how_to_copy_it(
    influxdb: InfluxDB,
) -> None:
    """The collector (create_database = true) ran first: its readings are in autogen, the default. The
    set-up makes raw the default, drops nothing, and prints the query that moves the old readings."""
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.query(f'CREATE RETENTION POLICY "kpi" ON {DATABASE} DURATION 30d REPLICATION 1')
    stamp = time.time_ns()
    write(influxdb, f"ap,device=ap-1 cpu_pct=1.5 {stamp}")
    result = setup(influxdb, **KPI_RP)
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "database city_telemetry: exists",
        "retention policy raw: created, 90d (default)",
        "retention policy kpi: altered, duration 30d -> infinite",
    ]
    assert retention_policies(influxdb) == [("autogen", "0s", False), ("kpi", "0s", False), ("raw", "2160h0m0s", True)]
    (note,) = [line for line in lines if line.startswith("note:")]
    copy = note.split("to keep them: ", 1)[1]
    assert copy == 'SELECT * INTO "city_telemetry"."raw".:MEASUREMENT FROM "city_telemetry"."autogen"./.*/ GROUP BY *'
    influxdb.query(copy, DATABASE)
    assert influxdb.rows("SELECT cpu_pct, device FROM ap", DATABASE) == [
        {"time": stamp, "cpu_pct": 1.5, "device": "ap-1", "_measurement": "ap"}
    ]  # now in raw, the default


def test_setup_over_kpi_points_in_autogen_says_how_to_copy_them_where_the_dashboards_read_them(
    influxdb: InfluxDB,
) -> None:
    """A collector ran before the set-up with its KPI points in autogen (kpi_retention_policy unset, the
    default). The printed copy statements, run as given, put the readings in raw (the default) and the
    KPI points in kpi, where ``kpi show``, the KPI engine's later writes and the dashboards
    (``"$kpi_rp"."kpi_*"``) find them, and not in raw, which would expire them with the readings
    (and ``DROP RETENTION POLICY "autogen"``, as deploy/influxdb-notes.md says next, would then lose
    KPI history older than the raw readings, which cannot be recomputed)."""
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    stamp = time.time_ns()
    write(influxdb, f"ap,device=ap-1 cpu_pct=1.5 {stamp}")
    write(influxdb, f"kpi_device,device=ap-1,grain=day availability_pct=99.5,final=true {stamp - 400 * 86_400 * 10**9}")
    write(influxdb, f"kpi_municipality,nis=21004,grain=day unique_clients=42i {stamp}")
    out = setup(influxdb, **KPI_RP).stdout
    statements = re.findall(r"SELECT \* INTO .*? GROUP BY \*", out)
    assert statements, out
    for statement in statements:
        influxdb.query(statement, DATABASE)
    assert influxdb.rows("SELECT cpu_pct, device FROM ap", DATABASE) == [
        {"time": stamp, "cpu_pct": 1.5, "device": "ap-1", "_measurement": "ap"}
    ]  # in raw, the default
    assert influxdb.rows('SELECT availability_pct, final FROM "kpi"."kpi_device"', DATABASE) == [
        {"time": stamp - 400 * 86_400 * 10**9, "availability_pct": 99.5, "final": True, "_measurement": "kpi_device"}
    ]  # older than raw keeps anything: in kpi, kept for good
    assert influxdb.rows('SELECT unique_clients FROM "kpi"."kpi_municipality"', DATABASE) == [
        {"time": stamp, "unique_clients": 42, "_measurement": "kpi_municipality"}
    ]
    assert influxdb.rows('SELECT * FROM "raw"./^kpi_/', DATABASE) == []  # not copied into raw


def write(influxdb: InfluxDB, line: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{influxdb.url}/write?db={DATABASE}", data=line.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def test_setup_without_a_kpi_policy_makes_only_the_raw_one(influxdb: InfluxDB) -> None:
    result = setup(influxdb, "--raw-days", "7")
    assert retention_policies(influxdb) == [("raw", "168h0m0s", True)]
    assert "warning: --raw-days 7 is shorter than limits.max_past_s (30 days)" in result.stderr


def test_setup_says_why_when_influxdb_is_not_there() -> None:
    result = run_cli(f"http://127.0.0.1:{free_port()}", "influxdb", "setup")
    assert result.returncode == 1
    assert "influxdb setup: http://127.0.0.1:" in result.stderr and "hint:" in result.stderr
    assert result.stdout == ""


async def test_a_collector_writes_kpis_into_their_policy_and_readings_into_the_default(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    setup(influxdb, **KPI_RP)
    config = collector_config(mosquitto, influxdb, tmp_path, INFLUXDB__KPI_RETENTION_POLICY='"kpi"', KPI__EVERY_S="0.3")
    stamped = [samples.recent(offset_s=-600 + i) for i in range(3)]
    messages = [samples.ap_metrics(i, moment) for i, moment in enumerate(stamped)]
    async with running_collector(config) as collector:
        publisher = Publisher(mosquitto.port)
        for topic, payload, _ in messages:
            publisher.publish(topic, json.dumps(payload))
        publisher.close()
        assert collector.kpi is not None
        expected_raw = sorted(row["device"] for _, _, rows in messages for row in rows if row["_measurement"] == "ap")

        def day_points() -> set[str]:
            found = influxdb.rows("""SELECT * FROM "kpi"."kpi_device" WHERE "grain" = 'day'""", DATABASE)
            return {str(row["device"]) for row in found}

        # Not "any KPI point written": the 5-minute and hourly windows can be written before the day's.
        await wait_until(lambda: day_points() == set(expected_raw), what="the day's KPI points written")

    def devices(source: str) -> list[str]:
        return sorted(str(row["device"]) for row in influxdb.rows(f'SELECT "seq", "device" FROM {source}', DATABASE))

    assert devices('"raw"."ap"') == expected_raw  # raw readings: the default policy
    assert devices('"ap"') == expected_raw  # ... which is what a query without a policy reads
    assert devices('"kpi"."ap"') == []
    kpi_devices = {row["device"] for row in influxdb.rows('SELECT * FROM "kpi"."kpi_device"', DATABASE)}
    assert kpi_devices == set(expected_raw)
    assert influxdb.rows('SELECT * FROM "raw"."kpi_device"', DATABASE) == []

    # kpi show reads them where they are; without the setting it finds nothing.
    # The readings' local day (they are stamped about 70 minutes ago: near local midnight, not today's).
    day = local_date(int(stamped[0].timestamp()) * 10**9).isoformat()
    shown = run_cli(influxdb.url, "kpi", "show", "--day", day, "--level", "device", **KPI_RP)
    assert shown.returncode == 0, shown.stderr
    assert all(device in shown.stdout for device in expected_raw)
    elsewhere = run_cli(influxdb.url, "kpi", "show", "--day", day, "--level", "device")
    assert elsewhere.returncode == 1
    assert "no device KPIs stored" in elsewhere.stdout


def test_on_v2_setup_changes_nothing_and_prints_buckets_dbrp_and_token(tmp_path: Path) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: the command must not need it
    result = run_cli(
        unreachable,
        "influxdb",
        "setup",
        "--raw-days",
        "30",
        INFLUXDB__API='"v2"',
        INFLUXDB__ORG='"bric"',
        INFLUXDB__BUCKET='"city_telemetry"',
        INFLUXDB__TOKEN="a-token",
        INFLUXDB__KPI_BUCKET='"city_telemetry_kpi"',
        INFLUXDB__KPI_RETENTION_POLICY='"kpi"',
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nothing was changed" in out
    assert "influx bucket create --org bric --name city_telemetry --retention 30d" in out
    assert "influx bucket create --org bric --name city_telemetry_kpi --retention 0" in out
    assert "--db city_telemetry --rp kpi --bucket-id <id of city_telemetry_kpi>" in out
    assert "--db city_telemetry --rp autogen --bucket-id <id of city_telemetry> --default" in out
    assert "influx auth create" in out and "a-token" not in out


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"INFLUXDB__KPI_RETENTION_POLICY": '"kpi rp"'}, "influxdb.kpi_retention_policy"),
        ({"INFLUXDB__KPI_BUCKET": '"kpis"'}, "kpi_bucket is for api = 'v2'"),
        (
            {"INFLUXDB__RETENTION_POLICY": '"raw"', "INFLUXDB__KPI_RETENTION_POLICY": '"raw"'},
            "kpi_retention_policy is retention_policy",
        ),
        (
            {
                "INFLUXDB__API": '"v2"',
                "INFLUXDB__ORG": '"o"',
                "INFLUXDB__BUCKET": '"b"',
                "INFLUXDB__TOKEN": "t",
                "INFLUXDB__KPI_RETENTION_POLICY": '"kpi"',
            },
            "needs both kpi_bucket",
        ),
    ],
    ids=["bad name", "kpi_bucket on v1", "same policy", "v2 half set"],
)
def test_check_config_names_a_bad_kpi_retention_setting(settings: dict[str, str], message: str) -> None:
    environ = {f"CITY_TELEMETRY__{key}": value for key, value in settings.items()}
    with pytest.raises(ConfigError) as error:
        load_config(None, environ)
    assert message in str(error.value)
    assert "influxdb" in str(error.value)


def test_the_shipped_config_sets_the_policies_setup_creates() -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "collector.toml"
    config = load_config(shipped, {})
    assert (config.influxdb.retention_policy, config.influxdb.kpi_retention_policy) == (None, "kpi")
    result = run_cli("http://127.0.0.1:1", "check-config", "-c", str(shipped))
    assert result.returncode == 0, result.stderr


def test_with_authentication_setup_takes_an_admin_instead_of_the_collectors_user(tmp_path: Path) -> None:
    """The collector's own user may not create databases; --username/--password-file name an admin."""
    server = InfluxDB(tmp_path / "influxdb-auth", admin=("admin", "admin-secret-for-setup"))
    server.start()
    try:
        server.query("CREATE USER collector WITH PASSWORD 'collector-secret'")
        collector_user = {"INFLUXDB__USERNAME": '"collector"', "INFLUXDB__PASSWORD": "collector-secret"}
        refused = run_cli(server.url, "influxdb", "setup", **collector_user, **KPI_RP)
        assert refused.returncode == 1
        assert "requires admin privilege" in refused.stderr, refused.stderr
        password_file = tmp_path / "admin-password"
        password_file.write_text("admin-secret-for-setup\n")
        done = run_cli(
            server.url,
            "influxdb",
            "setup",
            "--username",
            "admin",
            "--password-file",
            str(password_file),
            **collector_user,
            **KPI_RP,
        )
        assert done.returncode == 0, done.stderr
        assert "admin-secret-for-setup" not in done.stdout + done.stderr
        assert retention_policies(server) == [("raw", "2160h0m0s", True), ("kpi", "0s", False)]
    finally:
        server.kill()
