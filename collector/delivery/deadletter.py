"""The dead-letter place: every message we refuse, with the reason, the topic and the original payload.

Records are JSON lines appended to a file (fsynced before the messages they describe are
acknowledged, so a refusal survives a crash) and, if configured, published to an MQTT topic.
Logging is per reason and rate-limited, so a flood of bad input cannot flood the log.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog

log = structlog.get_logger("collector.delivery.deadletter")


# A client MAC written with separators (aa:bb:cc:dd:ee:ff, AA-BB-...). Dead letters keep the payload
# for diagnosis, but personal data stays out of them too (docs/delivery.md, "Dead letters").
_MAC_TEXT = re.compile(
    r"(?<![0-9A-Fa-f:-])[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})(?:\1[0-9A-Fa-f]{2}){4}(?![0-9A-Fa-f:-])"
)


def mask_macs(text: str) -> str:
    return _MAC_TEXT.sub("<mac>", text)


def make_record(
    reason: str, detail: str, topic: str | None, payload: bytes | bytearray | None, received_ns: int, **extra: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "received_at": received_ns,
        "reason": reason,
        "detail": mask_macs(detail),
        "topic": topic,
    }
    if payload is not None:
        try:
            record["payload"] = mask_macs(payload.decode("utf-8"))
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(payload).decode("ascii")
    record.update(extra)
    return record


class DeadLetters:
    def __init__(
        self,
        file: Path | None,
        publish: Callable[[bytes], Awaitable[object]] | None = None,
        log_every_s: float = 10.0,
    ) -> None:
        self.path = file
        self._publish = publish
        self._log_every_s = log_every_s
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self._handle = None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(file, "ab")  # noqa: SIM115 - held open for the process's life

    def note(self, record: dict[str, Any]) -> None:
        """Count and (rate-limited) log one refusal; does not write it yet."""
        reason = record["reason"]
        self.counts[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) >= self._log_every_s:
            log.warning(
                "message_rejected",
                reason=reason,
                detail=record["detail"],
                topic=record["topic"],
                similar_since_last_log=self._unlogged.pop(reason, 0),
            )
            self._last_logged[reason] = now
        else:
            self._unlogged[reason] += 1

    def write(self, records: list[dict[str, Any]]) -> list[Awaitable[object]]:
        """Append records durably; returns what to await for the MQTT copies, if published."""
        if not records:
            return []
        if self._handle is not None:
            data = b"".join(orjson.dumps(r) + b"\n" for r in records)
            start = self._handle.tell()
            try:
                self._handle.write(data)
                self._handle.flush()
                os.fsync(self._handle.fileno())
            except OSError:
                self._reopen_at(start)  # no torn line, no stale buffer: the caller retries the whole write
                raise
        if self._publish is None:
            return []
        return [self._publish(orjson.dumps(r)) for r in records]

    def _reopen_at(self, size: int) -> None:
        assert self.path is not None and self._handle is not None
        with contextlib.suppress(OSError):  # its buffer held the failed write; dropping it is the point
            self._handle.close()
        with open(self.path, "r+b") as handle:
            handle.truncate(size)
        self._handle = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
