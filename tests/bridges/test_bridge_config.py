"""Bridge configuration and inventory: refused at start naming the key, and the inventory lookup."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.bridges.common import DeviceIndex, level
from collector.ingest.inventory import InventoryError
from tests.bridges.helpers import ROOT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "collector.app.cli", "bridge", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "secret").write_text("a-long-enough-secret\n")
    (tmp_path / "inventory.json").write_text(
        json.dumps(
            {
                "format": "city-telemetry.inventory/1",
                "devices": [{"device": "ap-1", "kind": "ap", "nis": "21004", "site": "s", "mac": "80:22:22:22:22:22"}],
            }
        )
    )
    path = tmp_path / "bridge.toml"
    path.write_text(f'[inventory]\nfile = "{tmp_path / "inventory.json"}"\n\n{body}')
    return path


def unifi(tmp_path: Path, extra: str = "") -> str:
    head = '[unifi]\nurl = "https://unifi.example:8443"\nusername = "ro"\n'
    return head + f'password_file = "{tmp_path / "secret"}"\n{extra}'


def test_check_accepts_a_good_config_and_says_what_it_read(tmp_path: Path) -> None:
    result = cli("unifi", "-c", str(config(tmp_path, unifi(tmp_path))), "--check")
    assert result.returncode == 0, result.stderr
    assert "ok (unifi, 1 devices in the inventory)" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("colour = 1\n", "unifi.colour: unknown key"),
        ("api = 'cloud'\n", "unifi.api: Input should be 'classic' or 'unifi-os'"),
        ("\n[unifi.tls]\ninsecure = true\nfingerprint_sha256 = '" + "ab" * 32 + "'\n", "choose one of"),
        ("\n[unifi.tls]\nfingerprint_sha256 = 'abc'\n", "unifi.tls.fingerprint_sha256: must be 64 hex digits"),
        ("device_topic = 'unifi/{nis}/{site}'\n", "device_topic: needs a {device} level"),
        ("clients_topic = 'x/{region}/{device}'\n", "clients_topic: only {nis}, {site}, {kind} and {device}"),
        ("device_topic = 'unifi/+/{device}'\n", "is not a topic to publish on"),
    ],
)
def test_a_bad_unifi_config_is_refused_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    result = cli("unifi", "-c", str(config(tmp_path, unifi(tmp_path, extra))), "--check")
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_bad_meraki_config_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("short\n")
    body = f'[meraki.webhook]\nshared_secret_file = "{tmp_path / "short"}"\n'
    result = cli("meraki", "-c", str(config(tmp_path, body)), "--check")
    assert result.returncode == 2 and "at least 8 characters" in result.stderr, result.stderr
    body = f'[meraki.api]\norganization_id = "1"\napi_key_file = "{tmp_path / "secret"}"\nmax_requests_per_s = 11\n'
    result = cli("meraki", "-c", str(config(tmp_path, body)), "--check")
    assert "meraki.api.max_requests_per_s: Input should be less than or equal to 10" in result.stderr
    result = cli("meraki", "-c", str(config(tmp_path, unifi(tmp_path))), "--check")
    assert result.returncode == 2 and "section [meraki] missing" in result.stderr


@pytest.mark.parametrize(
    ("given", "other", "other_on", "message"),
    [
        (
            'webhook]\nshared_secret_file = "{secret}"\n',
            "api",
            "period_s = 60",
            "meraki.api: organization_id and api_key_file needed while the API poll is enabled",
        ),
        (  # the trial's API-only bridge was asked for a webhook secret
            'api]\norganization_id = "1"\napi_key_file = "{secret}"\n',
            "webhook",
            'path = "/hook"',
            "meraki.webhook: shared_secret_file needed while the webhook receiver is enabled",
        ),
    ],
    ids=["webhook-only", "api-only"],
)
def test_one_half_of_the_meraki_bridge_needs_nothing_of_the_other(
    tmp_path: Path, given: str, other: str, other_on: str, message: str
) -> None:
    section = "[meraki." + given.format(secret=tmp_path / "secret")
    result = cli("meraki", "-c", str(config(tmp_path, f"{section}\n[meraki.{other}]\nenabled = false\n")), "--check")
    assert result.returncode == 0, result.stderr
    result = cli("meraki", "-c", str(config(tmp_path, f"{section}\n[meraki.{other}]\n{other_on}\n")), "--check")
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_every_bridge_command_has_help() -> None:
    for vendor in ("unifi", "meraki"):
        result = cli(vendor, "--help")
        assert result.returncode == 0 and "--once" in result.stdout and "--check" in result.stdout


def test_the_inventory_places_devices_by_mac_serial_or_name_and_keeps_the_unknown(tmp_path: Path) -> None:
    index = DeviceIndex(
        [
            {"device": "ap-1", "kind": "ap", "nis": "21004", "site": "s1", "mac": "80:22:22:22:22:22"},
            {"device": "ap-2", "kind": "ap", "nis": "21004", "site": "s2", "serial": "Q3AB-CD12-EF34"},
            {"device": "sw-1", "kind": "switch", "nis": "21001", "site": "s3", "name": "Core switch"},
        ]
    )
    assert index.place(mac="80-22-22-22-22-22").device == "ap-1"
    assert index.place(mac="8022.2222.2222").device == "ap-1"
    assert index.place(serial="q3ab-cd12-ef34").device == "ap-2"
    assert index.place(name="Core switch").device == "sw-1"
    assert index.place(name="sw-1").device == "sw-1"  # the device id itself
    unknown = index.place(name="Lobby AP #2", site="Main Office", kind="ap")
    assert (unknown.device, unknown.nis, unknown.site, unknown.kind, unknown.known) == (
        "Lobby-AP-2",
        "unknown",
        "Main-Office",
        "ap",
        False,
    )
    assert index.place(mac="80:22:22:22:22:99").device == "mac-802222222299"
    assert level("é" * 80) == "unknown" and len(level("x" * 80)) == 64
    (tmp_path / "bad.json").write_text(
        json.dumps(
            {
                "format": "city-telemetry.inventory/1",
                "devices": [{"device": "a b", "kind": "ap", "nis": "1", "site": "s"}],
            }
        )
    )
    with pytest.raises(InventoryError, match="is not a topic level"):
        DeviceIndex.load(tmp_path / "bad.json")


@pytest.mark.parametrize("vendor", ["unifi", "meraki"])
def test_the_sample_config_is_valid_once_its_files_exist(tmp_path: Path, vendor: str) -> None:
    text = (ROOT / "collector" / "bridges" / vendor / "sample.toml").read_text()
    for name in ("inventory.json", "unifi.password", "meraki-webhook.secret", "meraki-api.key"):
        target = tmp_path / name
        target.write_text("a-long-enough-secret\n")
        text = text.replace(f'"/etc/city-telemetry/{name}"', f'"{target}"')
    config(tmp_path, "")  # writes inventory.json
    (tmp_path / "sample.toml").write_text(text)
    result = cli(vendor, "-c", str(tmp_path / "sample.toml"), "--check")
    assert result.returncode == 0, result.stderr
