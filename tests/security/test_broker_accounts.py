"""``city-telemetry broker accounts`` (a subprocess) makes the accounts docs/security.md provisions:
hashed with mosquitto_passwd as documented, they log a device into the shipped broker config, where
it publishes under its own device level and nowhere else. ``broker acl`` writes the stricter ACL in
which a device is also bound to its municipality, site and kind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from collector.harness.localservers import Mosquitto, find_binary, free_port, write_password_file
from tests.security.conftest import new_secret
from tests.security.shipped import COLLECTOR_ACCOUNT, SHIPPED_ACL, local_copy
from tests.security.test_broker_acl import (
    DEVICE,
    FAR,
    NEIGHBOUR,
    NO_SUBSCRIBERS,
    NOT_AUTHORIZED,
    PLACES,
    Account,
    reading,
)

pytestmark = pytest.mark.servers

DEVICES = ["ap-21009-0001", "ap-21009-0002", "ap-21004-0003"]


def accounts(*args: str | Path, action: str = "accounts") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "collector.app.cli", "broker", action, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def inventory(path: Path, devices: list[str]) -> Path:
    data = {"format": "city-telemetry.inventory/1", "devices": [{"device": d, "kind": "ap"} for d in devices]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_accounts_from_the_inventory_log_devices_into_the_shipped_broker(tmp_path: Path) -> None:
    # The broker already knows the collector and one device.
    known = {COLLECTOR_ACCOUNT: new_secret("mqtt-collector"), DEVICES[1]: new_secret("mqtt-device")}
    password_file = write_password_file(tmp_path / "passwd", known)
    new = tmp_path / "new-accounts.txt"
    city = inventory(tmp_path / "inv.json", DEVICES)
    result = accounts("--inventory", city, "--password-file", password_file, "--out", new)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"2 new account(s) written to {new}; 1 device(s) already have one"
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o600
    created = dict(line.split(":", 1) for line in new.read_text().splitlines())
    assert sorted(created) == sorted([DEVICES[0], DEVICES[2]])
    assert len(set(created.values())) == 2 and all(len(p) >= 20 for p in created.values())

    # As documented: hash a copy, append it to mosquitto's file.
    hashed = tmp_path / "hashed.txt"
    hashed.write_text(new.read_text())
    subprocess.run([find_binary("mosquitto_passwd"), "-U", str(hashed)], check=True, timeout=30)
    assert DEVICES[0] + ":" + created[DEVICES[0]] not in hashed.read_text()  # no password in the clear
    with open(password_file, "a", encoding="utf-8") as out:
        out.write(hashed.read_text())

    folder, port = tmp_path / "mosquitto", free_port()
    server = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file))
    server.start()
    try:
        device = Account(port, DEVICES[2], created[DEVICES[2]])
        assert device.publish(*reading(DEVICES[2], 1)) == NO_SUBSCRIBERS  # taken; nobody subscribed here
        assert device.publish(*reading(DEVICES[0], 2)) == NOT_AUTHORIZED
        device.close()
    finally:
        server.kill()

    # A second run has nothing to add once the accounts are in the file; it never overwrites a file.
    again = tmp_path / "again.txt"
    second = accounts("--inventory", tmp_path / "inv.json", "--password-file", password_file, "--out", again)
    assert (second.returncode, again.read_text()) == (0, "")
    assert "0 new account(s)" in second.stdout
    assert accounts("--inventory", tmp_path / "inv.json", "--out", new).returncode == 2


@pytest.mark.parametrize("bad", [COLLECTOR_ACCOUNT, "ap+1", "ap#", "ap:1", "ap 1", "bxl/ap"])
def test_a_device_id_that_cannot_be_an_account_is_refused_and_nothing_written(bad: str, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    result = accounts("--inventory", inventory(tmp_path / "inv.json", [DEVICES[0], bad]), "--out", out)
    assert result.returncode == 2
    assert repr(bad) in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("strict", [True, False], ids=["broker acl", "shipped acl"])
def test_the_strict_acl_binds_a_device_to_its_municipality_and_site(strict: bool, tmp_path: Path) -> None:
    city = {
        "format": "city-telemetry.inventory/1",
        "devices": [{"device": d, "kind": "ap", "nis": nis, "site": site} for d, (nis, site) in PLACES.items()],
    }
    inventory_file = tmp_path / "inventory.json"
    inventory_file.write_text(json.dumps(city))
    acl = None
    if strict:
        acl = tmp_path / "strict.acl"
        made = accounts("--inventory", inventory_file, "--base", SHIPPED_ACL, "--out", acl, action="acl")
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == f"{acl}: 3 devices, each bound to its own topic"
        text = acl.read_text()
        assert "pattern write bxl/v1/+/+/+/%u/+" not in text.splitlines()
        assert f"user {DEVICE}\ntopic write bxl/v1/21009/place-flagey/ap/{DEVICE}/+\n" in text
    passwords = {name: new_secret("mqtt") for name in (COLLECTOR_ACCOUNT, DEVICE, NEIGHBOUR, FAR)}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, port = tmp_path / "mosquitto", free_port()
    server = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_file=acl))
    server.start()
    try:
        device = Account(port, DEVICE, passwords[DEVICE])
        answers = {
            "its own topic": device.publish(*reading(DEVICE, 1)),
            "its own id, another municipality": device.publish(*reading(DEVICE, 2, nis="21004", site="gare-du-midi")),
            "its own id, another site": device.publish(*reading(DEVICE, 3, site="place-eugene-flagey")),
            "another device": device.publish(*reading(NEIGHBOUR, 4)),
            "its own id under a vendor root": device.publish(f"unifi/21009/place-flagey/{DEVICE}/stat", "{}"),
        }
        device.close()
        collector = Account(port, COLLECTOR_ACCOUNT, passwords[COLLECTOR_ACCOUNT])
        answers["the collector's dead letters"] = collector.publish("city-telemetry/dead-letter", "{}")
        answers["the collector as a device"] = collector.publish(reading(DEVICE, 5)[0], "{}")
        collector.close()
    finally:
        server.kill()
    misplaced = NOT_AUTHORIZED if strict else NO_SUBSCRIBERS  # the shipped pattern binds the device level only
    assert answers == {
        "its own topic": NO_SUBSCRIBERS,  # taken (nobody subscribed here)
        "its own id, another municipality": misplaced,
        "its own id, another site": misplaced,
        "another device": NOT_AUTHORIZED,
        "its own id under a vendor root": NO_SUBSCRIBERS,
        "the collector's dead letters": NO_SUBSCRIBERS,
        "the collector as a device": NOT_AUTHORIZED,
    }


def test_broker_acl_refuses_a_base_that_is_not_the_shipped_acl(tmp_path: Path) -> None:
    base = tmp_path / "other.acl"
    base.write_text("user someone\ntopic write #\n")
    city = inventory(tmp_path / "inv.json", [])
    out = tmp_path / "strict.acl"
    result = accounts("--inventory", city, "--base", base, "--out", out, action="acl")
    assert result.returncode == 2
    assert "the base ACL has no line 'pattern write bxl/v1/+/+/+/%u/+'" in result.stderr
    assert not out.exists()
