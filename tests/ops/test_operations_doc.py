"""docs/operations.md documents every log event (at the level the code logs it) and every metric.

The events are found in the code itself (every ``log.<level>("event", ...)`` call, the events
passed through ``_connect_failed`` and ``_log_stats``, and the ``event=`` of the bridges'
``with_retries`` and ``poll_loop``), the metrics by rendering the statistics of
a collector built from a config, with every counter the committer keeps. A new event or metric
without its row fails here, naming it.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from collector.app.config import load_config
from collector.app.service import Collector
from collector.ops.health import render_metrics
from collector.ops.logs import LIBRARY_EVENT

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}


def logged_events() -> dict[str, set[str]]:
    """Every event name the collector logs, with the levels it is logged at."""
    events: dict[str, set[str]] = defaultdict(set)
    for path in (ROOT / "collector").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if (getattr(func, "id", None) or getattr(func, "attr", None)) in ("with_retries", "poll_loop"):
                # The bridges' retry and poll loops (bridges/common.py) log a warning named by their caller.
                for keyword in node.keywords:
                    if keyword.arg == "event" and isinstance(keyword.value, ast.Constant):
                        events[str(keyword.value.value)] |= {"warning"}
                continue
            if not node.args:
                continue
            if isinstance(func, ast.Attribute) and func.attr in LEVELS and getattr(func.value, "id", "") == "log":
                levels = {func.attr}
            elif isinstance(func, ast.Attribute) and func.attr == "_connect_failed":
                levels = {"warning", "error"}  # error when an operator must act (explain_connect_error)
            elif isinstance(func, ast.Attribute) and func.attr == "_log_stats":
                levels = {"info"}
            else:
                continue
            for name in [n.value for n in ast.walk(node.args[0]) if isinstance(n, ast.Constant)]:
                if isinstance(name, str) and re.fullmatch(r"[a-z_]+", name):
                    events[name] |= levels
    events[LIBRARY_EVENT] |= {"warning", "error"}
    # mqtt_disconnected: a warning when lost, info for our own disconnect at shutdown (tested in test_systemd).
    return dict(events)


def doc_rows(heading: str) -> dict[str, list[str]]:
    """The table under ``heading``: each name in the first cell (in backticks; one row may name several
    events of the same meaning) -> the other cells."""
    section = DOC.read_text().split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 3:
            for name in re.findall(r"`([^`]+)`", cells[0]):
                rows[name] = cells[1:]
    return rows


def test_every_log_event_is_documented_at_its_level() -> None:
    events = logged_events()
    assert len(events) > 40 and "mqtt_disconnected" in events and "backpressure_on" in events
    rows = doc_rows("Log events")
    missing = sorted(set(events) - set(rows))
    assert missing == [], f"log events without a row in docs/operations.md: {missing}"
    wrong = {
        event: sorted(levels) for event, levels in events.items() if not all(lv in rows[event][0] for lv in levels)
    }
    assert wrong == {}, f"documented at another level than the code logs: {wrong}"
    stale = sorted(set(rows) - set(events))
    assert stale == [], f"rows for events the code no longer logs: {stale}"


def test_every_metric_is_documented(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "CITY_TELEMETRY__SPOOL__FOLDER": f'"{tmp_path / "spool"}"',
            "CITY_TELEMETRY__DEAD_LETTER__FILE": f'"{tmp_path / "dead-letter.jsonl"}"',
        },
    )
    collector = Collector(config)  # not started: nothing connects
    try:
        counters = set()
        for folder in ("delivery", "app"):
            for path in (ROOT / "collector" / folder).rglob("*.py"):
                counters |= set(re.findall(r'counters\["([a-z_]+)"\]', path.read_text()))
        collector.counters.update({name: 1 for name in counters})
        collector.source.broker_dropped = 0  # exported once the broker's $SYS count was seen
        stats = collector.stats()
        stats["rejected_by_reason"] = {"bad_json": 1}
        stats["retained_repeats_by_reason"] = {"bad_json": 1}
        text = render_metrics(stats, "healthy")
    finally:
        collector.dead_letters.close()
        if collector.spool is not None:
            collector.spool.close()
        if collector.kpi is not None:
            collector.kpi.close()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert len(exported) > 40 and "city_telemetry_received_total" in exported
    rows = {name.split("{")[0]: cells for name, cells in doc_rows("Metrics (`/metrics`)").items()}
    missing = sorted(exported - set(rows))
    assert missing == [], f"metrics without a row in docs/operations.md: {missing}"
    kinds = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}
    wrong = {name: kind for name, kind in kinds.items() if rows[name][0] != kind}
    assert wrong == {}, f"documented with another type: {wrong}"
    stale = sorted(set(rows) - exported)
    assert stale == [], f"rows for metrics the collector does not export: {stale}"
