"""``city-telemetry kpi recompute`` and ``kpi show``: the KPI engine from the command line.

``recompute`` derives the KPIs of a range of local days from the raw readings in InfluxDB, with
the code the running collector uses (collector/kpi/engine.py), and writes them over what is there:
after an outage of the collector, a fix, or a new KPI. Each day is read once and all its windows
(5-minute, hourly, the day; ``--grain`` to choose) are computed from that read. It is idempotent (a
KPI point is identified by its tags, grain and window start) and prints a line per day. ``show``
prints the stored KPIs of one level and grain for one day (or one window of it, ``--at``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from collector.app.config import Config, ConfigError, load_config
from collector.kpi.aggregate import name_hidden, public_figures
from collector.kpi.billing import month_window
from collector.kpi.output import KpiPoint, read_points
from collector.kpi.windows import GRAINS, NS, TZ, Grain, day_window, window_of
from collector.sink.query import InfluxQuery, QueryError

COLUMNS: dict[str, list[tuple[str, str]]] = {  # level -> (field, heading)
    "municipality": [
        ("aps", "APs"),
        ("ap_availability_pct", "avail %"),
        ("hotspots", "hotspots"),
        ("peak_clients", "peak"),
        ("peak_hour", "at h"),
        ("mean_clients", "mean"),
        ("unique_clients", "unique"),
        ("sessions", "sessions"),
        ("rx_bytes", "rx GB"),
        ("tx_bytes", "tx GB"),
        ("school_availability_pct", "school %"),
        ("school_utilisation_in_p95_pct", "school p95 %"),
    ],
}
COLUMNS["region"] = COLUMNS["municipality"]
COLUMNS["site"] = [c for c in COLUMNS["municipality"] if c[0] != "hotspots"]
COLUMNS["device"] = [
    ("availability_pct", "avail %"),
    ("peak_clients", "peak"),
    ("mean_clients", "mean"),
    ("unique_clients", "unique"),
    ("rx_bytes", "rx GB"),
    ("tx_bytes", "tx GB"),
    ("school_utilisation_in_p95_pct", "p95 %"),
    ("school_probe_loss_pct", "loss %"),
    ("billing_in_p95_bps", "p95 in Mb/s"),  # <kind>_billing_...: school CPEs, switches, any link (_field)
    ("billing_out_p95_bps", "p95 out Mb/s"),
    ("billing_p95_bps", "billed Mb/s"),
    ("billing_samples", "samples"),
    ("billing_buckets", "buckets"),
]
KEY = {"device": "device", "site": "site", "municipality": "municipality", "region": "region"}


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(args.config)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def cmd_recompute(args: argparse.Namespace) -> int:
    from collector.app.service import build_kpi_engine
    from collector.ops.logs import configure_logging

    config = _load(args)
    if config is None:
        return 2
    # The engine's warnings (kpi_report_period_mismatch, ...) as lines on stderr; stdout is the progress.
    configure_logging("warning", "console")
    last = args.to or args.from_
    if last < args.from_:
        print("kpi recompute: --to is before --from", file=sys.stderr)
        return 2
    days = [args.from_ + timedelta(days=i) for i in range((last - args.from_).days + 1)]
    grains: tuple[Grain, ...] = tuple(g for g in GRAINS if g in (args.grain or config.kpi.grains))

    async def run() -> int:
        engine = build_kpi_engine(config, None)
        try:
            for i, day in enumerate(days, 1):
                started = time.monotonic()
                try:
                    written = await engine.recompute_day(day, grains)
                except QueryError as error:
                    print(f"kpi recompute: {day}: {error}", file=sys.stderr)
                    return 1
                print(
                    f"[{i}/{len(days)}] {day} ({', '.join(grains)}): {written} KPI points written"
                    f" in {time.monotonic() - started:.1f} s",
                    flush=True,
                )
        finally:
            engine.close()
            await engine.query.close()
            await engine.writer.close()
        return 0

    return asyncio.run(run())


def cmd_show(args: argparse.Namespace) -> int:
    config = _load(args)
    if config is None:
        return 2

    day = day_window(args.day)
    start: int = day.start_ns
    end: int | None = day.end_ns
    spans: list[tuple[int, int | None]] = []
    if args.grain == "month":  # the billing point of the day's calendar month
        if args.level != "device":
            print("kpi show: --grain month is per link: use --level device", file=sys.stderr)
            return 2
        if args.at is not None:
            print("kpi show: --at picks one window of --grain 1h or 5m; a month has one point", file=sys.stderr)
            return 2
        start, end = month_window(args.day).start_ns, None
    elif args.at is not None and args.grain == "day":
        print("kpi show: --at picks one window of --grain 1h or 5m; a day has one window", file=sys.stderr)
        return 2
    elif args.at is not None:
        starts = windows_at(args.day, args.at, args.grain)
        if not starts:
            print(
                f"kpi show: {args.day} has no {args.at:%H:%M}: the clocks went forward an hour that night",
                file=sys.stderr,
            )
            return 2
        spans = [(s, s + 1) for s in starts]  # a time of the autumn's repeated hour: both windows
    spans = spans or [(start, end)]

    async def run() -> list[KpiPoint]:
        query = InfluxQuery(config.influxdb)
        try:
            rp = config.influxdb.kpi_retention_policy
            found: list[KpiPoint] = []
            for lo, hi in spans:
                found += await read_points(query, args.level, lo, args.grain, hi, retention_policy=rp)
            return found
        finally:
            await query.close()

    try:
        points = asyncio.run(run())
    except QueryError as error:
        print(f"kpi show: {error}", file=sys.stderr)
        return 1
    if not points:
        hint = (
            "billing points need the links' capacities: set [inventory] file"
            if args.grain == "month" and config.inventory.file is None
            else f"run `city-telemetry kpi recompute --from {args.day}`"
        )
        print(f"no {args.level} KPIs stored for {args.day} (grain {args.grain}; {hint})")
        return 1
    k = config.kpi.k_anonymity if args.public else None
    print(render(points, args.level, k))
    return 0


def render(points: list[KpiPoint], level: str, k: int | None = None) -> str:
    """A text table; ``k``: client and session counts below k shown as "<k", with the session
    durations (``aggregate.public_figures``: for what leaves the team). Windows shorter than a day
    get a first column with their local start time."""
    columns = [(f, h) for f, h in COLUMNS[level] if any(_field(p.fields, f) is not None for p in points)]
    timed = any(p.tag("grain") in ("5m", "1h") for p in points)
    header = [*(["from"] if timed else []), KEY[level], *(h for _, h in columns), "final"]
    rows = []
    for point in sorted(points, key=lambda p: (p.ts_ns, p.tag(KEY[level]) or "")):
        name = point.tag(KEY[level]) or ""
        if level == "municipality":
            name = f"{point.tag('nis')} {name}"
        local = datetime.fromtimestamp(point.ts_ns / NS, TZ)
        cells = [*([local.strftime("%H:%M%z")] if timed else []), name]
        shown = point.fields if k is None else public_figures(point.fields, k)
        for field, _ in columns:
            hidden = k is not None and name_hidden(point.fields, shown, field)
            cells.append(f"<{k}" if hidden else _cell(field, _field(shown, field)))
        cells.append("yes" if point.fields.get("final") else "no (more may come)")
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def windows_at(day: date, at: time_of_day, grain: Grain) -> list[int]:
    """The starts of the ``grain`` windows at local time ``at`` on ``day``: one, two in the hour the
    clocks go back (02:30 is then 02:30+02:00 and 02:30+01:00), none in the hour they skip."""
    starts: list[int] = []
    for fold in (0, 1):
        moment = datetime.combine(day, at, TZ).replace(fold=fold)
        if moment.astimezone(UTC).astimezone(TZ).replace(tzinfo=None) != moment.replace(tzinfo=None):
            return []  # a wall time that does not exist that day
        start = window_of(int(moment.timestamp()) * NS, grain).start_ns
        if start not in starts:
            starts.append(start)
    return starts


def _clock(text: str) -> Any:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a local time (HH:MM)") from None


_BILLING = frozenset({"billing_in_p95_bps", "billing_out_p95_bps", "billing_p95_bps"})


def _field(fields: Mapping[str, Any], name: str) -> Any:
    """A point's field; a billing figure under whatever link kind prefixes it (``school_``,
    ``switch_``: billing.py), so one column shows every device's."""
    if name in _BILLING and name not in fields:
        return next((value for key, value in fields.items() if key.endswith(f"_{name}")), None)
    return fields.get(name)


def _cell(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if field.endswith("_bps"):
        return f"{value / 1e6:.2f}"
    if field.endswith("_bytes"):
        return f"{value / 1e9:.2f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def add_kpi_parser(commands: Any) -> None:
    kpi = commands.add_parser("kpi", help="compute and show the city's KPIs (docs/kpis.md)")
    actions = kpi.add_subparsers(dest="kpi_command", required=True, metavar="ACTION")
    recompute = actions.add_parser("recompute", help="derive the KPIs of local days from the stored readings")
    recompute.add_argument(
        "-c",
        "--config",
        type=Path,
        help="the collector's TOML config (env CITY_TELEMETRY__* overrides it; none: the defaults)",
    )
    recompute.add_argument(
        "--from", dest="from_", metavar="DAY", type=_day, required=True, help="first local day, YYYY-MM-DD"
    )
    recompute.add_argument("--to", metavar="DAY", type=_day, help="last local day (default: --from)")
    recompute.add_argument(
        "--grain",
        action="append",
        choices=GRAINS,
        help="windows to compute, repeatable (default: kpi.grains, i.e. 5m, 1h and day)",
    )
    recompute.set_defaults(func=cmd_recompute)
    show = actions.add_parser("show", help="print the stored KPIs of one day at one level and grain")
    show.add_argument(
        "-c",
        "--config",
        type=Path,
        help="the collector's TOML config (env CITY_TELEMETRY__* overrides it; none: the defaults)",
    )
    show.add_argument("--day", type=_day, required=True, help="local day, YYYY-MM-DD")
    show.add_argument("--level", choices=list(COLUMNS), default="municipality")
    show.add_argument(
        "--grain",
        choices=[*GRAINS, "month"],
        default="day",
        help="5m, 1h, day (default), or month: the links' billing 95th percentile of the day's month",
    )
    show.add_argument(
        "--at", type=_clock, metavar="HH:MM", help="with --grain 5m or 1h: the window at this local time (default: all)"
    )
    show.add_argument(
        "--public",
        action="store_true",
        help="for what leaves the team: client and session counts below kpi.k_anonymity hidden (durations too)",
    )
    show.set_defaults(func=cmd_show)
