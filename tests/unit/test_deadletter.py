from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.delivery.deadletter import DeadLetters, make_record, mask_macs


def test_client_macs_are_masked_in_dead_letters_but_numbers_are_not() -> None:
    payload = b'{"clients": [{"mac": "a4:83:e7:12:34:56"}, {"mac": "DA-A1-19-00-00-01"}], "uptime_s": 123456789012}'
    record = make_record("invalid", "clients.0.mac a4:83:e7:12:34:56 is odd", "t", payload, 1)
    assert "a4:83" not in record["payload"] and "DA-A1" not in record["payload"]
    assert record["payload"].count("<mac>") == 2
    assert "123456789012" in record["payload"]
    assert record["detail"] == "clients.0.mac <mac> is odd"


def test_masking_leaves_timestamps_and_ipv6_alone() -> None:
    text = '"2026-11-28T10:00:00Z" fe80::a4:83:e7:12:34:56'
    assert mask_macs(text) == text


def test_records_are_appended_as_json_lines_and_binary_payloads_kept(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dl" / "dead.jsonl")
    dead.write([make_record("bad_json", "x", "a/b", b"\xff\x00", 5), make_record("bad_topic", "y", "c", b"{}", 6)])
    dead.close()
    lines = [json.loads(line) for line in (tmp_path / "dl" / "dead.jsonl").read_text().splitlines()]
    assert lines[0]["payload_base64"] == "/wA=" and lines[1]["payload"] == "{}"
    assert [r["reason"] for r in lines] == ["bad_json", "bad_topic"]


def test_a_failed_write_leaves_no_torn_line(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead.jsonl")
    dead.write([make_record("bad_json", "first", "t", b"{", 1)])
    assert dead._handle is not None
    real = dead._handle

    class FullDisk:
        def __init__(self) -> None:
            self.written = b""

        def tell(self) -> int:
            return real.tell()

        def write(self, data: bytes) -> int:
            real.write(data[:10])  # part of it reached the file
            real.flush()
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            real.close()

    dead._handle = FullDisk()  # type: ignore[assignment]
    with pytest.raises(OSError):  # raised, so that nothing is acknowledged; the caller retries
        dead.write([make_record("bad_json", "second", "t", b"{", 2)])
    dead.write([make_record("bad_json", "third", "t", b"{", 3)])
    dead.close()
    details = [json.loads(line)["detail"] for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert details == ["first", "third"]
