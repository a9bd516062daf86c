"""A QoS 1 MQTT 3.1.1 publisher that costs almost nothing: the benches' load generator.

The load generator shares the 2 cores with what it measures (mosquitto, the collector, influxd). With
paho, even trimmed (a buffered read, no in-flight walk), it cost 60 to 84 µs of CPU a message, so at
10,000 msg/s it took two thirds of a core from the collector and influxd, and the sustained rate the
bench reported was the machine's, not the collector's (docs/performance.md, "The load generator").

This publisher writes the PUBLISH packets itself, many per ``sendall``, and counts the broker's
PUBACKs; nothing per message but building the packet. It is a bench tool, not part of the collector,
whose MQTT stays paho's (docs/decisions.md, "The benches' load generator writes its own packets"). It
speaks only what a publisher needs: CONNECT with a clean session, PUBLISH QoS 1, PUBACK, PINGREQ
when nothing was sent for a while, DISCONNECT. Anything else from the broker is an error: the bench
must not report a rate the broker did not accept. tests/unit/test_raw_publisher.py checks every byte
against paho, as a subscriber receives it from a real mosquitto.
"""

from __future__ import annotations

import contextlib
import socket
import time

CONNACK, PUBACK, PINGRESP = 0x20, 0x40, 0xD0
KEEPALIVE_S = 60
MAX_UNACKED = 20_000  # packet ids are 16-bit: never reuse one that the broker has not acknowledged


class BrokerRefused(RuntimeError):
    """The broker refused the connection, sent something unexpected, or closed the connection."""


def remaining_length(value: int) -> bytes:
    """MQTT's variable byte integer (3.1.1, 2.2.3)."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | 0x80 if value else digit)
        if not value:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes, packet_id: int) -> bytes:
    """PUBLISH, QoS 1, not a duplicate, not retained (3.1.1, 3.3)."""
    body_length = 2 + len(topic) + 2 + len(payload)
    return b"".join(
        (
            b"\x32",
            remaining_length(body_length),
            len(topic).to_bytes(2, "big"),
            topic,
            packet_id.to_bytes(2, "big"),
            payload,
        )
    )


def connect_packet(client_id: str) -> bytes:
    """CONNECT, protocol level 4 (3.1.1), clean session, no will, no credentials."""
    name = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + KEEPALIVE_S.to_bytes(2, "big") + len(name).to_bytes(2, "big") + name
    return b"\x10" + remaining_length(len(body)) + body


class RawPublisher:
    """One connection to the broker. ``publish`` queues packets, ``flush`` sends them in one write."""

    def __init__(self, port: int, client_id: str, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent = 0  # PUBLISH packets written to the socket
        self.acked = 0  # PUBACKs received
        self._queued: list[bytes] = []
        self._next_id = 1
        self._inbox = b""
        self._last_write = time.monotonic()
        self.sock.sendall(connect_packet(client_id))
        packet_type, body = self._read_packet_blocking()
        if packet_type != CONNACK or len(body) != 2 or body[1] != 0:
            raise BrokerRefused(f"CONNACK expected, got type {packet_type:#x} {body!r}")
        self.sock.settimeout(None)  # blocking: MSG_DONTWAIT reads raise BlockingIOError, not a timeout

    @property
    def unacked(self) -> int:
        return self.sent + len(self._queued) - self.acked

    def publish(self, topic: bytes, payload: bytes) -> None:
        """Queue one QoS 1 message; the caller keeps :attr:`unacked` below ``MAX_UNACKED``."""
        packet_id = self._next_id
        self._next_id = packet_id % 65_535 + 1
        self._queued.append(publish_packet(topic, payload, packet_id))

    def flush(self) -> None:
        """Write what is queued (blocks while the broker does not read: that is its backpressure)."""
        if self._queued:
            self.sock.sendall(b"".join(self._queued))
            self.sent += len(self._queued)
            self._queued.clear()
            self._last_write = time.monotonic()
        elif time.monotonic() - self._last_write > KEEPALIVE_S / 2:
            self.sock.sendall(b"\xc0\x00")  # PINGREQ
            self._last_write = time.monotonic()
        self.read_acks()

    def read_acks(self) -> None:
        """Count the PUBACKs that have arrived, without waiting."""
        while True:
            try:
                data = self.sock.recv(65_536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self._take(data)
            if len(data) < 65_536:
                return

    def wait_acked(self, timeout_s: float) -> bool:
        """Until every message sent has its PUBACK (True), or ``timeout_s`` has passed (False)."""
        self.flush()
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65_536)
            except TimeoutError:
                return False
            finally:
                self.sock.settimeout(None)
            self._take(data)
        return True

    def close(self) -> None:
        """DISCONNECT (the broker discards no will: there is none) and close the socket."""
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()

    # -- reading ---------------------------------------------------------------------------------
    def _take(self, data: bytes) -> None:
        """Count the packets that ``data`` completes (an empty read: the broker closed the connection)."""
        if not data:
            raise BrokerRefused("the broker closed the connection")
        inbox, at = self._inbox + data, 0
        while len(inbox) - at >= 2:
            if inbox[at] == PUBACK and inbox[at + 1] == 2:  # the common case, without a general parse
                if len(inbox) - at < 4:
                    break
                self.acked += 1
                at += 4
                continue
            parsed = split_packet(inbox, at)
            if parsed is None:
                break
            packet_type, body, at = parsed
            if packet_type == PINGRESP:
                continue
            raise BrokerRefused(f"unexpected packet type {packet_type:#x} from the broker: {body[:40]!r}")
        self._inbox = inbox[at:]

    def _read_packet_blocking(self) -> tuple[int, bytes]:
        while (parsed := split_packet(self._inbox, 0)) is None:
            data = self.sock.recv(4096)
            if not data:
                raise BrokerRefused("the broker closed the connection before CONNACK")
            self._inbox += data
        packet_type, body, end = parsed
        self._inbox = self._inbox[end:]
        return packet_type, body


def split_packet(buffer: bytes | bytearray, at: int) -> tuple[int, bytes, int] | None:
    """(packet type, body, end) of the packet at ``at``; None if it has not fully arrived."""
    length, multiplier, index = 0, 1, at + 1
    while True:
        if index >= len(buffer):
            return None
        digit = buffer[index]
        length += (digit & 0x7F) * multiplier
        multiplier *= 128
        index += 1
        if not digit & 0x80:
            break
        if multiplier > 128**3:
            raise BrokerRefused("malformed remaining length from the broker")
    if len(buffer) < index + length:
        return None
    return buffer[at] & 0xF0, bytes(buffer[index : index + length]), index + length
