"""The collector and a real mosquitto with a TLS listener, client certificates and passwords."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB
from tests.conftest import Publisher, collector_config, running_collector, wait_until
from tests.security.conftest import LogFile, SecureBroker, link_probes, mqtt_security, new_secret, stored_probes
from tests.security.pki import Pki

pytestmark = pytest.mark.servers


async def test_collector_ingests_over_tls_with_client_certificate_and_password(
    secure_mosquitto: SecureBroker,
    publisher_tls: Publisher,
    influxdb: InfluxDB,
    pki: Pki,
    tmp_path: Path,
    collector_log: LogFile,
) -> None:
    password = secure_mosquitto.passwords["collector"]
    security = mqtt_security(tmp_path, pki.ca.cert, pki.collector, password=password)
    config = collector_config(secure_mosquitto.server, influxdb, tmp_path, **security)
    messages, expected = link_probes(40)
    async with running_collector(config) as collector:
        for topic, payload in messages:
            publisher_tls.publish(topic, payload)
        publisher_tls.flush()
        await wait_until(lambda: collector.counters["acked"] == len(messages), what="acks")
    assert stored_probes(influxdb) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))
    connected = collector_log.events("mqtt_connected")
    assert connected and connected[0]["tls"] is True and connected[0]["failed_attempts_before"] == 0
    assert collector_log.events("mqtt_connect_failed") == []
    collector_log.assert_free_of(password, pki.collector.key.read_text().splitlines()[1])


# (name, collector's CA, collector's client certificate, wrong password?, event, in the error, in the hint)
REFUSALS = [
    ("wrong CA", "other", "collector", False, "mqtt_connect_failed", "CERTIFICATE_VERIFY_FAILED", "mqtt.tls.ca_file"),
    ("no client certificate", "city", None, False, "mqtt_connect_failed", "CERTIFICATE_REQUIRED", "cert_file"),
    (
        "untrusted client certificate",
        "city",
        "rogue",
        False,
        "mqtt_connect_failed",
        "UNKNOWN_CA",
        "refused our client certificate",
    ),
    ("wrong password", "city", "collector", True, "mqtt_connect_refused", "Not authorized", "mqtt.password_file"),
    ("no TLS", None, None, False, "mqtt_connect_failed", "", "is it a TLS listener"),
]


@pytest.mark.parametrize(
    ("case", "ca", "client", "wrong_password", "event", "error", "hint"), REFUSALS, ids=[case[0] for case in REFUSALS]
)
async def test_refused_connection_is_logged_clearly_and_retried(
    secure_mosquitto: SecureBroker,
    influxdb: InfluxDB,
    pki: Pki,
    tmp_path: Path,
    collector_log: LogFile,
    case: str,
    ca: str | None,
    client: str | None,
    wrong_password: bool,
    event: str,
    error: str,
    hint: str,
) -> None:
    ca_file = {"city": pki.ca.cert, "other": pki.other_ca.cert, None: None}[ca]
    identity = {"collector": pki.collector, "rogue": pki.rogue, None: None}[client]
    right = secure_mosquitto.passwords["collector"]
    password = new_secret("mqtt-wrong") if wrong_password else right
    config = collector_config(
        secure_mosquitto.server, influxdb, tmp_path, **mqtt_security(tmp_path, ca_file, identity, password=password)
    )
    async with running_collector(config, connected=False) as collector:
        await wait_until(lambda: collector.source.connect_failures >= 3, timeout_s=15, what="three attempts")
        assert collector.source.connects == 0
    failures = collector_log.events(event)
    # One line for the cause, not one per attempt (the same cause is repeated once a minute at most).
    assert len(failures) == 1, collector_log.text()
    assert failures[0]["level"] == "error" and failures[0]["retrying"] is True
    assert error in failures[0]["error"] and hint in failures[0]["hint"]
    assert collector_log.events("collector_task_failed") == []
    assert len(collector_log.events("collector_stopped")) == 1  # it ran on, and stopped when told
    collector_log.assert_free_of(right, password)


async def test_wrong_password_is_retried_until_the_broker_takes_it_then_messages_flow(
    secure_mosquitto: SecureBroker,
    publisher_tls: Publisher,
    influxdb: InfluxDB,
    pki: Pki,
    tmp_path: Path,
    collector_log: LogFile,
) -> None:
    old = secure_mosquitto.passwords["collector"]
    rotated = new_secret("mqtt-rotated")  # the collector already has the new password; the broker not yet
    config = collector_config(
        secure_mosquitto.server,
        influxdb,
        tmp_path,
        **mqtt_security(tmp_path, pki.ca.cert, pki.collector, password=rotated),
    )
    messages, expected = link_probes(25)
    async with running_collector(config, connected=False) as collector:
        await wait_until(lambda: collector.source.connect_failures >= 2, timeout_s=15, what="refusals")
        assert collector.source.connects == 0
        secure_mosquitto.set_password("collector", rotated)
        await wait_until(lambda: collector.source.connects == 1, timeout_s=15, what="connected after the fix")
        await wait_until(lambda: collector.source.connected.is_set(), timeout_s=5, what="connected")
        await asyncio.sleep(0.3)  # SUBACK: a session that never existed only gets what follows its subscription
        for topic, payload in messages:
            publisher_tls.publish(topic, payload)
        publisher_tls.flush()
        await wait_until(lambda: collector.counters["acked"] == len(messages), what="acks")
    assert stored_probes(influxdb) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))
    assert len(collector_log.events("mqtt_connect_refused")) == 1
    assert collector_log.events("mqtt_connected")[0]["failed_attempts_before"] >= 2
    collector_log.assert_free_of(old, rotated)
