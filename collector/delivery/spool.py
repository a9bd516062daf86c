"""A bounded, crash-safe disk spool for line protocol that InfluxDB cannot take right now.

Batches are appended as records to segment files, oldest first:

    record  = length (4 bytes, big-endian) | crc32 of data (4 bytes) | data
    data    = the batch's lines, UTF-8, joined by "\\n"

Each append is fsynced before the caller acknowledges the messages the batch came from, so what
the broker forgot, the spool remembers. A crash can leave a torn record at the end of the last
segment; it is detected by its length or CRC when the spool is opened and cut off (its messages
were never acknowledged, so the broker still has them). Draining reads records in order and a
segment is deleted once everything in it was written; after a crash a segment is drained again
from its start, which is harmless because points are identified by series and timestamp.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("collector.delivery.spool")

_HEADER = struct.Struct(">II")
_SUFFIX = ".spool"


@dataclass(frozen=True, slots=True)
class SpoolChunk:
    """Lines read from the spool, and where reading stopped (to consume up to it)."""

    lines: list[str]
    segment: int
    offset: int


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._segments: list[int] = []  # segment numbers on disk, oldest first
        self._sizes: dict[int, int] = {}
        self.lines = 0  # lines waiting (approximate after a torn tail is cut)
        self._read_segment = 0
        self._read_offset = 0
        self._writer: int | None = None  # fd of the newest segment
        self._broken: str | None = None  # a failed append that could not be cut off
        self._recover()

    # -- opening ------------------------------------------------------------------------------
    def _recover(self) -> None:
        numbers = sorted(int(p.stem) for p in self.folder.glob(f"*{_SUFFIX}") if p.stem.isdigit())
        for number in numbers:
            path = self._path(number)
            valid_bytes, lines = self._scan(path)
            if valid_bytes < path.stat().st_size:
                log.warning(
                    "spool_torn_record_cut",
                    segment=path.name,
                    kept_bytes=valid_bytes,
                    cut_bytes=path.stat().st_size - valid_bytes,
                )
                with open(path, "r+b") as handle:
                    handle.truncate(valid_bytes)
                    os.fsync(handle.fileno())
            if valid_bytes == 0:
                path.unlink()
                continue
            self._segments.append(number)
            self._sizes[number] = valid_bytes
            self.lines += lines
        if self._segments:
            self._read_segment = self._segments[0]
            log.info("spool_recovered", segments=len(self._segments), bytes=self.bytes, lines=self.lines)

    @staticmethod
    def _scan(path: Path) -> tuple[int, int]:
        """(bytes of whole valid records from the start, lines in them)."""
        data = path.read_bytes()
        offset = lines = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            body = data[offset + _HEADER.size : offset + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                break
            offset += _HEADER.size + length
            lines += body.count(b"\n") + 1
        return offset, lines

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:012d}{_SUFFIX}"

    # -- state --------------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def empty(self) -> bool:
        return not self._segments

    # -- appending ----------------------------------------------------------------------------
    def append(self, lines: list[str]) -> bool:
        """Append durably; False (nothing written) if it would exceed ``max_bytes``."""
        if not lines:
            return True
        body = "\n".join(lines).encode()
        record = _HEADER.pack(len(body), zlib.crc32(body)) + body
        if self.bytes + len(record) > self.max_bytes:
            return False
        if self._broken is not None:
            raise OSError(f"spool refuses appends after an unrepaired write failure: {self._broken}")
        number = self._segments[-1] if self._segments else None
        if number is None or self._sizes[number] + len(record) > self.segment_bytes or self._writer is None:
            number = self._open_new_segment()
        writer = self._writer
        assert writer is not None
        try:
            written = 0
            while written < len(record):  # a full disk can take part of a record
                written += os.write(writer, record[written:])
            os.fsync(writer)
        except OSError:
            self._undo_partial_append(writer, number)
            raise
        self._sizes[number] += len(record)
        self.lines += len(lines)
        return True

    def _undo_partial_append(self, writer: int, number: int) -> None:
        """Cut what a failed append left, so that the records after it stay readable."""
        try:
            os.ftruncate(writer, self._sizes[number])
            os.fsync(writer)
        except OSError as error:
            self._broken = str(error)
            log.error("spool_repair_failed", segment=number, error=str(error))
        self._close_writer()  # the next append starts a fresh segment

    def _open_new_segment(self) -> int:
        self._close_writer()
        number = (self._segments[-1] + 1) if self._segments else (self._read_segment + 1)
        path = self._path(number)
        writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            _fsync_dir(self.folder)
        except OSError:
            os.close(writer)
            path.unlink(missing_ok=True)
            raise
        self._writer = writer
        if not self._segments:
            self._read_segment, self._read_offset = number, 0
        self._segments.append(number)
        self._sizes[number] = 0
        return number

    def _close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    # -- draining -----------------------------------------------------------------------------
    def peek(self, max_lines: int) -> SpoolChunk | None:
        """The next records (whole ones, at least one) up to about ``max_lines`` lines."""
        if not self._segments:
            return None
        segment, offset = self._read_segment, self._read_offset
        lines: list[str] = []
        with open(self._path(segment), "rb") as handle:
            handle.seek(offset)
            while len(lines) < max_lines and offset < self._sizes[segment]:
                length, crc = _HEADER.unpack(handle.read(_HEADER.size))
                body = handle.read(length)
                if zlib.crc32(body) != crc:  # pragma: no cover - checked when opened; disk went bad since
                    raise OSError(f"spool segment {segment} is corrupt at offset {offset}")
                lines.extend(body.decode().split("\n"))
                offset += _HEADER.size + length
        return SpoolChunk(lines, segment, offset)

    def consume(self, chunk: SpoolChunk) -> None:
        """Forget what ``chunk`` read: it was written. Fully read segments are deleted."""
        self.lines = max(0, self.lines - len(chunk.lines))
        self._read_segment, self._read_offset = chunk.segment, chunk.offset
        if chunk.offset < self._sizes[chunk.segment]:
            return
        is_newest = chunk.segment == self._segments[-1]
        if is_newest:
            self._close_writer()
        self._path(chunk.segment).unlink()
        self._segments.remove(chunk.segment)
        del self._sizes[chunk.segment]
        if self._segments:
            self._read_segment, self._read_offset = self._segments[0], 0
        else:
            self.lines = 0
            self._read_segment, self._read_offset = chunk.segment, 0

    def close(self) -> None:
        self._close_writer()
