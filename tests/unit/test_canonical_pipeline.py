"""The canonical path of the pipeline, without broker or database."""

from __future__ import annotations

import json
import time

import pytest

from collector.ingest.pipeline import DecodeOptions, Pipeline, Rejection
from collector.ingest.topics import TopicPattern
from tests import samples

NOW = time.time_ns()


@pytest.fixture
def pipeline() -> Pipeline:
    pattern = TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}")
    return Pipeline(pattern, DecodeOptions(max_payload_bytes=4096))


def state(**fields: object) -> bytes:
    return json.dumps({"schema": "device.state/1", "device_id": "ap-1", **fields}).encode()


TOPIC = "bxl/v1/21004/s/ap/ap-1/state"


def test_will_without_time_is_stamped_on_receipt(pipeline: Pipeline) -> None:
    lines = pipeline.process(TOPIC, state(state="lost"), False, NOW)
    assert lines == [
        f'device_state,device=ap-1,kind=ap,nis=21004,site=s state="lost",up=0i,stamped_on_receipt=true {NOW}'
    ]


def test_retained_will_replayed_on_subscribe_is_not_stored_again(pipeline: Pipeline) -> None:
    assert pipeline.process(TOPIC, state(state="lost"), True, NOW) == []
    assert pipeline.retained_wills_skipped == 1
    # A retained state that carries its own time is stored (it overwrites its own point).
    ts = samples.recent()
    stored = pipeline.process(TOPIC, state(state="online", ts=samples.iso(ts), seq=3), True, NOW)
    assert isinstance(stored, list) and len(stored) == 1


@pytest.mark.parametrize(("offset_s", "ok"), [(-29 * 86400, True), (-31 * 86400, False), (500, True), (700, False)])
def test_timestamp_window(pipeline: Pipeline, offset_s: int, ok: bool) -> None:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW / 1e9 + offset_s))
    result = pipeline.process(TOPIC, state(state="online", ts=ts, seq=1), False, NOW)
    if ok:
        assert isinstance(result, list) and len(result) == 1
    else:
        assert isinstance(result, Rejection) and result.reason == "timestamp_out_of_range"


def test_oversized_payload(pipeline: Pipeline) -> None:
    result = pipeline.process(TOPIC, b" " * 4097, False, NOW)
    assert result == Rejection("payload_too_large", "4097 bytes > limit 4096")


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (
            b'{"schema":"device.state/1","device_id":"ap-1","state":"online","ts":"2026-01-01T00:00:00"}',
            "invalid",
            "ts: not an RFC 3339 time with a UTC offset",
        ),
        (b'{"schema":"device.state/1","device_id":"ap-1","state":"online","ts":1767225600}', "invalid", "ts"),
        (b'{"schema":"device.state/1","device_id":"ap-1","state":"napping"}', "invalid", "state"),
        (
            b'{"schema":"device.state/1","device_id":"ap-1","state":"online","colour":"red"}',
            "invalid",
            "colour: Extra inputs are not permitted",
        ),
        (b'{"device_id":"ap-1","state":"online"}', "unknown_schema", "no 'schema' key"),
        (b"NaN", "bad_json", ""),
        (b"", "bad_json", "EOF"),
    ],
)
def test_rejections_name_the_problem(pipeline: Pipeline, payload: bytes, reason: str, words: str) -> None:
    result = pipeline.process(TOPIC, payload, False, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert words in result.detail


def test_nan_and_infinity_are_rejected(pipeline: Pipeline) -> None:
    topic, payload, _ = samples.link_probe(1, samples.recent())
    text = json.dumps(payload).replace('"rtt_avg_ms": 1.5', '"rtt_avg_ms": NaN')
    result = pipeline.process(topic, text.encode(), False, NOW)
    assert isinstance(result, Rejection) and "rtt_avg_ms" in result.detail
    text = json.dumps(payload).replace('"rtt_avg_ms": 1.5', '"rtt_avg_ms": Infinity')
    assert isinstance(pipeline.process(topic, text.encode(), False, NOW), Rejection)


def test_counter_beyond_int64_is_rejected(pipeline: Pipeline) -> None:
    topic, payload, _ = samples.ap_metrics(1, samples.recent())
    payload["uplink_rx_bytes"] = 2**63
    result = pipeline.process(topic, json.dumps(payload).encode(), False, NOW)
    assert isinstance(result, Rejection) and "uplink_rx_bytes" in result.detail


def test_32_bit_counter_must_fit(pipeline: Pipeline) -> None:
    topic, payload, _ = samples.if_counters(1, samples.recent())
    payload["interfaces"][0]["in_octets"] = 2**32
    result = pipeline.process(topic, json.dumps(payload).encode(), False, NOW)
    assert isinstance(result, Rejection) and "does not fit a 32-bit counter" in result.detail


def test_series_keys_are_built_once_per_series(pipeline: Pipeline) -> None:
    for i in range(5):
        topic, payload, _ = samples.ap_metrics(7, samples.recent(offset_s=i))
        assert isinstance(pipeline.process(topic, json.dumps(payload).encode(), False, NOW), list)
    assert len(pipeline.keys) == 3  # ap + two radios


def test_a_will_from_a_backlog_is_not_stored_after_the_devices_next_state(pipeline: Pipeline) -> None:
    """The collector was away: the broker queued the will, then the device's ``online``. Stamped at
    receipt, the will was later than the online and made last(up) say down."""
    t0 = samples.recent(-3600)  # the device's last report, an hour before the collector got the backlog
    online = pipeline.process(TOPIC, state(state="online", ts=samples.iso(t0), seq=1), False, NOW)
    assert isinstance(online, list) and len(online) == 1
    will = pipeline.process(TOPIC, state(state="lost"), False, NOW)
    back_at = samples.recent(-3000)  # back ten minutes after its last report
    back = pipeline.process(TOPIC, state(state="online", ts=samples.iso(back_at), seq=1), False, NOW + 1000)
    assert isinstance(will, list) and isinstance(back, list)
    will_ns = int(will[0].rsplit(" ", 1)[1])
    assert will_ns == samples.ns(t0) + 45 * 10**9 < samples.ns(back_at)  # 1.5 keepalives after its last report
    assert int(back[0].rsplit(" ", 1)[1]) == samples.ns(back_at)
    assert pipeline.decoder.wills_stamped_early == 1


def test_a_live_will_is_stored_on_receipt(pipeline: Pipeline) -> None:
    recent = samples.recent()
    received = samples.ns(recent) + 20 * 10**9  # the will arrives 20 s after the device's last report
    pipeline.process(TOPIC, state(state="online", ts=samples.iso(recent), seq=1), False, received)
    will = pipeline.process(TOPIC, state(state="lost"), False, received)
    assert isinstance(will, list) and int(will[0].rsplit(" ", 1)[1]) == received
