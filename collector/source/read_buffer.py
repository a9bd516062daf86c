"""A socket whose small reads are served from one large read: paho's reader at a syscall per burst.

paho-mqtt reads every packet with at least three ``recv`` calls (the command byte, the remaining
length a byte at a time, then the body) and handles one packet per turn of its network loop, each
turn a ``select``. Under a backlog that is four system calls and a loop turn per message: the
largest part of what paho's thread costs (docs/performance.md, "Profile"). ``ReadBuffer`` takes what
the kernel has, up to ``READ_CHUNK`` bytes, in one ``recv`` and hands paho its small reads from
that copy; ``pending()`` tells paho's loop (as it does for TLS) that bytes wait, so it does not block
in ``select`` while they do. paho still parses every packet: no MQTT is read here.

The buffer belongs to one connection: paho makes a new socket, so a new ``ReadBuffer``, for every
(re)connection, and what the old one held is gone with it, as unread kernel buffers are.
"""

from __future__ import annotations

from typing import Any

READ_CHUNK = 65536  # one recv: about 200 readings of 300 bytes; a TLS record is at most 16 KiB


class ReadBuffer:
    """Wraps a connected socket (plain or TLS); ``recv`` returns at most ``size`` bytes, as usual."""

    __slots__ = ("_data", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data: bytes = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        data = self._data
        pos = self._pos
        if pos < len(data):
            end = pos + size
            self._pos = end
            return data[pos:end]
        # Empty: one read of whatever the kernel has; BlockingIOError and TLS want-read pass to paho.
        received: bytes = self._sock.recv(size if size > READ_CHUNK else READ_CHUNK)
        if len(received) <= size:
            self._data = b""
            self._pos = 0
            return received
        self._data = received
        self._pos = size
        return received[:size]

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet handed to paho."""
        return max(0, len(self._data) - self._pos)

    def pending(self) -> int:
        """Bytes readable without waiting: ours, and those TLS has decrypted but not yet returned."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        return int(self._sock.send(data))

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def close(self) -> None:
        self._data = b""
        self._pos = 0
        self._sock.close()

    def __getattr__(self, name: str) -> Any:  # getpeername, settimeout, ...: the socket's own
        return getattr(self._sock, name)
