"""Secrets, wherever they come from (TOML, environment, ``*_file``), are never printed or logged."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from collector.app.cli import main
from collector.harness.localservers import InfluxDB, quote_identifier, quote_string
from tests.conftest import DATABASE, Publisher
from tests.daemon import start_daemon, wait_for_log
from tests.security.conftest import SecureBroker, basic_token, link_probes, new_secret, stored_probes
from tests.security.pki import Pki

MASK = "**********"


def secret_settings(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, str]
) -> tuple[str, str]:
    """The three secrets given in the TOML text, as CITY_TELEMETRY__... variables, or as *_file files."""
    keys = {
        "mqtt_password": ("MQTT", "PASSWORD"),
        "influx_password": ("INFLUXDB", "PASSWORD"),
        "influx_token": ("INFLUXDB", "TOKEN"),
    }
    lines: dict[str, str] = {"MQTT": "", "INFLUXDB": ""}
    for name, (section, key) in keys.items():
        if source == "toml":
            lines[section] += f"{key.lower()} = {json.dumps(values[name])}\n"
        elif source == "env":
            monkeypatch.setenv(f"CITY_TELEMETRY__{section}__{key}", values[name])  # taken as written
        else:
            path = tmp_path / name
            path.write_text(values[name] + "\n")
            lines[section] += f"{key.lower()}_file = {json.dumps(str(path))}\n"
    return lines["MQTT"], lines["INFLUXDB"]


@pytest.mark.parametrize("source", ["toml", "env", "files"])
def test_check_config_show_masks_every_secret(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pki: Pki
) -> None:
    values = {name: new_secret(name) for name in ("mqtt_password", "influx_password", "influx_token")}
    mqtt_lines, influx_lines = secret_settings(source, tmp_path, monkeypatch, values)
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[mqtt]
username = "collector"
{mqtt_lines}
[mqtt.tls]
ca_file = "{pki.ca.cert}"
cert_file = "{pki.collector.cert}"
key_file = "{pki.collector.key}"
[influxdb]
api = "v2"
org = "bric"
bucket = "city_telemetry"
username = "collector"
{influx_lines}
""")
    assert main(["check-config", "-c", str(config), "--show"]) == 0
    out, err = capsys.readouterr()
    for value in values.values():
        assert value not in out + err
    assert pki.collector.key.read_text().splitlines()[1] not in out + err
    shown = json.loads(out)  # standard output is the JSON alone (the verdict is on stderr)
    # Each secret was read (it is there), and is shown masked.
    assert shown["mqtt"]["password"] == MASK
    assert shown["influxdb"]["password"] == MASK and shown["influxdb"]["token"] == MASK
    assert shown["mqtt"]["tls"]["key_file"] == str(pki.collector.key)  # a path is no secret


def test_a_config_error_does_not_echo_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    password, number = new_secret("mqtt-password"), "31415926535897932"
    monkeypatch.setenv("CITY_TELEMETRY__MQTT__PASSWORD", password)
    config = tmp_path / "collector.toml"
    # A TOML number where a password belongs: refused, and not echoed.
    config.write_text(f"[influxdb]\napi = 'v3'\npassword = {number}\n")
    assert main(["check-config", "-c", str(config)]) == 2
    out, err = capsys.readouterr()
    assert "influxdb.api" in err and "influxdb.password" in err
    assert password not in out + err and number not in out + err


@pytest.mark.servers
def test_daemon_with_tls_and_credentials_from_env_and_files_logs_no_secret(
    secure_mosquitto: SecureBroker,
    publisher_tls: Publisher,
    influxdb_auth: InfluxDB,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``city-telemetry run`` at debug level: MQTT password from the environment, InfluxDB's from a
    file and wrong at first (refused, retried, then taken once the operator sets it in InfluxDB)."""
    old, rotated = new_secret("influx-old"), new_secret("influx-rotated")
    influxdb_auth.query(f"CREATE DATABASE {quote_identifier(DATABASE)}")
    influxdb_auth.query(f"CREATE USER collector WITH PASSWORD {quote_string(old)}")
    influxdb_auth.query(f"GRANT WRITE ON {quote_identifier(DATABASE)} TO collector")
    influx_password_file = tmp_path / "influxdb-password"
    influx_password_file.write_text(rotated + "\n")
    mqtt_password = secure_mosquitto.passwords["collector"]
    monkeypatch.setenv("CITY_TELEMETRY__MQTT__PASSWORD", mqtt_password)
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[mqtt]
port = {secure_mosquitto.server.port}
client_id = "daemon-tls"
username = "collector"
[mqtt.tls]
ca_file = "{pki.ca.cert}"
cert_file = "{pki.collector.cert}"
key_file = "{pki.collector.key}"
[influxdb]
url = "{influxdb_auth.url}"
username = "collector"
password_file = "{influx_password_file}"
retry_max_s = 0.5
[batch]
max_interval_s = 0.1
[dead_letter]
file = "{tmp_path / "dead-letter.jsonl"}"
[spool]
folder = "{tmp_path / "spool"}"
after_s = 60.0
[log]
level = "debug"
stats_every_s = 0.5
""")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_for_log(log, "mqtt_connected")
        time.sleep(0.3)  # SUBACK
        messages, expected = link_probes(50)
        for topic, payload in messages:
            publisher_tls.publish(topic, payload)
        publisher_tls.flush()
        wait_for_log(log, "influxdb_write_failed")
        influxdb_auth.query(f"SET PASSWORD FOR collector = {quote_string(rotated)}")
        wait_for_log(log, "influxdb_recovered")
        deadline = time.monotonic() + 20
        while len(stored_probes(influxdb_auth)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert stored_probes(influxdb_auth) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))
    text = log.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    connected = [e for e in events if e["event"] == "mqtt_connected"]
    assert connected[0]["tls"] is True
    failed = [e for e in events if e["event"] == "influxdb_write_failed"]
    assert "HTTP 401" in failed[0]["error"]
    assert any(e["event"] == "collector_stats" for e in events)  # periodic stats are in the checked log too
    stopped = [e for e in events if e["event"] == "collector_stopped"]
    assert stopped[0]["lines_written"] == len(expected)  # and the log covers the whole run, to its end
    assert influxdb_auth.admin is not None
    for secret in (
        mqtt_password,
        old,
        rotated,
        basic_token("collector", rotated),
        influxdb_auth.admin[1],
        secure_mosquitto.passwords["publisher"],
        pki.collector.key.read_text().splitlines()[1],
    ):
        assert secret not in text, f"a secret ({secret[:6]}...) is in the daemon's log"
