"""A bounded, crash-safe disk spool for line protocol that InfluxDB cannot take right now.

Batches are appended as records to segment files, oldest first:

    record  = marker (4 bytes: ff 53 50 32) | length (4 bytes, big-endian) | crc | data
    crc     = crc32 of the length's 4 bytes and the data (4 bytes, big-endian)
    data    = the batch's lines, UTF-8, joined by "\\n"

Each append is fsynced before the caller acknowledges the messages the batch came from, so what
the broker forgot, the spool remembers. Draining reads records in order and a segment is deleted
once everything in it was written; after a crash a segment is drained again from its start, which
is harmless because points are identified by series and timestamp.

Opening the spool checks every record. Two kinds of bad bytes are told apart:

- a **torn tail**: a crash in the middle of an append leaves a partial record at the end of the
  newest segment (only there: a new segment is started after every restart). It is cut off and not
  counted as a loss: its messages were never acknowledged, so the broker still has them;
- **corruption** anywhere else (bit rot, a bad sector): the records around it are kept. The length
  of a bad record, if the next record starts where it says, steps over it; otherwise the scan
  resynchronises on the next marker whose record checks out. The marker's first byte (0xff) never
  occurs in UTF-8 text, so it can only start a record. The unreadable bytes are moved to
  ``<folder>/quarantine/`` and the loss (records, bytes) is logged as ``spool_corruption`` (error)
  and counted in ``lost_records`` / ``lost_bytes``: those readings had been acknowledged.

Segments written before the marker existed (``length | crc32 of data | data``, first byte never
0xff) are still read; in them a bad body is stepped over by its length, but a bad length loses the
rest of its segment (there is no marker to find the next record by).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog

log = structlog.get_logger("collector.delivery.spool")

MARKER = b"\xffSP2"
_HEADER = struct.Struct(">4sII")  # marker, length, crc32(length bytes + data)
_OLD_HEADER = struct.Struct(">II")  # the format before the marker: length, crc32(data)
_SUFFIX = ".spool"
QUARANTINE = "quarantine"


@dataclass(frozen=True, slots=True)
class SpoolChunk:
    """Lines read from the spool, and where reading stopped (to consume up to it)."""

    lines: list[str]
    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class _Bad:
    """A run of unreadable bytes in a segment: [start, end), and how many records it held (at least)."""

    start: int
    end: int
    records: int


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_record(body: bytes) -> bytes:
    length = len(body).to_bytes(4, "big")
    return MARKER + length + zlib.crc32(body, zlib.crc32(length)).to_bytes(4, "big") + body


def _record_end(data: bytes | memoryview, offset: int, old_format: bool) -> int | None:
    """Where the valid record at ``offset`` ends, or None if there is none."""
    end: int
    if old_format:
        if offset + _OLD_HEADER.size > len(data):
            return None
        length, crc = _OLD_HEADER.unpack_from(data, offset)
        end = offset + _OLD_HEADER.size + length
        if end > len(data) or zlib.crc32(data[offset + _OLD_HEADER.size : end]) != crc:
            return None
        return end
    if offset + _HEADER.size > len(data):
        return None
    marker, length, crc = _HEADER.unpack_from(data, offset)
    end = offset + _HEADER.size + length
    if marker != MARKER or end > len(data):
        return None
    if zlib.crc32(data[offset + _HEADER.size : end], zlib.crc32(data[offset + 4 : offset + 8])) != crc:
        return None
    return end


def _claimed_end(data: bytes | memoryview, offset: int, old_format: bool) -> int | None:
    """Where a bad record ends if its length is right: inside the segment and followed by a record."""
    header = _OLD_HEADER.size if old_format else _HEADER.size
    if offset + header > len(data) or (not old_format and data[offset : offset + 4] != MARKER):
        return None
    (length,) = struct.unpack_from(">I", data, offset if old_format else offset + 4)
    end: int = offset + header + length
    if end > len(data):
        return None
    if end == len(data) or _record_end(data, end, old_format) is not None:
        return end
    return None


def _scan(data: bytes) -> tuple[list[tuple[int, int]], list[_Bad]]:
    """The valid records (start, end) of a segment, and the runs of bad bytes between them."""
    old_format = bool(data) and data[0] != MARKER[0]
    view = memoryview(data)
    good: list[tuple[int, int]] = []
    bad: list[_Bad] = []
    offset = 0
    while offset < len(data):
        end = _record_end(view, offset, old_format)
        if end is not None:
            good.append((offset, end))
            offset = end
            continue
        claimed = _claimed_end(view, offset, old_format)
        if claimed is not None:  # the length holds: exactly this record is bad
            bad.append(_Bad(offset, claimed, 1))
            offset = claimed
            continue
        resume = len(data)
        if not old_format:  # resynchronise on the next marker that starts a valid record
            candidate = data.find(MARKER, offset + 1)
            while candidate != -1 and _record_end(view, candidate, False) is None:
                candidate = data.find(MARKER, candidate + 1)
            if candidate != -1:
                resume = candidate
        bad.append(_Bad(offset, resume, max(1, data.count(MARKER, offset, resume)) if not old_format else 1))
        offset = resume
    return good, bad


def _lines_in(data: bytes, records: list[tuple[int, int]]) -> int:
    header = _OLD_HEADER.size if data and data[0] != MARKER[0] else _HEADER.size
    return sum(data.count(b"\n", start + header, end) + 1 for start, end in records)


class Spool:
    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._segments: list[int] = []  # segment numbers on disk, oldest first
        self._sizes: dict[int, int] = {}
        self._old_format: set[int] = set()  # segments written before the record marker
        self.lines = 0  # lines waiting
        self.lost_records = 0  # acknowledged records found unreadable when opened (quarantined)
        self.lost_bytes = 0
        self._read_segment = 0
        self._read_offset = 0
        self._writer: int | None = None  # fd of the newest segment
        self._broken: str | None = None  # a failed append that could not be cut off
        self._recover()

    # -- opening ------------------------------------------------------------------------------
    def _recover(self) -> None:
        for stale in self.folder.glob(f"*{_SUFFIX}.tmp"):  # a rewrite interrupted by a crash
            stale.unlink()
        numbers = sorted(int(p.stem) for p in self.folder.glob(f"*{_SUFFIX}") if p.stem.isdigit())
        for number in numbers:
            path = self._path(number)
            data = path.read_bytes()
            good, bad = _scan(data)
            if bad and number == numbers[-1] and bad[-1].end == len(data):
                torn = bad.pop()  # a crash during the last append; never acknowledged
                log.warning(
                    "spool_torn_record_cut",
                    segment=path.name,
                    kept_bytes=torn.start,
                    cut_bytes=len(data) - torn.start,
                    note="a crash during an append; its messages were not acknowledged",
                )
            if bad:
                self._quarantine(number, data, bad)
            if good and data[0] != MARKER[0]:
                self._old_format.add(number)
            kept = b"".join(data[start:end] for start, end in good)
            if not kept:
                path.unlink()
                continue
            if len(kept) < len(data):
                self._replace(path, kept)
            self._segments.append(number)
            self._sizes[number] = len(kept)
            self.lines += _lines_in(data, good)
        if self._segments:
            self._read_segment = self._segments[0]
            log.info(
                "spool_recovered",
                segments=len(self._segments),
                bytes=self.bytes,
                lines=self.lines,
                lost_records=self.lost_records,
                lost_bytes=self.lost_bytes,
            )

    def _quarantine(self, number: int, data: bytes, bad: list[_Bad]) -> None:
        """Keep the unreadable bytes beside the spool, and say exactly what was lost."""
        folder = self.folder / QUARANTINE
        folder.mkdir(exist_ok=True)
        for run in bad:
            target = folder / f"{number:012d}-at-{run.start}-{run.end - run.start}-bytes.bad"
            with open(target, "wb") as handle:
                handle.write(data[run.start : run.end])
                handle.flush()
                os.fsync(handle.fileno())
            self.lost_records += run.records
            self.lost_bytes += run.end - run.start
            log.error(
                "spool_corruption",
                segment=self._path(number).name,
                offset=run.start,
                lost_bytes=run.end - run.start,
                lost_records=run.records,
                quarantined_to=str(target),
                hint="these readings were acknowledged and are not in InfluxDB; the records around them are "
                "kept. Check the disk (dmesg, smartctl); the quarantined bytes may still hold readable lines",
            )
        _fsync_dir(folder)

    def _replace(self, path: Path, kept: bytes) -> None:
        """Rewrite a segment with its valid records only (atomically: a crash leaves the old one)."""
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_dir(self.folder)

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
        record = encode_record("\n".join(lines).encode())
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
                lines.extend(self._read_record(handle, segment, offset))
                offset = handle.tell()
        return SpoolChunk(lines, segment, offset)

    def _read_record(self, handle: BinaryIO, segment: int, offset: int) -> list[str]:
        if segment in self._old_format:
            length, crc = _OLD_HEADER.unpack(handle.read(_OLD_HEADER.size))
            body = handle.read(length)
            ok = zlib.crc32(body) == crc
        else:
            marker, length, crc = _HEADER.unpack(handle.read(_HEADER.size))
            body = handle.read(length)
            ok = marker == MARKER and zlib.crc32(body, zlib.crc32(length.to_bytes(4, "big"))) == crc
        if not ok:  # checked when opened: the disk went bad since. A restart quarantines it.
            raise OSError(f"spool segment {segment} is corrupt at offset {offset}")
        return body.decode().split("\n")

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
        self._old_format.discard(chunk.segment)
        if self._segments:
            self._read_segment, self._read_offset = self._segments[0], 0
        else:
            self.lines = 0
            self._read_segment, self._read_offset = chunk.segment, 0

    def close(self) -> None:
        self._close_writer()
