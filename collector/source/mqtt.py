"""The MQTT edge: a persistent QoS 1 session whose messages are acknowledged only when we say so.

paho-mqtt runs its network loop in its own thread, so keepalives and reconnects never wait for our
processing (blocking the receive path is how other collectors get "pingresp not received"
disconnects). Messages cross to the asyncio loop through a deque with one wake-up per burst, not one
per message. Acknowledgements go back in receive order, as MQTT requires, and only for messages
of the current connection: after a reconnect the broker redelivers whatever we had not acknowledged,
and a packet id of the old connection may already name another message.

A connection that fails before the broker accepts it (TLS verification on either side, a refused
password, nothing listening) is logged as one ``mqtt_connect_failed`` or ``mqtt_connect_refused``
event naming the cause and what to check, then retried with backoff for as long as it takes; the
same failure is repeated in the log at most once a minute. Credentials are never part of a log line.

The collector holds at most ``mqtt.receive_maximum`` messages and ``mqtt.max_held_bytes`` payload
bytes between receiving them and having them durable; a broker that sends more than that makes
paho's thread stop reading (docs/delivery.md, "Bounded memory"). Mosquitto 2.0.11 keeps no
in-flight window once acknowledgements flow, so under a backlog the broker's PINGRESP waits behind
everything it has sent, and a paused read leaves it unread: paho would end the connection with
"Keep alive timeout" and the broker would redeliver everything in flight. So every message received
counts as the broker's answer to an outstanding PINGREQ, and while paused the edge keeps sending
PINGREQs (and acknowledgements) without reading (docs/delivery.md, "Keep-alive under a backlog").

The broker's count of messages it dropped (``$SYS/broker/publish/messages/dropped``: queue limits
reached, for any client) is watched on the same connection; a rise is logged as an error, counted,
and makes /healthz unhealthy for ``DROP_ALERT_S`` (docs/delivery.md, "The broker").

Every private attribute of paho used here is in ``collector/source/paho_internals.py``, checked
when the source is built.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.source import paho_internals
from collector.source.config import MqttConfig

log = structlog.get_logger("collector.mqtt")

SESSION_NEVER_EXPIRES = 0xFFFFFFFF
_PUBACK = 0x40
_PUBACK_HEADER = bytes((_PUBACK, 2))
REPEAT_FAILURE_LOG_S = 60.0
# mosquitto's count of PUBLISH messages dropped for in-flight or queue limits, all clients together,
# since it started; published (retained) every sys_interval when it changed. mosquitto 2.0 has no
# per-client count: its log names the client ("Outgoing messages are being dropped for client ...").
DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
DROP_ALERT_S = 300.0  # /healthz stays unhealthy this long after the broker's drop count rose
RESUME_FRACTION = 0.9  # a paused read resumes once the collector holds less than this of a limit
# paho's log lines that carry the socket error behind a lost connection (record.msg, record.args[0]).
_PAHO_SOCKET_ERRORS = frozenset({"failed to receive on socket: %s", "timeout on socket: %s"})
_CLIENT_CERT_REFUSED = (
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
    "DECRYPT_ERROR",
    "ACCESS_DENIED",
)


def explain_connect_error(error: BaseException | str, tls: bool) -> tuple[str, bool]:
    """(what to check, whether an operator must act) for a connection attempt that failed."""
    text = str(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            "the broker's certificate does not verify with mqtt.tls.ca_file: issued by another CA, expired, "
            "or not for the host name in mqtt.host",
            True,
        )
    if "CERTIFICATE_REQUIRED" in text:
        return "the broker requires a client certificate: set mqtt.tls.cert_file and mqtt.tls.key_file", True
    if any(alert in text for alert in _CLIENT_CERT_REFUSED):
        return (
            "the broker refused our client certificate (mqtt.tls.cert_file): not issued by a CA it trusts "
            "(its cafile), expired or revoked",
            True,
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or "UNEXPECTED_EOF" in text:
        return "TLS handshake failed: is mqtt.port a TLS listener? ([mqtt.tls] is set)", True
    if isinstance(error, ssl.SSLError):
        return "TLS handshake failed: compare mqtt.tls with the broker's listener and its log", True
    if isinstance(error, ConnectionRefusedError):
        return "nothing accepts connections at mqtt.host:mqtt.port (broker down, or another port)", False
    if isinstance(error, OSError):
        return "network error; retrying", False
    if text in ("Not authorized", "Bad user name or password", "Bad authentication method", "Banned"):
        return (
            "the broker refused our credentials: check mqtt.username and mqtt.password / mqtt.password_file "
            "against the broker's password_file and ACL",
            True,
        )
    if text == "Client identifier not valid":
        return "the broker refused mqtt.client_id", True
    if not tls:
        return "the broker closed the connection before accepting it: is it a TLS listener ([mqtt.tls] unset)?", True
    return "the broker closed the connection before accepting it: see the broker's log", True


def topic_of(message: mqtt.MQTTMessage) -> str:
    """The message's topic; one that is not UTF-8 (a broker that does not check) with U+FFFD."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return paho_internals.raw_topic(message).decode("utf-8", "replace")


class Publication:
    """A QoS 1 publish of ours; ``done`` once the broker acknowledged it (paho's ``on_publish``), and
    awaitable: ``await publication`` returns then (the delivery committer waits on it, not polls it).

    paho's own ``MQTTMessageInfo.is_published()`` raises for a message published while disconnected,
    even after paho has sent it again on reconnect and the broker acknowledged it.
    """

    __slots__ = ("_future", "done")

    def __init__(self) -> None:
        self.done = False
        self._future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _complete(self) -> None:  # in the event loop
        self.done = True
        if not self._future.done():
            self._future.set_result(None)

    def __await__(self) -> Generator[Any, None, None]:
        return self._future.__await__()


def set_credentials_tls_reconnect(client: mqtt.Client, cfg: MqttConfig) -> None:
    """Set ``mqtt.username``/``password``, ``mqtt.tls`` and the reconnect delays on a paho client.

    One place for every client of ours that connects with an ``[mqtt]`` section (the source here,
    the bridges' publisher), so that a TLS or credential setting means the same everywhere."""
    if cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password is not None else None
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
            keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
            cert_reqs=ssl.CERT_NONE if cfg.tls.insecure_skip_verify else ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(cfg.tls.insecure_skip_verify)
    client.reconnect_delay_set(max(1, round(cfg.reconnect_min_s)), max(1, round(cfg.reconnect_max_s)))


@dataclass(frozen=True, slots=True)
class _ConnectionLost:
    """Marker put in the message queue: everything after it belongs to a new connection."""

    generation: int


class MqttSource:
    def __init__(self, config: MqttConfig, subscriptions: list[str], *, drain_only: bool = False) -> None:
        self.config = config
        # As sent in SUBSCRIBE: with mqtt.shared_group, each filter as a shared subscription (the
        # messages then carry their own topic, without the prefix). The broker's $SYS counter stays plain.
        self.subscriptions = config.subscribed_filters(subscriptions)
        # Drain only (``run --drain``): resume the session, UNSUBSCRIBE its filters instead of subscribing,
        # and take what the broker had queued for it (docs/scaling.md, "Fewer workers").
        self.drain_only = drain_only
        self.unsubscribed = asyncio.Event()
        self._unsubscribe_mid: int | None = None
        self._queue: deque[mqtt.MQTTMessage | _ConnectionLost] = deque()
        self._wakeup = asyncio.Event()
        self._wakeup_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0  # bumped (under _lock) whenever the connection goes away
        self._consumer_generation = 0  # the generation of the messages drain() hands out now
        self._lock = threading.Lock()
        # Messages received and not yet released by the collector; reading stops at the limit.
        self._room = threading.Condition()
        self._held = 0
        # Payload bytes: received in all, released in all, and the running total after each message
        # not yet released (in receive order; messages are released in that order, batch by batch).
        self._received_bytes = 0
        self._released_bytes = 0
        self._totals: list[int] = []
        self._max_held = config.receive_maximum
        self._max_held_bytes = config.max_held_bytes
        self.read_pauses = 0
        # Our own publishes (dead letters) until the broker acknowledges them, by packet id, and the
        # packet ids acknowledged before publish() could note them (paho's thread was faster).
        self._publications: dict[int, Publication] = {}
        self._acked_early: set[int] = set()
        self._publications_lock = threading.Lock()
        # The broker's drop counter: last value seen, rises seen by this process, when it last rose.
        self.broker_dropped: int | None = None
        self.broker_dropped_seen = 0
        self._dropped_rose_at: float | None = None
        self._drop_watch_mid: int | None = None
        self._stopping = False
        self.connected = asyncio.Event()
        self.connected_at: float | None = None  # time.monotonic() the current connection was accepted
        # Set once the broker has granted every telemetry subscription of the current connection
        # (SUBACK), cleared when it is lost: what READY=1 and /readyz mean by "subscribed".
        self.subscribed = asyncio.Event()
        self._subscribe_mid: int | None = None
        self.connects = 0
        self.disconnects = 0
        # Connection attempts that did not get a session (paho thread), and the last one's cause.
        self.connect_failures = 0
        self.last_connect_error: str | None = None
        self._failed_since_connected = 0
        self._failure_logged_at = 0.0
        self._session_up = False  # CONNACK accepted on the current connection
        self._refused = False  # the broker answered this attempt's CONNECT with a refusal
        self._socket_error: str | None = None  # what paho's read failed with, for the next disconnect
        self.client = self._make_client()
        paho_internals.check(self.client)  # refuse to start rather than fail silently later
        paho_internals.install_lazy_info_message()
        if config.protocol == "5":
            paho_internals.install_shared_table_properties()

    # -- set-up -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        if cfg.protocol == "5":
            client: mqtt.Client = paho_internals.BufferedClient(
                CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5, manual_ack=True
            )
        else:  # 3.1.1: a persistent session is clean_session=False; it lasts as long as the broker keeps it
            client = paho_internals.BufferedClient(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        # A logger of this client's own (outside the registry, so nothing accumulates on a shared
        # one), passing on to "paho.mqtt" what our own events do not already say.
        paho_log = logging.Logger("paho.mqtt")
        paho_log.parent = logging.getLogger("paho.mqtt")
        paho_log.addFilter(self._filter_paho_log)
        client.enable_logger(paho_log)
        set_credentials_tls_reconnect(client, cfg)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        if cfg.watch_broker_drops:
            client.message_callback_add(DROPPED_TOPIC, self._on_broker_dropped)
        return client

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            properties.ReceiveMaximum = self.config.receive_maximum
            self.client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()

    def _filter_paho_log(self, record: logging.LogRecord) -> bool:
        if record.msg in _PAHO_SOCKET_ERRORS and isinstance(record.args, tuple) and record.args:
            self._socket_error = str(record.args[0])
            return False  # said by our mqtt_disconnected / mqtt_connect_failed event
        # paho's loop reports "Client is not connected" after every failed attempt and once after our
        # own disconnect: noise next to our events.
        return not (isinstance(record.msg, str) and record.msg.startswith("Client is not connected"))

    def stop(self) -> None:
        self._stopping = True
        with self._room:
            self._room.notify_all()
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho thread ------------------------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = True
            self._connect_failed("mqtt_connect_refused", str(reason), str(reason))
            return
        self._session_up = True
        self.connects += 1
        self.connected_at = time.monotonic()
        log.info(
            "mqtt_connected",
            session_present=flags.session_present,
            host=self.config.host,
            port=self.config.port,
            client_id=self.config.client_id,
            tls=self.config.tls is not None,
            failed_attempts_before=self._failed_since_connected,
        )
        self._failed_since_connected = 0
        self.last_connect_error = None
        # Subscribing again is harmless with a resumed session and needed with a new one.
        if self.drain_only:  # nothing new for this session: mosquitto still sends what it queued
            self._unsubscribe_mid = client.unsubscribe(self.subscriptions)[1]
        elif self.config.protocol == "5":
            options = SubscribeOptions(qos=self.config.qos)
            self._subscribe_mid = client.subscribe([(topic, options) for topic in self.subscriptions])[1]
        else:
            self._subscribe_mid = client.subscribe([(topic, int(self.config.qos)) for topic in self.subscriptions])[1]
        if self.config.watch_broker_drops:  # QoS 0: the broker publishes $SYS at QoS 0 anyway
            if self.config.protocol == "5":
                self._drop_watch_mid = client.subscribe([(DROPPED_TOPIC, SubscribeOptions(qos=0))])[1]
            else:
                self._drop_watch_mid = client.subscribe(DROPPED_TOPIC, 0)[1]
        self._call_in_loop(self.connected.set)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._generation += 1
            self._queue.append(_ConnectionLost(self._generation))
        socket_error, self._socket_error = self._socket_error, None
        was_up, self._session_up = self._session_up, False
        self.connected_at = None
        refused, self._refused = self._refused, False
        if was_up and self._stopping:  # our own DISCONNECT at shutdown: expected, not a warning
            log.info("mqtt_disconnected", reason=str(reason), error=socket_error, shutdown=True)
        elif was_up:
            self.disconnects += 1
            log.warning(
                "mqtt_disconnected",
                reason=str(reason),
                error=socket_error,
                hint="connection to the broker lost; reconnecting, and unacknowledged messages come back "
                "(check the broker's log and the network if it repeats)",
            )
        elif not refused and not self._stopping:  # lost before the broker accepted us: why?
            self._connect_failed("mqtt_connect_failed", socket_error or str(reason), socket_error or str(reason))
        self._call_in_loop(self.connected.clear)
        self._call_in_loop(self.subscribed.clear)
        self._wake()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # paho calls this from inside its ``except OSError`` around the connect: the error is current.
        error = sys.exception()
        if not self._stopping:
            self._connect_failed("mqtt_connect_failed", error or "connection failed", str(error))

    def _connect_failed(self, event: str, cause: BaseException | str, error: str) -> None:
        """Log a failed attempt: a new cause at once, the same one again at most once a minute."""
        hint, operator_needed = explain_connect_error(cause, tls=self.config.tls is not None)
        self.connect_failures += 1
        self._failed_since_connected += 1
        now = time.monotonic()
        if error != self.last_connect_error or now - self._failure_logged_at >= REPEAT_FAILURE_LOG_S:
            self._failure_logged_at = now
            emit = log.error if operator_needed else log.warning
            emit(
                event,
                error=error,
                hint=hint,
                host=self.config.host,
                port=self.config.port,
                client_id=self.config.client_id,
                failed_attempts=self._failed_since_connected,
                retrying=True,
            )
        self.last_connect_error = error

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid == self._subscribe_mid:
            refused = [topic for topic, reason in zip(self.subscriptions, reasons, strict=False) if reason.is_failure]
            if refused:
                log.error(
                    "mqtt_subscription_refused",
                    topics=refused,
                    reasons=[str(reason) for reason in reasons if reason.is_failure],
                    hint="the broker refused these subscriptions: nothing from them is collected; allow the "
                    "collector's user to read them in the broker's acl_file (docs/security.md)",
                )
            else:
                self._call_in_loop(self.subscribed.set)
        if mid == self._drop_watch_mid and any(reason.is_failure for reason in reasons):
            log.warning(
                "broker_drop_counter_refused",
                topic=DROPPED_TOPIC,
                hint="the broker refused the collector's subscription to its drop counter: allow its user "
                f"'topic read {DROPPED_TOPIC}' in the acl_file, or set mqtt.watch_broker_drops = false; "
                "messages the broker drops for us would go unnoticed",
            )

    def _on_unsubscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid == self._unsubscribe_mid:
            self._call_in_loop(self.unsubscribed.set)

    def _on_broker_dropped(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            value = int(message.payload)
        except ValueError:
            return
        previous, self.broker_dropped = self.broker_dropped, value
        if previous is None:  # first sight in this process: dropped since the broker started
            if value:
                log.warning(
                    "broker_dropped_before",
                    dropped_total=value,
                    hint="the broker dropped this many messages (all clients) since it started, before this "
                    "collector watched; its log says for which client",
                )
            return
        rose = value - previous if value >= previous else value  # lower: the broker restarted
        if rose > 0:
            self.broker_dropped_seen += rose
            self._dropped_rose_at = time.monotonic()
            log.error(
                "broker_dropped_messages",
                dropped=rose,
                dropped_total=value,
                dropped_seen=self.broker_dropped_seen,
                hint="the broker dropped acknowledged messages at its queue limits (max_queued_messages / "
                "max_queued_bytes, for this collector or another client): they are lost; see its log "
                "'Outgoing messages are being dropped for client', and the collector's throughput "
                "against the publish rate (docs/delivery.md, 'The broker')",
            )

    @property
    def broker_dropping(self) -> bool:
        """Whether the broker's drop count rose within the last ``DROP_ALERT_S`` seconds."""
        return self._dropped_rose_at is not None and time.monotonic() - self._dropped_rose_at < DROP_ALERT_S

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._publications_lock:
            publication = self._publications.pop(mid, None)
            if publication is None:
                self._acked_early.add(mid)
        if publication is not None:
            publication.done = True
            self._call_in_loop(publication._complete)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        paho_internals.forget_ping(client)  # the broker is alive: its PINGRESP may be far behind
        with self._room:
            # Counted before the consumer can see it: appended first, the message could be taken,
            # committed and released while this thread waited for the lock, and that release, finding
            # nothing counted, would be lost (the count then never returns to zero: `run --drain` waits
            # for ever).
            self._held += 1
            received = self._received_bytes = self._received_bytes + len(message.payload)
            self._totals.append(received)
            self._queue.append(message)
            if not self._wakeup_scheduled:
                self._wake()
            if self._held >= self._max_held or received - self._released_bytes >= self._max_held_bytes:
                self._hold_reading(client)

    def _hold_reading(self, client: mqtt.Client) -> None:
        """Stop reading from the broker until the collector holds fewer messages (paho thread, _room held).

        Reached whenever the broker sends more than the collector may hold: mosquitto 2.0.11 keeps
        neither its in-flight window nor our Receive Maximum once acknowledgements flow
        (docs/delivery.md, "Bounded memory"). This thread does not return to
        paho's read loop, the socket fills, and the broker keeps the rest. Acknowledgements queued
        meanwhile by the asyncio side are written from here, and a PINGREQ whenever nothing else
        went out for ``keepalive_s``, so the broker keeps the connection however long the pause lasts.
        Its PINGRESP stays unread with the rest, by our choice: paho must not take that for a dead
        broker, so the outstanding PINGREQ is forgotten before paho checks it.
        """
        self.read_pauses += 1
        log.warning(
            "mqtt_reading_paused",
            held_messages=self._held,
            limit=self._max_held,
            held_bytes=self._held_bytes,
            limit_bytes=self._max_held_bytes,
            note="the broker keeps the rest until the collector has made room",
        )
        resume_messages = int(self._max_held * RESUME_FRACTION)
        resume_bytes = int(self._max_held_bytes * RESUME_FRACTION)
        # paho calls on_message holding its (non-reentrant) callback lock, and loop_write may need it
        # to report a lost connection or our own DISCONNECT: let go of it while writing.
        callback_lock = paho_internals.callback_lock(client)
        while (
            (self._held > resume_messages or self._held_bytes > resume_bytes)
            and not self._stopping
            and client.socket() is not None
        ):
            self._room.wait(0.1)
            self._room.release()
            callback_lock.release()
            try:
                client.loop_write()  # the PUBACKs of batches committed meanwhile
                paho_internals.forget_ping(client)
                client.loop_misc()  # queues a PINGREQ when nothing went out for keepalive_s
            finally:
                callback_lock.acquire()
                self._room.acquire()
        log.info(
            "mqtt_reading_resumed",
            held_messages=self._held,
            held_bytes=self._held_bytes,
            connected=client.socket() is not None,
        )

    def release(self, count: int) -> None:
        """``count`` received messages are no longer held in memory (committed or given up)."""
        with self._room:
            totals = self._totals
            count = min(count, len(totals))
            if count:
                self._released_bytes = totals[count - 1]
                del totals[:count]
            self._held -= count
            self._room.notify_all()

    @property
    def _held_bytes(self) -> int:
        return self._received_bytes - self._released_bytes

    def _wake(self) -> None:
        self._wakeup_scheduled = True
        self._call_in_loop(self._wakeup.set)

    def _call_in_loop(self, callback: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)  # type: ignore[arg-type]

    # -- asyncio side -----------------------------------------------------------------------
    async def wait_for_messages(self) -> None:
        await self._wakeup.wait()
        self._wakeup_scheduled = False
        self._wakeup.clear()

    def drain(self, limit: int) -> Iterator[tuple[mqtt.MQTTMessage, int]]:
        """Messages received so far (at most ``limit``), each with its connection generation."""
        queue = self._queue
        generation = self._consumer_generation
        taken = 0
        while taken < limit:  # connection markers do not count: the limit is on messages
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, _ConnectionLost):
                generation = self._consumer_generation = item.generation
                continue
            taken += 1
            yield item, generation
        self._consumer_generation = generation

    def ack(self, acks: list[tuple[int, int]]) -> int:
        """Acknowledge (generation, packet id) pairs in order; returns how many were sent.

        Pairs from an earlier connection are skipped: the broker will redeliver those messages.
        The PUBACKs of a batch go out as one write: ``Client.ack`` queues a packet and wakes paho's
        thread through a socket pair for every message, which cost more than all our processing.
        A PUBACK with remaining length 2 (packet id only) means success in MQTT 3.1.1 and 5.
        """
        with self._lock:
            current = self._generation
            mids = [mid for generation, mid in acks if generation == current]
            if mids:
                data = b"".join(_PUBACK_HEADER + mid.to_bytes(2, "big") for mid in mids)
                paho_internals.queue_packet(self.client, _PUBACK, data)
        return len(mids)

    def publish(self, topic: str, payload: bytes) -> Publication:
        """Publish at QoS 1; the result's ``done`` says when the broker has acknowledged it."""
        publication = Publication()
        # Not under our lock: paho calls on_publish holding its own, which publish() takes too.
        mid = self.client.publish(topic, payload, qos=1).mid
        with self._publications_lock:
            if mid in self._acked_early:
                self._acked_early.discard(mid)
                publication._complete()
            else:
                self._publications[mid] = publication
        return publication

    def stats(self) -> dict[str, int | None]:
        """The edge's counters, for the collector's statistics and /metrics."""
        return {
            "mqtt_connects": self.connects,
            "mqtt_disconnects": self.disconnects,
            "mqtt_read_pauses": self.read_pauses,
            "mqtt_connect_failures": self.connect_failures,
            "mqtt_held_messages": self._held,
            "mqtt_held_bytes": self._held_bytes,
            "broker_dropped": self.broker_dropped,
            "broker_dropped_seen": self.broker_dropped_seen,
        }
