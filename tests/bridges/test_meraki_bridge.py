"""The Meraki bridge against a Dashboard API and a dashboard of our own, through the real mosquitto
and the real collector into InfluxDB.

Dashboard API: every page of device statuses (linked by the ``Link`` header) and channel
utilisation arrive as ``device_state`` and ``device_event`` points with the inventory's NIS code and
site (by serial); requests are spaced to the configured rate; 429 waits its Retry-After, 500, a
timeout and a truncated body cost counted retries; a poll whose second page never comes publishes
nothing, not even the first page. Webhooks: the right secret gives 200 and the alert stored at its
``occurredAt``; a wrong secret or a body that is not JSON is refused (4xx, counted) and publishes
nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from tests.bridges.helpers import ROOT, FakeHttp, json_lines, last_stats, run_bridge
from tests.conftest import DATABASE, collector_config, running_collector, wait_until

pytestmark = pytest.mark.servers

DATA = ROOT / "collector" / "bridges" / "meraki" / "testdata"
WEBHOOK = ROOT / "collector" / "ingest" / "adapters" / "meraki" / "testdata" / "aps_went_down.json"
ORG, API_KEY, SECRET = "549236", "0123456789abcdef0123456789abcdef01234567", "not-a-real-secret"
STATUSES = f"/api/v1/organizations/{ORG}/devices/statuses"
UTILIZATION = f"/api/v1/organizations/{ORG}/wireless/devices/channelUtilization/byDevice"
INVENTORY = [
    {"device": "ap-21004-0101", "kind": "ap", "nis": "21004", "site": "grand-place", "serial": "Q3AB-CD12-EF34"},
    {"device": "ap-21004-0102", "kind": "ap", "nis": "21004", "site": "grand-place", "serial": "Q3AB-CD12-EF35"},
    {"device": "sw-21004-07", "kind": "switch", "nis": "21004", "site": "grand-place", "serial": "Q2HP-ABCD-0001"},
]


class Dashboard:
    """The Dashboard API: Bearer key required, statuses in two pages linked by ``Link``."""

    def __init__(self) -> None:
        self.pages = [json.loads((DATA / f"devices_statuses_page{n}.json").read_text()) for n in (1, 2)]
        self.utilization = json.loads((DATA / "channel_utilization_by_device.json").read_text())
        self.queries: list[dict[str, str]] = []
        self.http = FakeHttp([("GET", STATUSES, self.statuses), ("GET", UTILIZATION, self.channels)])

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"errors": ["Invalid API key"]}, status=401)
        return None

    async def statuses(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        page = 2 if request.query.get("startingAfter") == "Q3AB-CD12-EF35" else 1
        headers = {}
        if page == 1:
            following = f"{self.http.url}{STATUSES}?perPage=2&startingAfter=Q3AB-CD12-EF35"
            headers["Link"] = f"<{following}>; rel=next"
        return self._refused(request) or web.json_response(self.pages[page - 1], headers=headers)

    async def channels(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        return self._refused(request) or web.json_response(self.utilization)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, InfluxDB, Dashboard]]:
    folder = tmp_path_factory.mktemp("meraki-bridge")
    mosquitto, influxdb, dashboard = Mosquitto(folder / "mosquitto"), InfluxDB(folder / "influxdb"), Dashboard()
    mosquitto.start()
    influxdb.start()
    influxdb.query(f"CREATE DATABASE {DATABASE}")  # whichever test runs first may count rows before writing
    dashboard.http.start()
    yield mosquitto, influxdb, dashboard
    dashboard.http.stop()
    mosquitto.kill()
    influxdb.kill()


def write_config(folder: Path, mosquitto: Mosquitto, dashboard: Dashboard, webhook_port: int = 0, **api: Any) -> Path:
    (folder / "api-key").write_text(API_KEY + "\n")
    (folder / "secret").write_text(SECRET + "\n")
    (folder / "inventory.json").write_text(json.dumps({"format": "city-telemetry.inventory/1", "devices": INVENTORY}))
    settings = {"retries": 3, "retry_delay_s": 0.1, "timeout_s": 1.0, "max_requests_per_s": 10.0, **api}
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    text = (
        f'[mqtt]\nport = {mosquitto.port}\n\n[inventory]\nfile = "{folder / "inventory.json"}"\n\n'
        f'[meraki.api]\nurl = "{dashboard.http.url}/api/v1"\norganization_id = "{ORG}"\n'
        f'api_key_file = "{folder / "api-key"}"\n{extra}'
    )
    if webhook_port:
        text += f'\n[meraki.webhook]\nlisten = "127.0.0.1:{webhook_port}"\nshared_secret_file = "{folder / "secret"}"\n'
    config = folder / "bridge.toml"
    config.write_text(text)
    return config


def rows(influxdb: InfluxDB, query: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if v is not None} for r in influxdb.rows(query, DATABASE)]


async def bridge_poll(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path, **api: Any
) -> tuple[int, str, dict[str, Any], int]:
    mosquitto, influxdb, dashboard = servers
    config = write_config(tmp_path, mosquitto, dashboard, **api)
    async with running_collector(collector_config(mosquitto, influxdb, tmp_path)) as collector:
        code, log = await run_bridge("meraki", config)
        stats = last_stats(json_lines(log))
        await wait_until(lambda: collector.counters["messages_committed"] >= stats.get("published", 0), what="stored")
        await asyncio.sleep(0.3)
        committed = collector.counters["messages_committed"]
    assert dict(collector.dead_letters.counts) == {}
    return code, log, stats, committed


async def test_a_dashboard_poll_of_every_page_arrives_in_influxdb(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    _, influxdb, dashboard = servers
    started_ns = time.time_ns()
    code, log, stats, committed = await bridge_poll(servers, tmp_path, per_page=3)
    ended_ns = time.time_ns()
    assert code == 0, log
    # 4 states (2 pages) + 2 channel-utilisation events (2 bands of one AP)
    assert (stats["published"], stats["requests"], stats["devices_not_in_inventory"], committed) == (6, 3, 1, 6)
    assert dashboard.queries[-3]["perPage"] == "3" and dashboard.queries[-1]["interval"] == "300"

    states = {r["device"]: r for r in rows(influxdb, "SELECT * FROM device_state")}
    assert {d: (r["nis"], r["site"], r["kind"], r["state"], r["up"], r["reason"]) for d, r in states.items()} == {
        "ap-21004-0101": ("21004", "grand-place", "ap", "online", 1, "meraki dashboard: online"),
        "ap-21004-0102": ("21004", "grand-place", "ap", "online", 1, "meraki dashboard: alerting"),
        "sw-21004-07": ("21004", "grand-place", "switch", "offline", 0, "meraki dashboard: offline"),
        # not in the inventory: its serial, NIS unknown, its network as the site, kind from productType
        "Q3AB-ZZZZ-0009": ("unknown", "L_6468665999", "ap", "offline", 0, "meraki dashboard: dormant"),
    }
    times = {r["time"] for r in states.values()}
    assert len(times) == 1 and started_ns <= times.pop() <= ended_ns  # stamped at the poll

    events = {r["type"]: r for r in rows(influxdb, "SELECT * FROM device_event WHERE device = 'ap-21004-0101'")}
    assert {t: (r["attr_wifi_pct_f"], r["attr_non_wifi_pct_f"], r["attr_total_pct_f"]) for t, r in events.items()} == {
        "meraki.channel_utilization.band_2_4": (41.5, 3.25, 44.75),
        "meraki.channel_utilization.band_5": (12.0, 0.5, 12.5),
    }
    assert {(r["nis"], r["site"], r["attr_band_s"]) for r in events.values()} == {
        ("21004", "grand-place", "2.4"),
        ("21004", "grand-place", "5"),
    }
    assert API_KEY not in log


async def test_requests_are_spaced_to_the_rate_and_429_waits_its_retry_after(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    _, influxdb, dashboard = servers
    dashboard.http.faults[STATUSES] = ["429", "500", "truncated", "timeout"]
    first = len(dashboard.http.requests)
    code, log, stats, committed = await bridge_poll(servers, tmp_path, per_page=3, max_requests_per_s=4.0, retries=4)
    assert code == 0, log
    assert {k: v for k, v in stats.items() if k.startswith("fetch_retries")} == {
        "fetch_retries": 4,
        "fetch_retries_rate_limited": 1,
        "fetch_retries_http_error": 1,
        "fetch_retries_truncated": 1,
        "fetch_retries_timeout": 1,
    }
    assert (stats["requests"], stats["published"], committed) == (7, 6, 6)
    made = [t for t, _, _ in dashboard.http.requests[first:]]
    gaps = [b - a for a, b in itertools.pairwise(made)]
    # 4 requests/s: the bridge starts requests at least 0.25 s apart. The fake dashboard sees
    # them on arrival, which a loaded machine can delay by tens of milliseconds (CI saw one
    # arrive 66 ms late: gaps 0.32 then 0.18). So every span of k requests must last 0.25 k s
    # less one arrival delay; unspaced requests (gaps of a few ms) still fail this.
    arrival_slack_s = 0.15
    shortfalls = [0.25 * (j - i) - (made[j] - made[i]) for i in range(len(made)) for j in range(i + 1, len(made))]
    assert max(shortfalls) <= arrival_slack_s, gaps
    assert gaps[0] >= 1.0 - arrival_slack_s, gaps  # the 429's Retry-After: 1 (0.25 s if ignored)
    assert len(rows(influxdb, "SELECT * FROM device_state WHERE device = 'ap-21004-0101'")) >= 1


async def test_a_poll_whose_second_page_never_comes_publishes_nothing(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    _, influxdb, dashboard = servers
    before = len(rows(influxdb, "SELECT * FROM device_state"))
    dashboard.http.faults[STATUSES] = [""] + ["500"] * 2  # page 1 answers, page 2 fails twice
    code, log, stats, committed = await bridge_poll(servers, tmp_path, per_page=3, retries=1)
    assert code == 1, log
    assert (stats["polls_failed"], stats["fetch_failed_http_error"], stats["fetch_retries"]) == (1, 1, 1)
    assert "published" not in stats and committed == 0
    assert len(rows(influxdb, "SELECT * FROM device_state")) == before


async def test_a_retry_after_beyond_the_limit_fails_the_poll_at_once(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    _, _, dashboard = servers
    dashboard.http.faults[STATUSES] = ["429-long"]
    code, log, stats, committed = await bridge_poll(servers, tmp_path, retry_after_max_s=60.0)
    assert code == 1, log
    assert (stats["polls_failed"], stats["fetch_failed_rate_limited_too_long"], committed) == (1, 1, 0)
    assert "fetch_retries" not in stats  # an hour's wait is not retried after a second


async def test_webhooks_with_the_right_secret_are_stored_and_the_others_refused(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    mosquitto, influxdb, dashboard = servers
    port = free_port()
    config = write_config(tmp_path, mosquitto, dashboard, webhook_port=port, enabled=False)
    occurred = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=250_000)
    alert = json.loads(WEBHOOK.read_text())
    alert["occurredAt"] = occurred.isoformat().replace("+00:00", "Z")
    alert["deviceSerial"] = "Q3AB-CD12-EF35"  # ap-21004-0102 in the inventory
    url = f"http://127.0.0.1:{port}/meraki/webhook"
    seen: list[tuple[str, bytes | bytearray]] = []  # what reaches the broker, read by a subscriber of our own
    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-watcher")
    watcher.on_message = lambda client, userdata, message: seen.append((message.topic, message.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("meraki/#", qos=1)
    watcher.loop_start()
    async with running_collector(collector_config(mosquitto, influxdb, tmp_path)) as collector:
        command = [sys.executable, "-m", "collector.app.cli", "bridge", "meraki", "-c", str(config)]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env=os.environ
        )
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(100):  # the server is up within a few seconds
                    try:
                        async with session.post(url, data=b"{") as response:
                            assert response.status == 400
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
                async with session.post(url, data=b"{" + b" " * 300_000 + b"}") as response:
                    assert response.status == 413
                wrong = {**alert, "sharedSecret": "guessed"}
                async with session.post(url, json=wrong) as response:
                    assert response.status == 401
                missing = {k: v for k, v in alert.items() if k != "sharedSecret"}
                async with session.post(url, json=missing) as response:
                    assert response.status == 401
                started = time.monotonic()
                async with session.post(url, json=alert) as response:
                    assert response.status == 200 and await response.json() == {"ok": True}
                answered_s = time.monotonic() - started
            await wait_until(lambda: collector.counters["messages_committed"] >= 1, what="the alert stored")
            await asyncio.sleep(0.3)
            assert collector.counters["messages_committed"] == 1  # the refused ones published nothing
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(process.communicate(), 30)
    watcher.loop_stop()
    watcher.disconnect()
    assert process.returncode == 0
    (published,) = seen  # the refused ones published nothing
    assert published[0] == "meraki/21004/grand-place/ap-21004-0102/alert"
    assert json.loads(published[1]) == {k: v for k, v in alert.items() if k != "sharedSecret"}
    assert answered_s < 1.0  # measured on a 2-core shared machine; Meraki's own timeout is not published
    log = out.decode()
    stats = last_stats(json_lines(log))
    assert (stats["webhooks"], stats["webhooks_refused"], stats["webhooks_published"]) == (5, 4, 1)
    assert (stats["webhooks_refused_wrong_secret"], stats["webhooks_refused_bad_json"]) == (2, 1)
    assert stats["webhooks_refused_too_large"] == 1
    assert SECRET not in log and "guessed" not in log

    (state,) = rows(influxdb, "SELECT * FROM device_state WHERE device = 'ap-21004-0102' AND reason = 'APs went down'")
    assert (state["time"], state["nis"], state["site"], state["kind"], state["state"]) == (
        int(occurred.timestamp()) * 10**9 + 250_000_000,
        "21004",
        "grand-place",
        "ap",
        "offline",
    )
    (event,) = rows(influxdb, "SELECT * FROM device_event WHERE device = 'ap-21004-0102' AND type = 'device.down'")
    assert (event["severity"], event["attr_alert_type_id_s"]) == ("critical", "stopped_reporting")


async def test_a_poll_that_lists_no_device_says_so(
    servers: tuple[Mosquitto, InfluxDB, Dashboard], tmp_path: Path
) -> None:
    """The trial's organisation answered [] and the bridge counted a good poll, silently."""
    _, _, dashboard = servers
    kept = dashboard.pages
    dashboard.pages = [[], []]
    try:
        code, log, stats, _ = await bridge_poll(servers, tmp_path)
    finally:
        dashboard.pages = kept
    assert code == 0 and stats["polls_empty"] == 1
    (warning,) = [line for line in json_lines(log) if line.get("event") == "meraki_no_devices"]
    assert "organization_id" in warning["hint"]
