"""The UniFi bridge against a controller of our own that serves real ``stat/device`` dumps (unpoller,
MIT) and misbehaves on purpose, through the real mosquitto and the real collector into InfluxDB.

What must hold: every device arrives with the inventory's device id, NIS code and site (by MAC or
name), a device missing from the inventory is stored under what is known and counted, the access
point's client report carries the exact figures of ``stat/sta`` and no client MAC is stored or
logged; a 401 costs one new login; 500, 429, a timeout and a truncated body cost a logged, counted
retry and no wrong point; a poll that cannot be completed publishes nothing at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from tests.bridges.helpers import FakeHttp, json_lines, last_stats, run_bridge
from tests.conftest import DATABASE, collector_config, running_collector, wait_until
from tests.security.pki import CertificateAuthority

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
ADAPTER_DATA = ROOT / "collector" / "ingest" / "adapters" / "unifi" / "testdata"
BRIDGE_DATA = ROOT / "collector" / "bridges" / "unifi" / "testdata"
LAST_SEEN = int(time.time()) - 600  # the devices' check-in, within the collector's window
AP_MAC = "80:22:22:22:22:22"  # the access point of uap_stat_device.json
USERNAME, PASSWORD = "telemetry-ro", "correct horse battery"
CLIENT_MACS = ("02:5e:11:00:00:0", "025e1100000", "02-5e-11-00-00-0")


def device(fixture: str, **changes: Any) -> dict[str, Any]:
    element: dict[str, Any] = json.loads((ADAPTER_DATA / fixture).read_text())
    element["last_seen"] = LAST_SEEN
    element.update(changes)
    return element


class Controller:
    """A classic UniFi controller: /api/login sets the ``unifises`` cookie; every GET needs it.

    With ``unifi_os``, a UniFi OS console: /api/auth/login sets ``TOKEN`` and answers an
    ``x-csrf-token`` header that every request must send back, and the Network API is under
    /proxy/network."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, unifi_os: bool = False) -> None:
        self.unifi_os = unifi_os
        self.cookie = "TOKEN" if unifi_os else "unifises"
        prefix = "/proxy/network" if unifi_os else ""
        self.session: str | None = None
        self.logins = 0
        lobby = device("uap_stat_device.json", name="Lobby AP 2", mac="80:22:22:22:22:99")
        gateway = {"type": "ugw", "name": "gw", "mac": "80:22:22:22:22:aa"}
        self.devices = {
            "default": [device("uap_stat_device.json")],
            "metro": [device("usw_stat_device.json"), lobby, gateway],
        }
        self.stations = json.loads((BRIDGE_DATA / "stat_sta.json").read_text())["data"]
        self.http = FakeHttp(
            [
                ("POST", "/api/auth/login" if unifi_os else "/api/login", self.login),
                ("GET", prefix + "/api/self/sites", self.sites),
                ("GET", prefix + "/api/s/{site}/stat/device", self.stat_device),
                ("GET", prefix + "/api/s/{site}/stat/sta", self.stat_sta),
            ],
            ssl_context,
        )

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("username"), body.get("password")) != (USERNAME, PASSWORD):
            return web.json_response({"meta": {"rc": "error", "msg": "api.err.Invalid"}, "data": []}, status=400)
        self.logins += 1
        self.session = f"session-{self.logins}"
        response = web.json_response({"meta": {"rc": "ok"}, "data": []})
        response.set_cookie(self.cookie, self.session)
        if self.unifi_os:
            response.headers["x-csrf-token"] = f"csrf-{self.session}"
        return response

    def _guard(self, request: web.Request) -> web.Response | None:
        if self.http.expire:
            self.session, self.http.expire = None, False
        csrf_ok = not self.unifi_os or request.headers.get("x-csrf-token") == f"csrf-{self.session}"
        if self.session is None or request.cookies.get(self.cookie) != self.session or not csrf_ok:
            return web.json_response({"meta": {"rc": "error", "msg": "api.err.LoginRequired"}, "data": []}, status=401)
        return None

    async def sites(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        data = [{"name": "default", "desc": "Default"}, {"name": "metro", "desc": "Metro"}]
        return refused or web.json_response({"meta": {"rc": "ok"}, "data": data})

    async def stat_device(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        data = self.devices[request.match_info["site"]]
        return refused or web.json_response({"meta": {"rc": "ok"}, "data": data})

    async def stat_sta(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        data = self.stations if request.match_info["site"] == "default" else []
        return refused or web.json_response({"meta": {"rc": "ok"}, "data": data})


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, InfluxDB, Controller]]:
    folder = tmp_path_factory.mktemp("unifi-bridge")
    mosquitto, influxdb, controller = Mosquitto(folder / "mosquitto"), InfluxDB(folder / "influxdb"), Controller()
    mosquitto.start()
    influxdb.start()
    influxdb.query(f"CREATE DATABASE {DATABASE}")  # whichever test runs first may count rows before writing
    controller.http.start()
    yield mosquitto, influxdb, controller
    controller.http.stop()
    mosquitto.kill()
    influxdb.kill()


def write_config(folder: Path, mosquitto: Mosquitto, controller: Controller, **unifi: Any) -> Path:
    (folder / "password").write_text(PASSWORD + "\n")
    inventory = {
        "format": "city-telemetry.inventory/1",
        "devices": [
            {"device": "ap-21004-0042", "kind": "ap", "nis": "21004", "site": "gare-du-midi", "mac": AP_MAC},
            {"device": "sw-21004-01", "kind": "switch", "nis": "21004", "site": "pop-21004-01", "name": "switch"},
        ],
    }
    (folder / "inventory.json").write_text(json.dumps(inventory))
    settings = {"retries": 3, "retry_delay_s": 0.1, "timeout_s": 1.0, **unifi}
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    config = folder / "bridge.toml"
    config.write_text(
        f'[mqtt]\nport = {mosquitto.port}\n\n[inventory]\nfile = "{folder / "inventory.json"}"\n\n'
        f'[log]\nlevel = "info"\n\n[unifi]\nurl = "{controller.http.url}"\nusername = "{USERNAME}"\n'
        f'password_file = "{folder / "password"}"\n{extra}'
    )
    return config


def rows(influxdb: InfluxDB, query: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if v is not None} for r in influxdb.rows(query, DATABASE)]


async def bridge_poll(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path, **unifi: Any
) -> tuple[int, str, dict[str, Any], int]:
    """One ``--once`` poll with a collector running: exit code, log, stats, messages the collector stored."""
    mosquitto, influxdb, controller = servers
    config = write_config(tmp_path, mosquitto, controller, **unifi)
    async with running_collector(collector_config(mosquitto, influxdb, tmp_path)) as collector:
        code, log = await run_bridge("unifi", config)
        stats = last_stats(json_lines(log))
        expected = stats.get("published", 0)
        await wait_until(lambda: collector.counters["messages_committed"] >= expected, what="the poll stored")
        await asyncio.sleep(0.3)  # anything more would be a message the bridge should not have sent
        committed = collector.counters["messages_committed"]
    assert dict(collector.dead_letters.counts) == {}
    return code, log, stats, committed


def assert_no_client_mac(influxdb: InfluxDB, log: str) -> None:
    dump = json.dumps(
        [rows(influxdb, f'SELECT * FROM "{m}"') for m in ("ap", "ap_radio", "ap_clients", "ap_client_presence")]
    ).lower()
    for mac in CLIENT_MACS:
        assert mac not in dump and mac not in log.lower(), mac


async def test_a_poll_arrives_in_influxdb_placed_by_the_inventory(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    _, influxdb, _ = servers
    code, log, stats, committed = await bridge_poll(servers, tmp_path)
    assert code == 0, log
    # 3 devices (the gateway is skipped) + 2 client reports (one per access point)
    assert (stats["published"], stats["devices_not_in_inventory"], stats["devices_skipped"], committed) == (5, 1, 1, 5)
    assert stats["polls"] == 1 and "polls_failed" not in stats and stats["logins"] == 1

    (ap,) = rows(influxdb, "SELECT * FROM ap WHERE device = 'ap-21004-0042'")
    assert (ap["time"], ap["nis"], ap["site"], ap["kind"]) == (LAST_SEEN * 10**9, "21004", "gare-du-midi", "ap")
    assert (ap["uptime_s"], ap["num_clients"], ap["cpu_pct"], ap["mem_pct"]) == (3_105_845, 6, 24.7, 52.2)
    radios = {r["band"]: r for r in rows(influxdb, "SELECT * FROM ap_radio WHERE device = 'ap-21004-0042'")}
    assert set(radios) == {"2.4", "5"} and (radios["5"]["channel"], radios["5"]["width_mhz"]) == (36, 80)

    ports = rows(influxdb, "SELECT * FROM interface WHERE device = 'sw-21004-01'")
    assert {(p["ifname"], p["nis"], p["site"], p["kind"]) for p in ports} == {
        (f"port{i}", "21004", "pop-21004-01", "switch") for i in (1, 2, 3)
    }
    # not in the inventory: stored under its controller name, NIS unknown, the controller's site
    (lobby,) = rows(influxdb, "SELECT * FROM ap WHERE device = 'Lobby-AP-2'")
    assert (lobby["nis"], lobby["site"], lobby["kind"]) == ("unknown", "metro", "ap")

    (clients,) = rows(influxdb, "SELECT * FROM ap_clients WHERE device = 'ap-21004-0042'")
    assert {k: clients[k] for k in ("nis", "site", "kind", "num_clients", "rssi_min_dbm", "good_rf_clients")} == {
        "nis": "21004",
        "site": "gare-du-midi",
        "kind": "ap",
        "num_clients": 3,
        "rssi_min_dbm": -71.0,
        "good_rf_clients": 2,
    }
    assert clients["rssi_avg_dbm"] == pytest.approx(-59.333) and clients["snr_avg_db"] == pytest.approx(34.667)
    (empty,) = rows(influxdb, "SELECT * FROM ap_clients WHERE device = 'Lobby-AP-2'")
    assert empty["num_clients"] == 0
    (presence,) = rows(influxdb, "SELECT * FROM ap_client_presence WHERE device = 'ap-21004-0042'")
    assert presence["clients"] == 3  # the collector's daily pseudonyms of the three clients
    assert_no_client_mac(influxdb, log)
    assert PASSWORD not in log


async def test_an_expired_session_costs_one_new_login(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    _, influxdb, controller = servers
    controller.http.faults["/api/s/metro/stat/device"] = ["expire"]
    code, log, stats, committed = await bridge_poll(servers, tmp_path)
    assert code == 0, log
    assert (stats["logins"], stats["relogins"], stats["published"], committed) == (2, 1, 5, 5)
    assert any(e.get("event") == "unifi_session_expired" for e in json_lines(log))
    assert len(rows(influxdb, "SELECT * FROM ap WHERE device = 'ap-21004-0042'")) == 1  # the same point again


async def test_500_429_timeout_and_truncation_cost_counted_retries_and_no_wrong_point(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    _, influxdb, controller = servers
    before = len(rows(influxdb, "SELECT * FROM ap_clients WHERE device = 'ap-21004-0042'"))
    controller.http.faults["/api/s/default/stat/sta"] = ["500", "429", "truncated"]
    controller.http.faults["/api/s/metro/stat/device"] = ["timeout"]
    started = time.monotonic()
    code, log, stats, committed = await bridge_poll(servers, tmp_path)
    assert code == 0, log
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After: 1 was waited for
    assert {k: v for k, v in stats.items() if k.startswith("fetch_retries")} == {
        "fetch_retries": 4,
        "fetch_retries_http_error": 1,
        "fetch_retries_rate_limited": 1,
        "fetch_retries_truncated": 1,
        "fetch_retries_timeout": 1,
    }
    assert (stats["published"], committed) == (5, 5)
    retries = [e for e in json_lines(log) if e.get("event") == "unifi_fetch_retry"]
    assert len(retries) == 4 and all(e["hint"] for e in retries)
    reports = rows(influxdb, "SELECT * FROM ap_clients WHERE device = 'ap-21004-0042'")
    assert len(reports) == before + 1 and reports[-1]["num_clients"] == 3 and reports[-1]["good_rf_clients"] == 2
    assert len(rows(influxdb, "SELECT * FROM ap WHERE device = 'ap-21004-0042'")) == 1
    assert_no_client_mac(influxdb, log)


async def test_a_poll_that_cannot_be_completed_publishes_nothing(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    _, influxdb, controller = servers
    before = len(rows(influxdb, "SELECT * FROM ap_clients"))
    # the default site is read whole; the metro site's devices never come
    controller.http.faults["/api/s/metro/stat/device"] = ["500", "500"]
    code, log, stats, committed = await bridge_poll(servers, tmp_path, retries=1)
    assert code == 1
    assert (stats["polls_failed"], stats["fetch_failed_http_error"], stats["fetch_retries"]) == (1, 1, 1)
    assert "published" not in stats and committed == 0
    assert len(rows(influxdb, "SELECT * FROM ap_clients")) == before
    (failed,) = [e for e in json_lines(log) if e.get("event") == "unifi_poll_failed"]
    assert failed["reason"] == "http_error" and "nothing of this poll is published" in failed["hint"]


async def test_a_controller_that_is_away_fails_the_poll_with_a_hint(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    mosquitto, _, controller = servers
    config = write_config(tmp_path, mosquitto, controller, retries=0)
    away = config.read_text().replace(controller.http.url, f"http://127.0.0.1:{free_port()}")
    config.write_text(away)
    code, log = await run_bridge("unifi", config)
    assert code == 1
    stats = last_stats(json_lines(log))
    assert (stats["polls_failed"], stats["fetch_failed_unreachable"]) == (1, 1)
    (failed,) = [e for e in json_lines(log) if e.get("event") == "unifi_poll_failed"]
    assert "check the controller" in failed["hint"]


@pytest.fixture(scope="module")
def tls_controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, Path, str]]:
    """A controller on HTTPS with a certificate no system trusts: the usual self-signed controller."""
    ca = CertificateAuthority(tmp_path_factory.mktemp("controller-pki"), "controller-ca")
    server = ca.issue("controller", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.cert, server.key)
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(server.cert.read_text())).hexdigest()
    controller = Controller(context)
    controller.http.start()
    yield controller, ca.cert, ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    controller.http.stop()


@pytest.mark.parametrize(
    ("tls", "ok"),
    [
        ("", False),  # the system's CAs: refused, never silently accepted
        ("ca_file", True),
        ("fingerprint_sha256", True),
        ("wrong_fingerprint", False),
        ("insecure", True),  # accepted, and logged as an error
    ],
)
async def test_a_self_signed_controller_is_trusted_only_as_configured(
    servers: tuple[Mosquitto, InfluxDB, Controller],
    tls_controller: tuple[Controller, Path, str],
    tmp_path: Path,
    tls: str,
    ok: bool,
) -> None:
    mosquitto = servers[0]
    controller, ca_file, fingerprint = tls_controller
    config = write_config(tmp_path, mosquitto, controller, retries=0)
    section = {
        "": "",
        "ca_file": f'ca_file = "{ca_file}"',
        "fingerprint_sha256": f'fingerprint_sha256 = "{fingerprint}"',
        "wrong_fingerprint": f'fingerprint_sha256 = "{"ab" * 32}"',
        "insecure": "insecure = true",
    }[tls]
    config.write_text(config.read_text() + f"\n[unifi.tls]\n{section}\n")
    code, log = await run_bridge("unifi", config)
    events = json_lines(log)
    stats = last_stats(events)
    if ok:
        assert code == 0 and stats["published"] == 5, log
    else:
        assert code == 1 and stats["fetch_failed_tls"] == 1 and "published" not in stats, log
    loud = [e for e in events if e.get("event") == "tls_verification_disabled"]
    assert [e["level"] for e in loud] == (["error"] if tls == "insecure" else [])


async def test_a_unifi_os_console_gets_its_login_path_prefix_and_csrf_token(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    mosquitto = servers[0]
    console = Controller(unifi_os=True)
    console.http.start()
    try:
        console.http.faults["/proxy/network/api/s/metro/stat/device"] = ["expire"]
        config = write_config(tmp_path, mosquitto, console, api="unifi-os")
        code, log = await run_bridge("unifi", config)
    finally:
        console.http.stop()
    stats = last_stats(json_lines(log))
    assert code == 0 and (stats["published"], stats["logins"], stats["relogins"]) == (5, 2, 1), log
    assert console.http.count("/api/auth/login") == 2 and console.http.count("/proxy/network/api/self/sites") == 1


async def test_a_controller_that_comes_back_is_polled_after_a_doubling_backoff(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    mosquitto, influxdb, controller = servers
    controller.http.faults["/api/self/sites"] = ["500"] * 4  # two polls of two attempts each
    config = write_config(tmp_path, mosquitto, controller, retries=1, backoff_min_s=0.2, period_s=600.0)
    command = [sys.executable, "-m", "collector.app.cli", "bridge", "unifi", "-c", str(config)]
    async with running_collector(collector_config(mosquitto, influxdb, tmp_path)) as collector:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT
        )
        try:
            await wait_until(lambda: collector.counters["messages_committed"] >= 5, what="the third poll stored")
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    events = json_lines(out.decode())
    assert [e["wait_s"] for e in events if e.get("event") == "unifi_backoff"] == [0.2, 0.4]
    stats = last_stats(events)
    assert (stats["polls"], stats["polls_failed"], stats["published"]) == (3, 2, 5)


async def test_a_broker_that_is_away_gets_nothing_queued_and_the_poll_fails(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    mosquitto, _, controller = servers
    config = write_config(tmp_path, mosquitto, controller)
    config.write_text(config.read_text().replace(f"port = {mosquitto.port}", f"port = {free_port()}\nkeepalive_s = 5"))
    code, log = await run_bridge("unifi", config)
    assert code == 1
    stats = last_stats(json_lines(log))
    assert (stats["polls_failed"], stats["publish_unacked"], stats.get("published", 0)) == (1, 5, 0)
    assert any(e.get("event") == "publish_skipped_not_connected" for e in json_lines(log))


async def test_a_clean_exit_is_no_warning(servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path) -> None:
    """Issue 12: a normal disconnect at shutdown is not a warning an operator would alert on. A ``--once``
    run that went through ends with the bridge's own disconnect: logged at info, marked shutdown."""
    mosquitto, _, controller = servers
    code, log = await run_bridge("unifi", write_config(tmp_path, mosquitto, controller))
    assert code == 0, log
    events = json_lines(log)
    disconnects = [e for e in events if e.get("event") == "mqtt_disconnected"]
    assert [(e["level"], e.get("shutdown")) for e in disconnects] == [("info", True)], disconnects
    warned = {e["event"] for e in events if e.get("level") in ("warning", "error")}
    assert warned == {"devices_not_in_inventory"}  # the fixture's Lobby-AP-2, and nothing else


async def test_a_poll_that_lists_no_device_says_so(
    servers: tuple[Mosquitto, InfluxDB, Controller], tmp_path: Path
) -> None:
    """The trial's controller answered data: [] and the bridge counted a good poll, silently."""
    _, _, controller = servers
    kept = controller.devices
    controller.devices = {"default": [], "metro": []}
    try:
        code, log, stats, committed = await bridge_poll(servers, tmp_path, sites=["default"], clients=False)
    finally:
        controller.devices = kept
    assert code == 0 and stats["polls_empty"] == 1 and committed == 0
    (warning,) = [line for line in json_lines(log) if line.get("event") == "unifi_no_devices"]
    assert warning["sites"] == ["default"] and "unifi.sites" in warning["hint"]
