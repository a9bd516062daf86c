"""Fixtures for transport security: certificates, a TLS broker that checks passwords, inspectable logs."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from collector.harness.localservers import BrokerTls, InfluxDB, Mosquitto, basic_auth, write_password_file
from collector.ops.logs import configure_logging
from tests import samples
from tests.conftest import Publisher, points
from tests.security.pki import Identity, Pki, make_pki


def new_secret(label: str) -> str:
    """A password nobody could guess, with a label that makes a leak easy to recognise."""
    return f"{label}-{secrets.token_urlsafe(12)}"


def link_probes(n: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    messages, rows = [], []
    for i in range(n):
        topic, payload, expected = samples.link_probe(i, samples.recent(offset_s=i * 1.001))
        messages.append((topic, json.dumps(payload)))
        rows.extend(expected)
    return messages, rows


def stored_probes(influxdb: InfluxDB) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in row.items() if v is not None} for row in points(influxdb, "SELECT * FROM link_probe")]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def influxdb_auth(tmp_path: Path) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path / "influxdb-auth", admin=("admin", new_secret("influx-admin")))
    server.start()
    yield server
    server.kill()


def basic_token(user: str, password: str) -> str:
    """The credentials as they travel in an HTTP Basic header: what a logged header would leak."""
    return basic_auth(user, password).removeprefix("Basic ")


@dataclass
class SecureBroker:
    """Mosquitto with one TLS listener (client certificates required) and a password file."""

    server: Mosquitto
    password_file: Path
    passwords: dict[str, str] = field(default_factory=dict)

    def set_password(self, user: str, password: str) -> None:
        """What an operator does: rewrite the password file, then SIGHUP the broker."""
        self.passwords[user] = password
        write_password_file(self.password_file, self.passwords)
        self.server.reload()


@pytest.fixture
def secure_mosquitto(tmp_path: Path, pki: Pki) -> Iterator[SecureBroker]:
    passwords = {"collector": new_secret("mqtt-collector"), "publisher": new_secret("mqtt-publisher")}
    password_file = write_password_file(tmp_path / "mosquitto-passwd", passwords)
    tls = BrokerTls(cert_file=pki.broker.cert, key_file=pki.broker.key, ca_file=pki.ca.cert)
    server = Mosquitto(tmp_path / "mosquitto", tls=tls, password_file=password_file)
    server.start()
    yield SecureBroker(server, password_file, passwords)
    server.kill()


def tls_publisher(broker: SecureBroker, pki: Pki) -> Publisher:
    """A publisher with its own client certificate and password, as a device in the city would have."""

    def setup(client: mqtt.Client) -> None:
        client.tls_set(ca_certs=str(pki.ca.cert), certfile=str(pki.device.cert), keyfile=str(pki.device.key))
        client.username_pw_set("publisher", broker.passwords["publisher"])

    return Publisher(broker.server.port, client_id="tls-publisher", setup=setup)


@pytest.fixture
def publisher_tls(secure_mosquitto: SecureBroker, pki: Pki) -> Iterator[Publisher]:
    publisher = tls_publisher(secure_mosquitto, pki)
    yield publisher
    with contextlib.suppress(Exception):
        publisher.close()


def mqtt_security(
    tmp_path: Path,
    ca_file: Path | None,
    client: Identity | None,
    username: str | None = "collector",
    password: str | None = None,
) -> dict[str, str]:
    """collector_config overrides for the collector's side: CA, client certificate, password in a file."""
    overrides = {"MQTT__RECONNECT_MAX_S": "1.0"}
    if ca_file is not None:
        overrides["MQTT__TLS__CA_FILE"] = json.dumps(str(ca_file))
    if client is not None:
        overrides["MQTT__TLS__CERT_FILE"] = json.dumps(str(client.cert))
        overrides["MQTT__TLS__KEY_FILE"] = json.dumps(str(client.key))
    if username is not None:
        overrides["MQTT__USERNAME"] = json.dumps(username)
    if password is not None:
        password_file = tmp_path / "mqtt-password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        overrides["MQTT__PASSWORD_FILE"] = json.dumps(str(password_file))
    return overrides


class LogFile:
    """Everything the collector logged: its JSON events and paho's lines, at debug level."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if name is None or event.get("event") == name:
                    found.append(event)
        return found

    def assert_free_of(self, *secret_values: str) -> None:
        text = self.text()
        assert text, "nothing was logged"
        for value in secret_values:
            assert value not in text, f"a secret ({value[:6]}...) is in {self.path}"


@pytest.fixture
def collector_log(tmp_path: Path) -> Iterator[LogFile]:
    """Collector logs (structlog JSON and paho's own) at debug level into a file, for this test."""
    path = tmp_path / "collector.log"
    root = logging.getLogger()
    level = root.level
    with open(path, "w", encoding="utf-8", buffering=1) as stream:
        configure_logging("debug", "json", stream=stream)
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            yield LogFile(path)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            configure_logging("warning", "console")
