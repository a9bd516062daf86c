"""The decisions of ``influxdb setup`` (collector/app/influx_cli.py), without a server: each policy
created, ALTERed or left alone from what SHOW RETENTION POLICIES reports; and where KPI points are
written (influxdb.kpi_retention_policy, kpi_bucket)."""

from __future__ import annotations

import pytest

from collector.app.config import load_config
from collector.app.influx_cli import Action, Policy, go_duration_s, plan
from collector.sink.influxdb import InfluxWriter

DAY = 86_400
RAW, KPI = Policy("raw", 90 * DAY, True), Policy("kpi", 0, False)


@pytest.mark.parametrize(
    ("text", "seconds"), [("0s", 0), ("2160h0m0s", 90 * DAY), ("1h30m0s", 5400), ("168h0m0s", 7 * DAY)]
)
def test_durations_as_influxdb_shows_them(text: str, seconds: int) -> None:
    assert go_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "90d", "2160h0m0sx", "h"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        go_duration_s(text)


def test_a_policy_that_is_not_the_default_is_made_the_default_without_touching_its_duration() -> None:
    current = [Policy("autogen", 0, True), Policy("raw", 90 * DAY, False), KPI]
    assert plan("db", True, current, [RAW, KPI]) == [
        Action(None, "database db: exists"),
        Action(
            'ALTER RETENTION POLICY "raw" ON "db" DURATION 90d DEFAULT',
            "retention policy raw: altered, made the default",
        ),
        Action(None, "retention policy kpi: unchanged, infinite"),
    ]


def test_nothing_to_do_when_everything_matches() -> None:
    assert all(action.statement is None for action in plan("db", True, [RAW, KPI], [RAW, KPI]))


def test_names_are_quoted() -> None:
    (create,) = plan('a"b', False, [], [Policy("r w", DAY, True)])
    assert create.statement == 'CREATE DATABASE "a\\"b" WITH DURATION 1d REPLICATION 1 NAME "r w"'


def test_kpi_points_are_written_to_their_policy_on_v1_and_their_bucket_on_v2() -> None:
    v1 = load_config(None, {"CITY_TELEMETRY__INFLUXDB__KPI_RETENTION_POLICY": '"kpi"'}).influxdb
    assert InfluxWriter(v1).write_url.endswith("/write?db=city_telemetry&precision=ns")  # raw: the default
    assert InfluxWriter(v1.for_kpis()).write_url.endswith("/write?db=city_telemetry&precision=ns&rp=kpi")
    v2 = load_config(
        None,
        {
            "CITY_TELEMETRY__INFLUXDB__API": '"v2"',
            "CITY_TELEMETRY__INFLUXDB__ORG": '"bric"',
            "CITY_TELEMETRY__INFLUXDB__BUCKET": '"city_telemetry"',
            "CITY_TELEMETRY__INFLUXDB__TOKEN": "t",
            "CITY_TELEMETRY__INFLUXDB__KPI_BUCKET": '"city_telemetry_kpi"',
            "CITY_TELEMETRY__INFLUXDB__KPI_RETENTION_POLICY": '"kpi"',
        },
    ).influxdb
    assert "bucket=city_telemetry&" in InfluxWriter(v2).write_url
    assert "bucket=city_telemetry_kpi&" in InfluxWriter(v2.for_kpis()).write_url
