"""systemd's notification protocol (``sd_notify``): READY, WATCHDOG, STATUS and STOPPING.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` names an abstract-namespace socket), so it is written here in a
few lines instead of taking a dependency (docs/decisions.md). Without ``$NOTIFY_SOCKET`` (not
started by systemd with ``Type=notify``) every call does nothing.

What the collector says, and when (docs/operations.md, "systemd"):

- ``READY=1`` once the broker has granted the telemetry subscriptions (SUBACK): from then on a
  reading published is collected. ``systemctl start`` returns then, and units ordered after ours
  start then.
- ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (systemd's ``WatchdogSec=``), sent by a task of
  the asyncio event loop itself: a loop blocked by a bug (a synchronous call that never returns, a
  dead lock) stops the pings, and systemd kills and restarts the daemon. paho's network thread
  keeping the MQTT connection alive does not count: only the loop that stores readings does.
- ``STATUS=`` every ``STATUS_EVERY_S`` with the rates since the previous one (messages received
  and lines stored per second, lines in the spool, health), shown by ``systemctl status``.
- ``STOPPING=1`` when the shutdown begins (SIGTERM), before the final flush.

Sending never raises: a notification that cannot be delivered is logged once and otherwise
ignored, because the collector's work does not depend on systemd hearing it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

log = structlog.get_logger("collector.ops.systemd")

STATUS_EVERY_S = 5.0
# Test-only hook (tests/ops/test_systemd.py): with this variable set to a number of seconds, SIGUSR2
# blocks the event loop that long, so a test can show that the watchdog pings stop. Never set it in
# production; without it SIGUSR2 keeps its default action.
BLOCK_LOOP_ENV = "CITY_TELEMETRY_TEST_BLOCK_LOOP_S"


def notify_address(value: str) -> str | bytes | None:
    """The socket address ``$NOTIFY_SOCKET`` names: a path, or ``@name`` for the abstract namespace."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not used by systemd for services


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None if no watchdog is asked
    for this process (``$WATCHDOG_PID``, when set, must be ours)."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (owner and owner != str(pid)):
        return None
    return int(usec) / 2 / 1_000_000


class Notifier:
    """Sends notifications to systemd, if ``$NOTIFY_SOCKET`` is set; does nothing otherwise."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = notify_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = watchdog_interval(environ, os.getpid()) if self.address is not None else None
        self._sock: socket.socket | None = None
        self._failed = False
        self.ready_sent = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram (keys upper-cased); False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                log.warning(
                    "systemd_notify_failed",
                    error=str(error),
                    socket=os.environ.get("NOTIFY_SOCKET"),
                    hint="systemd's notification socket did not take a message: with Type=notify systemd may "
                    "consider the start failed or the watchdog expired; check NotifyAccess=main in the unit",
                )
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def run(self, subscribed: asyncio.Event, stats: Callable[[], dict[str, Any]]) -> None:
        """READY=1 once ``subscribed`` is set, then WATCHDOG=1 and STATUS= until cancelled."""
        if not self.enabled:
            return
        tasks = [asyncio.create_task(self._ready(subscribed, stats), name="systemd-ready")]
        if self.watchdog_s is not None:
            tasks.append(asyncio.create_task(self._watchdog(self.watchdog_s), name="systemd-watchdog"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _ready(self, subscribed: asyncio.Event, stats: Callable[[], dict[str, Any]]) -> None:
        self.send(status="connecting to the broker")
        await subscribed.wait()
        rates = _Rates(stats())
        self.send(ready=1, status="subscribed; " + rates.describe(stats()))
        self.ready_sent = True
        log.info("systemd_ready", watchdog_every_s=self.watchdog_s)
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self.send(status=rates.describe(stats()))

    async def _watchdog(self, every_s: float) -> None:
        while True:
            self.send(watchdog=1)
            await asyncio.sleep(every_s)

    def stopping(self) -> None:
        self.send(stopping=1, status="stopping: flushing what was received")


class _Rates:
    """Messages received and lines stored per second between two looks at the statistics."""

    def __init__(self, first: dict[str, Any]) -> None:
        self._at = time.monotonic()
        self._received = int(first.get("received", 0))
        self._stored = _stored(first)

    def describe(self, now: dict[str, Any]) -> str:
        at = time.monotonic()
        elapsed = max(at - self._at, 1e-3)
        received, stored = int(now.get("received", 0)), _stored(now)
        text = (
            f"in {(received - self._received) / elapsed:.1f} msg/s, "
            f"stored {(stored - self._stored) / elapsed:.1f} lines/s, "
            f"spool {now.get('spool_lines', 0)} lines, {now.get('health', 'unknown')}"
        )
        self._at, self._received, self._stored = at, received, stored
        return text


def _stored(stats: dict[str, Any]) -> int:
    return int(stats.get("lines_written", 0)) + int(stats.get("lines_drained", 0))


def install_test_block_hook(loop: asyncio.AbstractEventLoop, environ: Mapping[str, str] | None = None) -> bool:
    """The test-only SIGUSR2 hook of ``BLOCK_LOOP_ENV`` (see there); True if installed."""
    import signal

    value = (os.environ if environ is None else environ).get(BLOCK_LOOP_ENV, "")
    try:
        seconds = float(value)
    except ValueError:
        return False
    if seconds <= 0:
        return False

    def block() -> None:
        log.warning("test_loop_blocked", seconds=seconds, hint=f"{BLOCK_LOOP_ENV} is set: a test-only hook")
        time.sleep(seconds)  # on purpose: the event loop does nothing else meanwhile

    loop.add_signal_handler(signal.SIGUSR2, block)
    return True
