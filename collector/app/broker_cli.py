"""``city-telemetry broker accounts``: a broker account for each device of the inventory.

The shipped access rules (deploy/mosquitto/city-telemetry.acl) let an account publish only under the
device level equal to its name, so a device's account name is its device id (docs/security.md,
"Broker accounts and access rules"). This command writes ``device:password`` lines, a fresh random
password for each device of the inventory that has no account yet in mosquitto's password file:
the plain list to load onto the devices, and, after ``mosquitto_passwd -U`` on a copy, the lines to
append to mosquitto's file. It never changes the password file itself, never overwrites a file, and
writes nothing when a device id cannot be an account.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path

from collector.ingest.inventory import InventoryError, load_device_ids
from collector.ingest.topics import LEVEL_VALUE

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
