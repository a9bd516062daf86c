"""``city-telemetry broker accounts`` (a subprocess) makes the accounts docs/security.md provisions:
hashed with mosquitto_passwd as documented, they log a device into the shipped broker config, where
it publishes under its own device level and nowhere else."""

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
from tests.security.shipped import COLLECTOR_ACCOUNT, local_copy
from tests.security.test_broker_acl import NO_SUBSCRIBERS, NOT_AUTHORIZED, Account, reading

pytestmark = pytest.mark.servers

DEVICES = ["ap-21009-0001", "ap-21009-0002", "ap-21004-0003"]


def accounts(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "collector.app.cli", "broker", "accounts", *map(str, args)]
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
