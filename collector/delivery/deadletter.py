"""The dead-letter place: every message we refuse, with the reason, the topic and what it carried.

Records are JSON lines appended to a file (fsynced before the messages they describe are
acknowledged, so a refusal survives a crash) and, if configured, published to an MQTT topic.
Logging is per reason and rate-limited, so a flood of bad input cannot flood the log.

Bounded, so that bad input cannot fill the disk through this file (docs/delivery.md, "Dead letters"):

- a payload, topic or InfluxDB line longer than ``excerpt_bytes`` is kept as an excerpt (its start
  and its end), with its size and a digest of the whole; the bytes left out are counted;
- the file is rotated by size and by the age of its oldest record (``file.1`` newest, ``keep_files``
  kept, older ones deleted and counted), and reopened on SIGHUP or when it was moved away, so an
  external logrotate works too.

Digests are HMAC-SHA256 under a key kept beside the file (``<file>.digest-key``): a plain hash of a
short payload whose client MACs were masked could be brute-forced back to the MACs.

A refused *retained* message comes again at every subscribe (each reconnect, each restart). It is
dead-lettered once per (topic, payload): later copies are counted as repeats, not as rejections, so
``rejected_by_reason`` counts what devices sent. The memory of those refusals is bounded
(``retained_memory``) and kept in ``<file>.retained-seen`` across restarts.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import hmac
import os
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import structlog

from collector.delivery.config import DeadLetterConfig
from schemas.macs import MAC_IN_TEXT

log = structlog.get_logger("collector.delivery.deadletter")


# A client MAC in any spelling devices use (schemas/macs.py). Dead letters keep the payload for
# diagnosis, but personal data stays out of them too (docs/delivery.md, "Dead letters").
_MAC_TEXT = re.compile(MAC_IN_TEXT)
_MAC_BYTES = re.compile(MAC_IN_TEXT.encode())
_MAC_LENGTH = 17
_MASK = b"<mac>"
_KEY_BYTES = 32


def mask_macs(text: str) -> str:
    return _MAC_TEXT.sub("<mac>", text)


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _head(data: bytes, size: int) -> tuple[bytes, int]:
    """The first ``size`` bytes, MACs masked, never a MAC cut in half; and how many bytes it covers."""
    window = data[: size + _MAC_LENGTH]
    cut = size
    for match in _MAC_BYTES.finditer(window):
        if match.start() < cut < match.end():
            cut = match.start()  # leave out a MAC the cut goes through
    piece = data[:cut]
    for _ in range(3):  # a UTF-8 character cut in two
        if _text(piece) is not None or not piece or piece[-1] < 0x80:
            break
        piece, cut = piece[:-1], cut - 1
    return _MAC_BYTES.sub(_MASK, piece), cut


def _tail(data: bytes, size: int) -> tuple[bytes, int]:
    """The last ``size`` bytes, MACs masked, never a MAC cut in half; and how many bytes it covers."""
    window = data[-(size + _MAC_LENGTH) :]
    start = len(window) - size
    for match in _MAC_BYTES.finditer(window):
        if match.start() < start < match.end():
            start = match.end()
    for _ in range(3):  # a UTF-8 character cut in two: skip its continuation bytes
        if start < len(window) and 0x80 <= window[start] < 0xC0:
            start += 1
    piece = window[start:]
    return _MAC_BYTES.sub(_MASK, piece), len(piece)


def _put(record: dict[str, Any], key: str, data: bytes) -> None:
    """``key`` as text when it is UTF-8, else ``key_base64``."""
    text = _text(data)
    if text is not None:
        record[key] = text
    else:
        record[f"{key}_base64"] = base64.b64encode(data).decode("ascii")


class Excerpts:
    """Builds bounded dead-letter records; counts what it left out."""

    def __init__(self, excerpt_bytes: int = 4096, key: bytes | None = None) -> None:
        self.excerpt_bytes = excerpt_bytes
        self.key = key if key is not None else secrets.token_bytes(_KEY_BYTES)
        self.bytes_cut = 0
        self.records_cut = 0

    def digest(self, data: bytes | bytearray) -> str:
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def keep(
        self, record: dict[str, Any], name: str, data: bytes | bytearray, *, always_digest: bool, mask: bool = True
    ) -> bool:
        """Put ``data`` (or its excerpt) under ``name``; True if it had to be cut."""
        data = bytes(data)
        if len(data) <= self.excerpt_bytes:
            _put(record, name, _MAC_BYTES.sub(_MASK, data) if mask else data)
            if always_digest:
                record[f"{name}_bytes"] = len(data)
                record[f"{name}_digest"] = self.digest(data)
            return False
        head, head_covers = _head(data, self.excerpt_bytes // 2)
        tail, tail_covers = _tail(data, self.excerpt_bytes - self.excerpt_bytes // 2)
        _put(record, f"{name}_head", head)
        _put(record, f"{name}_tail", tail)
        record[f"{name}_bytes"] = len(data)
        record[f"{name}_digest"] = self.digest(data)
        cut = len(data) - head_covers - tail_covers
        record[f"{name}_cut_bytes"] = cut
        self.bytes_cut += cut
        return True

    def record(
        self,
        reason: str,
        detail: str,
        topic: str | None,
        payload: bytes | bytearray | None,
        received_ns: int,
        *,
        line: str | None = None,
        retained: bool = False,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {"received_at": received_ns, "reason": reason, "detail": mask_macs(detail)}
        cut = False
        if topic is None:
            record["topic"] = None
        elif len(topic) <= self.excerpt_bytes // 4:  # fast path: characters are at most 4 bytes
            record["topic"] = topic
        else:
            encoded = topic.encode("utf-8", "replace")
            cut |= self.keep(record, "topic", encoded, always_digest=False, mask=False)  # topics are not masked
        if payload is not None:
            cut |= self.keep(record, "payload", payload, always_digest=True)
        if line is not None:
            cut |= self.keep(record, "line", line.encode(), always_digest=False)
        if retained:
            record["retained"] = True
        self.records_cut += cut
        return record


def make_record(
    reason: str,
    detail: str,
    topic: str | None,
    payload: bytes | bytearray | None,
    received_ns: int,
    *,
    excerpt_bytes: int = 4096,
    line: str | None = None,
) -> dict[str, Any]:
    """One bounded record, with a throw-away digest key (tests, tools); the collector uses DeadLetters.record."""
    return Excerpts(excerpt_bytes).record(reason, detail, topic, payload, received_ns, line=line)


def _retained_key(record: dict[str, Any]) -> bytes:
    """(topic, payload) of a refused retained message, as 32 bytes."""
    topic = record["topic"] if "topic" in record else record["topic_digest"]
    return hashlib.sha256(f"{topic}\0{record['payload_digest']}".encode("utf-8", "replace")).digest()


class DeadLetters:
    def __init__(
        self,
        file: Path | None,
        publish: Callable[[bytes], Awaitable[object]] | None = None,
        log_every_s: float = 10.0,
        config: DeadLetterConfig | None = None,
    ) -> None:
        config = config if config is not None else DeadLetterConfig(file=file, log_every_s=log_every_s)
        self.config = config
        self.path = file
        self._publish = publish
        self._log_every_s = log_every_s
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.retained_repeats: Counter[str] = Counter()
        self.rotations = self.files_deleted = self.bytes_deleted = self.reopens = 0
        self.file_bytes = 0
        self._handle: BinaryIO | None = None
        self._oldest_at = 0.0  # wall time of the current file's first record
        self._reopen_requested = False
        self._retained: OrderedDict[bytes, None] = OrderedDict()
        self._retained_file: Path | None = None
        key = None
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            key = self._load_key(file.with_name(file.name + ".digest-key"))
            self._open()
            if config.retained_memory:
                self._retained_file = file.with_name(file.name + ".retained-seen")
                self._load_retained()
        self.excerpts = Excerpts(config.excerpt_bytes, key)

    @classmethod
    def from_config(
        cls, config: DeadLetterConfig, publish: Callable[[bytes], Awaitable[object]] | None = None
    ) -> DeadLetters:
        return cls(config.file, publish, config.log_every_s, config)

    # -- records ------------------------------------------------------------------------------
    def record(
        self,
        reason: str,
        detail: str,
        topic: str | None,
        payload: bytes | bytearray | None,
        received_ns: int,
        retained: bool = False,
        *,
        line: str | None = None,
    ) -> dict[str, Any]:
        """A bounded record of one refusal (module docstring); not counted or written yet."""
        return self.excerpts.record(reason, detail, topic, payload, received_ns, line=line, retained=retained)

    def note(self, record: dict[str, Any]) -> bool:
        """Count and (rate-limited) log one refusal; False for a retained refusal already dead-lettered,
        which is counted as a repeat and must not be written again."""
        reason = record["reason"]
        if record.get("retained") and self.config.retained_memory:
            key = _retained_key(record)
            if key in self._retained:
                self._retained.move_to_end(key)
                self.retained_repeats[reason] += 1
                return False
            self._retained[key] = None
            while len(self._retained) > self.config.retained_memory:
                self._retained.popitem(last=False)
        self.counts[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) >= self._log_every_s:
            topic = (
                record["topic"] if "topic" in record else f"{record.get('topic_head')}[...]{record.get('topic_tail')}"
            )
            log.warning(
                "message_rejected",
                reason=reason,
                detail=record["detail"],
                topic=topic,
                similar_since_last_log=self._unlogged.pop(reason, 0),
            )
            self._last_logged[reason] = now
        else:
            self._unlogged[reason] += 1
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "dead_letter_bytes_cut": self.excerpts.bytes_cut,
            "dead_letter_records_cut": self.excerpts.records_cut,
            "dead_letter_rotations": self.rotations,
            "dead_letter_files_deleted": self.files_deleted,
            "dead_letter_bytes_deleted": self.bytes_deleted,
            "dead_letter_reopens": self.reopens,
            "dead_letter_file_bytes": self.file_bytes,
            "retained_rejections_repeated": sum(self.retained_repeats.values()),
            "retained_repeats_by_reason": dict(self.retained_repeats),
        }

    # -- writing ------------------------------------------------------------------------------
    def write(self, records: list[dict[str, Any]]) -> list[Awaitable[object]]:
        """Append records durably; returns the MQTT publish handles to wait for, if any.

        A batch larger than what is left of ``max_file_bytes`` is split at record boundaries over
        rotations, so one batch cannot grow a file past the bound (by more than one record).
        """
        if not records:
            return []
        if self.path is not None:
            lines = [orjson.dumps(r) + b"\n" for r in records]
            if self._handle is None:  # a rotation or reopen failed half-way: the caller is retrying
                self._open()
            self._maybe_reopen()
            limit = self.config.max_file_bytes or None
            first = 0
            while first < len(lines):
                self._maybe_rotate(len(lines[first]))
                room = None if limit is None else limit - self.file_bytes
                last, size = first + 1, len(lines[first])
                while last < len(lines) and (room is None or size + len(lines[last]) <= room):
                    size += len(lines[last])
                    last += 1
                self._append(b"".join(lines[first:last]))
                first = last
            self._remember_retained(records)  # only once the records themselves are durable
        if self._publish is None:
            return []
        return [self._publish(orjson.dumps(r)) for r in records]

    def _append(self, data: bytes) -> None:
        handle = self._handle
        assert handle is not None
        start = os.fstat(handle.fileno()).st_size
        try:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            self._reopen_at(start)  # no torn line, no stale buffer: the caller retries the whole write
            raise
        if start == 0:
            self._oldest_at = time.time()
        self.file_bytes = start + len(data)

    def request_reopen(self) -> None:
        """SIGHUP: reopen the file before the next write (after an external logrotate moved it)."""
        self._reopen_requested = True

    def _open(self) -> None:
        assert self.path is not None
        created = not self.path.exists()
        # Owner only, as the spool: a dead letter quotes what a device sent (MACs masked, docs/privacy.md).
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(descriptor, 0o600)  # a file made before (by an older version, or by hand) too
        self._handle = os.fdopen(descriptor, "ab")  # held open until rotated or closed
        if created:
            _fsync_dir(self.path.parent)
        self.file_bytes = os.fstat(self._handle.fileno()).st_size
        self._oldest_at = self._first_record_time() if self.file_bytes else time.time()

    def _first_record_time(self) -> float:
        assert self.path is not None
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError), open(self.path, "rb") as f:
            return float(orjson.loads(f.readline(1024**2))["received_at"]) / 1e9
        return time.time()

    def _maybe_reopen(self) -> None:
        assert self.path is not None and self._handle is not None
        why = "sighup" if self._reopen_requested else None
        if why is None:
            try:
                on_disk = os.stat(self.path)
                mine = os.fstat(self._handle.fileno())
                if (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
                    why = "file_replaced"
            except FileNotFoundError:
                why = "file_moved_away"
        if why is None:
            return
        self._reopen_requested = False
        self._handle.close()
        self._handle = None
        self._open()
        self.reopens += 1
        log.info("dead_letter_file_reopened", file=str(self.path), why=why, file_bytes=self.file_bytes)

    def _maybe_rotate(self, incoming: int) -> None:
        assert self.path is not None and self._handle is not None
        size = self.file_bytes = os.fstat(self._handle.fileno()).st_size  # copytruncate may have cut it
        if size == 0:
            return
        max_bytes, max_age = self.config.max_file_bytes, self.config.max_file_age_s
        too_big = max_bytes > 0 and size + incoming > max_bytes
        too_old = max_age > 0 and time.time() - self._oldest_at >= max_age
        if not (too_big or too_old):
            return
        self._handle.close()
        self._handle = None
        keep = self.config.keep_files
        # file.1 is the newest rotated file; file.<keep> the oldest kept: it goes (counted), the others
        # move up by one, and the current file becomes file.1. (keep_files = 0: the current file goes.)
        numbered = sorted(
            (int(p.name.rsplit(".", 1)[1]), p)
            for p in self.path.parent.glob(f"{glob.escape(self.path.name)}.*")
            if p.name.rsplit(".", 1)[1].isdigit()
        )
        for number, old in numbered:
            if number >= keep:  # beyond what is kept once everything moved up
                self._delete(old, keep)
        if not keep:
            self._delete(self.path, keep)
        for number in range(keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._numbered(number), self._numbered(number + 1))
        if keep:
            os.replace(self.path, self._numbered(1))
        self.rotations += 1
        log.info("dead_letter_file_rotated", file=str(self.path), bytes=size, by="size" if too_big else "age")
        self._open()

    def _numbered(self, number: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f"{self.path.name}.{number}")

    def _delete(self, path: Path, keep: int) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        self.files_deleted += 1
        self.bytes_deleted += size
        log.warning(
            "dead_letter_file_deleted",
            file=str(path),
            bytes=size,
            keep_files=keep,
            hint="dead letters are bounded by dead_letter.max_file_bytes, max_file_age_s and keep_files",
        )

    def _reopen_at(self, size: int) -> None:
        assert self.path is not None and self._handle is not None
        with contextlib.suppress(OSError):  # its buffer held the failed write; dropping it is the point
            self._handle.close()
        with open(self.path, "r+b") as handle:
            handle.truncate(size)
        self._handle = open(self.path, "ab")  # noqa: SIM115

    # -- the memory of refused retained messages ------------------------------------------------
    @staticmethod
    def _load_key(path: Path) -> bytes:
        """The digest key kept beside the file (made once, mode 0600); a per-process one if unusable."""
        try:
            with contextlib.suppress(FileNotFoundError):
                key = bytes.fromhex(path.read_text(encoding="ascii").strip())
                if len(key) == _KEY_BYTES:
                    return key
                path.unlink()  # not a key of ours: make a new one
            key = secrets.token_bytes(_KEY_BYTES)
            temporary = path.with_name(path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key.hex() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
            return key
        except (OSError, ValueError) as error:
            log.warning(
                "dead_letter_digest_key_unusable",
                file=str(path),
                error=str(error),
                note="digests now differ from earlier runs'; refused retained messages may be dead-lettered again",
            )
            return secrets.token_bytes(_KEY_BYTES)

    def _load_retained(self) -> None:
        assert self._retained_file is not None
        try:
            data = self._retained_file.read_bytes()
        except FileNotFoundError:
            return
        keep = self.config.retained_memory * 32
        data = data[len(data) % 32 :][-keep:]  # a torn last key (crash) is dropped
        for at in range(0, len(data), 32):
            self._retained[data[at : at + 32]] = None

    def _remember_retained(self, records: list[dict[str, Any]]) -> None:
        if self._retained_file is None:
            return
        keys = b"".join(_retained_key(r) for r in records if r.get("retained"))
        if not keys:
            return
        try:
            size = self._retained_file.stat().st_size if self._retained_file.exists() else 0
            if size + len(keys) > 2 * 32 * self.config.retained_memory:
                # Compact to the newest keys. Only keys whose dead letters are durable are ever saved
                # (memory may hold some still waiting to be written), so a crash cannot skip one.
                saved = self._retained_file.read_bytes() if size else b""
                saved = saved[len(saved) % 32 :] + keys
                temporary = self._retained_file.with_name(self._retained_file.name + ".tmp")
                temporary.write_bytes(saved[-32 * self.config.retained_memory :])
                os.replace(temporary, self._retained_file)
            else:
                with open(self._retained_file, "ab") as handle:
                    handle.write(keys)
        except OSError as error:  # only costs a repeated dead letter after a restart
            log.warning("retained_memory_not_saved", file=str(self._retained_file), error=str(error))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
