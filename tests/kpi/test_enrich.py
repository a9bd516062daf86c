"""Enrichment from the inventory file the simulator writes; unknown devices kept, flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.app.config import load_config
from collector.app.service import build_kpi_engine
from collector.ingest.inventory import InventoryError
from collector.kpi.compute import KpiConfig
from collector.kpi.engine import window_points
from collector.kpi.enrich import Place, load_places, parse_places
from collector.kpi.raw import DeviceRaw, RawData
from collector.kpi.windows import NS, window_of
from simulators.inventory import build_inventory

T_STRAY = 1_796_000_000 * NS  # 30 Nov 2026, 00:53 UTC


@pytest.fixture(scope="module")
def inventory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inv") / "inventory.json"
    build_inventory(seed=7, scale=0.05, counter32_share=0.5).write(path)
    return path


def test_every_simulated_device_is_placed(inventory_file: Path) -> None:
    inventory = build_inventory(seed=7, scale=0.05, counter32_share=0.5)
    places = load_places(inventory_file)
    names = {m.nis: m.name_fr for m in inventory.municipalities}
    assert len(places.devices) == len(inventory.devices)
    for d in inventory.devices:
        p = places.place(d.device)
        assert (p.kind, p.site, p.nis, p.municipality, p.known) == (d.kind, d.site, d.nis, names[d.nis], True)
        assert (p.capacity_mbps, p.counter_bits) == (d.link_capacity_mbps, d.counter_bits)
        if d.kind == "cpe":
            assert (p.link, p.port_mbps("wan0"), p.port_mbps("lan0")) == ("wan0", 100, 1000)
        elif d.kind == "switch":
            assert p.link == d.ports[-1].name and p.port_mbps(d.ports[-1].name) == 10_000
        else:
            assert p.link is None and p.ports == ()


def test_the_collector_reads_the_inventory_once_for_its_pipeline_and_its_kpis(
    tmp_path: Path, inventory_file: Path
) -> None:
    copy = tmp_path / "inventory.json"
    copy.write_bytes(inventory_file.read_bytes())
    config = load_config(None, {"CITY_TELEMETRY__INVENTORY__FILE": f'"{copy}"'})
    copy.unlink()  # what is built from the config now can only come from the one read at load
    engine = build_kpi_engine(config, None)
    try:
        assert engine.places == load_places(inventory_file)
        assert config.inventory.device_ids == frozenset(engine.places.devices)
    finally:
        engine.close()


def test_a_device_missing_from_the_inventory_is_kept_with_its_topic_tags(inventory_file: Path) -> None:
    places = load_places(inventory_file)
    p = places.place("ap-21004-9999", {"nis": "21004", "site": "new-square", "kind": "ap"})
    assert p == Place("ap-21004-9999", "ap", "new-square", "21004", "Bruxelles (Ville)", known=False)
    assert p.level("site") == "21004/new-square" and p.level("municipality") == "21004" and p.level("region") == "bxl"
    stray = places.place("x1")
    assert (stray.nis, stray.municipality, stray.known) == ("unknown", "unknown", False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "other"}, "not a city-telemetry.inventory/1 file"),
        ({"format": "city-telemetry.inventory/1"}, "'devices' must be a list of objects"),
        (
            {"format": "city-telemetry.inventory/1", "devices": [{"device": "a", "kind": "ap", "nis": "1"}]},
            r"devices\[0\]: 'site' must be a non-empty string",
        ),
        (
            {
                "format": "city-telemetry.inventory/1",
                "devices": [{"device": "a", "kind": "ap", "nis": "1", "site": "s", "link_capacity_mbps": "fast"}],
            },
            "'link_capacity_mbps' must be a positive integer",
        ),
        (
            {
                "format": "city-telemetry.inventory/1",
                "devices": [
                    {"device": "a", "kind": "ap", "nis": "1", "site": "s"},
                    {"device": "a", "kind": "ap", "nis": "1", "site": "s"},
                ],
            },
            "listed twice",
        ),
    ],
)
def test_a_bad_inventory_is_refused_naming_the_mistake(data: object, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_places(data)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown aggregation level"):
        Place("a", "ap", "s", "1", "m").level("street")


def test_the_kpi_points_of_a_device_missing_from_the_inventory_carry_its_topic_tags(inventory_file: Path) -> None:
    places = load_places(inventory_file)
    window = window_of(T_STRAY, "5m")
    raw = RawData(window.start_ns - 3600 * NS, window.end_ns + 3600 * NS)
    stray = raw.devices["ap-21004-9999"] = DeviceRaw(
        "ap-21004-9999", {"device": "ap-21004-9999", "kind": "ap", "nis": "21004", "site": "new-square"}
    )
    for i in range(-5, 30):
        stray.reports.append(window.start_ns + i * 60 * NS, 1000.0 + i * 60)
        stray.clients.append(window.start_ns + i * 60 * NS, 4)
    found = window_points(raw, window, places, KpiConfig(), final=False)
    device = next(p for p in found if p.measurement == "kpi_device" and p.tag("device") == "ap-21004-9999")
    assert (device.tag("kind"), device.tag("site"), device.tag("nis")) == ("ap", "new-square", "21004")
    assert device.tag("municipality") == "Bruxelles (Ville)"  # the inventory lists 21004
    assert device.fields["unknown_devices"] == 1 and device.fields["peak_clients"] == 4
