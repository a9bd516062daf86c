"""Receipt stamps kept for redeliveries: the pipeline's use of them, and the ledger's file and expiry.

The end-to-end case (SIGKILL between write and acknowledgement, on the real broker and database) is
tests/hardening/test_will_redelivery.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from collector.delivery.stamps import HEADER, StampLedger
from collector.ingest.pipeline import DecodeOptions, Pipeline, stamp_key
from collector.ingest.routing import RoutingConfig, build_routes
from collector.ingest.topics import TopicPattern
from tests import samples
from tests.adapters.helpers import points

WILL_TOPIC = "bxl/v1/21004/gare-du-midi/ap/ap-1/state"
WILL = json.dumps({"schema": "device.state/1", "device_id": "ap-1", "state": "lost"}).encode()
TELEGRAF_TOPIC = "telegraf/21004/s/sw-1/net"
UNSTAMPED_LP = b"net,interface=eth0,host=sw-1 bytes_sent=451838509i,bytes_recv=3284081640i\n"
R1 = 1_780_000_000_000_000_000
R2 = R1 + 7_000_000_000  # the redelivery, 7 s later


def pipeline(ledger: StampLedger | None) -> Pipeline:
    pattern = TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}")
    built = Pipeline(pattern, DecodeOptions(routes=build_routes(RoutingConfig())))
    built.receipts = ledger
    return built


def reading(i: int) -> tuple[str, bytes]:
    """A report with its own time (tests/samples.py), just before R1."""
    topic, payload, _ = samples.ap_clients(i, datetime.fromtimestamp((R1 - i * 10**9) / 1e9, UTC))
    return topic, json.dumps(payload).encode()


def test_a_redelivered_will_is_stored_at_its_first_stamp(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps")
    first = pipeline(ledger).process(WILL_TOPIC, WILL, False, R1, packet_id=7)
    again = pipeline(ledger).process(WILL_TOPIC, WILL, False, R2, packet_id=7, dup=True)  # another process
    assert isinstance(first, list) and first == again
    assert points(again)[0]["time"] == R1 and ledger.reused == 1
    # Without the ledger (the collector before the fix): a second point, at the redelivery's receipt.
    assert points(pipeline(None).process(WILL_TOPIC, WILL, False, R2, packet_id=7, dup=True))[0]["time"] == R2


def test_only_a_redelivery_of_the_same_message_reuses_a_stamp(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps")
    ingest = pipeline(ledger)
    ingest.process(WILL_TOPIC, WILL, False, R1, packet_id=7)
    # Not flagged DUP: a new will of the same device (the same bytes at every outage), stamped anew.
    assert points(ingest.process(WILL_TOPIC, WILL, False, R2, packet_id=7))[0]["time"] == R2
    # Another packet id, or QoS 0 (no packet id): another message.
    assert points(ingest.process(WILL_TOPIC, WILL, False, R2 + 1, packet_id=8, dup=True))[0]["time"] == R2 + 1
    assert points(ingest.process(WILL_TOPIC, WILL, False, R2 + 2, packet_id=0, dup=True))[0]["time"] == R2 + 2
    # The new will replaced the first entry under its key: its redelivery gets R2, not R1.
    assert points(ingest.process(WILL_TOPIC, WILL, False, R2 + 3, packet_id=7, dup=True))[0]["time"] == R2


def test_an_estimated_will_keeps_its_estimate_and_its_flag(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps")
    first_run = pipeline(ledger)
    last_report = R1 - 3600 * 10**9
    first_run.decoder.last_seen_ns["ap-1"] = last_report  # a will from a backlog: stamped 45 s after it
    first = points(first_run.process(WILL_TOPIC, WILL, False, R1, packet_id=3))
    assert first[0]["time"] == last_report + 45 * 10**9 and first[0]["fields"]["estimated"] is True
    second_run = pipeline(ledger)  # knows nothing of the device: alone it would stamp at receipt
    again = points(second_run.process(WILL_TOPIC, WILL, False, R2, packet_id=3, dup=True))
    assert again == first


def test_an_adapter_reading_stamped_on_receipt_keeps_its_first_time(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps")
    first = points(pipeline(ledger).process(TELEGRAF_TOPIC, UNSTAMPED_LP, False, R1, packet_id=9))
    assert first and all(p["time"] == R1 for p in first)
    assert points(pipeline(ledger).process(TELEGRAF_TOPIC, UNSTAMPED_LP, False, R2, packet_id=9, dup=True)) == first


def test_messages_with_their_own_time_never_touch_the_ledger(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps")
    ingest = pipeline(ledger)
    for packet_id in range(1, 50):
        topic, payload = reading(packet_id)
        assert isinstance(ingest.process(topic, payload, False, R1, packet_id, dup=True), list)
    assert ledger.entries == {} and ledger.take() == []


def test_stamps_survive_a_restart_and_hold_no_topic_or_payload(tmp_path: Path) -> None:
    path = tmp_path / "receipt-stamps"
    ledger = StampLedger(path)
    pipeline(ledger).process(WILL_TOPIC, WILL, False, R1, packet_id=7)
    assert len(ledger.take()) == 1
    ledger.persist()
    text = path.read_text()
    assert text.splitlines()[0] == HEADER and len(text.splitlines()) == 2
    assert "ap-1" not in text and "gare" not in text and "lost" not in text
    with open(path, "a") as handle:
        handle.write("0123456789abcdef 17")  # a torn append (killed mid-write): skipped
    reopened = StampLedger(path)
    assert reopened.recall(stamp_key(WILL_TOPIC, 7, WILL)) == (R1, 0)
    reopened.remember("c" * 32, R2, 0)  # the next stamp is not glued to the torn line
    reopened.persist()
    assert StampLedger(path).recall("c" * 32) == (R2, 0)


def test_an_unreadable_file_is_reported_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "receipt-stamps"
    path.write_text("not a ledger\n")
    ledger = StampLedger(path)
    assert ledger.entries == {}
    ledger.remember("ab" * 16, R1, 0)
    ledger.persist()
    assert path.read_text().splitlines()[0] == HEADER


def test_acknowledged_stamps_expire_once_settled_and_the_file_is_compacted(tmp_path: Path) -> None:
    path = tmp_path / "receipt-stamps"
    connected_since: list[float | None] = [None]
    ledger = StampLedger(path, connected_since=lambda: connected_since[0], settle_s=0.2)
    keys = [f"{i:032x}" for i in range(1500)]
    for key in keys:
        ledger.remember(key, R1, 0)
    batch = ledger.take()
    ledger.persist()
    assert len(path.read_text().splitlines()) == 1 + 1500
    ledger.acked(batch)
    time.sleep(0.25)
    ledger._expired_at = 0.0  # expiry runs at most once a second: now
    ledger.persist()
    assert len(ledger.entries) == 1500  # not connected: a lost PUBACK would be redelivered on connecting
    connected_since[0] = time.monotonic() - 1.0
    ledger._expired_at = 0.0
    ledger.remember("f" * 32, R2, 0)  # unacknowledged: kept
    ledger.take()
    ledger.persist()
    assert list(ledger.entries) == ["f" * 32]
    # 1,502 lines for one live entry: rewritten with it alone.
    ledger.remember("e" * 32, R2, 0)
    ledger.take()
    ledger.persist()
    assert path.read_text().splitlines()[1:] == [
        f"{'f' * 32} {R2} 0 {ledger.entries['f' * 32].recorded_s:.3f}",
        f"{'e' * 32} {R2} 0 {ledger.entries['e' * 32].recorded_s:.3f}",
    ]


def test_size_and_age_are_bounded(tmp_path: Path) -> None:
    ledger = StampLedger(tmp_path / "receipt-stamps", max_entries=3, max_age_s=3600)
    for i in range(5):
        ledger.remember(f"{i:032x}", R1 + i, 0)
    ledger.persist()
    assert [e.received_ns for e in ledger.entries.values()] == [R1 + 2, R1 + 3, R1 + 4]  # the oldest dropped
    assert ledger.dropped_full == 2
    ledger.entries[f"{4:032x}"].recorded_s -= 7200  # two hours old, never acknowledged
    ledger._expired_at = 0.0
    ledger.persist()
    assert len(ledger.entries) == 2
    # The file keeps dropped lines until it is compacted; reading it drops those past the age.
    with open(tmp_path / "receipt-stamps", "a") as handle:
        handle.write(f"{'9' * 32} {R1} 0 {time.time() - 7200:.3f}\n")
    reopened = StampLedger(tmp_path / "receipt-stamps", max_age_s=3600)
    assert sorted(e.received_ns for e in reopened.entries.values()) == [R1 + 2, R1 + 3, R1 + 4]


def test_the_key_never_depends_on_a_client_mac() -> None:
    """MAC-shaped texts are masked before digesting: the digest on disk cannot be brute-forced back."""
    spellings = [b"aa:bb:cc:dd:ee:0f", b"AA-BB-CC-DD-EE-0F", b"aabbccddee0f", b"aabb.ccdd.ee0f"]
    keys = {stamp_key(TELEGRAF_TOPIC, 5, b'{"clients":["' + mac + b'"]}') for mac in spellings}
    assert keys == {stamp_key(TELEGRAF_TOPIC, 5, b'{"clients":["<mac>"]}')}
    assert stamp_key(TELEGRAF_TOPIC, 5, b"x=1") != stamp_key(TELEGRAF_TOPIC, 6, b"x=1")  # the packet id counts
