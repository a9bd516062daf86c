"""ReadBuffer: paho's small reads served from one large read, byte for byte, and nothing read ahead lost."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from collector.source import read_buffer
from collector.source.read_buffer import ReadBuffer


class CountingSocket:
    """A real socket that counts the reads reaching it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        return self.sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def pair() -> Any:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def packet(body: bytes) -> bytes:  # an MQTT-shaped frame: command byte, one-byte length, body
    return bytes((0x32, len(body))) + body


def test_a_burst_of_packets_is_read_with_one_system_call_and_comes_back_byte_for_byte(pair: Any) -> None:
    ours, theirs = pair
    counted = CountingSocket(ours)
    buffer = ReadBuffer(counted)
    frames = [packet(f"reading {i}".encode()) for i in range(100)]
    theirs.sendall(b"".join(frames))
    got = []
    for _ in frames:  # as paho reads: the command byte, the length byte, then the body
        command = buffer.recv(1)
        length = buffer.recv(1)
        got.append(command + length + buffer.recv(length[0]))
    assert got == frames
    assert counted.reads == 1
    assert buffer.buffered == 0 and buffer.pending() == 0
    with pytest.raises(BlockingIOError):  # nothing more: the socket's own answer reaches paho
        buffer.recv(1)
    assert counted.reads == 2


def test_pending_tells_paho_that_bytes_wait_without_select(pair: Any) -> None:
    ours, theirs = pair
    buffer = ReadBuffer(ours)
    theirs.sendall(packet(b"abc") + packet(b"defg"))
    assert buffer.recv(1) == b"\x32"
    assert buffer.pending() == buffer.buffered == 10
    assert buffer.recv(100) == b"\x03abc" + packet(b"defg")  # at most what is buffered: no read beyond it
    assert buffer.pending() == 0


def test_a_read_larger_than_the_chunk_asks_the_socket_for_all_of_it(pair: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_buffer, "READ_CHUNK", 16)
    ours, theirs = pair
    buffer = ReadBuffer(ours)
    body = bytes(range(200))
    theirs.sendall(body)
    received = b""
    while len(received) < len(body):
        received += buffer.recv(len(body) - len(received))
    assert received == body


def test_a_closed_peer_reads_as_end_of_stream_after_the_buffered_bytes(pair: Any) -> None:
    ours, theirs = pair
    buffer = ReadBuffer(ours)
    theirs.sendall(b"last")
    theirs.close()
    assert buffer.recv(2) == b"la"
    assert buffer.recv(2) == b"st"
    assert buffer.recv(2) == b""  # paho: connection lost


def test_writes_and_socket_calls_reach_the_socket(pair: Any) -> None:
    ours, theirs = pair
    buffer = ReadBuffer(ours)
    assert buffer.send(b"puback") == 6
    assert theirs.recv(10) == b"puback"
    assert buffer.fileno() == ours.fileno()
    assert buffer.getsockname() == ours.getsockname()  # anything else: the socket's own
    buffer.close()
    assert ours.fileno() == -1
