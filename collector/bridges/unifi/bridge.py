"""``city-telemetry bridge unifi``: poll a UniFi Network controller, publish each device on MQTT.

One poll: log in if there is no session, read the site list (``api/self/sites``), then for every
site ``stat/device`` and (with ``clients``) ``stat/sta``. Only when every request of the poll has
given a complete answer is anything published (a half-read poll would store some devices and not
others, and per-AP client counts that miss a site): one message per access point and switch, the
controller's element as it is, on ``unifi/{nis}/{site}/{device}/stat`` (the ``unifi`` adapter reads
it), and one canonical ``ap.clients/1`` per access point built from ``stat/sta``.

Failures, each logged with a hint and counted (``bridge_stats``):

- 401 on a request: the session expired; log in again once and repeat the request.
- 5xx, a timeout, a connection error, a truncated or non-JSON body, ``meta.rc`` = ``error``: the
  request is retried ``retries`` times, ``retry_delay_s`` apart; then the poll is abandoned (nothing
  published) and the next one waits ``backoff_min_s``, doubling up to ``backoff_max_s``.
- 429 (UniFi OS rate-limits logins): waited for its Retry-After, then as above.

Devices are placed through the inventory by MAC address, then name (``DeviceIndex``). A device
missing from it is published all the same, under its sanitised controller name, NIS ``unknown``
and the controller's site name, and counted as ``devices_not_in_inventory``. Gateways and other
types the adapter does not read are counted (``devices_skipped``) and not published.

Client MAC addresses (``stat/sta``) go only into the ``ap.clients/1`` payload, where the collector
replaces them by keyed daily pseudonyms (docs/privacy.md); the bridge never logs or writes one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
from pydantic import ValidationError

from collector.bridges.common import (
    Backoff,
    DeviceIndex,
    FetchError,
    HttpClient,
    MqttPublisher,
    Stats,
    count_not_in_inventory,
    describe,
    json_body,
    mac_key,
    poll_loop,
    retry_after,
    transport_error,
    with_retries,
)
from collector.bridges.unifi.config import UnifiConfig
from schemas.canonical import ApClients
from schemas.macs import MAC_WHOLE

log = structlog.get_logger("collector.bridges.unifi")

KINDS = {"uap": "ap", "usw": "switch"}
BANDS = {"ng": "2.4", "na": "5", "6e": "6"}
MAX_CLIENTS = 2048  # ap.clients/1 carries at most this many; beyond it, the summary only


@dataclass
class SiteData:
    name: str
    devices: list[dict[str, Any]]
    stations: list[dict[str, Any]]


@dataclass
class Built:
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    not_in_inventory: list[str] = field(default_factory=list)  # our device ids, for the log
    skipped_types: dict[str, int] = field(default_factory=dict)
    clients_skipped: int = 0  # wireless clients whose band or signal could not be read


def rfc3339(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns // 1_000_000) % 1000:03d}Z"


def _int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def client_report(device: str, stations: list[dict[str, Any]], ts: str, seq: int) -> tuple[dict[str, Any], int]:
    """One ``ap.clients/1`` for an access point's wireless clients, and how many were unreadable."""
    clients: list[dict[str, Any]] = []
    skipped = 0
    for sta in stations:
        band, signal, mac = BANDS.get(str(sta.get("radio"))), _int(sta.get("signal")), sta.get("mac")
        if (
            band is None
            or signal is None
            or not -130 <= signal <= 40
            or not isinstance(mac, str)
            or MAC_WHOLE.fullmatch(mac) is None
        ):
            skipped += 1
            continue
        entry: dict[str, Any] = {"mac": mac, "band": band, "rssi_dbm": signal}
        noise = _int(sta.get("noise"))
        if noise is not None and 0 <= signal - noise <= 100:
            entry["snr_db"] = signal - noise
        for source, target in (("rx_bytes", "rx_bytes"), ("tx_bytes", "tx_bytes"), ("uptime", "connected_s")):
            value = _int(sta.get(source))
            if value is not None and 0 <= value < 2**63:
                entry[target] = value
        clients.append(entry)
    signals = [c["rssi_dbm"] for c in clients]
    snrs = [c["snr_db"] for c in clients if "snr_db" in c]
    report: dict[str, Any] = {
        "schema": "ap.clients/1",
        "device_id": device,
        "ts": ts,
        "seq": seq,
        "num_clients": len(clients) + skipped,
    }
    if signals:
        report["rssi_avg_dbm"] = round(sum(signals) / len(signals), 3)
        report["rssi_min_dbm"] = min(signals)
        report["good_rf_clients"] = sum(1 for c in clients if c["rssi_dbm"] >= -67 and c.get("snr_db", 25) >= 25)
    if snrs:
        report["snr_avg_db"] = round(sum(snrs) / len(snrs), 3)
    if clients and len(clients) <= MAX_CLIENTS:
        report["clients"] = clients
    return report, skipped


def build_messages(sites: list[SiteData], index: DeviceIndex, cfg: UnifiConfig, now_ns: int) -> Built:
    """Everything one complete poll publishes. Pure: no I/O, no clock."""
    built = Built()
    ts, seq = rfc3339(now_ns), now_ns // 1_000_000_000
    for site in sites:
        by_ap: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for sta in site.stations:
            ap = mac_key(sta.get("ap_mac")) if isinstance(sta.get("ap_mac"), str) else None
            if sta.get("is_wired") is not True and ap is not None:
                by_ap[ap].append(sta)
        for element in site.devices:
            device_type = element.get("type")
            if device_type not in KINDS:
                key = str(device_type)[:16]
                built.skipped_types[key] = built.skipped_types.get(key, 0) + 1
                continue
            name = element.get("name") if isinstance(element.get("name"), str) else None
            mac = element.get("mac") if isinstance(element.get("mac"), str) else None
            place = index.place(mac=mac, name=name, site=site.name, kind=KINDS[str(device_type)])
            if not place.known:
                built.not_in_inventory.append(place.device)
            values = {"nis": place.nis, "site": place.site, "device": place.device, "kind": place.kind}
            built.messages.append((cfg.device_topic.format(**values), json.dumps(element).encode()))
            if cfg.clients and device_type == "uap":
                report, skipped = client_report(place.device, by_ap.get(mac_key(mac) or "", []), ts, seq)
                built.clients_skipped += skipped
                try:
                    ApClients.model_validate(report)
                except ValidationError as error:  # not expected: the report is built to the schema
                    built.skipped_types["invalid_client_report"] = (
                        built.skipped_types.get("invalid_client_report", 0) + 1
                    )
                    log.error("client_report_invalid", device=place.device, error=str(error).splitlines()[0])
                    continue
                built.messages.append((cfg.clients_topic.format(**values), json.dumps(report).encode()))
    return built


class UnifiController(HttpClient):
    """An HTTP session with one controller: login, and GETs that return the ``data`` list."""

    def __init__(self, cfg: UnifiConfig, stats: Stats) -> None:
        super().__init__(cfg.tls, "unifi", stats)
        self.cfg = cfg
        self.prefix = "/proxy/network" if cfg.api == "unifi-os" else ""
        self.logged_in = False
        self.csrf: str | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # controllers are often reached by IP address
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
        )

    def _headers(self) -> dict[str, str]:
        return {"x-csrf-token": self.csrf} if self.csrf else {}

    async def login(self) -> None:
        assert self.session is not None and self.cfg.password is not None
        path = "/api/auth/login" if self.cfg.api == "unifi-os" else "/api/login"
        body = {"username": self.cfg.username, "password": self.cfg.password.get_secret_value(), "rememberMe": True}
        self.stats.add("logins")
        try:
            async with self.session.post(self.cfg.url + path, json=body, ssl=self.ssl) as response:
                await response.read()
                if response.status == 429:
                    raise FetchError(
                        "rate_limited",
                        f"POST {path}: HTTP 429",
                        retry_after(response.headers.get("Retry-After"), 30.0, self.cfg.backoff_max_s),
                    )
                if response.status in (400, 401, 403):
                    raise FetchError("login_refused", f"POST {path}: HTTP {response.status}")
                if response.status != 200:
                    raise FetchError("http_error", f"POST {path}: HTTP {response.status}")
                self.csrf = response.headers.get("x-csrf-token") or self.csrf
        except (aiohttp.ClientError, TimeoutError) as error:
            reason = "unreachable"
            if isinstance(error, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
                reason = "tls"
            raise FetchError(reason, f"POST {path}: {describe(error)}") from None
        self.logged_in = True
        log.info("unifi_logged_in", url=self.cfg.url, api=self.cfg.api)

    async def get(self, path: str) -> list[dict[str, Any]]:
        """The ``data`` list of one GET, retried as the module docstring says; FetchError if it never comes."""
        relogged = False

        async def once() -> list[dict[str, Any]]:
            nonlocal relogged
            if not self.logged_in:
                await self.login()
            try:
                return await self._get_once(path)
            except FetchError as error:
                if error.reason != "unauthorized" or relogged:
                    raise
                # the session expired: log in again once and repeat, not counted as a retry
                self.stats.add("relogins")
                log.warning("unifi_session_expired", path=path, hint="logging in again once")
                self.logged_in, relogged = False, True
            await self.login()
            return await self._get_once(path)

        return await with_retries(
            once,
            path=path,
            final=("login_refused", "unauthorized", "tls"),
            retries=self.cfg.retries,
            retry_delay_s=self.cfg.retry_delay_s,
            stats=self.stats,
            event="unifi_fetch_retry",
            hint="the controller answered badly or not at all; retrying",
        )

    async def _get_once(self, path: str) -> list[dict[str, Any]]:
        assert self.session is not None
        full = self.prefix + path
        try:
            async with self.session.get(self.cfg.url + full, ssl=self.ssl, headers=self._headers()) as response:
                body = await response.read()
                status = response.status
                wait = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise transport_error(error, f"GET {full}") from None
        if status == 401:
            raise FetchError("unauthorized", f"GET {full}: HTTP 401")
        if status == 429:
            raise FetchError("rate_limited", f"GET {full}: HTTP 429", retry_after(wait, 30.0, self.cfg.backoff_max_s))
        if status != 200:
            raise FetchError("http_error", f"GET {full}: HTTP {status}")
        doc = json_body(body, f"GET {full}")
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise FetchError("bad_answer", f"GET {full}: not a {{meta, data: [...]}} answer")
        meta = doc.get("meta")
        if isinstance(meta, dict) and meta.get("rc") not in (None, "ok"):
            if meta.get("msg") == "api.err.LoginRequired":
                raise FetchError("unauthorized", f"GET {full}: {meta.get('msg')}")
            raise FetchError("controller_error", f"GET {full}: meta.rc={meta.get('rc')!r} msg={meta.get('msg')!r}")
        return [item for item in doc["data"] if isinstance(item, dict)]

    async def poll(self, wanted: list[str], with_clients: bool) -> list[SiteData]:
        sites = [s.get("name") for s in await self.get("/api/self/sites")]
        names = [s for s in sites if isinstance(s, str) and (not wanted or s in wanted)]
        missing = sorted(set(wanted) - set(names))
        if missing:
            log.warning("unifi_sites_missing", sites=missing, hint="unifi.sites names sites this account cannot see")
        result = []
        for name in names:
            devices = await self.get(f"/api/s/{name}/stat/device")
            stations = await self.get(f"/api/s/{name}/stat/sta") if with_clients else []
            result.append(SiteData(name, devices, stations))
        return result


class UnifiBridge:
    def __init__(self, cfg: UnifiConfig, index: DeviceIndex, publisher: MqttPublisher, stats: Stats) -> None:
        self.cfg = cfg
        self.index = index
        self.publisher = publisher
        self.stats = stats

    async def poll_once(self, controller: UnifiController) -> bool:
        """One poll, published whole or not at all. True when every message was acknowledged."""
        self.stats.add("polls")
        try:
            sites = await controller.poll(self.cfg.sites, self.cfg.clients)
        except FetchError as error:
            self.stats.poll_failed(error.reason)
            log.error(
                "unifi_poll_failed",
                reason=error.reason,
                detail=error.detail,
                hint="nothing of this poll is published; check the controller's URL, account and health",
            )
            return False
        built = build_messages(sites, self.index, self.cfg, time.time_ns())
        count_not_in_inventory(
            self.stats,
            built.not_in_inventory,
            hint="published with nis 'unknown': add them to the inventory with their 'mac' or 'name'",
        )
        for device_type, count in built.skipped_types.items():
            self.stats.add("devices_skipped", count)
            log.info("devices_skipped", type=device_type, count=count, hint="the unifi adapter reads uap and usw only")
        if built.clients_skipped:
            self.stats.add("clients_unreadable", built.clients_skipped)
        devices = sum(len(s.devices) for s in sites)
        self.stats.add("devices", devices)
        if not devices:  # an answer, but an empty one: a wrong site name or an account that sees nothing
            self.stats.add("polls_empty")
            log.warning(
                "unifi_no_devices",
                sites=[s.name for s in sites],
                hint="the controller listed no device: check unifi.sites and what the account may see",
            )
        return await self.publisher.publish_poll(built.messages, self.cfg.publish_timeout_s)

    async def run(self, stop: asyncio.Event, once: bool) -> bool:
        async with UnifiController(self.cfg, self.stats) as controller:
            return await poll_loop(
                lambda: self.poll_once(controller),
                stop=stop,
                once=once,
                period_s=self.cfg.period_s,
                backoff=Backoff(self.cfg.backoff_min_s, self.cfg.backoff_max_s),
                stats=self.stats,
                event="unifi_backoff",
            )
