"""What both bridges share: the inventory lookup, topic levels, HTTP TLS, retries and the MQTT publisher.

Contract:

- ``DeviceIndex`` maps what a vendor calls a device (its MAC address, serial number or name) to our
  device id, NIS code, site and kind, from the city's inventory (``city-telemetry.inventory/1``,
  optional device keys ``mac``, ``serial`` and ``name``). A device the inventory lacks is never
  dropped: ``place`` returns what is known (a device id from its serial, else its name, ``nis`` =
  ``unknown``, the vendor's site) with ``known=False``, and the bridge counts and logs it.
- ``level`` turns a vendor text into a valid topic level (``A-Z a-z 0-9 . _ -``, 1-64).
- ``http_ssl`` turns the TLS settings into what aiohttp takes: the system's CAs, a CA file, a pinned
  SHA-256 fingerprint, or (only if asked for in so many words) no verification, logged loudly.
- ``with_retries`` repeats a request that failed with a ``FetchError`` (``transport_error`` and
  ``json_body`` name the failure) up to ``retries`` times, waiting the server's Retry-After or
  ``retry_delay_s``; a reason in ``final`` (a refusal, a TLS mismatch) is never retried. One loop
  for both bridges, so that they count (``fetch_retries_<reason>``) and log retries the same way.
- ``MqttPublisher`` publishes at QoS 1 and waits for the broker's PUBACKs; what is not acknowledged
  in time is counted, never assumed delivered.
- ``Stats`` counts what could not be fetched or published; the bridges log it as one
  ``bridge_stats`` line after every poll and at exit.
- ``HttpClient`` owns a bridge's aiohttp session (opened by ``async with``, closed at its end) and
  its ``ssl=``; ``poll_loop`` polls every period until stopped, backing off after a failed poll;
  ``count_not_in_inventory`` counts and logs the devices a poll could not place. One of each, so
  that both bridges open, poll, back off and report the same way.

The device MAC addresses in the inventory are the equipment's own, not clients': they are no
personal data. Client MAC addresses never pass through this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import Field, field_validator, model_validator

from collector.ingest.inventory import InventoryError, read_devices
from collector.settings import Section
from collector.source.config import MqttConfig
from collector.source.mqtt import set_credentials_tls_reconnect

log = structlog.get_logger("collector.bridges")

UNKNOWN = "unknown"
_NOT_LEVEL = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"[^0-9a-f]")
T = TypeVar("T")


def level(text: str | None, fallback: str = UNKNOWN) -> str:
    """A vendor's text as a topic level: other characters become '-', at most 64, never empty."""
    value = _NOT_LEVEL.sub("-", (text or "").strip()).strip("-.")[:64].rstrip("-.")
    return value or fallback


def mac_key(text: str | None) -> str | None:
    """A MAC address as 12 lower-case hex digits (any separators), or None if it is not one."""
    if not text:
        return None
    digits = _HEX.sub("", text.lower())
    return digits if len(digits) == 12 else None


@dataclass(frozen=True, slots=True)
class Placement:
    device: str
    nis: str
    site: str
    kind: str
    known: bool


class DeviceIndex:
    """The inventory's devices by MAC address, serial number and name (and device id)."""

    def __init__(self, devices: Sequence[dict[str, Any]]) -> None:
        self._by_mac: dict[str, Placement] = {}
        self._by_serial: dict[str, Placement] = {}
        self._by_name: dict[str, Placement] = {}
        for d in devices:
            place = Placement(d["device"], d["nis"], d["site"], d["kind"], True)
            key = mac_key(d.get("mac"))
            if key:
                self._by_mac[key] = place
            if d.get("serial"):
                self._by_serial[str(d["serial"]).upper()] = place
            if d.get("name"):
                self._by_name[str(d["name"])] = place
            self._by_name.setdefault(d["device"], place)

    @classmethod
    def load(cls, path: Path) -> DeviceIndex:
        devices = read_devices(path)
        if not isinstance(devices, list):
            raise InventoryError(f"inventory {path}: 'devices' must be a list of objects")
        for i, d in enumerate(devices):
            for key in ("device", "nis", "site", "kind"):
                if not isinstance(d, dict) or not isinstance(d.get(key), str) or not d[key]:
                    raise InventoryError(f"inventory {path}: devices[{i}]: '{key}' must be a non-empty string")
                if level(d[key], "") != d[key]:
                    raise InventoryError(f"inventory {path}: devices[{i}]: '{key}' {d[key]!r} is not a topic level")
        return cls(devices)

    def __len__(self) -> int:
        return len({p.device for p in self._by_name.values()})

    def place(
        self,
        *,
        mac: str | None = None,
        serial: str | None = None,
        name: str | None = None,
        site: str | None = None,
        kind: str = UNKNOWN,
    ) -> Placement:
        """The inventory's entry for this device (by MAC, then serial, then name), else what is known."""
        key = mac_key(mac)
        found = (
            (self._by_mac.get(key) if key else None)
            or (self._by_serial.get(serial.upper()) if serial else None)
            or (self._by_name.get(name) if name else None)
        )
        if found is not None:
            return found
        # a serial number never changes (Meraki); a name is what an operator reads (UniFi has no serial here)
        ident = level(serial, "") or level(name, "") or (f"mac-{key}" if key else UNKNOWN)
        return Placement(ident, UNKNOWN, level(site), kind, False)


def check_topic(key: str, topic: str) -> None:
    """A topic template of a bridge's config: ``{nis}``, ``{site}``, ``{kind}``, ``{device}`` only,
    ``{device}`` required, no MQTT wildcard (a ValueError naming ``key`` otherwise)."""
    if "{device}" not in topic:
        raise ValueError(f"{key}: needs a {{device}} level")
    try:
        example = topic.format(nis="n", site="s", kind="k", device="d")
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"{key}: only {{nis}}, {{site}}, {{kind}} and {{device}} may be filled in ({error})") from None
    if "+" in example or "#" in example or not example or example.startswith("/"):
        raise ValueError(f"{key}: {topic!r} is not a topic to publish on")


class HttpTls(Section):
    """How the bridge trusts the vendor's HTTPS certificate. Exactly one way, said explicitly."""

    ca_file: Path | None = Field(None, description="CA (or the self-signed certificate itself) to verify against")
    fingerprint_sha256: str | None = Field(
        None, description="pin the server certificate by its SHA-256 fingerprint (hex, ':' allowed)"
    )
    insecure: bool = Field(False, description="no verification at all: logged as an error at every start")

    @field_validator("fingerprint_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace(":", "").replace(" ", "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digits):
            raise ValueError("must be 64 hex digits (openssl x509 -noout -fingerprint -sha256)")
        return digits

    @model_validator(mode="after")
    def _one_way(self) -> HttpTls:
        chosen = [k for k in ("ca_file", "fingerprint_sha256") if getattr(self, k) is not None]
        if self.insecure:
            chosen.append("insecure")
        if len(chosen) > 1:
            raise ValueError(f"choose one of ca_file, fingerprint_sha256, insecure (got {', '.join(chosen)})")
        if self.ca_file is not None:
            try:
                ssl.create_default_context(cafile=str(self.ca_file))
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"ca_file {str(self.ca_file)!r} is not usable: {error}") from None
        return self


def http_ssl(tls: HttpTls, bridge: str) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    """What aiohttp's ``ssl=`` takes for these settings (True: the system's CAs)."""
    if tls.insecure:
        log.error(
            "tls_verification_disabled",
            bridge=bridge,
            hint="tls.insecure = true: anyone on the path can read the credentials; pin the certificate "
            "(tls.fingerprint_sha256) or give its CA (tls.ca_file) instead",
        )
        return False
    if tls.fingerprint_sha256 is not None:
        return aiohttp.Fingerprint(bytes.fromhex(tls.fingerprint_sha256))
    if tls.ca_file is not None:
        return ssl.create_default_context(cafile=str(tls.ca_file))
    return True


class FetchError(Exception):
    """A request that did not give a complete, usable answer. ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


def retry_after(value: str | None, default_s: float, max_s: float) -> float:
    """Seconds from a Retry-After header (seconds form), bounded; the default if absent or unreadable."""
    try:
        seconds = float(value) if value is not None else default_s
    except ValueError:
        seconds = default_s
    return min(max(seconds, 0.0), max_s)


def transport_error(error: aiohttp.ClientError | TimeoutError, what: str) -> FetchError:
    """The FetchError of a request that gave no complete answer: timeout, unreachable, truncated or tls."""
    reason = "timeout" if isinstance(error, TimeoutError) else "unreachable"
    if isinstance(error, aiohttp.ClientPayloadError):
        reason = "truncated"
    elif isinstance(error, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        reason = "tls"  # the certificate is not the one configured: never retried into acceptance
    return FetchError(reason, f"{what}: {describe(error)}")


def describe(error: BaseException) -> str:
    """An error's type and text for a log line; a timeout, whose text is empty, says what it was."""
    text = str(error) or ("no complete answer within timeout_s" if isinstance(error, TimeoutError) else "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def json_body(body: bytes, what: str) -> Any:
    """The JSON document of a body; a FetchError ``truncated`` if it is not complete JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError("truncated", f"{what}: the body is not complete JSON ({len(body)} bytes)") from None


async def with_retries(
    fetch: Callable[[], Awaitable[T]],
    *,
    path: str,
    final: Collection[str],
    retries: int,
    retry_delay_s: float,
    stats: Stats,
    event: str,
    hint: str,
    hints: Mapping[str, str] | None = None,
) -> T:
    """``fetch()``, retried ``retries`` times after a FetchError whose reason is not in ``final``.

    Each retry waits the error's Retry-After, else ``retry_delay_s``; it is counted
    (``fetch_retries`` and ``fetch_retries_<reason>``) and logged as ``event`` with ``hints[reason]``
    or ``hint``. The last failure is raised."""
    attempt = 0
    while True:
        try:
            return await fetch()
        except FetchError as error:
            if error.reason in final or attempt >= retries:
                raise
            attempt += 1
            stats.add("fetch_retries")
            stats.add(f"fetch_retries_{error.reason}")
            delay = error.retry_after_s if error.retry_after_s is not None else retry_delay_s
            log.warning(
                event,
                path=path,
                reason=error.reason,
                detail=error.detail,
                attempt=attempt,
                delay_s=delay,
                hint=(hints or {}).get(error.reason, hint),
            )
            await asyncio.sleep(delay)


class Backoff:
    """Exponential delays between failed polls: min, 2 x min, ... up to max; reset by a success."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self.min_s, self.max_s = min_s, max_s
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return float(min(self.max_s, self.min_s * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


async def poll_loop(
    poll: Callable[[], Awaitable[bool]],
    *,
    stop: asyncio.Event,
    once: bool,
    period_s: float,
    backoff: Backoff,
    stats: Stats,
    event: str,
) -> bool:
    """``poll()`` every ``period_s`` until ``stop`` is set (then True); after a failed poll the wait is
    ``backoff``'s next delay, logged as ``event``. With ``once``: one poll and its result (the
    counters are logged once, at exit, by the caller); otherwise ``bridge_stats`` after every poll."""
    while True:
        ok = await poll()
        if once:
            return ok
        stats.log()
        if ok:
            backoff.reset()
            delay = period_s
        else:
            delay = backoff.next()
            log.warning(event, wait_s=delay, failures=backoff.failures)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return True
        except TimeoutError:
            pass


def count_not_in_inventory(stats: Stats, devices: Sequence[str], hint: str) -> None:
    """Count and log (the first 50, sorted) the devices of a poll the inventory could not place."""
    if devices:
        stats.add("devices_not_in_inventory", len(devices))
        log.warning("devices_not_in_inventory", devices=sorted(devices)[:50], count=len(devices), hint=hint)


class HttpClient:
    """A bridge's HTTP session with its vendor: opened by ``async with``, closed at its end.

    A subclass says how its session is made (headers, cookies, timeout) in ``_new_session``."""

    def __init__(self, tls: HttpTls, bridge: str, stats: Stats) -> None:
        self.stats = stats
        self.ssl = http_ssl(tls, bridge)
        self.session: aiohttp.ClientSession | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self.session = self._new_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()


_TROUBLE = ("fetch_failed", "publish_unacked", "polls_failed")  # counters whose rise has its own log events


class Stats:
    """Counters of one bridge process, logged as ``bridge_stats``."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.counts: Counter[str] = Counter()

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def poll_failed(self, reason: str) -> None:
        """A poll abandoned after a FetchError of this reason (the bridge logs why)."""
        self.add("polls_failed")
        self.add(f"fetch_failed_{reason}")

    def log(self) -> None:
        fields: dict[str, object] = dict(sorted(self.counts.items()))
        if any(n for name, n in self.counts.items() if name.startswith(_TROUBLE)):
            fields["hint"] = "fetch_failed/publish_unacked/polls_failed above 0: see the events before this line"
        log.info("bridge_stats", bridge=self.bridge, **fields)


class MqttPublisher:
    """QoS 1 publishing with a wait for every PUBACK (paho's network thread, awaited off the loop)."""

    def __init__(self, cfg: MqttConfig, stats: Stats) -> None:
        self.stats = stats
        self.connected = threading.Event()
        self.stopping = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv311)
        set_credentials_tls_reconnect(client, cfg)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.cfg = cfg

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connected.set()
            log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port)
        else:
            log.error("mqtt_connect_refused", reason=str(reason), hint="check mqtt.username/password and the ACL")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if self.stopping:  # our own disconnect at exit: nothing an operator should be warned of
            log.info("mqtt_disconnected", reason=str(reason), shutdown=True)
            return
        log.warning("mqtt_disconnected", reason=str(reason), hint="paho reconnects by itself; is the broker up?")

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self.client.loop_start()

    async def wait_connected(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self.connected.wait, timeout_s)

    async def publish(self, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> int:
        """Publish at QoS 1; return how many the broker acknowledged within ``timeout_s``.

        Not connected: nothing is handed to paho (its queue would grow by a poll every period for as
        long as the broker is away); the messages count as unacknowledged and the poll as failed."""
        if not self.connected.is_set():
            self.stats.add("publish_unacked", len(messages))
            log.error(
                "publish_skipped_not_connected",
                messages=len(messages),
                hint="the broker is not connected: this poll is not published; paho keeps reconnecting",
            )
            return 0
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout_s

        def wait() -> int:
            for info in infos:
                # RuntimeError/ValueError: not queued (disconnected), counted as unacknowledged below
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            return sum(1 for info in infos if info.is_published())

        acked = await asyncio.to_thread(wait)
        self.stats.add("published", acked)
        if acked < len(infos):
            self.stats.add("publish_unacked", len(infos) - acked)
            log.error(
                "publish_unacknowledged",
                unacknowledged=len(infos) - acked,
                of=len(infos),
                hint="the broker did not acknowledge in time: is it up and reachable? (mosquitto acknowledges and "
                "drops a publish its ACL refuses: an ACL gap does not show here, see docs/bridges.md)",
            )
        return acked

    async def publish_poll(self, messages: Sequence[tuple[str, bytes]], timeout_s: float) -> bool:
        """Publish one poll's messages; True when every one was acknowledged, else ``polls_failed``."""
        ok = await self.publish(messages, timeout_s) == len(messages)
        if not ok:
            self.stats.add("polls_failed")
        return ok

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()
