"""The dead-letter file on the real broker: bounded records, rotation, and retained refusals counted once
(docs/delivery.md, "Dead letters")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from collector.ops.health import render_metrics
from tests import samples
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until
from tests.daemon import start_daemon, wait_for_log
from tests.integration.test_daemon import write_config

pytestmark = pytest.mark.servers

LONG_TOPIC = f"bxl/v1/21004/{'t' * 60_000}/ap/ap-x/metrics"  # 60 KB
BAD_TOPIC = samples.topic("21004", "gare-centrale", "ap", "ap-retained", "metrics")


def dead_letter_files(folder: Path) -> list[Path]:
    """The current file and the rotated ones (not the digest key nor the retained memory)."""
    paths = folder.glob("dead-letter.jsonl*")
    return sorted(p for p in paths if p.name == "dead-letter.jsonl" or p.suffix[1:].isdigit())


def records(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in dead_letter_files(folder) for line in path.read_text().splitlines()]


def reaches(value: Callable[[], int], target: int) -> Callable[[], bool]:
    return lambda: value() == target


async def test_a_refused_retained_message_is_dead_lettered_once_over_reconnects_and_restarts(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    publisher = Publisher(mosquitto.port, client_id="retained-publisher")
    publisher.publish(BAD_TOPIC, b"not json", retain=True)
    publisher.close()
    config = collector_config(mosquitto, influxdb, tmp_path)
    reconnects = 3
    async with running_collector(config) as collector:
        await wait_until(lambda: collector.counters["messages_committed"] == 1, what="retained refusal committed")
        for n in range(1, reconnects + 1):
            await asyncio.to_thread(mosquitto.restart)  # retained messages are kept (persistence)
            await wait_until(reaches(lambda: collector.source.connects, n + 1), timeout_s=40, what="reconnect")
            await wait_until(reaches(lambda: collector.counters["messages_committed"], n + 1), what="replay")
        stats = collector.stats()
        assert stats["rejected_by_reason"] == {"bad_json": 1}  # what the device sent: once
        assert stats["retained_repeats_by_reason"] == {"bad_json": reconnects}
        assert stats["rejected"] == 1 and stats["acked"] == reconnects + 1  # repeats acknowledged, not lost
        metrics_line = 'city_telemetry_retained_repeats_by_reason_total{reason="bad_json"} 3'
        assert metrics_line in render_metrics(stats, "healthy")

    async with running_collector(config) as collector:  # a restart of the collector
        # The resubscription brings the retained message again. It may come twice: if the stop above
        # closed the connection before the last PUBACK left, the session redelivers that copy too
        # (at least once, as QoS 1 allows; seen once under load). Either way: not a new refusal.
        await wait_until(lambda: collector.counters["messages_committed"] >= 1, what="replay after restart")
        await asyncio.sleep(0.5)  # a redelivered copy, if any, comes with it
        replayed = collector.counters["messages_committed"]
        assert dict(collector.dead_letters.counts) == {}
        assert dict(collector.dead_letters.retained_repeats) == {"bad_json": replayed}
        assert replayed in (1, 2)
        live = Publisher(mosquitto.port, client_id="live-publisher")
        live.publish(BAD_TOPIC, b"not json")  # the device sends it again: that is a new refusal
        topic, payload, _ = samples.link_probe(1, samples.recent())
        live.publish(topic, json.dumps(payload))
        live.close()
        await wait_until(lambda: collector.counters["messages_committed"] == replayed + 2, what="live messages")
        assert dict(collector.dead_letters.counts) == {"bad_json": 1}

    stored = records(tmp_path)
    assert [(r["topic"], r["reason"], r.get("retained", False)) for r in stored] == [
        (BAD_TOPIC, "bad_json", True),
        (BAD_TOPIC, "bad_json", False),
    ]
    assert len(points(influxdb, "SELECT * FROM link_probe")) == 1


async def test_oversized_payloads_and_topics_leave_bounded_records_in_bounded_files(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = collector_config(
        mosquitto, influxdb, tmp_path, DEAD_LETTER__MAX_FILE_BYTES="65536", DEAD_LETTER__KEEP_FILES="2"
    )
    big = b'{"schema": "ap.metrics/1", "pad": "' + b"p" * (900 * 1024) + b'"}'
    sent = 0
    async with running_collector(config) as collector:
        for i in range(40):
            publisher.publish(BAD_TOPIC, big)  # above limits.max_payload_bytes, below the broker's packet limit
            publisher.publish(LONG_TOPIC, b"{}")
            topic, payload, _ = samples.link_probe(i, samples.recent(offset_s=i))
            publisher.publish(topic, json.dumps(payload))
            sent += 3
            publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == sent, timeout_s=60, what="commit")
        stats = collector.stats()
    assert stats["rejected_by_reason"] == {"payload_too_large": 40, "bad_topic": 40}
    assert stats["dead_letter_records_cut"] == 80
    assert stats["dead_letter_bytes_cut"] == 40 * (len(big) - 4096) + 40 * (len(LONG_TOPIC) - 4096)
    files = dead_letter_files(tmp_path)
    assert [p.name for p in files] == ["dead-letter.jsonl", "dead-letter.jsonl.1", "dead-letter.jsonl.2"]
    assert stats["dead_letter_files_deleted"] >= 1 and stats["dead_letter_bytes_deleted"] > 0
    assert all(p.stat().st_size <= 65536 for p in files)  # 80 refusals of 0.9 MiB and 60 KB: 75 MB whole
    for record in records(tmp_path):
        assert len(json.dumps(record)) < 10_000
    assert len(points(influxdb, "SELECT * FROM link_probe")) == 40  # every valid message around them


@pytest.mark.slow
async def test_soak_of_oversized_payloads_and_distinct_bad_topics_keeps_dead_letters_in_bounds(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    """A minute (CITY_TELEMETRY_SOAK_S) of 0.9 MiB payloads and distinct 60 KB topics between valid messages."""
    duration_s = float(os.environ.get("CITY_TELEMETRY_SOAK_S", "60"))
    max_file = 1024**2
    config = collector_config(
        mosquitto, influxdb, tmp_path, DEAD_LETTER__MAX_FILE_BYTES=str(max_file), DEAD_LETTER__KEEP_FILES="2"
    )
    big = b'{"schema": "ap.metrics/1", "pad": "' + b"p" * (900 * 1024) + b'"}'
    sent = valid = 0
    largest = 0
    rss_before = rss_mib()
    rss_peak = rss_before
    async with running_collector(config) as collector:
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline and valid < 5000:  # bounded in time and count
            publisher.publish(BAD_TOPIC, big)
            publisher.publish(f"bxl/v1/21004/{valid:06d}{'t' * 60_000}/ap/ap-x/metrics", b"{}")
            topic, payload, _ = samples.link_probe(valid, samples.recent(offset_s=valid / 1000))
            publisher.publish(topic, json.dumps(payload))
            sent, valid = sent + 3, valid + 1
            await asyncio.to_thread(publisher.flush)
            if valid % 50 == 0:
                largest = max([largest, *(p.stat().st_size for p in dead_letter_files(tmp_path))])
                rss_peak = max(rss_peak, rss_mib())
        await wait_until(lambda: collector.counters["messages_committed"] == sent, timeout_s=120, what="commit")
        stats = collector.stats()
        cached = list(collector.pipeline.decoder._targets)
    assert stats["rejected_by_reason"] == {"payload_too_large": valid, "bad_topic": valid}
    # Memory: refused topics are not kept (only the valid ones are cached), and the process did not
    # grow with what it refused (tens of MB of payloads and topics went through it).
    assert all(len(topic) < 200 for topic in cached)
    assert rss_peak - rss_before < 100, f"RSS grew from {rss_before:.0f} to {rss_peak:.0f} MiB"
    files = dead_letter_files(tmp_path)
    assert len(files) <= 3 and largest <= max_file and all(p.stat().st_size <= max_file for p in files)
    # The whole refusals would have taken valid * 0.96 MB; what is on disk stays within 3 files.
    written = stats["dead_letter_bytes_deleted"] + sum(p.stat().st_size for p in files)
    assert stats["dead_letter_bytes_cut"] > 100 * written
    assert len(points(influxdb, "SELECT * FROM link_probe")) == valid  # every valid message around them
    print(f"soak: {valid} rounds in {duration_s} s, {written} dead-letter bytes written, {len(files)} files kept")


def rss_mib() -> float:
    """This process's resident memory (the collector runs in it), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_the_daemon_reopens_the_dead_letter_file_on_sighup_after_logrotate_moved_it(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "collector.toml", mosquitto, influxdb)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    wait_for_log(log, "mqtt_connected")
    time.sleep(0.3)
    path = tmp_path / "dead-letter.jsonl"
    publisher.publish(BAD_TOPIC, b"first")
    publisher.flush()
    wait_for_file(path, b'"payload":"first"')
    os.rename(path, tmp_path / "dead-letter.jsonl-rotated")  # logrotate's move, then its postrotate SIGHUP
    daemon.send_signal(signal.SIGHUP)  # a SIGHUP used to end the process
    publisher.publish(BAD_TOPIC, b"second")
    publisher.flush()
    wait_for_file(path, b'"payload":"second"')  # reopened before the next write
    wait_for_log(log, "dead_letter_file_reopened")
    [reopened] = [json.loads(line) for line in log.read_text().splitlines() if "dead_letter_file_reopened" in line]
    assert reopened["why"] == "sighup" and daemon.poll() is None
    assert b"first" not in path.read_bytes() and b"second" not in (tmp_path / "dead-letter.jsonl-rotated").read_bytes()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def wait_for_file(path: Path, content: bytes, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and content in path.read_bytes()):
        assert time.monotonic() < deadline, f"{content!r} not in {path}"
        time.sleep(0.05)
