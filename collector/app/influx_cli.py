"""``city-telemetry influxdb setup``: the database and retention policies the collector writes into.

Raw readings and KPI points are kept for different durations: raw readings are large and only needed
until their days' KPIs are final (and to recompute them), KPI points are small and wanted for years.
On InfluxDB 1.x this command makes that so, from the config (``[influxdb]``):

- the database (``database``), if missing;
- the raw readings' retention policy (``retention_policy``, else ``raw``) with ``--raw-days``, made
  the database's DEFAULT, so that the collector, the KPI engine and Grafana find the readings
  without naming it;
- the KPI points' retention policy (``kpi_retention_policy``, when set) with ``--kpi-days`` or
  ``inf``.

It is idempotent: each policy is compared with what ``SHOW RETENTION POLICIES`` reports and created,
ALTERed (duration, default) or left alone, and every line of output says which; a second run prints
"nothing changed". It never drops anything: readings written before the set-up into ``autogen``
stay there (and are reported, with the query that copies them).

On 2.x/3.x (``api = "v2"``) it changes nothing and prints what to create: buckets with their
retention, DBRP mappings for InfluxQL's ``/query`` (which the KPI engine, ``kpi show`` and Grafana
use), and a token. deploy/influxdb-notes.md explains both.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from collector.app.config import Config, ConfigError, load_config
from collector.kpi.output import LEVELS as KPI_LEVELS
from collector.settings import read_secret
from collector.sink.config import InfluxConfig
from collector.sink.query import InfluxQuery, QueryError, quote_identifier

RAW_POLICY = "raw"  # the raw readings' policy when influxdb.retention_policy is unset
DEFAULT_RAW_DAYS = 90
DAY_S = 86_400
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True, slots=True)
class Policy:
    """A retention policy: its name, how long it keeps points (0 = for ever) and whether it is the default."""

    name: str
    duration_s: int
    default: bool


@dataclass(frozen=True, slots=True)
class Action:
    """One line of the set-up: a statement to run (None: nothing to do) and what it means."""

    statement: str | None
    says: str


def go_duration_s(text: str) -> int:
    """Seconds of a duration as InfluxDB reports it (``2160h0m0s``; ``0s`` = infinite)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return round(sum(float(n) * _UNIT_S[u] for n, u in parts))


def shown(duration_s: int) -> str:
    if duration_s == 0:
        return "infinite"
    return f"{duration_s // DAY_S}d" if duration_s % DAY_S == 0 else f"{duration_s}s"


def influxql_duration(duration_s: int) -> str:
    return "INF" if duration_s == 0 else f"{duration_s // DAY_S}d" if duration_s % DAY_S == 0 else f"{duration_s}s"


def wanted_policies(influx: InfluxConfig, raw_days: int, kpi_days: int | None) -> list[Policy]:
    """The policies the config asks for: raw readings (the default), then KPI points if they have their own."""
    wanted = [Policy(influx.retention_policy or RAW_POLICY, raw_days * DAY_S, default=True)]
    if influx.kpi_retention_policy is not None:
        wanted.append(Policy(influx.kpi_retention_policy, (kpi_days or 0) * DAY_S, default=False))
    return wanted


def plan(database: str, exists: bool, current: list[Policy], wanted: list[Policy]) -> list[Action]:
    """What to run so that ``database`` has the ``wanted`` policies: pure, so the decisions are testable."""
    db = quote_identifier(database)
    if exists:
        actions = [Action(None, f"database {database}: exists")]
    else:  # with its default policy at once, so that no "autogen" is made
        first = wanted[0]
        statement = (
            f"CREATE DATABASE {db} WITH DURATION {influxql_duration(first.duration_s)} REPLICATION 1 "
            f"NAME {quote_identifier(first.name)}"
        )
        says = f"database {database}: created, with retention policy {first.name}, {shown(first.duration_s)} (default)"
        actions = [Action(statement, says)]
    have = {p.name: p for p in current}
    for want in wanted[0 if exists else 1 :]:
        name = quote_identifier(want.name)
        duration = influxql_duration(want.duration_s)
        default = " DEFAULT" if want.default else ""
        role = " (default)" if want.default else ""
        found = have.get(want.name)
        if found is None:
            statement = f"CREATE RETENTION POLICY {name} ON {db} DURATION {duration} REPLICATION 1{default}"
            actions.append(Action(statement, f"retention policy {want.name}: created, {shown(want.duration_s)}{role}"))
            continue
        changes = []
        if found.duration_s != want.duration_s:
            changes.append(f"duration {shown(found.duration_s)} -> {shown(want.duration_s)}")
        if want.default and not found.default:
            changes.append("made the default")
        if not changes:
            actions.append(Action(None, f"retention policy {want.name}: unchanged, {shown(want.duration_s)}{role}"))
            continue
        statement = f"ALTER RETENTION POLICY {name} ON {db} DURATION {duration}{default}"
        actions.append(Action(statement, f"retention policy {want.name}: altered, {', '.join(changes)}"))
    return actions


def policies(series: list[Any]) -> list[Policy]:
    """SHOW RETENTION POLICIES' rows."""
    found = []
    for one in series:
        for row in one.rows():
            found.append(Policy(str(row["name"]), go_duration_s(str(row["duration"])), bool(row["default"])))
    return found


async def setup_v1(influx: InfluxConfig, wanted: list[Policy]) -> tuple[list[str], int]:
    """Runs the plan against the server; returns the lines to print and how many statements changed it."""
    query = InfluxQuery(influx)
    try:
        databases = {row["name"] for series in await query.query("SHOW DATABASES") for row in series.rows()}
        exists = influx.database in databases
        show = f"SHOW RETENTION POLICIES ON {quote_identifier(influx.database)}"
        current = policies(await query.query(show)) if exists else []
        actions = plan(influx.database, exists, current, wanted)
        for action in actions:
            if action.statement is not None:
                await query.query(action.statement)
        lines = [action.says for action in actions]
        if exists and "autogen" not in {w.name for w in wanted}:
            shards = await query.query("SHOW SHARDS")
            used = any(
                row["database"] == influx.database and row["retention_policy"] == "autogen"
                for series in shards
                for row in series.rows()
            )
            if used:
                measurements = await query.query(f"SHOW MEASUREMENTS ON {quote_identifier(influx.database)}")
                names = [str(row["name"]) for series in measurements for row in series.rows()]
                lines += copy_note(influx.database, wanted, names)
        # After the DDL, read back what the server now has: what the output says is what is there.
        now = policies(await query.query(show))
        changes = sum(1 for action in actions if action.statement is not None)
        return [*lines, "now: " + ", ".join(_describe(p) for p in now)], changes
    finally:
        await query.close()


def copy_note(database: str, wanted: list[Policy], measurements: list[str]) -> list[str]:
    """How to keep what was written into ``autogen`` before the set-up: readings into the new default,
    KPI points (``kpi_<level>``) into their own policy when there is one. Copied into the readings'
    policy, KPI points would expire with the readings (older ones are refused at once), and the
    dashboards, which read ``"<kpi policy>"."kpi_*"``, would not find them."""
    db = quote_identifier(database)
    raw = wanted[0]
    kpi = wanted[1] if len(wanted) > 1 else None
    kpi_names = {f"kpi_{level}" for level in KPI_LEVELS}
    head = (
        f"note: readings written before the set-up are in {database}.autogen, which queries no longer read "
        "by default; to keep them"
    )
    if kpi is None or not kpi_names.intersection(measurements):
        return [
            f'{head}: SELECT * INTO {db}.{quote_identifier(raw.name)}.:MEASUREMENT FROM {db}."autogen"./.*/ GROUP BY *'
        ]
    readings = [name for name in measurements if name not in kpi_names]
    kpis = [name for name in measurements if name in kpi_names]
    lines = [f"{head} (readings into {raw.name}, KPI points into {kpi.name}, where the dashboards read them):"]
    for policy, names in ((raw, readings), (kpi, kpis)):
        if names:
            sources = ", ".join(f'{db}."autogen".{quote_identifier(name)}' for name in names)
            lines.append(f"  SELECT * INTO {db}.{quote_identifier(policy.name)}.:MEASUREMENT FROM {sources} GROUP BY *")
    return lines


def _describe(policy: Policy) -> str:
    return f"{policy.name} {shown(policy.duration_s)}" + (" (default)" if policy.default else "")


def v2_instructions(influx: InfluxConfig, raw_days: int, kpi_days: int | None) -> list[str]:
    """What to create by hand on 2.x/3.x: this command only ever reads a 1.x server's state."""
    bucket = influx.bucket or influx.database
    org = influx.org or "<org>"
    raw = influx.retention_policy or "autogen"
    lines = [
        'InfluxDB 2.x/3.x (influxdb.api = "v2"): nothing was changed; create these (deploy/influxdb-notes.md).',
        "",
        "InfluxDB 2.x (influx CLI; check the flags with --help for your version):",
        f"  influx bucket create --org {org} --name {bucket} --retention {raw_days}d",
    ]
    kpi_bucket = influx.kpi_bucket
    kpi_retention = f"{kpi_days}d" if kpi_days else "0   # 0: infinite"
    if kpi_bucket is not None:
        lines.append(f"  influx bucket create --org {org} --name {kpi_bucket} --retention {kpi_retention}")
    lines += [
        "  # InfluxQL (/query: the KPI engine, kpi show, Grafana) finds buckets through DBRP mappings:",
        f"  influx v1 dbrp create --org {org} --db {bucket} --rp {raw} --bucket-id <id of {bucket}> --default",
    ]
    if kpi_bucket is not None:
        lines.append(
            f"  influx v1 dbrp create --org {org} --db {bucket} --rp {influx.kpi_retention_policy} "
            f"--bucket-id <id of {kpi_bucket}>"
        )
    ids = f"<id of {bucket}>" + (f" and <id of {kpi_bucket}>" if kpi_bucket else "")
    lines += [
        f"  # a token that can read and write {ids}, nothing else (influxdb.token_file):",
        "  influx auth create --org "
        + org
        + " --description city-telemetry "
        + " ".join(f"--read-bucket <id of {b}> --write-bucket <id of {b}>" for b in filter(None, [bucket, kpi_bucket])),
        "",
        "InfluxDB 3.x: a database per bucket above (influxdb3 create database <name>, with a retention",
        "period where your version has one), and a token; 3.x serves InfluxQL on /query by database name.",
    ]
    if kpi_bucket is None:
        lines += ["", "KPI points share the bucket of the raw readings (influxdb.kpi_bucket unset)."]
    return lines


def _days(text: str) -> int | None:
    """--kpi-days: a positive number of days, or ``inf`` (None)."""
    if text.lower() in ("inf", "infinite"):
        return None
    days = int(text)
    if days < 1:
        raise argparse.ArgumentTypeError("at least 1 day, or inf")
    return days


def _positive_days(text: str) -> int:
    days = int(text)
    if days < 1:
        raise argparse.ArgumentTypeError("at least 1 day")
    return days


def _cmd_setup(args: argparse.Namespace) -> int:
    try:
        config: Config = load_config(args.config)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    influx = config.influxdb
    if influx.api == "v2":
        print("\n".join(v2_instructions(influx, args.raw_days, args.kpi_days)))
        return 0
    if args.username is not None or args.password_file is not None:
        try:
            password = read_secret(args.password_file, "--password-file") if args.password_file else SecretStr("")
        except ValueError as error:
            print(f"influxdb setup: {error}", file=sys.stderr)
            return 2
        influx = influx.model_copy(update={"username": args.username or influx.username, "password": password})
    wanted = wanted_policies(influx, args.raw_days, args.kpi_days)
    if args.raw_days * DAY_S < config.limits.max_past_s:
        print(
            f"warning: --raw-days {args.raw_days} is shorter than limits.max_past_s "
            f"({config.limits.max_past_s / DAY_S:g} days): readings older than {args.raw_days} days that the "
            "collector accepts will be refused by InfluxDB and dead-lettered",
            file=sys.stderr,
        )
    try:
        lines, changed = asyncio.run(setup_v1(influx, wanted))
    except (QueryError, ValueError) as error:
        print(f"influxdb setup: {influx.url}: {error}", file=sys.stderr)
        print("hint: is InfluxDB up at influxdb.url, and may this user manage databases (an admin)?", file=sys.stderr)
        return 1
    print("\n".join(lines))
    print(f"{changed} change(s) made" if changed else "nothing changed")
    return 0


def add_influxdb_parser(commands: Any) -> None:
    influxdb = commands.add_parser("influxdb", help="InfluxDB: database and retention policies")
    actions = influxdb.add_subparsers(dest="influxdb_command", required=True, metavar="ACTION")
    setup = actions.add_parser(
        "setup",
        help="create the database and retention policies (1.x); print what to create (2.x/3.x)",
        description="Idempotent: a second run changes nothing and says so; a policy with another "
        "duration is ALTERed. Raw readings go to influxdb.retention_policy (else 'raw', made the default), "
        "KPI points to influxdb.kpi_retention_policy. Needs an InfluxDB admin when auth is on.",
    )
    setup.add_argument("-c", "--config", type=Path, help="the collector's TOML config")
    setup.add_argument(
        "--raw-days",
        type=_positive_days,
        default=DEFAULT_RAW_DAYS,
        help=f"keep raw readings this long (default {DEFAULT_RAW_DAYS})",
    )
    setup.add_argument("--kpi-days", type=_days, default=None, help="keep KPI points this long, or inf (default inf)")
    setup.add_argument("--username", help="an admin user instead of influxdb.username")
    setup.add_argument("--password-file", type=Path, help="that user's password, in a file")
    setup.set_defaults(func=_cmd_setup)
