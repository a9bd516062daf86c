"""Why paho-mqtt and not aiomqtt: how fast each drains the same backlog from a local mosquitto.

The collector's MQTT edge (collector/source/mqtt.py) is bare paho-mqtt: its network thread decodes
packets, and every message is acknowledged (``manual_ack``) only once its readings are durable. aiomqtt
wraps the same paho client in asyncio: it drives paho from the event loop, copies every message into
its own ``Message`` and puts it on an ``asyncio.Queue``. It has no public way to hold an acknowledgement
back (paho acknowledges when its callback returns, i.e. when the message is queued, not stored), so
it is measured twice: as published, and with the workaround its users post (paho's ``manual_ack_set``
and ``ack`` reached through the private ``Client._client``).

Each variant drains the same N QoS 1 messages queued in mosquitto for its persistent session (MQTT
3.1.1, the collector's default), timed from the first message received to the last (received and
acknowledged by the application, where it can); the connection set-up is shown apart. One backlog is
published once and queued by the broker for every run's session. Variants alternate, each run
``--repeat`` times; best and median are reported in one run, so the ratio holds on a shared machine.

Needs the optional ``bench`` extra (``pip install -e '.[bench]'``). Loopback only, bounded in count
and time. Run: .venv/bin/python -m bench.compare_mqtt [--messages 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest import make_messages, publish_all
from collector.harness.localservers import Mosquitto

TOPIC_FILTER = "bxl/#"
DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Timing:
    to_first_s: float  # connect until the first message (session set-up, not throughput)
    drain_s: float  # first message to the last


def paho_drain(port: int, client_id: str, expected: int) -> Timing:
    """Bare paho, as the collector uses it: network thread, manual acknowledgements. Seconds to drain."""
    done = threading.Event()
    received = 0
    first = 0.0

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received, first
        if not received:
            first = time.perf_counter()
        received += 1
        client.ack(message.mid, message.qos)
        if received == expected:
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )
    client.on_message = on_message
    started = time.perf_counter()
    client.connect("127.0.0.1", port)
    client.loop_start()
    finished = done.wait(DRAIN_TIMEOUT_S)
    ended = time.perf_counter()
    client.disconnect()
    client.loop_stop()
    if not finished:
        raise RuntimeError(f"paho received {received} of {expected} messages")
    return Timing(first - started, ended - first)


async def _aiomqtt_drain(port: int, client_id: str, expected: int, manual_ack: bool) -> Timing:
    received = 0
    first = 0.0
    started = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=client_id, clean_session=False, protocol=aiomqtt.ProtocolVersion.V311
    ) as client:
        paho = client._client  # the private workaround: aiomqtt has no public manual acknowledgement
        if manual_ack:
            paho.manual_ack_set(True)
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for message in client.messages:
                if not received:
                    first = time.perf_counter()
                received += 1
                if manual_ack:
                    paho.ack(message.mid, message.qos)
                if received == expected:
                    break
        ended = time.perf_counter()
    return Timing(first - started, ended - first)


def aiomqtt_drain(port: int, client_id: str, expected: int) -> Timing:
    return asyncio.run(_aiomqtt_drain(port, client_id, expected, manual_ack=False))


def aiomqtt_manual_drain(port: int, client_id: str, expected: int) -> Timing:
    return asyncio.run(_aiomqtt_drain(port, client_id, expected, manual_ack=True))


def create_session(port: int, client_id: str) -> None:
    """A persistent session subscribed to the backlog's topics, left disconnected."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect("127.0.0.1", port)
    client.subscribe(TOPIC_FILTER, qos=1)
    for _ in range(20):  # until SUBACK has come back (bounded)
        client.loop(0.05)
    client.disconnect()


Drain = Callable[[int, str, int], Timing]
VARIANTS: list[tuple[str, Drain]] = [
    ("paho-mqtt, manual acks (collector)", paho_drain),
    ("aiomqtt, automatic acks", aiomqtt_drain),
    ("aiomqtt, private manual-ack workaround", aiomqtt_manual_drain),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    messages = make_messages(args.messages)
    size = sum(len(p) for _, p in messages) / len(messages)
    rates: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        mosquitto = Mosquitto(Path(tmp) / "mosquitto")
        mosquitto.start()
        try:
            # One backlog for every run: each run's persistent session exists before it is published, so
            # the broker queues a copy for each (publishing is the slow part on a shared machine).
            runs = []
            for round_ in range(args.repeat):
                for index, (name, drain) in enumerate(VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]):
                    client_id = f"bench-cmp-{round_}-{index}"
                    create_session(mosquitto.port, client_id)
                    runs.append((round_, name, drain, client_id))
            published = time.perf_counter()
            publish_all(mosquitto.port, messages)
            print(f"  backlog published in {time.perf_counter() - published:.1f} s", file=sys.stderr, flush=True)
            for round_, name, drain, client_id in runs:
                timing = drain(mosquitto.port, client_id, len(messages))
                rates[name].append((len(messages) - 1) / timing.drain_s)
                print(
                    f"  round {round_ + 1}: {name}: first message after {timing.to_first_s:.2f} s, "
                    f"drained in {timing.drain_s:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            mosquitto.stop()
    print(f"{len(messages):,} QoS 1 messages of {size:,.0f} bytes on average, MQTT 3.1.1, mosquitto on loopback")
    baseline = max(rates[VARIANTS[0][0]])
    print(f"{'client':<40} {'best msg/s':>11} {'median msg/s':>13} {'best / paho':>12}")
    for name, values in rates.items():
        best = max(values)
        print(f"{name:<40} {best:>11,.0f} {statistics.median(values):>13,.0f} {best / baseline:>12.2f}")


if __name__ == "__main__":
    main()
