"""The decisions of ``influxdb setup`` (collector/app/influx_cli.py), without a server: each policy
created, ALTERed or left alone from what SHOW RETENTION POLICIES reports."""

from __future__ import annotations

import pytest

from collector.app.influx_cli import Action, Policy, go_duration_s, plan

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
