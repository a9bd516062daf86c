"""The alert rules decide as meant: against a real InfluxDB holding a known situation, written relative to
now, each rule's query over its own relativeTimeRange, reduced and compared as its expressions say,
fires for exactly the devices, links and collectors in trouble.

Grafana's evaluation is reproduced for what the rules use: the query's ``$timeFilter`` over the rule's
``relativeTimeRange`` from now, a ``reduce`` (last, mean, min, max; ``dropNN`` drops empty values) per
series, then a ``threshold`` (gt, lt). ``for`` and the no-data states are Grafana's timing and are not
reproduced here.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB
from tests.conftest import DATABASE
from tests.grafana.provisioning import EXPRESSION_UID, alert_rules

pytestmark = pytest.mark.servers

S = 10**9
REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1],
    "mean": lambda v: sum(v) / len(v),
    "min": min,
    "max": max,
    "sum": sum,
    "count": len,
}


def write(influxdb: InfluxDB, lines: list[str], rp: str | None = None) -> None:
    target = f"db={DATABASE}" + (f"&rp={rp}" if rp else "")
    request = urllib.request.Request(
        f"{influxdb.url}/write?{target}&precision=ns", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def firing(influxdb: InfluxDB, rule: dict[str, Any]) -> set[tuple[tuple[str, str], ...]]:
    """The series (by their tags) for which the rule's condition holds now."""
    data = {item["refId"]: item for item in rule["data"]}
    results: dict[str, dict[tuple[tuple[str, str], ...], Any]] = {}
    for ref, item in data.items():  # in file order: queries, then the expressions that use them
        model = item["model"]
        if item["datasourceUid"] != EXPRESSION_UID:
            span = item["relativeTimeRange"]
            window = f"time >= now() - {span['from']}s and time <= now() - {span['to']}s"
            found = influxdb.query(model["query"].replace("$timeFilter", window), DATABASE)
            results[ref] = {
                tuple(sorted(series.get("tags", {}).items())): [row[1] for row in series["values"]] for series in found
            }
        elif model["type"] == "reduce":
            assert model["settings"]["mode"] == "dropNN"
            reduce = REDUCERS[model["reducer"]]
            results[ref] = {}
            for key, values in results[model["expression"]].items():
                kept = [v for v in values if v is not None]
                if kept:
                    results[ref][key] = reduce(kept)
        elif model["type"] == "threshold":
            (condition,) = model["conditions"]
            kind, limit = condition["evaluator"]["type"], condition["evaluator"]["params"][0]
            assert kind in ("gt", "lt")
            results[ref] = {
                key: (v > limit if kind == "gt" else v < limit) for key, v in results[model["expression"]].items()
            }
    return {key for key, fires in results[rule["condition"]].items() if fires}


def names(keys: set[tuple[tuple[str, str], ...]], tag: str) -> set[str]:
    return {dict(key)[tag] for key in keys}


@pytest.fixture
def situation(influxdb: InfluxDB) -> InfluxDB:
    """Devices, links and collectors, some in trouble, as the collector and the KPI engine store them."""
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    if time.time() % 300 > 295:  # not across a 5-minute boundary between writing and querying
        time.sleep(6)
    now = time.time_ns()
    midnight = now - (now % (86400 * S))  # a KPI day point stamped at its (here UTC) midnight
    state = 'device_state,device={d},kind={k},nis=21001,site={s} state="{st}",up={u}i {t}'
    lines = [
        state.format(d="ap-a", k="ap", s="s1", st="online", u=1, t=now - 7200 * S),
        state.format(d="ap-b", k="ap", s="s1", st="online", u=1, t=now - 7200 * S),
        state.format(d="ap-b", k="ap", s="s1", st="offline", u=0, t=now - 3600 * S),  # down: s1 has ap-a
        state.format(d="ap-c", k="ap", s="s2", st="offline", u=0, t=now - 3 * 86400 * S),  # s2's only AP
        state.format(d="sw-1", k="switch", s="s1", st="offline", u=0, t=now - 1200 * S),
        state.format(d="ap-d", k="ap", s="s3", st="offline", u=0, t=now - 40 * 86400 * S),  # forgotten
        state.format(d="ap-e", k="ap", s="s3", st="online", u=1, t=now - 20 * 86400 * S),
    ]
    for i in range(10):  # a probe a minute: cpe-1 loses 5 %, cpe-2 nothing
        t = now - i * 60 * S
        lines.append(f"link_probe,device=cpe-1,nis=21001,site=school-1 loss_pct=5,sent=100i,received=95i {t}")
        lines.append(f"link_probe,device=cpe-2,nis=21001,site=school-2 loss_pct=0,sent=100i,received=100i {t}")
    kpi = (
        "kpi_device,device={d},grain=day,kind=cpe,municipality=Anderlecht,nis=21001,site={s} "
        "school_link_availability_pct={a} {t}"
    )
    # KPI points in their own retention policy, as `influxdb setup` and the shipped collector.toml keep them.
    influxdb.query(f"CREATE RETENTION POLICY kpi ON {DATABASE} DURATION INF REPLICATION 1")
    write(
        influxdb,
        [
            kpi.format(d="cpe-1", s="school-1", a=98.0, t=midnight),
            kpi.format(d="cpe-2", s="school-2", a=99.9, t=midnight),
        ],
        rp="kpi",
    )
    for i in range(120):  # a statistics point every 10 s for 20 minutes
        t = now - i * 10 * S
        lines.append(
            f"city_telemetry_collector,host=h,instance=ok received={1000 - i}i,health_code=0i,spool_bytes=0i,"
            f"broker_dropped_seen=3i {t}"
        )
        lines.append(
            f"city_telemetry_collector,host=h,instance=bad received={1000 - i}i,health_code=2i,"
            f"spool_bytes={10_000 * (120 - i)}i,broker_dropped_seen={120 - i}i {t}"
        )
        if i >= 60:  # silent for the last 10 minutes
            lines.append(
                f"city_telemetry_collector,host=h,instance=silent received={1000 - i}i,health_code=0i,"
                f"spool_bytes=0i,broker_dropped_seen=0i {t}"
            )
    write(influxdb, lines)
    return influxdb


def test_each_alert_rule_fires_for_exactly_what_is_in_trouble(situation: InfluxDB) -> None:
    rules = {rule["uid"]: rule for rule in alert_rules()}
    expected = {
        "ct-device-down": ("device", {"ap-b", "ap-c", "sw-1"}),
        "ct-device-silent": ("device", set()),  # the situation has states only: test below
        "ct-site-no-ap-up": ("site", {"s2"}),
        "ct-school-link-sla": ("device", {"cpe-1"}),
        "ct-school-link-loss": ("device", {"cpe-1"}),
        "ct-collector-silent": ("instance", {"silent"}),
        "ct-collector-unhealthy": ("instance", {"bad"}),
        "ct-collector-degraded": ("instance", {"bad"}),
        "ct-spool-growing": ("instance", {"bad"}),
        "ct-broker-dropping": ("instance", {"bad"}),
    }
    assert set(expected) == set(rules), "every rule has its case here"
    got = {uid: names(firing(situation, rules[uid]), tag) for uid, (tag, _) in expected.items()}
    assert got == {uid: want for uid, (_, want) in expected.items()}


def test_a_device_that_stops_reporting_without_a_state_is_alerted(influxdb: InfluxDB) -> None:
    """Issue 12: "an AP or switch down longer than a configurable time". Many devices never send a
    state: UniFi APs and switches through the bridge, Telegraf's SNMP switches and school CPEs, OpenWrt
    APs; a canonical device whose will never reached the broker neither. Silent for 25 minutes after
    reporting every minute, such an AP and such a switch make a device rule fire; those that keep
    reporting do not."""
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    now = time.time_ns()
    lines = []
    for i in range(90):  # a report a minute for 90 minutes, up to now
        t = now - i * 60 * S
        lines.append(f"ap,device=ap-fine,kind=ap,nis=21001,site=s1 uptime_s={100000 - i * 60}i,seq={i}i {t}")
        lines.append(f"netdev,device=sw-fine,kind=switch,nis=21001,site=s1 sys_uptime_s={9000 - i}i,seq=0i {t}")
        if i >= 25:  # these two went silent 25 minutes ago, with no state and no will
            lines.append(f"ap,device=ap-quiet,kind=ap,nis=21001,site=s2 uptime_s={100000 - i * 60}i,seq={i}i {t}")
            lines.append(f"netdev,device=sw-quiet,kind=switch,nis=21001,site=s2 sys_uptime_s={9000 - i}i,seq=0i {t}")
    write(influxdb, lines)
    devices = [rule for rule in alert_rules() if rule["uid"].startswith("ct-device")]
    fired = set().union(*(names(firing(influxdb, rule), "device") for rule in devices))
    assert fired == {"ap-quiet", "sw-quiet"}
