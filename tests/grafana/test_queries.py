"""Every InfluxQL query of every shipped panel, template variable and alert rule, run against the real
InfluxDB after a simulated day went through the real collector (KPI engine on, statistics written) and
``kpi recompute``: no error, and at least one row with a value.

Grafana's macros are substituted as Grafana does for an absolute range: ``$timeFilter`` becomes
``time >= <start>ms and time <= <end>ms`` over the simulated day, the day before it and up to now (the
collector's statistics are from now, the readings from two days ago), ``$__interval`` 10 s (the data
source's minimum, the statistics interval). Alert rules are run over that same range rather than their
``relativeTimeRange``, which is relative to now, when no simulated reading is. Template variables take
their default (``kpi_rp``: kpi, for the database is set up as an operator would, with ``city-telemetry
influxdb setup`` and the shipped ``kpi_retention_policy``; "All" as the variable's ``allValue``), or a value
present in the data: the AP with the most events, for the Access point dashboard.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from collector.app.influx_cli import setup_v1, wanted_policies
from collector.harness.localservers import InfluxDB, Mosquitto
from collector.kpi.windows import TZ, midnight_ns
from tests.conftest import DATABASE, collector_config, running_collector, wait_until
from tests.grafana.provisioning import Query, alert_queries, dashboard_queries, substitute
from tests.kpi.test_kpi_e2e import recompute, simulated_day, write_key
from tests.simulated import publish_all

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]  # the module's simulated day

INTERVAL = "10s"
SCALE = 0.1


@dataclass(frozen=True)
class SimulatedCity:
    influxdb: InfluxDB
    start_ms: int
    end_ms: int
    published: int
    now_ms: int  # just after the simulated city's last AP report: what "now" queries are run at


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedCity]:
    """One simulated day (a tenth of the default city, the default faults) through mosquitto, the collector
    and InfluxDB, then ``kpi recompute`` of its days: the data every query below reads."""
    tmp_path = tmp_path_factory.mktemp("grafana")
    mosquitto, influxdb = Mosquitto(tmp_path / "mosquitto"), InfluxDB(tmp_path / "influxdb")
    mosquitto.start()
    influxdb.start()
    try:
        day, simulation, items = simulated_day("default", SCALE)
        inventory = tmp_path / "inventory.json"
        simulation.inventory.write(inventory)
        config = collector_config(
            mosquitto,
            influxdb,
            tmp_path,
            inventory__file=f'"{inventory}"',
            kpi__report_period_s="300",
            kpi__clients_every_s="300",
            kpi__every_s="3600",
            kpi__pseudonym_key_file=f'"{write_key(tmp_path)}"',
            ops__self_stats_every_s="0.5",
            influxdb__kpi_retention_policy='"kpi"',  # as the shipped collector.toml
        )
        # As an operator sets the database up (deploy/influxdb-notes.md): raw readings in `raw`, KPIs in `kpi`.
        asyncio.run(setup_v1(config.influxdb, wanted_policies(config.influxdb, raw_days=90, kpi_days=None)))

        async def run() -> None:
            async with running_collector(config) as collector:
                await publish_all(mosquitto.port, items, 300.0)
                await wait_until(
                    lambda: collector.counters["messages_committed"] >= len(items), timeout_s=120, what="commit"
                )
                await asyncio.sleep(1.5)  # a few more statistics points after the last message

        asyncio.run(run())
        asyncio.run(recompute(config, [day - timedelta(days=1), day, day + timedelta(days=1)]))
        mosquitto.kill()
        start_ms = midnight_ns(day - timedelta(days=1), TZ) // 10**6
        end_ns = int(influxdb.query("SELECT last(received) FROM city_telemetry_collector", DATABASE)[0]["values"][0][0])
        last_ap = int(influxdb.query('SELECT last("uptime_s") FROM "ap"', DATABASE)[0]["values"][0][0])
        yield SimulatedCity(influxdb, start_ms, end_ns // 10**6 + 1000, len(items), last_ap // 10**6 + 1000)
    finally:
        mosquitto.kill()
        influxdb.kill()


def run(influxdb: InfluxDB, statement: str) -> dict[str, Any]:
    """The statement's result as InfluxDB's /query answers it (errors included, not raised)."""
    params = urllib.parse.urlencode({"db": DATABASE, "q": statement, "epoch": "ms"}).encode()
    request = urllib.request.Request(f"{influxdb.url}/query", data=params, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "error" not in body, body
    (result,) = body["results"]
    return dict(result)


def rows_with_values(result: dict[str, Any]) -> int:
    """Rows with at least one value besides the time (a fill(null) bucket alone does not count)."""
    count = 0
    for series in result.get("series", []):
        for row in series["values"]:
            named = dict(zip(series["columns"], row, strict=True))
            count += any(value is not None for key, value in named.items() if key != "time")
    return count


def variable_values(city: SimulatedCity, query: Query) -> dict[str, str]:
    """A value for each template variable of the query's dashboard: its default, "All", or one from the data."""
    values: dict[str, str] = {}
    for name, var in query.variables.items():
        if var["type"] == "custom":
            values[name] = var["current"]["value"]
        elif var.get("includeAll"):
            values[name] = var["allValue"]
    for name, var in query.variables.items():
        if name not in values:  # a single value: one the data has, the AP with the most events for "ap"
            found = run(city.influxdb, substitute(var["query"], values, city.start_ms, city.end_ms, INTERVAL))
            candidates = [row[1] for series in found.get("series", []) for row in series["values"]]
            assert candidates, f"variable {name} has no value in the data"
            if name == "ap":
                events = run(city.influxdb, 'SELECT count("message") FROM "device_event" GROUP BY "device"')
                counts = {s["tags"]["device"]: s["values"][0][1] for s in events["series"]}
                candidates.sort(key=lambda device: -counts.get(device, 0))
            values[name] = candidates[0]
    return values


@pytest.mark.parametrize("query", dashboard_queries())
def test_dashboard_query_returns_rows(city: SimulatedCity, query: Query) -> None:
    values = variable_values(city, query)
    statement = substitute(query.text, values, city.start_ms, city.end_ms, INTERVAL, city.now_ms)
    assert "$" not in statement.replace("$/", ""), statement  # every macro and variable substituted
    result = run(city.influxdb, statement)
    assert "error" not in result, f"{statement}\n{result['error']}"
    assert rows_with_values(result) >= 1, f"no rows: {statement}"


@pytest.mark.parametrize("query", alert_queries())
def test_alert_query_returns_rows(city: SimulatedCity, query: Query) -> None:
    statement = substitute(query.text, {}, city.start_ms, city.end_ms, INTERVAL)
    assert "$" not in statement.replace("$/", ""), statement
    result = run(city.influxdb, statement)
    assert "error" not in result, f"{statement}\n{result['error']}"
    assert rows_with_values(result) >= 1, f"no rows: {statement}"


def test_the_statistics_of_the_run_are_those_of_the_published_day(city: SimulatedCity) -> None:
    """The collector's own last point counts the whole simulated day (what the Collector health dashboard shows)."""
    last = run(
        city.influxdb,
        'SELECT last("received") AS "received", last("messages_committed") AS "committed" '
        'FROM "city_telemetry_collector"',
    )
    received, committed = last["series"][0]["values"][0][1:]
    stored = run(
        city.influxdb,
        'SELECT sum("messages") FROM (SELECT last("messages") AS "messages" FROM '
        '"city_telemetry_rejected" GROUP BY "reason")',
    )
    assert received == committed == city.published
    assert stored["series"][0]["values"][0][1] > 0  # the default faults include malformed messages


def test_aps_reporting_now_counts_every_vendors_aps(city: SimulatedCity) -> None:
    """The trial found "APs up now" built from device_state, which only canonical devices send: the
    city's OpenWrt and UniFi APs were missing. It now counts APs by their reports, whoever made them."""
    from tests.grafana.provisioning import dashboard_queries as queries

    at_ns = (city.now_ms - 60_000) * 10**6  # a minute before "now"

    # An AP as the UniFi adapter stores it (docs/adapters.md): reports, never a device_state.
    city.influxdb.write(
        DATABASE,
        f"ap,device=ap-uap1,kind=ap,nis=21004,site=flagey uptime_s=3600i,num_clients=3i {at_ns}",
    )
    (reporting, seen) = [q for q in queries() if "'APs reporting now'/" in q.id]
    counted = [
        series["values"][0][1]
        for q in (reporting, seen)
        for series in run(city.influxdb, substitute(q.text, {"nis": ".*"}, 0, 0, INTERVAL, city.now_ms))["series"]
    ]
    last_five = run(
        city.influxdb, f'SELECT last("uptime_s") FROM "ap" WHERE time > {city.now_ms - 300_000}ms GROUP BY "device"'
    )
    devices = {series["tags"]["device"] for series in last_five["series"]}
    states = run(city.influxdb, 'SELECT last("up") FROM "device_state" GROUP BY "device"')
    with_state = {series["tags"]["device"] for series in states["series"]}
    assert devices - with_state == {"ap-uap1"}
    assert counted[0] == len(devices)
    assert counted[1] >= counted[0]
