"""Library records (paho's) in the collector's log stream: one JSON object per line, like our events."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from collector.ops.logs import LIBRARY_EVENT, configure_logging
from collector.source.config import MqttConfig
from collector.source.mqtt import MqttSource


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    captured = io.StringIO()
    configure_logging("info", "json", stream=captured)
    yield captured
    configure_logging("warning", "console")


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_paho_record_is_a_json_event(stream: io.StringIO) -> None:
    logging.getLogger("paho.mqtt").error("Caught exception in on_message: %s", "boom")
    [record] = lines(stream)
    assert record["event"] == LIBRARY_EVENT
    assert record["message"] == "Caught exception in on_message: boom"
    assert record["logger"] == "paho.mqtt"
    assert record["level"] == "error"
    assert str(record["timestamp"]).endswith("Z") and record["hint"]


def test_our_events_and_library_records_share_the_stream(stream: io.StringIO) -> None:
    structlog.get_logger("collector.test").warning("ours", n=1)
    try:
        raise OSError("socket gone")
    except OSError:
        logging.getLogger("paho.mqtt").exception("failed to receive on socket")
    ours, theirs = lines(stream)
    assert ours["event"] == "ours" and ours["n"] == 1
    assert theirs["event"] == LIBRARY_EVENT and "OSError: socket gone" in str(theirs["exception"])


def test_paho_debug_chatter_is_not_kept(stream: io.StringIO) -> None:
    logging.getLogger("paho.mqtt").debug("Received PUBLISH (d0, q1, r0, m1), 't', ...  (3 bytes)")
    logging.getLogger("paho.mqtt").info("Sending PUBACK (Mid: 1)")
    assert stream.getvalue() == ""


def test_a_sources_own_paho_logger_reaches_the_stream(stream: io.StringIO) -> None:
    """Each MqttSource logs through a logger of its own whose parent is "paho.mqtt"."""
    source = MqttSource(MqttConfig(), ["bxl/#"])
    assert source.client.logger is not None
    source.client.logger.error("Caught exception in on_connect: %s", "x")
    [record] = lines(stream)
    assert record["message"] == "Caught exception in on_connect: x" and record["logger"] == "paho.mqtt"
