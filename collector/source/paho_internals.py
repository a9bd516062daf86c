"""The only place that touches paho-mqtt's private attributes, each checked once at start-up.

paho-mqtt has no public way to do five things the MQTT edge needs:

- ``Client._packet_queue``: queue the PUBACKs of a whole batch as one packet. ``Client.ack`` queues
  one packet per message and wakes paho's network thread through a socket pair for each; at the
  collector's rate that cost more than all of its own processing (docs/delivery.md).
- ``Client._in_callback_mutex``: paho holds this (non-reentrant) lock while it runs ``on_message``.
  While reading is paused inside that callback (docs/delivery.md, "Bounded memory"), the lock is let
  go around each write, or paho's own report of a lost connection would deadlock on it.
- ``Client._ping_t``: when paho sent a PINGREQ still unanswered (0: none). paho closes the
  connection ("Keep alive timeout") once that is ``keepalive`` seconds old, even while PUBLISH packets
  keep arriving. Behind a backlog the broker has put in flight, or while we do not read, the PINGRESP
  waits behind megabytes of PUBLISH: every packet we take is proof enough that the broker is alive,
  so the edge forgets the outstanding PINGREQ then (docs/delivery.md, "Keep-alive under a backlog").
- ``Client._create_socket``: the one place a connection's socket is made (after TLS), overridden by
  ``BufferedClient`` to put a ``ReadBuffer`` around it, so that paho's many small reads per packet
  cost one system call per burst (collector/source/read_buffer.py). With it, ``loop_read`` (public)
  goes on while that buffer holds bytes, instead of one packet per turn of paho's loop.
- ``paho.mqtt._packet.Properties`` (paho 2.2): the class paho's ``decode_publish`` makes for every
  MQTT 5 PUBLISH received. paho's ``Properties()`` builds its three lookup tables anew each time and
  ``unpack`` walks all 27 names to clear a new object: 12 µs a message, a third of paho's cost per
  MQTT 5 message (docs/performance.md). ``install_shared_table_properties`` puts there a subclass
  that shares one set of those tables and reads an empty property block (the usual case) at once.
  Every other use of ``Properties`` (ours, the bridges', paho's own outgoing packets) is untouched;
  with a paho that decodes elsewhere (2.1), nothing is replaced and MQTT 5 is only slower.
- ``paho.mqtt.client.MQTTMessage``: the class paho makes a message of, for every PUBLISH received
  (and for each one published). Its ``__init__`` makes an ``MQTTMessageInfo`` holding a
  ``threading.Condition``, which only a *published* message ever uses (``wait_for_publish``): 1 µs,
  about a fifth of paho's own work per received message (docs/performance.md).
  ``install_lazy_info_message`` puts there ``LazyInfoMessage``, a subclass that makes ``info`` when
  first asked for (once, under a lock), with the same other attributes; installed only while paho's
  class has exactly the slots it was written for.
- ``Client._on_message_filtered``: the callbacks of ``message_callback_add``, which paho looks up by
  walking the topic tree for every message (we register one, for ``$SYS/broker/publish/messages/
  dropped``). ``BufferedClient`` puts there a ``FilteredCallbacks`` that skips the walk when no
  filter can match the topic's first level.
- ``MQTTMessage._topic``: the raw topic bytes, for the dead-letter record of a topic that is not
  UTF-8 (``MQTTMessage.topic`` raises then). Brokers that follow MQTT refuse such topics, so this
  is for the broker that does not.

A paho release may rename any of them. A fallback would then fail silently (a deadlock on
DISCONNECT, a PUBACK never sent), so ``check`` runs when the source is built: if one is missing or
has another shape, the collector refuses to start with ``UnsupportedPaho`` naming it. The test suite
runs ``check`` against the installed paho (tests/unit/test_paho_internals.py).

(Whether a publish was acknowledged, an internal once used, now comes from paho's public
``on_publish`` callback: see ``collector/source/mqtt.py``.)

Why not drive paho's loop from a thread of ours with its public ``loop_read``/``loop_write``/
``loop_misc``, so that pausing is simply not reading? ``loop_misc`` closes the connection once a
PINGREQ is ``keepalive`` old whatever else has arrived, and cannot be told that its PINGRESP is
unread by our choice, so ``_ping_t`` would stay; batched PUBACKs would still need ``_packet_queue``
(``Client.ack`` makes a packet per message); and the reconnect and back-off of ``loop_forever``
would have to be written again. This way the hot path is the one measured by ``make bench``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any, ClassVar, Protocol, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.source.read_buffer import ReadBuffer

TESTED_WITH = "2.1 and 2.2"


class UnsupportedPaho(RuntimeError):
    """The installed paho-mqtt lacks an internal the collector relies on."""


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


def paho_version() -> str:
    try:
        return metadata.version("paho-mqtt")
    except metadata.PackageNotFoundError:  # pragma: no cover - paho imported from a source tree
        return "unknown"


def _refuse(what: str, why: str) -> UnsupportedPaho:
    return UnsupportedPaho(
        f"paho-mqtt {paho_version()} has no usable {what} ({why}); the collector was tested with paho-mqtt "
        f"{TESTED_WITH}: install one of those (pip install 'paho-mqtt>=2.1,<2.3')"
    )


def check(client: mqtt.Client) -> None:
    """Raise ``UnsupportedPaho`` unless every internal used below exists with the expected shape."""
    lock = getattr(client, "_in_callback_mutex", None)
    if not (callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))):
        raise _refuse("Client._in_callback_mutex", "released while reading is paused")
    if isinstance(lock, type(threading.RLock())):
        raise _refuse("Client._in_callback_mutex", "expected a plain lock, found a reentrant one")
    queue = getattr(client, "_packet_queue", None)
    expected = ["command", "packet", "mid", "qos"]
    try:
        parameters = list(inspect.signature(queue).parameters)[:4] if callable(queue) else []
    except (TypeError, ValueError):
        parameters = []
    if parameters != expected:
        raise _refuse("Client._packet_queue(command, packet, mid, qos)", "queues a batch of PUBACKs")
    if not isinstance(getattr(client, "_ping_t", None), int | float):
        raise _refuse("Client._ping_t", "the time of the unanswered PINGREQ, forgotten while packets arrive")
    create_socket = getattr(client, "_create_socket", None)
    try:
        socket_parameters = list(inspect.signature(create_socket).parameters) if callable(create_socket) else None
    except (TypeError, ValueError):
        socket_parameters = None
    if socket_parameters != []:
        raise _refuse("Client._create_socket()", "makes the connection's socket, read through a buffer")
    if not isinstance(getattr(client, "_on_message_filtered", None), MQTTMatcher):
        raise _refuse("Client._on_message_filtered", "message_callback_add's callbacks, looked up per message")
    probe = mqtt.MQTTMessage(mid=1, topic=b"\xff")
    if getattr(probe, "_topic", None) != b"\xff":
        raise _refuse("MQTTMessage._topic", "the raw bytes of a topic that is not UTF-8")


def callback_lock(client: mqtt.Client) -> _Lock:
    """The lock paho holds while it runs our callbacks (checked by ``check``)."""
    return cast(_Lock, client._in_callback_mutex)


def queue_packet(client: mqtt.Client, command: int, data: bytes) -> None:
    """Queue ``data`` (whole MQTT packets of one ``command`` type) for paho's thread to write."""
    client._packet_queue(command, data, 0, 0)


def forget_ping(client: mqtt.Client) -> None:
    """The broker has just been heard from (or is not read on purpose): no PINGREQ is overdue."""
    client._ping_t = 0.0


def raw_topic(message: mqtt.MQTTMessage) -> bytes:
    return message._topic


# Packets handled in one loop_read at most, so that paho's loop still turns (PUBACKs, keepalive)
# when a fast broker keeps the buffer full: a 64 KiB read holds about 200 readings.
MAX_PACKETS_PER_READ = 1000


class FilteredCallbacks(MQTTMatcher):
    """paho's store of ``message_callback_add`` callbacks, with no topic walk where none can match."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        # paho's walk starts at the root's child named by the topic's first level, "+" or "#": with
        # none of those (our one filter is "$SYS/..."; readings are not under "$SYS"), nothing matches.
        first = self._root._children
        if "+" not in first and "#" not in first and topic.partition("/")[0] not in first:
            return iter(())
        return cast(Iterator[Any], super().iter_match(topic))  # type: ignore[no-untyped-call]


class BufferedClient(mqtt.Client):
    """paho's client reading through a ``ReadBuffer``: the same packets, far fewer system calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(getattr(self, "_on_message_filtered", None), MQTTMatcher):  # else check() refuses
            self._on_message_filtered = FilteredCallbacks()  # type: ignore[no-untyped-call]

    def _create_socket(self) -> Any:
        return ReadBuffer(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        buffer = self.socket()
        if not isinstance(buffer, ReadBuffer):
            return rc
        handled = 1
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and handled < MAX_PACKETS_PER_READ and buffer.buffered:
            rc = super().loop_read(max_packets)
            if self.socket() is None:  # the connection went away meanwhile (a new one gets a new buffer)
                break
            handled += 1
        return rc


# paho's lookup tables, as its Properties() builds them for every object; the same for every packet type.
_PROTOTYPE = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_SHARED_TABLES = tuple((name, getattr(_PROTOTYPE, name)) for name in ("types", "names", "properties"))


class SharedTableProperties(Properties):
    """paho's ``Properties`` for received packets, with the lookup tables of one prototype shared.

    Those tables (``types``, ``names``, ``properties``) are never changed after ``__init__`` by paho;
    a property's value is an attribute of its own object, as in paho. Equal to paho's own on every
    property block (tests/property/test_shared_table_properties.py)."""

    _TABLE_NAMES: ClassVar[frozenset[str]] = frozenset({"packetType", "types", "names", "properties"})

    def __init__(self, packetType: int) -> None:  # paho's parameter name
        object.__setattr__(self, "packetType", packetType)
        for name, table in _SHARED_TABLES:
            object.__setattr__(self, name, table)

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        # A property length of 0 on an object holding no value yet: nothing to clear, nothing to read.
        if len(buffer) and buffer[0] == 0 and self.__dict__.keys() <= self._TABLE_NAMES:
            return self, 1
        return cast(tuple[Properties, int], super().unpack(buffer))  # type: ignore[no-untyped-call]


def install_shared_table_properties() -> bool:
    """Make paho 2.2's PUBLISH decoding use ``SharedTableProperties``; False where paho decodes elsewhere."""
    try:
        from paho.mqtt import _packet
    except ImportError:  # paho 2.1: PUBLISH decoded inside Client, left as it is
        return False
    current = getattr(_packet, "Properties", None)
    if not callable(getattr(_packet, "decode_publish", None)) or current not in (Properties, SharedTableProperties):
        return False
    _packet.Properties = SharedTableProperties  # type: ignore[attr-defined]
    return True


# What paho 2.1 and 2.2's MQTTMessage holds; LazyInfoMessage sets the same, ``info`` when asked for.
_MESSAGE_SLOTS = frozenset(
    {"_topic", "dup", "info", "mid", "payload", "properties", "qos", "retain", "state", "timestamp"}
)
_PAHO_MESSAGE = mqtt.MQTTMessage
_INFO_SLOT: Any = vars(_PAHO_MESSAGE)["info"]  # the slot's descriptor: reads raise AttributeError until set
_INFO_LOCK = threading.Lock()  # a published message's info may be first asked for by two threads


class LazyInfoMessage(_PAHO_MESSAGE):
    """paho's ``MQTTMessage`` whose ``MQTTMessageInfo`` (and its ``threading.Condition``) is made on
    first use: never, for a received message. Equal to paho's on every other attribute
    (tests/unit/test_paho_internals.py)."""

    __slots__ = ()

    def __init__(self, mid: int = 0, topic: bytes = b"") -> None:  # paho's __init__, less the info
        self.timestamp = 0.0
        self.state = mqtt.mqtt_ms_invalid
        self.dup = False
        self.mid = mid
        self._topic = topic
        self.payload = b""
        self.qos = 0
        self.retain = False
        self.properties = None

    @property  # over paho's slot, read and written through _INFO_SLOT
    def info(self) -> mqtt.MQTTMessageInfo:
        try:
            return cast(mqtt.MQTTMessageInfo, _INFO_SLOT.__get__(self, LazyInfoMessage))
        except AttributeError:
            with _INFO_LOCK:
                try:
                    return cast(mqtt.MQTTMessageInfo, _INFO_SLOT.__get__(self, LazyInfoMessage))
                except AttributeError:
                    made = mqtt.MQTTMessageInfo(self.mid)
                    _INFO_SLOT.__set__(self, made)
                    return made

    @info.setter
    def info(self, value: mqtt.MQTTMessageInfo) -> None:
        _INFO_SLOT.__set__(self, value)


def install_lazy_info_message() -> bool:
    """Make paho build ``LazyInfoMessage``s; False (nothing changed) if its class is not the one known."""
    if mqtt.MQTTMessage is LazyInfoMessage:
        return True
    if mqtt.MQTTMessage is not _PAHO_MESSAGE or frozenset(_PAHO_MESSAGE.__slots__) != _MESSAGE_SLOTS:
        return False
    setattr(mqtt, "MQTTMessage", LazyInfoMessage)  # noqa: B010 - a module global, on purpose
    return True
