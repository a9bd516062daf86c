"""``run --workers`` on the shipped Mosquitto configuration: each session named after its account
(``use_username_as_clientid``), so each worker has its own account; the ACL blocks for them made by
the recipe of docs/scaling.md, run here as written."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port, write_password_file
from tests.conftest import Publisher
from tests.daemon import start_daemon
from tests.scaling.test_workers import count, metric, readings, stop, wait_count, wait_ready
from tests.security.conftest import new_secret
from tests.security.shipped import COLLECTOR_ACCOUNT, SHIPPED_ACL, gateway, local_copy, with_password

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parents[2]
# docs/scaling.md, "Brokers", Mosquitto: the collector's ACL block once more for each worker account.
RECIPE = """sed -n '/^user city-telemetry$/,/^$/p' "$ACL" | sed "s/^user .*/user city-telemetry-$k/" >> "$ACL\""""


def test_the_recipe_in_the_docs_is_the_one_tested() -> None:
    assert RECIPE in (ROOT / "docs" / "scaling.md").read_text()


def test_two_workers_with_their_own_accounts_on_the_shipped_broker(influxdb: InfluxDB, tmp_path: Path) -> None:
    password = new_secret("mqtt-collector")
    accounts = {f"{COLLECTOR_ACCOUNT}-{k}": password for k in (1, 2)}  # one password, two accounts
    accounts["gw"] = new_secret("mqtt-gw")
    password_file = write_password_file(tmp_path / "passwd", accounts)
    acl = tmp_path / "city-telemetry.acl"
    acl.write_text(SHIPPED_ACL.read_text() + gateway("gw"))
    for k in (1, 2):
        subprocess.run(["sh", "-c", RECIPE], env={"ACL": str(acl), "k": str(k)}, check=True, timeout=10)
    assert acl.read_text().count("\nuser city-telemetry-") == 2
    folder, port = tmp_path / "mosquitto", free_port()
    broker = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_file=acl))
    broker.start()
    try:
        (tmp_path / "mqtt-password").write_text(password)
        health = free_port()
        config = tmp_path / "collector.toml"
        config.write_text(
            f"""
[mqtt]
port = {port}
client_id = "{COLLECTOR_ACCOUNT}"
username = "{COLLECTOR_ACCOUNT}"
password_file = "{tmp_path / "mqtt-password"}"
shared_group = "city"
[influxdb]
url = "{influxdb.url}"
[batch]
max_interval_s = 0.1
[dead_letter]
file = "{tmp_path / "dead-letter.jsonl"}"
[spool]
folder = "{tmp_path / "spool"}"
[health]
listen = "127.0.0.1:{health}"
[kpi]
enabled = false
[ops]
self_stats_every_s = 0
"""
        )
        log = tmp_path / "supervisor.log"
        supervisor = start_daemon(config, log, "--workers", "2")
        wait_ready(health)
        publisher = Publisher(port, "gw", setup=with_password("gw", accounts["gw"]))
        batch = readings(0, 600)
        for topic, payload, _ in batch:
            publisher.publish(topic, payload)
        publisher.close()
        wait_count(influxdb, len(batch))
        deadline = time.monotonic() + 10
        while metric(health, "city_telemetry_acked_total", 0) < len(batch) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metric(health, "city_telemetry_received_total") == len(batch)
        assert metric(health, "city_telemetry_mqtt_connects_total") == 2  # nobody took over a session
        assert stop(supervisor) == 0
        stopped = [json.loads(line) for line in log.read_text().splitlines() if '"collector_stopped"' in line]
        assert sorted(line["worker"] for line in stopped) == [1, 2]
        assert all(line["received"] > 0 for line in stopped)
        assert count(influxdb) == len(batch)
    finally:
        broker.kill()
