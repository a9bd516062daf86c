"""The MQTT edge: a persistent QoS 1 session whose messages are acknowledged only when we say so.

paho-mqtt runs its network loop in its own thread, so keepalives and reconnects never wait for our
processing (blocking the receive path is how other collectors get "pingresp not received"
disconnects). Messages cross to the asyncio loop through a deque with one wake-up per burst, not one
per message. Acknowledgements go back in receive order, as MQTT requires, and only for messages
of the current connection: after a reconnect the broker redelivers whatever we had not acknowledged,
and a packet id of the old connection may already name another message.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from collector.config import MqttConfig

log = structlog.get_logger("collector.mqtt")

SESSION_NEVER_EXPIRES = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class _ConnectionLost:
    """Marker put in the message queue: everything after it belongs to a new connection."""

    generation: int


class MqttSource:
    def __init__(self, config: MqttConfig, subscriptions: list[str]) -> None:
        self.config = config
        self.subscriptions = subscriptions
        self._queue: deque[mqtt.MQTTMessage | _ConnectionLost] = deque()
        self._wakeup = asyncio.Event()
        self._wakeup_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0  # bumped (under _lock) whenever the connection goes away
        self._consumer_generation = 0  # the generation of the messages drain() hands out now
        self._lock = threading.Lock()
        self._stopping = False
        self.connected = asyncio.Event()
        self.connects = 0
        self.disconnects = 0
        self.client = self._make_client()

    # -- set-up -----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        paho_log = logging.getLogger("paho.mqtt")
        paho_log.addFilter(self._quiet_when_stopping)
        client.enable_logger(paho_log)
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
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
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
        self.client.loop_start()

    def _quiet_when_stopping(self, record: logging.LogRecord) -> bool:
        # paho's loop thread reports our own disconnect as an error once before it ends.
        return not (self._stopping and "is not connected" in record.getMessage())

    def stop(self) -> None:
        self._stopping = True
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
            log.error("mqtt_connect_refused", reason=str(reason), host=self.config.host, port=self.config.port)
            return
        self.connects += 1
        log.info("mqtt_connected", session_present=flags.session_present, host=self.config.host,
                 port=self.config.port, client_id=self.config.client_id)  # fmt: skip
        # Subscribing again is harmless with a resumed session and needed with a new one.
        client.subscribe([(topic, SubscribeOptions(qos=self.config.qos)) for topic in self.subscriptions])
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
        self.disconnects += 1
        log.warning("mqtt_disconnected", reason=str(reason))
        self._call_in_loop(self.connected.clear)
        self._wake()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._queue.append(message)
        if not self._wakeup_scheduled:
            self._wake()

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
        for _ in range(limit):
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, _ConnectionLost):
                generation = self._consumer_generation = item.generation
                continue
            yield item, generation
        self._consumer_generation = generation

    def pending(self) -> int:
        return len(self._queue)

    def ack(self, acks: list[tuple[int, int]]) -> int:
        """Acknowledge (generation, packet id) pairs in order; returns how many were sent.

        Pairs from an earlier connection are skipped: the broker will redeliver those messages.
        """
        sent = 0
        with self._lock:
            current = self._generation
            for generation, mid in acks:
                if generation == current:
                    self.client.ack(mid, 1)
                    sent += 1
        return sent

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)
