"""deploy/grafana/ is what Grafana's file provisioning accepts: data sources with fixed uids, a dashboard
provider, dashboards whose data sources and variables exist, alert rules whose references hold."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.grafana.provisioning import (
    ALTERNATIVES,
    BUILTINS,
    EXPRESSION_UID,
    PROVISIONING,
    ROOT,
    alert_files,
    alert_queries,
    alert_rules,
    all_panels,
    dashboard_queries,
    dashboards,
    datasource_files,
    datasource_uids,
    load_yaml,
    variables_used,
)

DATASOURCE_UID = "city-telemetry-influxdb"
RECENT_SCHEMA = 36  # Grafana 9.0 onwards; Grafana migrates older dashboards on load
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
DASHBOARD_TITLES = {"City overview", "Access point", "School links", "Collector health"}
CORE_PANELS = {"row", "stat", "table", "timeseries", "state-timeline", "bargauge", "gauge", "text"}  # no plugins


def test_one_influxql_data_source_with_a_fixed_uid_and_the_alternatives_share_it() -> None:
    sources = [s for path in datasource_files() for s in load_yaml(path)["datasources"]]
    assert [s["uid"] for s in sources] == [DATASOURCE_UID]
    (source,) = sources
    assert source["type"] == "influxdb" and source["access"] == "proxy" and source["isDefault"] is True
    assert source["jsonData"]["dbName"] == "city_telemetry"  # the collector's default influxdb.database
    assert "version" not in source["jsonData"]  # InfluxQL (Flux and SQL would need other queries)
    for name in ("influxdb2.yaml", "influxdb3.yaml"):
        document = load_yaml(ALTERNATIVES / name)
        assert document["apiVersion"] == 1
        (alternative,) = document["datasources"]
        assert alternative["uid"] == DATASOURCE_UID and alternative["type"] == "influxdb"
        assert "version" not in alternative["jsonData"] and alternative["jsonData"]["dbName"] == "city_telemetry"
        assert alternative["jsonData"]["httpHeaderName1"] == "Authorization"
        assert alternative["secureJsonData"]["httpHeaderValue1"].startswith("Token ${")


def test_the_dashboard_provider_reads_the_folder_the_dashboards_are_installed_in() -> None:
    (path,) = sorted((PROVISIONING / "dashboards").glob("*.yaml"))
    document = load_yaml(path)
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {board["title"] for board in dashboards().values()} == DASHBOARD_TITLES


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_is_valid_for_provisioning(name: str) -> None:
    board = dashboards()[name]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= RECENT_SCHEMA
    assert 8 <= len(board["uid"]) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", board["uid"])
    assert "id" not in board or board["id"] is None  # provisioning assigns it
    panels = all_panels(board["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    known = datasource_uids()
    variables = {var["name"]: var for var in board["templating"]["list"]}
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] in known, f"{name}: variable {var['name']}"
    for panel in panels:
        assert panel["type"] in CORE_PANELS, f"{name}: panel {panel['title']!r} needs a plugin"
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{name}: panel {panel['title']!r} says nothing of what it shows"
        assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] in known, f"{name}: panel {panel['title']!r}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in known, f"{name}: panel {panel['title']!r} {target['refId']}"
            assert target["rawQuery"] is True and re.match(r"^(SELECT|SHOW) ", target["query"])
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        texts = [panel["title"], panel.get("description", "")]
        texts += [target["query"] + " " + target.get("alias", "") for target in panel["targets"]]
        for used in set().union(*(variables_used(text) for text in texts)):
            assert used in variables or BUILTINS.match(used), f"{name}: panel {panel['title']!r} uses ${used}"
    for var in variables.values():
        for used in variables_used(var.get("query", "")) if var["type"] == "query" else set():
            assert used in variables, f"{name}: variable {var['name']} uses ${used}"
    gridded = [panel["gridPos"] for panel in board["panels"]]
    assert all(g["x"] >= 0 and g["x"] + g["w"] <= 24 for g in gridded)


def test_kpi_queries_take_their_retention_policy_from_a_variable_defaulting_to_the_kpi_policy() -> None:
    for query in dashboard_queries():
        for measurement in re.findall(r'FROM\s+("[^"]+"\.)?"?(kpi_\w+)', query.text):
            assert measurement[0] == '"$kpi_rp".', f"{query.id}: {measurement[1]} without $kpi_rp"
            kpi_rp = query.variables["kpi_rp"]
            assert kpi_rp["current"]["value"] == "kpi" and "autogen" in kpi_rp["query"].split(",")


def rules_by_uid() -> dict[str, dict[str, Any]]:
    return {rule["uid"]: rule for rule in alert_rules()}


def test_alert_rule_files_are_unified_alerting_provisioning() -> None:
    for path in alert_files():
        document = load_yaml(path)
        assert document["apiVersion"] == 1
        for group in document["groups"]:
            assert group["name"] and group["folder"] and DURATION.match(group["interval"]) and group["rules"]
    uids = [rule["uid"] for rule in alert_rules()]
    assert len(uids) == len(set(uids)), "alert rule uids must be unique"
    assert all(len(uid) <= 40 and re.fullmatch(r"[A-Za-z0-9_-]+", uid) for uid in uids)
    titles = {rule["title"] for rule in alert_rules()}
    assert {
        "AP or switch down",
        "Site with no AP up",
        "School link below its availability SLA",
        "School link losing probes",
        "Collector not reporting",
        "Collector unhealthy",
        "Collector writes failing",
        "Collector spool growing",
        "Broker dropping messages",
    } <= titles


@pytest.mark.parametrize("uid", sorted(rules_by_uid()))
def test_alert_rule_references_hold(uid: str) -> None:
    rule = rules_by_uid()[uid]
    refs = [data["refId"] for data in rule["data"]]
    assert len(refs) == len(set(refs)) and rule["condition"] in refs
    known = datasource_uids()
    for data in rule["data"]:
        model = data["model"]
        assert model["refId"] == data["refId"]
        if data["datasourceUid"] == EXPRESSION_UID:
            assert model["type"] in {"reduce", "threshold", "math", "resample", "classic_conditions"}
            if model["type"] in {"reduce", "threshold", "resample"}:
                assert model["expression"] in refs and model["expression"] != data["refId"]
            if model["type"] == "threshold":
                (condition,) = model["conditions"]
                assert condition["evaluator"]["type"] in {"gt", "lt", "within_range", "outside_range"}
                assert all(isinstance(p, int | float) for p in condition["evaluator"]["params"])
        else:
            assert data["datasourceUid"] in known and model["datasource"]["uid"] == data["datasourceUid"]
            assert model["rawQuery"] is True and model["query"].startswith("SELECT ")
            assert data["relativeTimeRange"]["from"] > data["relativeTimeRange"]["to"] >= 0
            assert "$timeFilter" in model["query"]  # the rule's time range, not a fixed one
            assert variables_used(model["query"]) <= {"timeFilter"}, "no dashboard variables in alert rules"
    assert rule["noDataState"] in {"NoData", "Alerting", "OK", "KeepLast"}
    assert rule["execErrState"] in {"Error", "Alerting", "OK", "KeepLast"}
    assert DURATION.match(rule["for"]) and rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    for key, value in {**rule["labels"], "title": rule["title"]}.items():
        assert "$" not in value, f"{uid}: {key} would be expanded as an environment variable by provisioning"


def test_every_query_is_extracted_and_the_readme_names_each_dashboard_and_rule() -> None:
    assert len(dashboard_queries()) >= 40 and len(alert_queries()) == len(alert_rules())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for title in DASHBOARD_TITLES:
        assert f"### {title}" in readme
    for rule in alert_rules():
        assert rule["uid"] in readme, f"README: {rule['uid']}"
