"""Reading deploy/grafana/ as Grafana does: data sources, dashboards, alert rules, and every InfluxQL query
in them with Grafana's macros and template variables substituted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
PROVISIONING = ROOT / "provisioning"
DASHBOARDS = ROOT / "dashboards"
ALTERNATIVES = ROOT / "datasources-alternatives"
EXPRESSION_UID = "__expr__"
# Grafana's own names in InfluxQL queries and aliases (not dashboard variables).
BUILTINS = re.compile(r"^(timeFilter|__timeFilter|__interval|__interval_ms|interval|__range|__range_s|col|tag_\w+|m)$")
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def datasource_files() -> list[Path]:
    return sorted((PROVISIONING / "datasources").glob("*.yaml"))


def datasource_uids() -> set[str]:
    return {source["uid"] for path in datasource_files() for source in load_yaml(path)["datasources"]}


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARDS.glob("*.json"))}


def alert_files() -> list[Path]:
    return sorted((PROVISIONING / "alerting").glob("*.yaml"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for path in alert_files() for group in load_yaml(path)["groups"] for rule in group["rules"]]


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels, with those nested in collapsed rows."""
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def variables_used(text: str) -> set[str]:
    return {braced or bare for braced, bare in VARIABLE.findall(text)}


@dataclass(frozen=True)
class Query:
    """One InfluxQL query of a panel, a template variable or an alert rule."""

    id: str  # e.g. "city-overview.json/panel 3 'Per municipality today'/A"
    source: str  # the dashboard file or the alert rule file
    text: str
    variables: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)


def dashboard_queries() -> list[Query]:
    out = []
    for name, board in dashboards().items():
        variables = {var["name"]: var for var in board.get("templating", {}).get("list", [])}
        for var in variables.values():
            if var.get("type") == "query":
                out.append(Query(f"{name}/variable {var['name']}", name, var["query"], variables))
        for panel in all_panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                label = f"{name}/panel {panel['id']} {panel['title']!r}/{target['refId']}"
                out.append(Query(label, name, target["query"], variables))
    return out


def alert_queries() -> list[Query]:
    out = []
    for path in alert_files():
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                for data in rule["data"]:
                    if data["datasourceUid"] != EXPRESSION_UID:
                        label = f"{path.name}/{rule['uid']}/{data['refId']}"
                        out.append(Query(label, path.name, data["model"]["query"]))
    return out


def time_filter(start_ms: int, end_ms: int) -> str:
    """What Grafana puts in place of $timeFilter for an absolute range (its InfluxQL form)."""
    return f"time >= {start_ms}ms and time <= {end_ms}ms"


def substitute(
    text: str, values: dict[str, str], start_ms: int, end_ms: int, interval: str, now_ms: int | None = None
) -> str:
    """The query Grafana sends: macros, then template variables (longest names first). ``now_ms``:
    the moment the dashboard is looked at, for queries relative to ``now()`` (None: the server's now)."""
    text = text.replace("$__timeFilter", "$timeFilter").replace("$timeFilter", time_filter(start_ms, end_ms))
    if now_ms is not None:
        text = text.replace("now()", f"{now_ms}ms")
    seconds = int(interval.rstrip("s"))
    text = text.replace("$__interval_ms", str(seconds * 1000)).replace("$__interval", interval)
    for name in sorted(values, key=len, reverse=True):
        value = values[name]

        def literal(_: re.Match[str], v: str = value) -> str:  # the value as it is: no backslash escapes
            return v

        text = re.sub(r"\$\{" + name + r"(?::[^}]*)?\}", literal, text)
        text = re.sub(r"\$" + name + r"(?!\w)", literal, text)
    return text
