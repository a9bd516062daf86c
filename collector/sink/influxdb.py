"""The InfluxDB edge: batched, gzipped line protocol over HTTP, v1 (``/write``) or v2 (``/api/v2/write``).

A batch is retried until InfluxDB has either accepted every line or refused specific lines for good:
- 5xx, 429, timeouts and refused connections: kept and retried with capped exponential backoff;
- 401/403 and "database/bucket not found": retried too (an operator can fix them without losing data),
  and for v1 the database is created when ``create_database`` is on;
- 400, 422 (v2) and 413 (a line InfluxDB will never take, or a batch too large): the batch is split in halves and
  each half written again, down to the single lines it refuses. Rewriting accepted lines is harmless,
  since a point is identified by its series and timestamp. Refused lines are returned to the caller
  for the dead-letter place, with InfluxDB's reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import structlog

from collector.sink.config import InfluxConfig

log = structlog.get_logger("collector.sink.influxdb")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class WriteAborted(Exception):
    """The writer was asked to stop while a batch was still unwritten."""


class WriteStalled(Exception):
    """InfluxDB failed to take a batch for longer than the caller would wait (some lines may be in)."""


@dataclass(slots=True)
class WriteReport:
    accepted: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # (line, InfluxDB's reason)


class InfluxWriter:
    def __init__(self, config: InfluxConfig, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self._should_stop = should_stop
        self._aborted = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._database_checked = False
        self.gzip = config.compresses()
        self.write_url, self.headers = self._endpoint()
        self.last_error: str | None = None
        # Running totals (read by the metrics while a write may still be retrying).
        self.requests = 0
        self.retries = 0
        self.answered = 0  # requests InfluxDB answered (any status), and how long they took in total
        self.answered_s = 0.0
        self.slowest_s = 0.0  # the slowest answer since the last take_slowest()
        self.recovered_at = 0.0  # time.monotonic() of the last success after a failure

    def _endpoint(self) -> tuple[str, dict[str, str]]:
        cfg = self.config
        base = cfg.url.rstrip("/")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        if cfg.api == "v2":
            assert cfg.org is not None and cfg.bucket is not None and cfg.token is not None
            query = {"org": cfg.org, "bucket": cfg.bucket, "precision": "ns"}
            headers["Authorization"] = f"Token {cfg.token.get_secret_value()}"
            return f"{base}/api/v2/write?{urlencode(query)}", headers
        query = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            query["rp"] = cfg.retention_policy
        if cfg.username is not None:
            password = cfg.password.get_secret_value() if cfg.password is not None else ""
            token = base64.b64encode(f"{cfg.username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return f"{base}/write?{urlencode(query)}", headers

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=True)
        return self._session

    def abort(self) -> None:
        """Stop retrying: a write in progress or started later raises WriteAborted."""
        self._aborted.set()

    def should_stop(self) -> bool:
        return self._aborted.is_set() or self._should_stop()

    def take_slowest(self) -> float:
        """The slowest answer (seconds) since the previous call, for a statistics interval."""
        slowest, self.slowest_s = self.slowest_s, 0.0
        return slowest

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- public -----------------------------------------------------------------------------------
    async def write(self, lines: list[str], give_up_after_s: float | None = None) -> WriteReport:
        """Write ``lines`` until every one is accepted or refused for good (see module doc).

        With ``give_up_after_s``, raise WriteStalled once InfluxDB has been failing for that long
        (the caller then spools the batch); without, retry for as long as it takes.
        """
        report = WriteReport()
        if lines:
            deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
            await self._write_part(lines, report, deadline)
        return report

    # -- internals --------------------------------------------------------------------------------
    async def _write_part(self, lines: list[str], report: WriteReport, deadline: float | None) -> None:
        status, text = await self._post_until_answered(lines, deadline)
        if 200 <= status < 300:
            report.accepted += len(lines)
            return
        # 400/422 (unparsable line, type conflict, beyond retention) or 413 (too large): find the culprits.
        if len(lines) == 1:
            report.refused.append((lines[0], f"HTTP {status}: {text.strip()[:500]}"))
            return
        middle = len(lines) // 2
        await self._write_part(lines[:middle], report, deadline)
        await self._write_part(lines[middle:], report, deadline)

    async def _post_until_answered(self, lines: list[str], deadline: float | None) -> tuple[int, str]:
        """POST until InfluxDB gives an answer that will not change by retrying (2xx, 400, 413, 422)."""
        body = "\n".join(lines).encode()
        if self.gzip:
            body = gzip.compress(body, compresslevel=1)
        delay = self.config.retry_min_s
        tried_create = False
        while True:
            if self.should_stop():
                raise WriteAborted()
            self.requests += 1
            status, text = await self._post(body)
            if 200 <= status < 300 or status in (400, 413, 422):
                if 200 <= status < 300 and self.last_error is not None:
                    log.info("influxdb_recovered", after_error=self.last_error)
                    self.last_error = None
                    self.recovered_at = time.monotonic()
                return status, text
            missing_database = status == 404 and self.config.api == "v1" and "database not found" in text
            if missing_database and self.config.create_database and not tried_create:
                tried_create = True
                if await self._create_database():
                    continue
            error = f"HTTP {status}: {text.strip()[:300]}" if status else text
            if error != self.last_error:
                log.warning("influxdb_write_failed", error=error, retry_in_s=round(delay, 2), lines=len(lines))
                self.last_error = error
            self.retries += 1
            if deadline is not None and time.monotonic() + delay > deadline:
                raise WriteStalled(error)
            await self._sleep(delay)
            delay = min(self.config.retry_max_s, delay * 2) * random.uniform(0.8, 1.0)

    async def _sleep(self, seconds: float) -> None:
        """The backoff between two tries; abort() ends it at once (a should_stop callback within 0.1 s)."""
        deadline = time.monotonic() + seconds
        while not self.should_stop() and (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.1)):
                    await self._aborted.wait()

    async def _post(self, body: bytes) -> tuple[int, str]:
        """(status, text); status 0 for a transport failure, with the error as text."""
        session = await self._get_session()
        started = time.monotonic()
        try:
            async with session.post(self.write_url, data=body, headers=self.headers) as response:
                text = await response.text(errors="replace")
                took = time.monotonic() - started
                self.answered += 1
                self.answered_s += took
                self.slowest_s = max(self.slowest_s, took)
                return response.status, text
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return 0, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__

    async def _create_database(self) -> bool:
        session = await self._get_session()
        base = self.config.url.rstrip("/")
        name = self.config.database.replace("\\", "\\\\").replace('"', '\\"')
        headers = {k: v for k, v in self.headers.items() if k == "Authorization"}
        try:
            async with session.post(
                f"{base}/query", data={"q": f'CREATE DATABASE "{name}"'}, headers=headers
            ) as response:
                ok = response.status < 300
                log.info(
                    "influxdb_database_created" if ok else "influxdb_create_database_failed",
                    database=self.config.database,
                    status=response.status,
                )
                return ok
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
