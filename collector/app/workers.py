"""``city-telemetry run --workers N``: N collector processes on one MQTT shared subscription, one supervisor.

Contract (docs/scaling.md):

- **Worker k** (1..N) is an ordinary collector process (``run --worker k``) with the config of
  :func:`worker_config`: client id ``<mqtt.client_id>-k`` (and account ``<mqtt.username>-k`` when
  the username is the client id, as with the shipped Mosquitto drop-in), spool ``<spool.folder>/worker-k``,
  dead letters ``<dead_letter.file's folder>/worker-k/<name>``, the KPI state in its own spool (or
  ``<kpi.state_file's folder>/worker-k/<name>``), no health listener of its own. The names depend
  on k only, so worker k always resumes its own persistent session and spool, whatever restarts it.
  Every worker subscribes as a member of ``mqtt.shared_group``: the broker hands each message to
  one member.
- **The supervisor** starts the N workers, restarts one that exits (logged, with a backoff of
  ``RESTART_MIN_S`` doubling to ``RESTART_MAX_S``, back to the minimum after ``STABLE_S`` of
  running), forwards SIGTERM/SIGINT to all of them for a clean stop, and serves one ``/healthz``,
  ``/readyz`` and ``/metrics`` (``health.listen``) for the whole.
- **Reporting through a pipe, not ports:** each worker writes one JSON line (its statistics, health
  and readiness) every ``REPORT_EVERY_S`` to a pipe the supervisor gave it (``--stats-fd``). No port
  per worker to choose, to collide or to secure. A worker whose pipe closes (the supervisor is gone)
  stops cleanly. The supervisor sums the counters; a restarted worker's counters start at 0, so
  the last report of each ended run is kept and added (the counters of the whole never go back;
  what a worker counted after its last report, at most ``REPORT_EVERY_S``, is not in them).
- **The workers' watchdog:** systemd watches only the supervisor (its READY=1 once every worker is
  subscribed, its WATCHDOG=1 from its own loop; the workers do not get ``$NOTIFY_SOCKET``); a
  running worker silent for ``HUNG_S`` has a stuck event loop and is killed, then restarted.
- **Health of the whole:** the worst worker's state; a worker not running, or silent for
  ``STALE_S``, is ``unhealthy`` (its share waits in the broker: not lost, not collected).
  Ready when every worker is ready.

Why nothing acknowledged is lost: each worker acknowledges only what it made durable (its own
spool, its own dead-letter file), exactly as one collector does. What the broker assigned to a
worker that is away stays queued in that worker's session (Mosquitto; EMQX and HiveMQ differ:
docs/scaling.md) until worker k, the same client id, comes back, which the supervisor makes sure
of. A worker removed for good (fewer workers) is drained with ``run --drain``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from collector.app.config import Config
from collector.ops.health import HealthServer, Status, bind_listener, is_gauge
from collector.ops.systemd import Notifier

log = structlog.get_logger("collector.app.workers")

REPORT_EVERY_S = 0.5
STALE_S = 5.0
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STABLE_S = 60.0
STOP_EXTRA_S = 30.0  # beyond --grace, for the workers' final KPI pass and closing
HUNG_S = 30.0  # a running worker silent this long is killed and restarted (as systemd's WatchdogSec=30)
# systemd talks to the supervisor only (NotifyAccess=main): the workers are not given its socket.
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
MAX_WORKERS = 64
_ORDER: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def worker_folder(index: int) -> str:
    return f"worker-{index}"


def worker_config(config: Config, index: int) -> Config:
    """The config of worker ``index`` (1..N): its own client id, spool, dead letters, KPI state; no health port."""
    sub = worker_folder(index)
    mqtt = {"client_id": f"{config.mqtt.client_id}-{index}"}
    if config.mqtt.username is not None and config.mqtt.username == config.mqtt.client_id:
        # A broker that names each session after its account (the shipped Mosquitto drop-in's
        # use_username_as_clientid) needs an account per worker: <username>-k (docs/scaling.md).
        mqtt["username"] = f"{config.mqtt.username}-{index}"
    updates: dict[str, Any] = {
        "mqtt": config.mqtt.model_copy(update=mqtt),
        "spool": config.spool.model_copy(update={"folder": config.spool.folder / sub}),
        "health": config.health.model_copy(update={"listen": None}),
    }
    dead = config.dead_letter.file
    if dead is not None:
        updates["dead_letter"] = config.dead_letter.model_copy(update={"file": dead.parent / sub / dead.name})
    state = config.kpi.state_file
    if state is not None:
        updates["kpi"] = config.kpi.model_copy(update={"state_file": state.parent / sub / state.name})
    return config.model_copy(update=updates)


def tag_worker_logs(index: int) -> None:
    """Every log line of this process (paho's thread too) carries ``worker: index``."""

    def add_worker(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        event.setdefault("worker", index)
        return event

    structlog.configure(processors=[add_worker, *structlog.get_config()["processors"]])


def check_workers(config: Config, workers: int) -> list[str]:
    """Why this config cannot run as ``workers`` workers (empty: it can)."""
    problems = []
    if not 1 <= workers <= MAX_WORKERS:
        problems.append(f"--workers must be between 1 and {MAX_WORKERS}")
    if workers > 1 and config.mqtt.shared_group is None:
        problems.append(
            "mqtt.shared_group is not set: every worker would receive every message; set a group name (docs/scaling.md)"
        )
    if workers > 1 and config.kpi.enabled and config.kpi.pseudonym_key_file is None:
        problems.append(
            "kpi.pseudonym_key_file is not set: each worker would pseudonymise client MACs with its own "
            "random key and a client would be counted once per worker; give the workers one key file "
            "(docs/privacy.md)"
        )
    if len(f"{config.mqtt.client_id}-{workers}") > 64:
        problems.append("mqtt.client_id is too long for the worker suffix (-k): at most 64 characters in all")
    # A worker that cannot make its folders exits 2 at once (app/service.py, CannotStart); the supervisor
    # would restart it for ever, so the supervisor refuses to start instead.
    folders = [("spool.folder", config.spool.folder)]
    if config.dead_letter.file is not None:
        folders.append(("dead_letter.file", config.dead_letter.file.parent))
    if config.kpi.enabled and config.kpi.state_file is not None:
        folders.append(("kpi.state_file", config.kpi.state_file.parent))
    for key, folder in folders:
        unusable = _unusable_folder(folder)
        if unusable:
            problems.append(f"{key}: {unusable} (check the path and that the collector's user may write there)")
    return problems


def _unusable_folder(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (made if missing), or None; nothing is created here."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"{str(probe)!r} is in the way of {str(folder)!r}: not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{str(probe)!r} is not writable"
    return None


# -- the worker's side --------------------------------------------------------------------------


class _ReportPipe(asyncio.Protocol):
    def __init__(self, closed: asyncio.Event) -> None:
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed.set()


async def report_to_supervisor(report: Any, fd: int, stop: asyncio.Event) -> None:
    """Write ``report()`` (a JSON-able dict) as one line to ``fd`` every REPORT_EVERY_S; set ``stop``
    when the supervisor's end of the pipe closes (it is gone: this worker stops cleanly)."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    transport, _ = await loop.connect_write_pipe(lambda: _ReportPipe(closed), os.fdopen(fd, "wb", buffering=0))
    try:
        while not closed.is_set():
            if transport.get_write_buffer_size() < 1024**2:  # a supervisor that does not read is not waited for
                transport.write(json.dumps(report(), default=str).encode() + b"\n")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPORT_EVERY_S):
                    await closed.wait()
        log.warning(
            "worker_supervisor_gone",
            hint="the supervisor's pipe closed (it exited or was killed): this worker stops cleanly; "
            "start `city-telemetry run --workers N` again (systemd does)",
        )
        stop.set()
    finally:
        transport.close()


async def stop_when_drained(collector: Any, stop: asyncio.Event, idle_s: float) -> None:
    """``run --drain``: stop once the broker took our UNSUBSCRIBE, nothing arrived for ``idle_s``
    and everything received is durable and acknowledged."""
    source = collector.source
    await source.unsubscribed.wait()
    received, quiet_since = -1, time.monotonic()
    while True:
        await asyncio.sleep(0.1)
        counters = collector.counters
        if counters["received"] != received:
            received, quiet_since = counters["received"], time.monotonic()
            continue
        settled = counters["messages_committed"] >= received and source.stats()["mqtt_held_messages"] == 0
        if settled and time.monotonic() - quiet_since >= idle_s:
            log.info(
                "drain_finished",
                client_id=collector.config.mqtt.client_id,
                messages=received,
                hint="the session has no subscription left: nothing more is queued for it",
            )
            stop.set()
            return


# -- the supervisor's side ----------------------------------------------------------------------


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    report: dict[str, Any] | None = None
    reported_at: float = 0.0
    started_at: float = 0.0
    runs: int = 0
    ended: dict[str, Any] = field(default_factory=dict)  # the counters of its ended runs, summed

    def retire(self) -> None:
        """The run ended: keep its last counters, so that the whole's never go back."""
        if self.report is not None:
            stats = self.report["stats"].items()
            add(self.ended, {k: v for k, v in stats if not is_gauge(k) and not isinstance(v, bool)})
        self.report = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def _log_exited(worker: Worker, code: int, ran_s: float, *, hint: str, **restart: bool | float) -> None:
    """``worker_exited`` for a worker that ended before the stop: ``restart=False`` or ``restart_in_s``."""
    log.error(
        "worker_exited",
        worker=worker.index,
        exit_code=code,
        signal=signal.Signals(-code).name if code < 0 else None,
        ran_s=round(ran_s, 1),
        **restart,
        hint=hint,
    )


# The broker's drop count is the broker's (every worker sees the same); a KPI process's peak memory
# sizes the machine by the largest one: of these the largest is kept, not the sum.
LARGEST_NOT_SUM = frozenset({"broker_dropped", "kpi_process_peak_rss_bytes"})


def add(total: dict[str, Any], stats: dict[str, Any]) -> None:
    """Sum ``stats`` into ``total``: numbers added, flags or-ed, per-reason tables added key by key,
    but the largest kept of ``LARGEST_NOT_SUM``."""
    for key, value in stats.items():
        if isinstance(value, bool):
            total[key] = bool(total.get(key)) or value
        elif isinstance(value, int | float):
            total[key] = max(total.get(key, 0), value) if key in LARGEST_NOT_SUM else total.get(key, 0) + value
        elif isinstance(value, dict):
            table = total.setdefault(key, {})
            for name, count in value.items():
                table[name] = table.get(name, 0) + count


class Supervisor:
    def __init__(
        self, config: Config, config_path: Path | None, workers: int, *, grace_s: float, restart: bool = True
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = [Worker(index) for index in range(1, workers + 1)]
        self.grace_s = grace_s
        self.restart = restart
        self.restarts = 0
        self._stopping = False
        self.health_port: int | None = None

    # -- the whole, as /metrics, /healthz and /readyz show it -----------------------------------
    def _live(self, worker: Worker) -> dict[str, Any] | None:
        fresh = time.monotonic() - worker.reported_at < STALE_S
        return worker.report if worker.running and fresh else None

    def stats(self) -> dict[str, Any]:
        total: dict[str, Any] = {}
        for worker in self.workers:
            add(total, worker.ended)
            report = self._live(worker) or worker.report
            if report is not None and worker.running:
                add(total, report["stats"])
        total.pop("health", None)
        total["workers"] = len(self.workers)
        total["workers_running"] = sum(1 for worker in self.workers if worker.running)
        total["worker_restarts"] = self.restarts
        total["health"] = self.health()[0]
        return total

    def health(self) -> tuple[Status, dict[str, Any]]:
        worst: Status = "healthy"
        detail: dict[str, Any] = {}
        for worker in self.workers:
            report = self._live(worker)
            status: Status = report["health"][0] if report is not None else "unhealthy"
            if _ORDER[status] > _ORDER[worst]:
                worst = status
            detail[str(worker.index)] = {
                "status": status,
                "running": worker.running,
                "pid": worker.process.pid if worker.process is not None else None,
                **(report["health"][1] if report is not None else {"reporting": False}),
            }
        return worst, {"workers": detail}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        detail: dict[str, Any] = {}
        for worker in self.workers:
            report = self._live(worker)
            detail[str(worker.index)] = (
                {"ready": report["ready"][0], **report["ready"][1]} if report is not None else {"ready": False}
            )
        return all(item["ready"] for item in detail.values()), {"workers": detail}

    async def _until_ready(self, ready: asyncio.Event) -> None:
        while not self.ready()[0]:
            await asyncio.sleep(0.2)
        ready.set()

    # -- running --------------------------------------------------------------------------------
    def _command(self, worker: Worker, fd: int) -> list[str]:
        command = [sys.executable, "-m", "collector.app.cli", "run", "--worker", str(worker.index)]
        command += ["--stats-fd", str(fd), "--grace", str(self.grace_s)]
        if self.config_path is not None:
            command += ["-c", str(self.config_path)]
        return command

    async def _start(self, worker: Worker) -> asyncio.StreamReader:
        read_fd, write_fd = os.pipe()
        try:
            command = self._command(worker, write_fd)
            env = {name: value for name, value in os.environ.items() if name not in _SYSTEMD_VARIABLES}
            worker.process = await asyncio.create_subprocess_exec(*command, pass_fds=(write_fd,), env=env)
        finally:
            os.close(write_fd)
        worker.started_at = time.monotonic()
        worker.runs += 1
        reader = asyncio.StreamReader(limit=4 * 1024**2)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        log.info(
            "worker_started",
            worker=worker.index,
            pid=worker.process.pid,
            client_id=f"{self.config.mqtt.client_id}-{worker.index}",
            run=worker.runs,
        )
        return reader

    async def _read_reports(self, worker: Worker, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            with contextlib.suppress(ValueError):
                worker.report = json.loads(line)
                worker.reported_at = time.monotonic()

    async def _watch(self, worker: Worker) -> None:
        """Kill a running worker that stopped reporting for HUNG_S: its event loop is stuck (the
        workers' equivalent of systemd's watchdog, which only sees the supervisor). It is then
        restarted like any worker that died; what it had not acknowledged comes back to it."""
        while True:
            await asyncio.sleep(1.0)
            process = worker.process
            silent_s = time.monotonic() - max(worker.reported_at, worker.started_at)
            if process is not None and process.returncode is None and silent_s > HUNG_S:
                log.error(
                    "worker_hung",
                    worker=worker.index,
                    pid=process.pid,
                    silent_s=round(silent_s, 1),
                    hint="no report from the worker's event loop: killed and restarted; its lines before "
                    "this say what it was doing (send it SIGUSR1 next time for its tasks' stacks)",
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                return

    async def _keep(self, worker: Worker, stop: asyncio.Event) -> None:
        """Run worker ``index`` until the stop; restart it (backoff) whenever it exits before."""
        backoff = RESTART_MIN_S
        while not stop.is_set():
            reader = await self._start(worker)
            assert worker.process is not None
            if stop.is_set():  # the stop came while it started: it missed the SIGTERM sent to the others
                worker.process.send_signal(signal.SIGTERM)
            reading = asyncio.create_task(self._read_reports(worker, reader))
            watching = asyncio.create_task(self._watch(worker))
            code = await worker.process.wait()
            watching.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await reading  # its last report
            reading.cancel()
            ran_s = time.monotonic() - worker.started_at
            worker.retire()
            if stop.is_set():
                log.info("worker_stopped", worker=worker.index, exit_code=code)
                return
            if not self.restart:
                _log_exited(
                    worker,
                    code,
                    ran_s,
                    restart=False,
                    hint="not restarted (--no-restart): its share of the messages waits in its broker session "
                    "(client id <mqtt.client_id>-k) until worker k runs again (docs/scaling.md)",
                )
                return
            if ran_s >= STABLE_S:
                backoff = RESTART_MIN_S
            _log_exited(
                worker,
                code,
                ran_s,
                restart_in_s=backoff,
                hint="restarted with the same client id: its session and spool resume, nothing acknowledged "
                "is lost; if it repeats, its own log lines before this say why",
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await stop.wait()
            backoff = min(backoff * 2, RESTART_MAX_S)
            if not stop.is_set():
                self.restarts += 1

    async def run(self, stop: asyncio.Event) -> int:
        """Start the workers, keep them running until ``stop``, then stop them all; returns the exit code."""
        health = None
        if self.config.health.listen is not None:  # bound first: a taken port stops us before any worker runs
            health = HealthServer(bind_listener(self.config.health.listen), self.stats, self.health, self.ready)
        log.info(
            "supervisor_starting",
            workers=len(self.workers),
            shared_group=self.config.mqtt.shared_group,
            client_ids=[f"{self.config.mqtt.client_id}-{worker.index}" for worker in self.workers],
            restart=self.restart,
        )
        if health is not None:
            await health.start()
            self.health_port = health.port
        keepers = [
            asyncio.create_task(self._keep(worker, stop), name=f"worker-{worker.index}") for worker in self.workers
        ]
        # systemd (Type=notify): READY=1 once every worker is subscribed, WATCHDOG=1 from this loop.
        all_ready = asyncio.Event()
        notifier = Notifier()
        systemd = asyncio.create_task(notifier.run(all_ready, self.stats), name="systemd")
        readiness = asyncio.create_task(self._until_ready(all_ready), name="readiness")
        await stop.wait()
        notifier.stopping()
        readiness.cancel()
        log.info("supervisor_stopping", running=sum(1 for worker in self.workers if worker.running))
        for worker in self.workers:
            if worker.running and worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.grace_s + STOP_EXTRA_S):
                await asyncio.gather(*keepers)
        except TimeoutError:
            for worker in self.workers:
                if worker.running and worker.process is not None:
                    log.error(
                        "worker_stop_timeout",
                        worker=worker.index,
                        pid=worker.process.pid,
                        hint="killed: what it had not acknowledged is redelivered to worker k on the next start",
                    )
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            await asyncio.gather(*keepers, return_exceptions=True)
        systemd.cancel()
        await asyncio.gather(systemd, readiness, return_exceptions=True)
        notifier.close()
        codes = [worker.process.returncode if worker.process is not None else None for worker in self.workers]
        if health is not None:
            await health.stop()
        log.info("supervisor_stopped", exit_codes=codes, **{k: v for k, v in self.stats().items() if k != "health"})
        return 0 if all(code == 0 for code in codes) else 1


def add_worker_arguments(run: argparse.ArgumentParser) -> None:
    """``run``'s options for several workers (docs/scaling.md)."""
    group = run.add_argument_group("several workers (docs/scaling.md)")
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N worker processes on the shared subscription mqtt.shared_group, under a supervisor "
        "that restarts them and serves one /metrics for all",
    )
    group.add_argument(
        "--no-restart",
        dest="restart",
        action="store_false",
        help="with --workers: leave a worker that exits stopped (its share waits in the broker)",
    )
    group.add_argument(
        "--worker",
        type=int,
        metavar="K",
        help="run as worker K (1..N) alone: its client id, spool and dead letters (the supervisor starts these)",
    )
    group.add_argument("--stats-fd", type=int, help=argparse.SUPPRESS)  # the supervisor's pipe
    group.add_argument(
        "--drain",
        action="store_true",
        help="take what the broker queued for this session (e.g. --worker K of a removed worker), "
        "unsubscribe it, and exit once nothing arrives for --idle seconds",
    )
    group.add_argument("--idle", type=float, default=5.0, help="with --drain: seconds of quiet that end it (5)")


def run_supervisor(config: Config, args: argparse.Namespace) -> int:
    """``run --workers N``: the supervisor until SIGTERM/SIGINT; 0 when every worker stopped cleanly."""
    supervisor = Supervisor(config, args.config, args.workers, grace_s=args.grace, restart=args.restart)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await supervisor.run(stop)

    return asyncio.run(main())
