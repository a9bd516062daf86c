"""paho's network loop in a thread of its own, or driven from the asyncio thread: which costs less?

Issue 10 asks to measure, not assume, whether driving paho's loop from the event loop's thread
(no second thread contending for the interpreter lock, no hand-over between threads) would bring
the collector closer to the bare subscriber. This bench answers for the part that could change:
receiving and handing over. Both ways drain the same backlog from mosquitto through the collector's
own paho client (``BufferedClient`` with its read buffer and lazy message info), run every message
through the collector's real pipeline (decode, validate, the KPI stage, normalise, line protocol)
on the asyncio thread, and acknowledge each batch. Nothing is written anywhere: what differs is
only how messages get from the socket to the pipeline.

- ``thread`` (the collector today): ``loop_start()``; ``on_message`` appends to a deque and wakes
  the event loop (``call_soon_threadsafe``) once per batch; the consumer takes at most 100 messages
  a turn and runs them; their PUBACKs go as one queued write per ``--ack-every`` messages (paho's
  thread writes it), as a committed batch's do in the collector.
- ``asyncio``: no thread. ``loop.add_reader`` on paho's socket calls ``loop_read``; ``on_message``
  appends to a list; the consumer takes at most 100 messages a turn and runs them; the PUBACKs are
  written at once, as many together as the other way; ``loop_misc`` runs once a second. (A port to
  the collector would also need write-readiness and lost-connection handling, not exercised here.)

Reported per run: messages per second (wall) and CPU per message of this process (both threads),
the runs alternating so that a change in the machine's load hits both ways alike.

Run: .venv/bin/python -m bench.compare_paho_loop --messages 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections import deque
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import forget_session, make_messages, new_pipeline, publish_all
from collector.harness.localservers import Mosquitto
from collector.source import paho_internals
from collector.source.read_buffer import ReadBuffer

TURN = 100  # messages the consumer runs between two turns of the event loop (collector/app/service.py)
CLIENT_ID = "bench-paho-loop"


def new_client() -> paho_internals.BufferedClient:
    paho_internals.install_lazy_info_message()
    return paho_internals.BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=CLIENT_ID,
        protocol=mqtt.MQTTv311,
        clean_session=False,
        manual_ack=True,
    )


class Acknowledger:
    """PUBACKs as one queued write per ``every`` messages, as the collector sends a committed batch's
    (``MqttSource.ack``; a batch is what arrived during the previous InfluxDB write, often thousands)."""

    def __init__(self, client: mqtt.Client, every: int) -> None:
        self.client, self.every = client, every
        self.mids: list[int] = []

    def add(self, batch: list[mqtt.MQTTMessage], last: bool) -> None:
        self.mids.extend(message.mid for message in batch)
        if len(self.mids) >= self.every or last:
            data = b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in self.mids)
            paho_internals.queue_packet(self.client, 0x40, data)
            self.mids.clear()


def subscribe_session(port: int) -> None:
    """Create the persistent session (subscribed to ``bxl/#``) that the backlog is queued for."""
    client = new_client()
    client.connect("127.0.0.1", port)
    client.subscribe("bxl/#", qos=1)
    for _ in range(20):
        client.loop(0.05)
    client.disconnect()


async def drain_thread(port: int, expected: int, ack_every: int) -> tuple[float, float, int]:
    loop = asyncio.get_running_loop()
    queue: deque[mqtt.MQTTMessage] = deque()
    wake = asyncio.Event()
    scheduled = False
    client = new_client()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal scheduled
        queue.append(message)
        if not scheduled:
            scheduled = True
            loop.call_soon_threadsafe(wake.set)

    client.on_message = on_message
    pipeline = new_pipeline(kpi=True)
    acks = Acknowledger(client, ack_every)
    done = 0
    client.connect("127.0.0.1", port)
    started, cpu = time.perf_counter(), time.process_time()
    client.loop_start()
    try:
        while done < expected:
            await asyncio.wait_for(wake.wait(), 60)
            scheduled = False
            wake.clear()
            while queue:
                batch = [queue.popleft() for _ in range(min(TURN, len(queue)))]
                now = time.time_ns()
                for message in batch:
                    pipeline.process(message.topic, message.payload, message.retain, now, message.mid, message.dup)
                done += len(batch)
                acks.add(batch, done >= expected)
                await asyncio.sleep(0)
        return time.perf_counter() - started, time.process_time() - cpu, done
    finally:
        client.disconnect()
        client.loop_stop()


async def drain_asyncio(port: int, expected: int, ack_every: int) -> tuple[float, float, int]:
    loop = asyncio.get_running_loop()
    received: list[mqtt.MQTTMessage] = []
    wake = asyncio.Event()
    client = new_client()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)

    def readable() -> None:
        client.loop_read()
        if received:
            wake.set()
        buffer = client.socket()
        # Bytes already read into the buffer do not make the socket readable again: come back for them.
        if isinstance(buffer, ReadBuffer) and buffer.pending():
            loop.call_soon(readable)

    client.on_message = on_message
    pipeline = new_pipeline(kpi=True)
    acks = Acknowledger(client, ack_every)
    done = 0
    client.connect("127.0.0.1", port)
    sock = client.socket()
    assert sock is not None, "connect() made no socket"
    started, cpu = time.perf_counter(), time.process_time()
    loop.add_reader(sock.fileno(), readable)

    async def misc() -> None:
        while True:
            await asyncio.sleep(1.0)
            client.loop_misc()

    housekeeping = asyncio.create_task(misc())
    try:
        client.loop_write()  # CONNECT
        while done < expected:
            await asyncio.wait_for(wake.wait(), 60)
            wake.clear()
            while received:
                batch = received[:TURN]
                del received[:TURN]
                now = time.time_ns()
                for message in batch:
                    pipeline.process(message.topic, message.payload, message.retain, now, message.mid, message.dup)
                done += len(batch)
                acks.add(batch, done >= expected)  # written at once: paho has no thread to wake
                if client.want_write():
                    client.loop_write()
                await asyncio.sleep(0)
        return time.perf_counter() - started, time.process_time() - cpu, done
    finally:
        housekeeping.cancel()
        loop.remove_reader(sock.fileno())
        client.disconnect()
        client.loop_write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way, alternating (at most 10)")
    parser.add_argument(
        "--ack-every", type=int, default=2000, help="messages per PUBACK write (the collector: a committed batch)"
    )
    args = parser.parse_args()
    repeats = max(1, min(args.repeats, 10))
    messages = make_messages(args.messages)
    results: dict[str, list[tuple[float, float]]] = {"thread": [], "asyncio": []}
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp) / "mosquitto")
        mosquitto.start()
        try:
            for repeat in range(repeats):
                ways = [("thread", drain_thread), ("asyncio", drain_asyncio)]
                for way, drain in ways if repeat % 2 == 0 else ways[::-1]:  # neither always goes first
                    subscribe_session(mosquitto.port)
                    publish_all(mosquitto.port, messages)
                    elapsed, cpu, done = asyncio.run(drain(mosquitto.port, len(messages), args.ack_every))
                    forget_session(mosquitto.port, CLIENT_ID, "3.1.1")
                    assert done == len(messages), f"{way}: {done} of {len(messages)} messages"
                    results[way].append((done / elapsed, cpu * 1e6 / done))
                    print(
                        f"{way:8} {done / elapsed:>9,.0f} msg/s, {cpu * 1e6 / done:5.1f} µs CPU a message", flush=True
                    )
        finally:
            mosquitto.stop()
    print(
        f"{len(messages):,} messages a run, MQTT 3.1.1, PUBACKs every {args.ack_every:,}, "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    for way, runs in results.items():
        rates = " / ".join(f"{r:,.0f}" for r, _ in runs)
        cpus = " / ".join(f"{c:.1f}" for _, c in runs)
        print(f"{way:8} msg/s {rates}; µs CPU a message {cpus}")
    thread_cpu = statistics.median(c for _, c in results["thread"])
    asyncio_cpu = statistics.median(c for _, c in results["asyncio"])
    print(f"median CPU a message, asyncio / thread: {asyncio_cpu / thread_cpu:.2f}")


if __name__ == "__main__":
    main()
