from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from collector.delivery.spool import QUARANTINE, Spool, encode_record


def drain(spool: Spool, max_lines: int = 3) -> list[str]:
    out: list[str] = []
    while (chunk := spool.peek(max_lines)) is not None:
        out.extend(chunk.lines)
        spool.consume(chunk)
    return out


def batches(n: int) -> list[list[str]]:
    return [[f"m,d=x v={i}i {i}", f"m,d=y v={i}i {i}"] for i in range(n)]


def test_lines_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=100)
    for batch in batches(20):
        assert spool.append(batch)
    assert len(list(tmp_path.iterdir())) > 3  # rotated
    assert spool.lines == 40
    assert drain(spool) == [line for batch in batches(20) for line in batch]
    assert spool.empty and spool.bytes == 0 and list(tmp_path.iterdir()) == []


def test_full_spool_refuses_and_writes_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=120)
    assert spool.append(["a" * 50])
    size = spool.bytes
    assert not spool.append(["b" * 100])
    assert spool.bytes == size
    assert drain(spool) == ["a" * 50]
    assert spool.append(["b" * 100])  # room again once drained


def test_reopened_spool_keeps_everything_and_drains_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=150)
    for batch in batches(10):
        spool.append(batch)
    chunk = spool.peek(2)
    assert chunk is not None
    spool.consume(chunk)  # half-drained when the process "dies"
    spool.close()
    reopened = Spool(tmp_path, max_bytes=100_000, segment_bytes=150)
    lines = drain(reopened)
    # Nothing lost; the partly drained segment comes again (harmless: same points).
    assert set(lines) == {line for batch in batches(10) for line in batch}
    assert lines[-2:] == batches(10)[-1]


def test_torn_tail_is_cut_and_earlier_records_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000)
    spool.append(["first v=1i 1"])
    spool.append(["second v=2i 2"])
    spool.close()
    [segment] = list(tmp_path.iterdir())
    data = segment.read_bytes()
    segment.write_bytes(data[:-4])  # a crash in the middle of the second append
    reopened = Spool(tmp_path, max_bytes=100_000)
    assert drain(reopened) == ["first v=1i 1"]
    reopened.append(["third v=3i 3"])
    assert drain(reopened) == ["third v=3i 3"]


def test_a_bad_last_record_of_the_newest_segment_is_a_torn_tail_not_a_loss(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000)
    spool.append(["good v=1i 1"])
    spool.append(["flipped v=2i 2"])
    spool.close()
    [segment] = list(tmp_path.iterdir())
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # a crash can leave a full-length record with garbage in it (size updated first)
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=100_000)
    assert drain(reopened) == ["good v=1i 1"]
    assert (reopened.lost_records, reopened.lost_bytes) == (0, 0)
    assert not (tmp_path / QUARANTINE).exists()


def segment_records(count: int, lines_per_record: int = 3) -> list[list[str]]:
    return [[f"m,d=r{r:03d} v={i}i {1_000_000 + r * 100 + i}" for i in range(lines_per_record)] for r in range(count)]


def write_segments(folder: Path, records: list[list[str]], segment_bytes: int) -> list[Path]:
    spool = Spool(folder, max_bytes=10_000_000, segment_bytes=segment_bytes)
    for record in records:
        assert spool.append(record)
    spool.close()
    return sorted(folder.glob("*.spool"))


def record_span(records: list[list[str]], index: int) -> tuple[int, int]:
    """(start, end) of records[index] in its segment, when every record fits the first segment."""
    sizes = [len(encode_record("\n".join(r).encode())) for r in records]
    start = sum(sizes[:index])
    return start, start + sizes[index]


@pytest.mark.parametrize(
    ("where", "name"),
    [(lambda start: start + 20, "body"), (lambda start: start + 5, "length"), (lambda start: start, "marker")],
)
def test_one_flipped_byte_in_an_early_record_loses_that_record_only(
    tmp_path: Path, where: Callable[[int], int], name: str
) -> None:
    records = segment_records(40)
    size = len(encode_record("\n".join(records[0]).encode()))
    first, *_ = write_segments(tmp_path, records, segment_bytes=size * 10)  # 4 full segments
    start, end = record_span(records, 2)
    original = first.read_bytes()
    data = bytearray(original)
    data[where(start)] ^= 0x10
    first.write_bytes(bytes(data))
    with capture_logs() as logs:
        reopened = Spool(tmp_path, max_bytes=10_000_000)
    expected = [line for i, record in enumerate(records) if i != 2 for line in record]
    assert reopened.lines == len(expected)
    assert drain(reopened, max_lines=7) == expected, name
    assert (reopened.lost_records, reopened.lost_bytes) == (1, end - start)
    [quarantined] = list((tmp_path / QUARANTINE).iterdir())
    assert quarantined.read_bytes() == bytes(data[start:end])
    [event] = [e for e in logs if e["event"] == "spool_corruption"]
    assert (event["lost_records"], event["lost_bytes"], event["offset"]) == (1, end - start, start)
    assert event["log_level"] == "error" and "hint" in event


def test_garbage_across_several_records_is_skipped_to_the_next_good_record(tmp_path: Path) -> None:
    records = segment_records(30)
    write_segments(tmp_path, records, segment_bytes=100_000)
    [segment] = list(tmp_path.glob("*.spool"))
    data = bytearray(segment.read_bytes())
    start, _ = record_span(records, 4)
    _, end = record_span(records, 6)
    data[start + 3 : end - 10] = b"\x00" * (end - 10 - start - 3)  # a zeroed sector: records 4, 5, 6
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    assert drain(reopened) == [line for i, record in enumerate(records) if i not in (4, 5, 6) for line in record]
    assert reopened.lost_bytes == end - start
    assert reopened.lost_records >= 1  # markers zeroed too: how many records is not known exactly


def test_corruption_at_the_end_of_an_older_segment_is_a_loss_not_a_torn_tail(tmp_path: Path) -> None:
    records = segment_records(20)
    size = len(encode_record("\n".join(records[0]).encode()))
    first, _ = write_segments(tmp_path, records, segment_bytes=size * 10)
    data = bytearray(first.read_bytes())
    data[-4] ^= 0x01  # the last record of the older segment
    first.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    assert drain(reopened) == [line for i, record in enumerate(records) if i != 9 for line in record]
    assert (reopened.lost_records, reopened.lost_bytes) == (1, size)


def test_corruption_in_the_newest_segment_before_a_torn_tail(tmp_path: Path) -> None:
    records = segment_records(10)
    [segment] = write_segments(tmp_path, records, segment_bytes=100_000)
    data = bytearray(segment.read_bytes())
    start, end = record_span(records, 1)
    data[start + 15] ^= 0x40
    segment.write_bytes(bytes(data[:-5]))  # and the last append torn by a crash
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    assert drain(reopened) == [line for i, record in enumerate(records) if i not in (1, 9) for line in record]
    assert (reopened.lost_records, reopened.lost_bytes) == (1, end - start)  # the torn tail is no loss


def old_record(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + zlib.crc32(body).to_bytes(4, "big") + body


def test_segments_of_the_format_before_the_marker_are_still_read(tmp_path: Path) -> None:
    bodies = [b"old v=1i 1\nold v=2i 2", b"bad v=3i 3", b"old v=4i 4"]
    data = bytearray(b"".join(old_record(body) for body in bodies))
    data[len(old_record(bodies[0])) + 10] ^= 0x01  # a bad body: stepped over by its length
    (tmp_path / f"{1:012d}.spool").write_bytes(bytes(data))
    spool = Spool(tmp_path, max_bytes=100_000)
    assert (spool.lost_records, spool.lost_bytes) == (1, len(old_record(bodies[1])))
    assert spool.append(["new v=5i 5"])  # a new segment, in the new format
    assert drain(spool) == ["old v=1i 1", "old v=2i 2", "old v=4i 4", "new v=5i 5"]


def test_a_failed_append_is_cut_off_and_later_records_stay_readable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os

    spool = Spool(tmp_path, max_bytes=100_000)
    assert spool.append(["before v=1i 1"])
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:  # a disk that fills up in the middle of a record
        monkeypatch.setattr(os, "write", failing)
        return real_write(fd, data[: len(data) // 2])

    def failing(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    try:
        spool.append(["lost v=2i 2"])
    except OSError:
        pass
    else:
        raise AssertionError("the failed append must raise, so that nothing is acknowledged")
    monkeypatch.setattr(os, "write", real_write)
    assert spool.append(["after v=3i 3"])
    spool.close()
    assert drain(Spool(tmp_path, max_bytes=100_000)) == ["before v=1i 1", "after v=3i 3"]
