"""The cardinality guard and the inventory: new devices and series beyond the limits are refused
with a reason, and what was accepted before keeps working."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector.app.config import ConfigError, load_config
from collector.app.service import build_pipeline
from collector.ingest.pipeline import DecodeOptions, Pipeline, Rejection
from collector.ingest.topics import TopicPattern
from tests import samples

NOW = time.time_ns()


def pipeline(max_devices: int = 200_000, max_series: int = 500_000) -> Pipeline:
    pattern = TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}")
    return Pipeline(pattern, DecodeOptions(max_devices=max_devices), max_series=max_series)


def metrics(i: int, offset_s: float = 0) -> tuple[str, bytes]:
    topic, payload, _ = samples.ap_metrics(i, samples.recent(offset_s=offset_s))
    return topic, json.dumps(payload).encode()


def test_devices_beyond_the_limit_are_refused_and_known_ones_keep_working() -> None:
    guard = pipeline(max_devices=2)
    assert isinstance(guard.process(*metrics(1), False, NOW), list)
    assert isinstance(guard.process(*metrics(2), False, NOW), list)
    refused = guard.process(*metrics(3), False, NOW)
    assert isinstance(refused, Rejection) and refused.reason == "too_many_devices"
    assert "'ap-0003'" in refused.detail
    assert isinstance(guard.process(*metrics(1, offset_s=60), False, NOW), list)


def test_series_beyond_the_limit_are_refused_whole() -> None:
    guard = pipeline(max_series=4)  # one AP with two radios is three series
    assert len(guard.process(*metrics(1), False, NOW)) == 3  # type: ignore[arg-type]
    refused = guard.process(*metrics(2), False, NOW)
    assert isinstance(refused, Rejection) and refused.reason == "too_many_series"
    assert len(guard.keys) == 4  # the second AP's first series got in before the limit; no lines were returned
    assert len(guard.process(*metrics(1, offset_s=60), False, NOW)) == 3  # type: ignore[arg-type]


def write_inventory(path: Path, devices: list[str]) -> Path:
    path.write_text(json.dumps({"format": "city-telemetry.inventory/1", "devices": [{"device": d} for d in devices]}))
    return path


def test_inventory_refuses_unknown_devices(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.json", ["ap-0001"])
    config = load_config(
        None, {"CITY_TELEMETRY__INVENTORY__FILE": f'"{inventory}"', "CITY_TELEMETRY__INVENTORY__REQUIRE_KNOWN": "true"}
    )
    guard = build_pipeline(config)
    assert isinstance(guard.process(*metrics(1), False, NOW), list)
    refused = guard.process(*metrics(2), False, NOW)
    assert refused == Rejection("unknown_device", "device 'ap-0002' is not in the inventory")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{", "not JSON"),
        ('{"format": "x"}', "not a city-telemetry.inventory/1 file"),
        ('{"format": "city-telemetry.inventory/1", "devices": [1]}', "'devices' must be a list"),
    ],
)
def test_bad_inventory_is_a_config_error(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"inventory\.file|inventory") as error:
        load_config(None, {"CITY_TELEMETRY__INVENTORY__FILE": f'"{path}"'})
    assert words in str(error.value)


def test_require_known_needs_a_file() -> None:
    with pytest.raises(ConfigError, match="require_known needs file"):
        load_config(None, {"CITY_TELEMETRY__INVENTORY__REQUIRE_KNOWN": "true"})
