"""``city-telemetry broker accounts`` and ``broker acl``: broker accounts and per-device rules from the
inventory.

The shipped access rules (deploy/mosquitto/city-telemetry.acl) let an account publish only under the
device level equal to its name, so a device's account name is its device id (docs/security.md,
"Broker accounts and access rules"). This command writes ``device:password`` lines, a fresh random
password for each device of the inventory that has no account yet in mosquitto's password file:
the plain list to load onto the devices, and, after ``mosquitto_passwd -U`` on a copy, the lines to
append to mosquitto's file. It never changes the password file itself, never overwrites a file, and
writes nothing when a device id cannot be an account.

``broker acl`` writes a stricter variant of the shipped ACL for operators who want each device tied
to its municipality, site and kind as well: mosquitto substitutes ``%u`` for one whole topic level,
so the shipped pattern binds only the device level. The variant drops the canonical device pattern
and gives each device of the inventory a ``user`` block with its full topic instead (a user block
cannot narrow what a pattern grants, so the pattern has to go). Everything else in the base file
stays as it is.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from collector.app.config import ConfigError, load_config
from collector.ingest.inventory import InventoryError, load_device_ids
from collector.ingest.topics import LEVEL_VALUE, TopicPattern
from collector.kpi.enrich import Places, load_places

COLLECTOR_ACCOUNT = "city-telemetry"  # the collector's account in the shipped ACL


def existing_accounts(password_file: Path) -> frozenset[str]:
    """Account names in a mosquitto password file (``name:hash`` lines)."""
    lines = password_file.read_text(encoding="utf-8").splitlines()
    return frozenset(line.split(":", 1)[0] for line in lines if line.strip() and not line.startswith("#"))


def unusable(device_ids: Iterable[str], reserved: Iterable[str]) -> list[str]:
    """Device ids that cannot be device accounts: not a topic level value (so the ACL pattern could never
    match them: ``+``, ``#``, ``/``, ``:``, spaces ...), or an account name kept for something else."""
    taken = set(reserved)
    return sorted(d for d in device_ids if not LEVEL_VALUE.match(d) or d in taken)


def new_accounts(device_ids: Iterable[str], existing: frozenset[str]) -> list[tuple[str, str]]:
    """(device id, password) for every device without an account, in id order."""
    return [(device, secrets.token_urlsafe(16)) for device in sorted(set(device_ids) - existing)]


def _cmd_accounts(args: argparse.Namespace) -> int:
    try:
        devices = load_device_ids(args.inventory)
        existing = existing_accounts(args.password_file) if args.password_file else frozenset()
    except (InventoryError, OSError) as error:
        print(f"city-telemetry broker accounts: {error}", file=sys.stderr)
        return 2
    bad = unusable(devices, [args.collector_account])
    if bad:
        print(
            f"city-telemetry broker accounts: {len(bad)} device id(s) cannot be broker accounts "
            f"(allowed: A-Z a-z 0-9 . _ -, 1-64 characters, not {args.collector_account!r}): "
            + ", ".join(repr(d) for d in bad[:20]),
            file=sys.stderr,
        )
        return 2
    accounts = new_accounts(devices, existing)
    try:  # created 0600, never over an existing file: it holds passwords in the clear
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"city-telemetry broker accounts: {args.out} exists; give a new file", file=sys.stderr)
        return 2
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.writelines(f"{device}:{password}\n" for device, password in accounts)
    print(
        f"{len(accounts)} new account(s) written to {args.out}; "
        f"{len(devices) - len(accounts)} device(s) already have one"
    )
    return 0


def strict_acl(base: str, pattern: TopicPattern, places: Places, source: str) -> str:
    """``base`` without its canonical device pattern, plus a ``user`` block per device with its full topic.
    A ValueError if ``base`` has no such pattern line (then it is not the shipped file) or a device's
    place does not fill the topic pattern."""
    device_pattern = "pattern write " + pattern.build(
        **{name: "+" for name in pattern.names if name != "device"}, device="%u"
    )
    lines = base.splitlines()
    if device_pattern not in lines:
        raise ValueError(f"the base ACL has no line {device_pattern!r}: give the shipped city-telemetry.acl")
    blocks = [
        "",
        f"# Per-device rules, written by `city-telemetry broker acl` from {source} ({len(places.devices)} devices):",
        "# each device publishes only under its own municipality, site, kind and device levels. The device",
        f"# pattern above ({device_pattern}) was removed; regenerate after adding or moving a device.",
    ]
    for device, place in sorted(places.devices.items()):
        values = {"nis": place.nis, "site": place.site, "kind": place.kind, "device": device, "message": "+"}
        missing = [name for name in pattern.names if name not in values]
        if missing:
            raise ValueError(f"topics.pattern names {', '.join(missing)}, which the inventory does not give")
        for name, value in values.items():
            if value != "+" and not LEVEL_VALUE.match(value):
                raise ValueError(f"device {device!r}: {name} {value!r} cannot be a topic level")
        blocks += [f"user {device}", f"topic write {pattern.build(**values)}"]
    kept = [line for line in lines if line != device_pattern]
    return "\n".join(kept + blocks) + "\n"


def _cmd_acl(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        places = load_places(args.inventory)
        base = args.base.read_text(encoding="utf-8")
        bad = unusable(places.devices, [args.collector_account])
        if bad:
            raise ValueError(f"device id(s) that cannot be broker accounts: {', '.join(repr(d) for d in bad[:20])}")
        text = strict_acl(base, TopicPattern(config.topics.pattern), places, str(args.inventory))
    except (ConfigError, InventoryError, OSError, ValueError) as error:
        print(f"city-telemetry broker acl: {error}", file=sys.stderr)
        return 2
    try:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        print(f"city-telemetry broker acl: {args.out} exists; give a new file", file=sys.stderr)
        return 2
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"{args.out}: {len(places.devices)} devices, each bound to its own topic")
    return 0


def add_broker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = commands.add_parser("broker", help="the MQTT broker's accounts (docs/security.md)")
    actions = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    accounts = actions.add_parser(
        "accounts",
        help="write device:password lines for the inventory's devices that have no broker account yet",
        description="One account per device, named by its device id (the shipped ACL's convention). "
        "Hash a copy of the output with 'mosquitto_passwd -U' and append it to mosquitto's password_file; "
        "the plain output is what goes onto the devices.",
    )
    accounts.add_argument("--inventory", type=Path, required=True, help="city-telemetry.inventory/1 JSON file")
    accounts.add_argument(
        "--password-file", type=Path, help="mosquitto's password_file: devices already in it are skipped"
    )
    accounts.add_argument("--out", type=Path, required=True, help="new file for the lines (created mode 0600)")
    accounts.add_argument(
        "--collector-account",
        default=COLLECTOR_ACCOUNT,
        help=f"the collector's account name, which no device may take (default {COLLECTOR_ACCOUNT})",
    )
    accounts.set_defaults(func=_cmd_accounts)

    acl = actions.add_parser(
        "acl",
        help="write the shipped ACL with each device bound to its own municipality, site and kind",
        description="The base ACL (the shipped city-telemetry.acl) without its canonical device pattern, and a "
        "user block per device of the inventory with its full topic. Regenerate after adding or moving a device, "
        "then 'systemctl reload mosquitto'.",
    )
    acl.add_argument("-c", "--config", type=Path, help="the collector's TOML config (for topics.pattern)")
    acl.add_argument("--inventory", type=Path, required=True, help="city-telemetry.inventory/1 JSON file")
    acl.add_argument("--base", type=Path, required=True, help="the shipped city-telemetry.acl")
    acl.add_argument("--out", type=Path, required=True, help="new file for the ACL")
    acl.add_argument("--collector-account", default=COLLECTOR_ACCOUNT, help="the collector's account name")
    acl.set_defaults(func=_cmd_acl)
