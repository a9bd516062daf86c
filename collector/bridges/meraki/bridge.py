"""``city-telemetry bridge meraki``: Meraki webhooks and Dashboard API polls onto MQTT.

**Webhooks.** An HTTP server takes the dashboard's alert POSTs on ``webhook.path``. A body that is
not a JSON object (400), larger than ``max_body_bytes`` (413) or whose ``sharedSecret`` is not the
configured one (401, compared in constant time) is refused, counted and publishes nothing; the
secret sent is never logged. An accepted alert loses its ``sharedSecret`` and is published at QoS 1
on ``meraki/{nis}/{site}/{device}/alert`` (the ``meraki`` adapter reads it); the answer is 200 once
the broker has acknowledged it, 503 if it has not within ``ack_timeout_s`` (Meraki then sends it
again; a repeated alert is the same stored point). Waiting for the PUBACK costs milliseconds on a
healthy broker and means a 200 never hides a lost alert.

**Dashboard API.** Every ``api.period_s``: ``GET /organizations/{id}/devices/statuses`` and
``GET /organizations/{id}/wireless/devices/channelUtilization/byDevice``, every page (the ``Link``
header's ``next``, never built by us), at most ``max_requests_per_s`` requests a second (Meraki
allows 10 per organisation, shared by every application). A 429 waits its ``Retry-After`` (at
most ``retry_after_max_s``); a 5xx, timeout or truncated body is retried ``retries`` times; then the
poll is abandoned and nothing of it is published. A complete poll gives:

- per device, a canonical ``device.state/1`` (``online``; ``alerting`` is online with that reason;
  ``offline`` and ``dormant`` are ``offline``), stamped at the poll;
- per access point and band, a ``device.event/1`` of type ``meraki.channel_utilization.band_<b>``
  with the ``wifi_pct``, ``non_wifi_pct`` and ``total_pct`` of the last interval: the canonical
  ``ap.metrics/1`` needs a radio's channel, width and power and the AP's uptime, which this
  endpoint does not give (docs/bridges.md, "Limits").

Devices are placed through the inventory by serial, then MAC address, then name. A device missing
from it is published under its sanitised serial, NIS ``unknown`` and its network id as the site,
and counted. Client data: webhooks may carry client MACs in ``alertData``; the adapter never stores
them (collector/ingest/adapters/meraki/README.md) and this bridge never logs them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from collector.bridges.common import (
    Backoff,
    DeviceIndex,
    FetchError,
    HttpClient,
    MqttPublisher,
    Stats,
    count_not_in_inventory,
    json_body,
    poll_loop,
    retry_after,
    transport_error,
    with_retries,
)
from collector.bridges.meraki.config import ApiConfig, MerakiConfig, WebhookConfig
from collector.bridges.unifi.bridge import rfc3339

log = structlog.get_logger("collector.bridges.meraki")

PRODUCT_KINDS = {
    "wireless": "ap",
    "switch": "switch",
    "appliance": "router",
    "cellularGateway": "router",
    "camera": "camera",
    "sensor": "sensor",
}
STATES = {"online": "online", "alerting": "online", "offline": "offline", "dormant": "offline"}
_BAND = re.compile(r"^[0-9]{1,2}(\.[0-9])?\Z")  # "2.4", "5", "6": what makes an event type of ours
INTERVALS = (300, 600, 3600, 7200, 14400, 21600)  # what channelUtilization accepts as interval


@dataclass
class Built:
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    not_in_inventory: list[str] = field(default_factory=list)
    skipped: int = 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def build_messages(
    statuses: list[dict[str, Any]],
    utilization: list[dict[str, Any]],
    index: DeviceIndex,
    cfg: MerakiConfig,
    now_ns: int,
) -> Built:
    """Everything one complete Dashboard poll publishes. Pure: no I/O, no clock."""
    built = Built()
    ts, seq = rfc3339(now_ns), now_ns // 1_000_000_000
    kinds: dict[str, str] = {}
    seen: set[str] = set()

    def place(d: dict[str, Any], kind: str) -> tuple[dict[str, str], bool]:
        network = d.get("network")
        network_id = _text(d.get("networkId")) or (_text(network.get("id")) if isinstance(network, dict) else None)
        p = index.place(
            serial=_text(d.get("serial")),
            mac=_text(d.get("mac")),
            name=_text(d.get("name")),
            site=network_id,
            kind=kind,
        )
        if not p.known and p.device not in seen:
            seen.add(p.device)
            built.not_in_inventory.append(p.device)
        return {"nis": p.nis, "site": p.site, "device": p.device, "kind": p.kind}, p.known

    for d in statuses:
        state = STATES.get(str(d.get("status")))
        if state is None or (_text(d.get("serial")) is None and _text(d.get("name")) is None):
            built.skipped += 1
            continue
        kind = PRODUCT_KINDS.get(str(d.get("productType")), "unknown")
        values, _ = place(d, kind)
        kinds[str(d.get("serial"))] = values["kind"]
        message = {
            "schema": "device.state/1",
            "device_id": values["device"],
            "ts": ts,
            "seq": seq,
            "state": state,
            "reason": f"meraki dashboard: {d['status']}",
        }
        built.messages.append((cfg.state_topic.format(**values), json.dumps(message).encode()))
    for d in utilization:
        bands = d.get("byBand")
        if _text(d.get("serial")) is None or not isinstance(bands, list):
            built.skipped += 1
            continue
        values, _ = place(d, kinds.get(str(d.get("serial")), "ap"))
        for entry in bands:
            band = entry.get("band") if isinstance(entry, dict) else None
            if not isinstance(band, str) or not _BAND.match(band):
                built.skipped += 1
                continue
            attributes: dict[str, Any] = {"band": band}
            for source, target in (("wifi", "wifi_pct"), ("nonWifi", "non_wifi_pct"), ("total", "total_pct")):
                part = entry.get(source)
                value = part.get("percentage") if isinstance(part, dict) else None
                if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
                    attributes[target] = float(value)  # always a float: one field type per attribute
            event = {
                "schema": "device.event/1",
                "device_id": values["device"],
                "ts": ts,
                "seq": seq,
                "type": "meraki.channel_utilization.band_" + band.replace(".", "_"),
                "severity": "info",
                "attributes": attributes,
            }
            built.messages.append((cfg.event_topic.format(**values), json.dumps(event).encode()))
    return built


class DashboardApi(HttpClient):
    """GETs of whole paged lists, spaced to ``max_requests_per_s``, retried as the module says."""

    def __init__(self, cfg: ApiConfig, stats: Stats) -> None:
        super().__init__(cfg.tls, "meraki", stats)
        self.cfg = cfg
        self._next_slot = 0.0

    def _new_session(self) -> aiohttp.ClientSession:
        assert self.cfg.api_key is not None
        return aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.cfg.api_key.get_secret_value()}", "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
        )

    async def _slot(self) -> None:
        """Wait for this request's turn: starts at least 1/max_requests_per_s apart."""
        now = time.monotonic()
        start = max(now, self._next_slot)
        self._next_slot = start + 1.0 / self.cfg.max_requests_per_s
        if start > now:
            await asyncio.sleep(start - now)

    async def get_all(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url: str | None = self.cfg.url + path
        query: dict[str, str] | None = {**params, "perPage": str(self.cfg.per_page)}
        items: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > self.cfg.max_pages:
                raise FetchError("too_many_pages", f"GET {path}: more than {self.cfg.max_pages} pages")
            page, url = await self._page(url, query, path)
            query = None  # the next link carries its own query
            items += page
        return items

    async def _page(self, url: str, query: dict[str, str] | None, path: str) -> tuple[list[dict[str, Any]], str | None]:
        return await with_retries(
            lambda: self._page_once(url, query, path),
            path=path,
            final=("refused", "bad_answer", "tls", "rate_limited_too_long"),
            retries=self.cfg.retries,
            retry_delay_s=self.cfg.retry_delay_s,
            stats=self.stats,
            event="meraki_fetch_retry",
            hint="the API answered badly or not at all; retrying",
            hints={
                "rate_limited": "another application shares the organisation's 10 requests/s; waiting its Retry-After"
            },
        )

    async def _page_once(
        self, url: str, query: dict[str, str] | None, path: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        assert self.session is not None
        await self._slot()
        self.stats.add("requests")
        try:
            async with self.session.get(url, params=query, ssl=self.ssl) as response:
                body = await response.read()
                status, headers = response.status, response.headers
                links = response.links
        except (aiohttp.ClientError, TimeoutError) as error:
            raise transport_error(error, f"GET {path}") from None
        if status == 429:
            wait = retry_after(headers.get("Retry-After"), 1.0, 3600.0)
            if wait > self.cfg.retry_after_max_s:
                raise FetchError(
                    "rate_limited_too_long", f"GET {path}: Retry-After {wait:g} s is beyond retry_after_max_s"
                )
            raise FetchError("rate_limited", f"GET {path}: HTTP 429", wait)
        if status in (400, 401, 403, 404):
            raise FetchError("refused", f"GET {path}: HTTP {status}: check api.api_key_file and api.organization_id")
        if status != 200:
            raise FetchError("http_error", f"GET {path}: HTTP {status}")
        doc = json_body(body, f"GET {path}")
        if not isinstance(doc, list):
            raise FetchError("bad_answer", f"GET {path}: not a JSON list")
        following = links.get("next")
        next_url = str(following.get("url")) if following is not None and following.get("url") else None
        return [item for item in doc if isinstance(item, dict)], next_url


class MerakiBridge:
    def __init__(self, cfg: MerakiConfig, index: DeviceIndex, publisher: MqttPublisher, stats: Stats) -> None:
        self.cfg = cfg
        self.index = index
        self.publisher = publisher
        self.stats = stats

    # --- webhooks --------------------------------------------------------------------------------
    def app(self, webhook: WebhookConfig) -> web.Application:
        app = web.Application(client_max_size=webhook.max_body_bytes)
        app.router.add_post(webhook.path, self._webhook_handler(webhook))
        return app

    def _refuse(self, status: int, reason: str, hint: str) -> web.Response:
        self.stats.add("webhooks_refused")
        self.stats.add(f"webhooks_refused_{reason}")
        log.warning("webhook_refused", reason=reason, status=status, hint=hint)
        return web.json_response({"error": reason}, status=status)

    def _webhook_handler(self, webhook: WebhookConfig) -> Any:
        assert webhook.shared_secret is not None
        expected = webhook.shared_secret.get_secret_value().encode()

        async def handle(request: web.Request) -> web.Response:
            self.stats.add("webhooks")
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return self._refuse(413, "too_large", "webhook.max_body_bytes; Meraki alerts are a few kB")
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return self._refuse(400, "bad_json", "not a Meraki webhook: the body is not JSON")
            if not isinstance(doc, dict):
                return self._refuse(400, "bad_json", "not a Meraki webhook: the body is not a JSON object")
            secret = doc.pop("sharedSecret", None)
            if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), expected):
                return self._refuse(
                    401, "wrong_secret", "the dashboard's shared secret differs from shared_secret_file"
                )
            serial, name = _text(doc.get("deviceSerial")), _text(doc.get("deviceName"))
            place = self.index.place(
                serial=serial or (None if name else _text(doc.get("networkId"))),
                mac=_text(doc.get("deviceMac")),
                name=name,
                site=_text(doc.get("networkName")) or _text(doc.get("networkId")),
            )
            if not place.known:
                self.stats.add("devices_not_in_inventory")
                log.warning(
                    "device_not_in_inventory",
                    device=place.device,
                    hint="published with nis 'unknown': add it to the inventory with its 'serial'",
                )
            values = {"nis": place.nis, "site": place.site, "device": place.device, "kind": place.kind}
            topic = self.cfg.alert_topic.format(**values)
            acked = await self.publisher.publish([(topic, json.dumps(doc).encode())], webhook.ack_timeout_s)
            if acked != 1:
                return web.json_response({"error": "not_published"}, status=503)
            self.stats.add("webhooks_published")
            return web.json_response({"ok": True})

        return handle

    # --- Dashboard API ---------------------------------------------------------------------------
    async def poll_once(self, api: DashboardApi, cfg: ApiConfig) -> bool:
        self.stats.add("polls")
        org = cfg.organization_id
        try:
            statuses = await api.get_all(f"/organizations/{org}/devices/statuses", {})
            utilization: list[dict[str, Any]] = []
            if cfg.channel_utilization:
                interval = max([i for i in INTERVALS if i <= cfg.period_s] or [INTERVALS[0]])
                utilization = await api.get_all(
                    f"/organizations/{org}/wireless/devices/channelUtilization/byDevice",
                    {"timespan": str(interval), "interval": str(interval)},
                )
        except FetchError as error:
            self.stats.poll_failed(error.reason)
            log.error(
                "meraki_poll_failed",
                reason=error.reason,
                detail=error.detail,
                hint="nothing of this poll is published; check the API key, organisation id and Meraki's status",
            )
            return False
        if not statuses:  # an answer, but an empty one: another organisation, or a key that sees nothing
            self.stats.add("polls_empty")
            log.warning(
                "meraki_no_devices",
                organization_id=org,
                hint="the organisation listed no device: check meraki.api.organization_id and the API key's access",
            )
        built = build_messages(statuses, utilization, self.index, self.cfg, time.time_ns())
        count_not_in_inventory(
            self.stats,
            built.not_in_inventory,
            hint="published with nis 'unknown': add them to the inventory with their 'serial'",
        )
        if built.skipped:
            self.stats.add("entries_skipped", built.skipped)
        return await self.publisher.publish_poll(built.messages, self.cfg.publish_timeout_s)

    async def _poll_loop(self, cfg: ApiConfig, stop: asyncio.Event, once: bool) -> bool:
        async with DashboardApi(cfg, self.stats) as api:
            return await poll_loop(
                lambda: self.poll_once(api, cfg),
                stop=stop,
                once=once,
                period_s=cfg.period_s,
                backoff=Backoff(cfg.backoff_min_s, cfg.backoff_max_s),
                stats=self.stats,
                event="meraki_backoff",
            )

    async def run(self, stop: asyncio.Event, once: bool) -> bool:
        api = self.cfg.api if self.cfg.api is not None and self.cfg.api.enabled else None
        webhook = self.cfg.webhook if self.cfg.webhook is not None and self.cfg.webhook.enabled else None
        if once:
            if api is None:
                log.error("once_needs_api", hint="--once makes one Dashboard poll: configure [meraki.api]")
                return False
            return await self._poll_loop(api, stop, once=True)
        runner: web.AppRunner | None = None
        if webhook is not None:
            import ssl

            runner = web.AppRunner(self.app(webhook), access_log=None)
            await runner.setup()
            host, port = webhook.listen.rsplit(":", 1)
            context = None
            if webhook.cert_file is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(webhook.cert_file, webhook.key_file)
            await web.TCPSite(runner, host, int(port), ssl_context=context).start()
            log.info("webhook_listening", listen=webhook.listen, path=webhook.path, tls=context is not None)
        try:
            if api is not None:
                return await self._poll_loop(api, stop, once=False)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=60.0)
                except TimeoutError:
                    self.stats.log()
            return True
        finally:
            if runner is not None:
                await runner.cleanup()
