"""``city-telemetry simulate``: publish the simulated city to an MQTT broker (or a file), and its truth."""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.city import Item, SimConfig, Simulation
from simulators.faults import OPPORTUNITY, FaultConfig
from simulators.inventory import build_inventory
from simulators.truth import TZ

DAY_PER_MINUTE = 1440.0
MAX_FUTURE_S = 600  # the collector refuses timestamps further ahead (limits.max_future_s)

EPILOG = """\
modes:
  real time (default)   the run starts now; devices report every --period (60 s), clients every 5 periods
  --accelerated         yesterday's local day, a simulated day per minute (--speed 1440), reports every
                        15 min (--period 900) so a day at the default scale is about 211,000 messages
  --speed 0 / --rate N  as fast as possible / N messages per second, whatever the simulated time

faults (--faults): "default", "none", or name=rate changes, e.g. "none,reboot=0.5" or "duplicate=0.01":
""" + "\n".join(f"  {name:<14} per {text}" for name, text in OPPORTUNITY.items())


def add_simulate_parser(commands: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` on the CLI's sub-command set (``argparse`` subparsers)."""
    sim: argparse.ArgumentParser = commands.add_parser(
        "simulate",
        help="publish a seeded simulated city (Brussels public wifi, school links) over MQTT",
        description="Publish a seeded, reproducible simulated city over MQTT, with its faults, and write "
        "the true KPI values of the run. Model and formats: docs/simulator.md.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    city = sim.add_argument_group("city")
    city.add_argument("--seed", type=int, default=7, help="same seed, same city and messages (default 7)")
    city.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="1 = about 900 APs, 175 school links, 27 switches; 0.005 = a handful; 90 = about 100,000",
    )
    city.add_argument(
        "--vendor-share",
        type=float,
        default=0.0,
        help="share of devices speaking UniFi / OpenWrt NetJSON / Telegraf SNMP (default 0)",
    )
    city.add_argument("--faults", default="default", help='fault rates (see below; default "default")')
    city.add_argument("--no-client-lists", action="store_true", help="ap.clients without per-client entries")
    time_ = sim.add_argument_group("time")
    time_.add_argument("--accelerated", action="store_true", help="yesterday, a day per minute, 15-min reports")
    time_.add_argument("--start", help='ISO time, "now" or "yesterday" (local midnight); default by mode')
    time_.add_argument(
        "--duration",
        default="1d",
        help="simulated time: 90s, 30m, 6h, 1d, 7d (default 1d); whole days are local: 23 or 25 h on a clock change",
    )
    time_.add_argument("--period", type=int, help="report period in s (default 60; accelerated 900)")
    time_.add_argument("--clients-every", type=int, help="ap.clients every N periods (default 5; accelerated 1)")
    time_.add_argument("--speed", type=float, help="simulated seconds per real second; 0 = unpaced")
    time_.add_argument("--rate", type=float, help="publish at this many messages per second instead")
    out = sim.add_argument_group("output")
    out.add_argument("--host", default="127.0.0.1", help="MQTT broker (default 127.0.0.1)")
    out.add_argument("--port", type=int, default=1883, help="MQTT port (default 1883)")
    out.add_argument("--client-id", default="city-simulator")
    out.add_argument("--out", type=Path, help="write the items as JSON lines here instead of publishing")
    out.add_argument("--dry-run", action="store_true", help="generate and count only")
    out.add_argument("--truth", type=Path, help="write the run's ground truth (JSON) here")
    out.add_argument(
        "--write-inventory",
        type=Path,
        metavar="PATH",
        help="write the city's inventory (JSON) for --seed/--scale/--vendor-share and exit",
    )
    out.add_argument("--max-messages", type=int, help="stop after this many messages")
    out.add_argument("--max-seconds", type=float, help="stop after this many wall-clock seconds")
    out.add_argument("--quiet", action="store_true", help="no progress line")
    sim.set_defaults(func=run_simulate)
    return sim


def parse_duration(text: str) -> float:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found:
        raise ValueError(f"duration {text!r}: expected a number with s, m, h or d")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[found.group(2)]


def duration_from(start_ms: int, text: str) -> float:
    """Seconds of simulated time from ``start_ms``: a whole number of days (``1d``, ``7d``) is that
    many local (Brussels) days, 23 or 25 hours on a daylight-saving change, so that a simulated day
    is the KPIs' day; anything else is :func:`parse_duration`'s fixed seconds."""
    found = re.fullmatch(r"\s*(\d+)\s*d\s*", text)
    if found is None:
        return parse_duration(text)
    start = datetime.fromtimestamp(start_ms / 1000, TZ)
    wall = start.replace(tzinfo=None) + timedelta(days=int(found.group(1)))  # the same wall time n days on
    end = wall.replace(tzinfo=TZ)
    return end.timestamp() - start.timestamp()


def _start_ms(text: str | None, accelerated: bool, now: datetime) -> int:
    if text is None:
        text = "yesterday" if accelerated else "now"
    if text == "now":
        return int(now.timestamp()) * 1000
    if text == "yesterday":
        local = now.astimezone(TZ).date() - timedelta(days=1)
        return int(datetime(local.year, local.month, local.day, tzinfo=TZ).timestamp()) * 1000
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=TZ)
    return int(moment.timestamp() * 1000)


def build_config(args: argparse.Namespace, now: datetime | None = None) -> tuple[SimConfig, float]:
    """The simulation config and the pace (speed) the arguments ask for."""
    now = now or datetime.now(UTC)
    accelerated = bool(args.accelerated)
    start_ms = _start_ms(args.start, accelerated, now)
    config = SimConfig(
        start_ms=start_ms,
        seed=args.seed,
        scale=args.scale,
        duration_s=duration_from(start_ms, args.duration),
        period_s=args.period or (900 if accelerated else 60),
        clients_every=args.clients_every or (1 if accelerated else 5),
        vendor_share=args.vendor_share,
        faults=FaultConfig.parse(args.faults),
        client_lists=not args.no_client_lists,
    )
    speed = args.speed if args.speed is not None else (DAY_PER_MINUTE if accelerated else 1.0)
    return config, speed


def run_simulate(args: argparse.Namespace) -> int:
    try:
        if args.write_inventory is not None:
            faults = FaultConfig.parse(args.faults)
            inventory = build_inventory(args.seed, args.scale, args.vendor_share, faults.counter32)
            inventory.write(args.write_inventory)
            kinds = Counter(d.kind for d in inventory.devices)
            print(
                f"wrote {args.write_inventory}: {len(inventory.sites)} sites, {kinds['ap']} APs, "
                f"{kinds['switch']} switches, {kinds['cpe']} school links"
            )
            return 0
        config, speed = build_config(args)
    except ValueError as error:
        print(f"simulate: {error}", file=sys.stderr)
        return 2
    now_ms = time.time() * 1000
    real_time = speed == 1.0 and not args.rate
    too_far = (config.start_ms if real_time else config.end_ms) > now_ms + MAX_FUTURE_S * 1000
    if not args.out and not args.dry_run and too_far:
        print(
            "simulate: this run would publish timestamps more than 10 minutes ahead of the clock, which the "
            "collector refuses; accelerated runs must lie in the past (--start)",
            file=sys.stderr,
        )
        return 2
    simulation = Simulation(config)
    print(
        f"city: seed {config.seed}, scale {config.scale:g}: {len(simulation.aps)} APs, "
        f"{len(simulation.switches)} switches, {len(simulation.cpes)} school links; "
        f"{datetime.fromtimestamp(config.start_ms / 1000, UTC):%Y-%m-%d %H:%M}Z + {config.duration_s:g} s, "
        f"period {config.period_s} s, speed {speed:g}" + (f", rate {args.rate:g}/s" if args.rate else ""),
        file=sys.stderr,
    )
    started = time.monotonic()
    if args.out or args.dry_run:
        published = _write_items(simulation, args.out, args.max_messages)
        elapsed = time.monotonic() - started
        print(f"generated {published:,} messages in {elapsed:.1f} s", file=sys.stderr)
    else:
        from simulators.publisher import MqttPublisher, Progress, PublishError

        try:
            publisher = MqttPublisher(args.host, args.port, args.client_id)
        except PublishError as error:
            print(f"simulate: {error}", file=sys.stderr)
            return 1
        try:
            report = publisher.run(
                simulation.items(),
                speed=speed,
                rate=args.rate,
                max_messages=args.max_messages,
                max_seconds=args.max_seconds,
                progress=None if args.quiet else Progress(),
            )
        finally:
            publisher.close()
        print(
            f"published {report.published:,} messages ({report.acknowledged:,} acknowledged) in "
            f"{report.elapsed_s:.1f} s, {report.rate:,.0f}/s; stopped by {report.stopped_by}",
            file=sys.stderr,
        )
    _print_stats(simulation)
    if args.truth is not None:
        simulation.truth.write(args.truth, simulation.meta())
        print(f"ground truth: {args.truth}", file=sys.stderr)
    return 0


def _write_items(simulation: Simulation, path: Path | None, limit: int | None) -> int:
    count = 0
    handle = path.open("w", encoding="utf-8") if path else None
    try:
        for item in simulation.items():
            if limit is not None and count >= limit:
                break
            count += 1
            if handle is not None:
                handle.write(json.dumps(item_record(item)) + "\n")
    finally:
        if handle is not None:
            handle.close()
    return count


def item_record(item: Item) -> dict[str, Any]:
    record: dict[str, Any] = {
        "at_ms": item.at_ms,
        "topic": item.topic,
        "qos": item.qos,
        "retain": item.retain,
        "labels": list(item.labels),
    }
    try:
        record["payload"] = item.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(item.payload).decode("ascii")
    return record


def _print_stats(simulation: Simulation) -> None:
    messages = {k.split(":", 1)[1]: v for k, v in sorted(simulation.stats.items()) if k.startswith("message:")}
    faults = {k.split(":", 1)[1]: v for k, v in sorted(simulation.stats.items()) if k.startswith("fault:")}
    print(f"messages: {messages}", file=sys.stderr)
    print(f"fault labels: {faults}", file=sys.stderr)
