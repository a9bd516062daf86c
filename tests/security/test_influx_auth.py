"""The collector against a real influxd with ``[http] auth-enabled = true`` (v1 Basic authentication)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, quote_identifier, quote_string
from tests.conftest import DATABASE, Publisher, collector_config, running_collector, wait_until
from tests.security.conftest import LogFile, basic_token, link_probes, new_secret, stored_probes

pytestmark = pytest.mark.servers


def status_without_credentials(url: str, data: bytes) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


async def test_collector_writes_with_username_and_password_file(
    mosquitto: Mosquitto,
    publisher: Publisher,
    influxdb_auth: InfluxDB,
    tmp_path: Path,
    collector_log: LogFile,
) -> None:
    # Authentication is really on: without credentials, InfluxDB refuses queries and writes.
    assert status_without_credentials(f"{influxdb_auth.url}/query", b"q=SHOW+DATABASES") == 401
    assert status_without_credentials(f"{influxdb_auth.url}/write?db={DATABASE}", b"m v=1") == 401
    assert influxdb_auth.admin is not None
    user, password = influxdb_auth.admin
    password_file = tmp_path / "influxdb-password"
    password_file.write_text(password + "\n")
    config = collector_config(
        mosquitto,
        influxdb_auth,
        tmp_path,
        INFLUXDB__USERNAME=json.dumps(user),
        INFLUXDB__PASSWORD_FILE=json.dumps(str(password_file)),
    )
    messages, expected = link_probes(30)
    async with running_collector(config) as collector:
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.flush()
        await wait_until(lambda: collector.counters["acked"] == len(messages), what="acks")
    # The collector created the database and wrote into it, authenticated.
    assert stored_probes(influxdb_auth) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))
    assert len(collector_log.events("influxdb_database_created")) == 1
    collector_log.assert_free_of(password, basic_token(user, password))


async def test_wrong_password_is_retried_not_dropped_and_not_logged(
    mosquitto: Mosquitto,
    publisher: Publisher,
    influxdb_auth: InfluxDB,
    tmp_path: Path,
    collector_log: LogFile,
) -> None:
    # The operator's set-up: a database and a user that may only write to it.
    old, rotated = new_secret("influx-old"), new_secret("influx-rotated") + "'\\\"$:"  # quoting, too
    influxdb_auth.query(f"CREATE DATABASE {quote_identifier(DATABASE)}")
    influxdb_auth.query(f"CREATE USER collector WITH PASSWORD {quote_string(old)}")
    influxdb_auth.query(f"GRANT WRITE ON {quote_identifier(DATABASE)} TO collector")
    # The collector has the new password (here from the environment) before InfluxDB does.
    config = collector_config(
        mosquitto,
        influxdb_auth,
        tmp_path,
        INFLUXDB__USERNAME='"collector"',
        INFLUXDB__PASSWORD=rotated,
        SPOOL__AFTER_S="60",
    )
    messages, expected = link_probes(30)
    async with running_collector(config) as collector:
        for topic, payload in messages:
            publisher.publish(topic, payload)
        publisher.flush()
        await wait_until(lambda: collector.writer.retries >= 3, timeout_s=15, what="refused writes")
        assert collector.counters["acked"] == 0  # refused is not done: the broker keeps the messages
        assert influxdb_auth.query(f"SELECT count(*) FROM {quote_identifier(DATABASE)}..link_probe") == []
        influxdb_auth.query(f"SET PASSWORD FOR collector = {quote_string(rotated)}")
        await wait_until(lambda: collector.counters["acked"] == len(messages), timeout_s=15, what="acks")
    assert stored_probes(influxdb_auth) == sorted(expected, key=lambda r: json.dumps(r, sort_keys=True))
    failed = collector_log.events("influxdb_write_failed")
    assert len(failed) == 1, "one line per distinct error, not one per retry"
    assert failed[0]["error"].startswith("HTTP 401") and "authorization failed" in failed[0]["error"]
    assert len(collector_log.events("influxdb_recovered")) == 1
    assert influxdb_auth.admin is not None
    collector_log.assert_free_of(old, rotated, basic_token("collector", rotated), influxdb_auth.admin[1])
