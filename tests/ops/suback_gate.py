"""A TCP relay in front of a real mosquitto that holds the broker's SUBACKs until the test releases them.

Everything else passes through unchanged, both ways (CONNACK included), so a client behind it is
connected but not yet subscribed for as long as the test wants: what tells "READY when connected"
from "READY when subscribed" apart. Packets from the broker are framed by MQTT's fixed header
(type in the high nibble of the first byte, then the remaining length as a variable-length integer).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from bench.raw_publisher import split_packet

SUBACK = 9
HOLD_MAX_S = 60.0  # a forgotten release never hangs the relay for longer


def _packets(buffer: bytearray) -> list[bytes]:
    """Complete MQTT packets at the start of ``buffer`` (removed from it)."""
    out = []
    while (parsed := split_packet(buffer, 0)) is not None:
        end = parsed[2]
        out.append(bytes(buffer[:end]))
        del buffer[:end]
    return out


class SubackGate:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port: int = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.holding = threading.Event()  # a SUBACK has arrived and is held
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            thread = threading.Thread(target=self._relay, args=(client, server), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        from_broker = bytearray()
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([client, server], [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        server.sendall(data)
                        continue
                    from_broker += data
                    for packet in _packets(from_broker):
                        if packet[0] >> 4 == SUBACK and not self.release.is_set():
                            self.holding.set()
                            deadline = time.monotonic() + HOLD_MAX_S
                            while not self.release.wait(0.05) and not self._stop.is_set():
                                if time.monotonic() > deadline:
                                    break
                        client.sendall(packet)
        except OSError:
            return
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.listener.close()
