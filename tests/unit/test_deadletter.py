from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import pytest

from collector.delivery.config import DeadLetterConfig
from collector.delivery.deadletter import DeadLetters, make_record, mask_macs


def test_client_macs_are_masked_in_dead_letters_but_numbers_are_not() -> None:
    payload = b'{"clients": [{"mac": "a4:83:e7:12:34:56"}, {"mac": "DA-A1-19-00-00-01"}], "uptime_s": 123456789012}'
    record = make_record("invalid", "clients.0.mac a4:83:e7:12:34:56 is odd", "t", payload, 1)
    assert "a4:83" not in record["payload"] and "DA-A1" not in record["payload"]
    assert record["payload"].count("<mac>") == 2
    assert "123456789012" in record["payload"]
    assert record["detail"] == "clients.0.mac <mac> is odd"


@pytest.mark.parametrize(
    "mac",
    ["a4:83:e7:12:34:56", "A4-83-E7-12-34-56", "a483e7123456", "001122334455", "a483.e712.3456", "A483.E712.3456"],
)
def test_every_spelling_of_a_mac_is_masked(mac: str) -> None:
    """The trial found a Cisco-style (dotted) MAC in clear in a dead letter: every spelling devices use
    is masked, in the payload and in the detail, at the end of a sentence too."""
    payload = json.dumps({"clients": [{"mac": mac, "rssi_dbm": 99}]}).encode()
    record = make_record("invalid", f"clients.0 of {mac}.", "t", payload, 1)
    assert mac not in record["payload"] and '"mac": "<mac>"' in record["payload"]
    if not mac.isdigit():  # all digits: a MAC only where it stands in quotes, as in the payload
        assert record["detail"] == "clients.0 of <mac>."


def test_longer_runs_of_hex_are_not_masks() -> None:
    text = "pid 0123456789abcdef0123456789abcdef serial a483e7123456ff v1.2.3.4 2001:db8::a4:83:e7:12:34:56"
    assert mask_macs(text) == text


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

        def fileno(self) -> int:
            return real.fileno()

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


def test_the_file_is_readable_by_its_owner_only_as_the_spool_is(tmp_path: Path) -> None:
    old_mask = os.umask(0o022)  # a usual umask, which would leave a plain open()'s file world-readable
    try:
        dead = DeadLetters(tmp_path / "dead.jsonl")
        dead.write([make_record("bad_json", "x", "a/b", b"{", 5)])
        dead.close()
    finally:
        os.umask(old_mask)
    assert (tmp_path / "dead.jsonl").stat().st_mode & 0o777 == 0o600
    (tmp_path / "old.jsonl").write_text("")
    (tmp_path / "old.jsonl").chmod(0o644)  # as an older version left it
    DeadLetters(tmp_path / "old.jsonl").close()
    assert (tmp_path / "old.jsonl").stat().st_mode & 0o777 == 0o600


def dead_letters(path: Path, **settings: object) -> DeadLetters:
    return DeadLetters.from_config(DeadLetterConfig.model_validate({"file": path, **settings}))


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_oversized_payload_keeps_a_bounded_excerpt_its_size_and_a_keyed_digest(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path, excerpt_bytes=4096)
    payload = b'{"start": 1, "pad": "' + b"x" * (8 * 1024**2) + b'", "end": 2}'
    record = dead.record("payload_too_large", "8 MiB", "bxl/a", payload, 1)
    assert dead.note(record)
    dead.write([record])
    dead.close()
    [stored] = read(path)
    assert "payload" not in stored
    assert (
        str(stored["payload_head"]).startswith('{"start": 1, "pad": "xxx') and len(str(stored["payload_head"])) == 2048
    )
    assert str(stored["payload_tail"]).endswith('xx", "end": 2}') and len(str(stored["payload_tail"])) == 2048
    assert stored["payload_bytes"] == len(payload) and stored["payload_cut_bytes"] == len(payload) - 4096
    key = bytes.fromhex((tmp_path / "dead.jsonl.digest-key").read_text())
    assert stored["payload_digest"] == hmac.new(key, payload, hashlib.sha256).hexdigest()
    assert oct((tmp_path / "dead.jsonl.digest-key").stat().st_mode & 0o777) == "0o600"
    assert path.stat().st_size < 5000
    assert dead.stats()["dead_letter_bytes_cut"] == len(payload) - 4096
    assert dead.stats()["dead_letter_records_cut"] == 1


def test_a_small_payload_is_kept_whole_with_its_size_and_digest(tmp_path: Path) -> None:
    record = make_record("bad_json", "x", "t", b"{not json", 1)
    assert record["payload"] == "{not json" and record["payload_bytes"] == 9 and len(record["payload_digest"]) == 64
    assert "payload_cut_bytes" not in record


def test_an_excerpt_never_shows_part_of_a_mac_nor_half_a_character(tmp_path: Path) -> None:
    mac = "a4:83:e7:12:34:56"
    ending = "y" * 1000 + " " + mac + " " + "y" * 1020  # 2039 bytes: the tail's cut goes through a MAC
    payload = ("x" * 2040 + mac + "é" * 3000 + " " + mac + ending).encode()
    record = make_record("payload_too_large", "", "t", payload, 1)
    assert record["payload_head"] == "x" * 2040  # the MAC the cut went through is left out, not shown in part
    assert record["payload_tail"] == ending.replace(mac, "<mac>")
    assert record["payload_cut_bytes"] == len(payload) - 2040 - len(ending)
    payload = ("é" * 5000).encode()
    record = make_record("payload_too_large", "", "t", payload, 1)
    assert set(str(record["payload_head"])) == {"é"} and set(str(record["payload_tail"])) == {"é"}
    assert len(str(record["payload_head"]).encode()) == 2048


def test_an_oversized_topic_is_cut_the_same_way(tmp_path: Path) -> None:
    topic = "bxl/" + "t" * 60_000
    record = make_record("bad_topic", "too long", topic, b"{}", 1, excerpt_bytes=1024)
    assert "topic" not in record and record["topic_bytes"] == len(topic)
    assert str(record["topic_head"]).startswith("bxl/ttt") and len(str(record["topic_head"])) == 512
    assert record["topic_cut_bytes"] == len(topic) - 1024
    assert len(json.dumps(record)) < 1500


def test_a_refused_influxdb_line_is_bounded_too() -> None:
    record = make_record("influxdb_rejected", "HTTP 400", None, None, 1, line="m f=" + "9" * 10_000, excerpt_bytes=256)
    assert record["line_bytes"] == 10_004 and len(str(record["line_head"])) == 128


def test_the_file_is_rotated_by_size_and_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path, max_file_bytes=4096, keep_files=2, max_file_age_s=0)
    for i in range(200):  # about 30 KB of records
        dead.write([make_record("bad_json", f"n{i}", "t", b"{" * 100, i)])
    dead.close()
    files = sorted(p.name for p in tmp_path.iterdir() if ".jsonl" in p.name and "digest" not in p.name)
    assert files == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    assert all((tmp_path / name).stat().st_size <= 4096 for name in files)
    kept = [r["detail"] for name in ["dead.jsonl.2", "dead.jsonl.1", "dead.jsonl"] for r in read(tmp_path / name)]
    assert kept == [f"n{i}" for i in range(200 - len(kept), 200)]  # the newest, in order, none torn
    stats = dead.stats()
    assert stats["dead_letter_rotations"] == stats["dead_letter_files_deleted"] + 2
    assert stats["dead_letter_bytes_deleted"] > 15_000


def test_the_file_is_rotated_by_the_age_of_its_oldest_record_also_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    old_ns = time.time_ns() - 3 * 3600 * 10**9
    dead = dead_letters(path, max_file_age_s=3600.0)
    dead.write([make_record("bad_json", "old", "t", b"{", old_ns)])
    dead.close()
    reopened = dead_letters(path, max_file_age_s=3600.0)  # age from the first record, not from now
    reopened.write([make_record("bad_json", "new", "t", b"{", time.time_ns())])
    reopened.close()
    assert [r["detail"] for r in read(path.with_name("dead.jsonl.1"))] == ["old"]
    assert [r["detail"] for r in read(path)] == ["new"]
    assert reopened.stats()["dead_letter_rotations"] == 1


def test_keep_files_zero_deletes_the_full_file(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path, max_file_bytes=4096, keep_files=0)
    for i in range(100):
        dead.write([make_record("bad_json", f"n{i}", "t", b"{" * 100, i)])
    assert not path.with_name("dead.jsonl.1").exists() and path.stat().st_size <= 4096
    assert dead.stats()["dead_letter_files_deleted"] == dead.stats()["dead_letter_rotations"] > 0


def test_reopened_after_logrotate_moved_it_or_on_sighup_and_copytruncate_works(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path)
    dead.write([make_record("bad_json", "one", "t", b"{", 1)])
    os.rename(path, tmp_path / "moved.jsonl")  # logrotate without copytruncate
    dead.write([make_record("bad_json", "two", "t", b"{", 2)])
    assert [r["detail"] for r in read(path)] == ["two"]
    assert [r["detail"] for r in read(tmp_path / "moved.jsonl")] == ["one"]
    dead.request_reopen()  # SIGHUP
    dead.write([make_record("bad_json", "three", "t", b"{", 3)])
    assert dead.stats()["dead_letter_reopens"] == 2
    with open(path, "r+b") as handle:  # copytruncate
        handle.truncate(0)
    dead.write([make_record("bad_json", "four", "t", b"{", 4)])
    assert [r["detail"] for r in read(path)] == ["four"]  # at the start, no hole of zeros


def test_a_refused_retained_message_is_dead_lettered_once_also_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path)
    first = dead.record("bad_json", "x", "bxl/a", b"not json", 1, retained=True)
    assert dead.note(first) and first["retained"] is True
    assert not dead.note(dead.record("bad_json", "x", "bxl/a", b"not json", 2, retained=True))  # a resubscribe
    assert dead.note(dead.record("bad_json", "x", "bxl/b", b"not json", 3, retained=True))  # another topic
    assert dead.note(dead.record("bad_json", "x", "bxl/a", b"not json", 4))  # sent again, live: counted
    dead.write([first])  # only the first is durable when the process dies
    dead.close()
    assert (dead.counts["bad_json"], dead.retained_repeats["bad_json"]) == (3, 1)
    restarted = dead_letters(path)
    assert not restarted.note(restarted.record("bad_json", "x", "bxl/a", b"not json", 5, retained=True))
    # Never written before the restart: it is dead-lettered now, not skipped.
    assert restarted.note(restarted.record("bad_json", "x", "bxl/b", b"not json", 6, retained=True))
    assert restarted.stats()["retained_repeats_by_reason"] == {"bad_json": 1}


def test_the_memory_of_retained_refusals_is_bounded_in_memory_and_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path, retained_memory=3)
    for i in range(20):
        record = dead.record("bad_json", "x", f"bxl/{i}", b"!", i, retained=True)
        assert dead.note(record)
        dead.write([record])
    assert (tmp_path / "dead.jsonl.retained-seen").stat().st_size <= 2 * 3 * 32
    assert not dead.note(dead.record("bad_json", "x", "bxl/19", b"!", 0, retained=True))
    assert dead.note(dead.record("bad_json", "x", "bxl/0", b"!", 0, retained=True))  # forgotten: bounded
    restarted = dead_letters(path, retained_memory=3)
    assert not restarted.note(restarted.record("bad_json", "x", "bxl/18", b"!", 0, retained=True))


def test_one_large_batch_is_split_over_rotations_at_record_boundaries(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    dead = dead_letters(path, max_file_bytes=4096, keep_files=20)
    dead.write([make_record("bad_json", f"n{i}", "t", b"{" * 100, i) for i in range(60)])  # about 17 KB at once
    dead.close()
    rotations = dead.stats()["dead_letter_rotations"]
    assert rotations >= 4 and dead.stats()["dead_letter_files_deleted"] == 0
    names = [f"dead.jsonl.{n}" for n in range(rotations, 0, -1)] + ["dead.jsonl"]
    assert all((tmp_path / name).stat().st_size <= 4096 for name in names)
    assert [r["detail"] for name in names for r in read(tmp_path / name)] == [f"n{i}" for i in range(60)]
