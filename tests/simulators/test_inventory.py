"""The city's inventory: Brussels' 19 municipalities, sites, devices and links, at any scale."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from simulators.inventory import build_inventory, load_inventory

NIS_CODES = {f"210{k:02d}" for k in range(1, 20)}
LEVEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def test_default_city_is_brussels_at_wifi_brussels_scale() -> None:
    city = build_inventory(seed=7)
    assert {m.nis for m in city.municipalities} == NIS_CODES
    names = {m.nis: (m.name_fr, m.name_nl) for m in city.municipalities}
    assert names["21004"] == ("Bruxelles (Ville)", "Brussel (Stad)")
    assert names["21015"] == ("Schaerbeek", "Schaarbeek")
    kinds = Counter(d.kind for d in city.devices)
    assert kinds["ap"] == 900
    assert kinds["cpe"] == 175
    assert 19 <= kinds["switch"] <= 40
    ap_sites = {d.site for d in city.devices if d.kind == "ap"}
    assert 180 <= len(ap_sites) <= 300  # wifi.brussels: 867 APs on 221 locations
    site_kinds = Counter(s.kind for s in city.sites if s.site in ap_sites)
    assert set(site_kinds) == {"metro", "square", "park", "library", "town_hall"}
    assert {d.nis for d in city.devices if d.kind == "ap"} == NIS_CODES
    # Every school has a 100 Mbit/s fibre link; every AP hangs off a switch of its municipality.
    assert {d.link_capacity_mbps for d in city.devices if d.kind == "cpe"} == {100}
    switches = {d.device: d for d in city.devices if d.kind == "switch"}
    for ap in (d for d in city.devices if d.kind == "ap"):
        assert ap.uplink in switches and switches[ap.uplink].nis == ap.nis
    # Identifiers are unique and usable as topic levels.
    assert len({d.device for d in city.devices}) == len(city.devices)
    assert len({(s.nis, s.site) for s in city.sites}) == len(city.sites)
    assert all(LEVEL.match(d.device) and LEVEL.match(d.site) for d in city.devices)
    # Sites lie in Brussels.
    assert all(50.75 < s.lat < 50.93 and 4.24 < s.lon < 4.50 for s in city.sites)


def test_scale_goes_from_a_handful_to_a_hundred_thousand() -> None:
    tiny = build_inventory(seed=7, scale=0.005)
    assert 3 <= len(tiny.devices) <= 12
    assert Counter(d.kind for d in tiny.devices)["cpe"] == 1
    huge = build_inventory(seed=7, scale=90)
    assert 90_000 <= len(huge.devices) <= 110_000
    assert len({d.device for d in huge.devices}) == len(huge.devices)


def test_same_seed_same_city_and_another_seed_another() -> None:
    assert build_inventory(seed=7).to_json() == build_inventory(seed=7).to_json()
    one, other = build_inventory(seed=7), build_inventory(seed=8)
    assert [s.site for s in one.sites] != [s.site for s in other.sites] or [
        (d.site, d.channel_5) for d in one.devices
    ] != [(d.site, d.channel_5) for d in other.devices]
    # Vendor flavours and counter widths have their own random streams: the city stays put.
    vendor = build_inventory(seed=7, vendor_share=0.5, counter32_share=0.0)
    assert [(d.device, d.site) for d in vendor.devices] == [(d.device, d.site) for d in one.devices]
    flavours = Counter(d.flavour for d in vendor.devices)
    assert flavours["unifi"] > 150 and flavours["openwrt"] > 150 and flavours["telegraf"] > 60


def test_inventory_file_loads_for_enrichment(tmp_path: Path) -> None:
    city = build_inventory(seed=7, scale=0.2)
    path = tmp_path / "inventory.json"
    city.write(path)
    loaded = load_inventory(path)
    assert loaded["format"] == "city-telemetry.inventory/1"
    assert len(loaded["devices"]) == len(city.devices)
    for device in city.devices:
        entry = loaded["devices"][device.device]
        assert (entry["nis"], entry["site"], entry["kind"]) == (device.nis, device.site, device.kind)
        assert entry["link_capacity_mbps"] == device.link_capacity_mbps
        site = loaded["sites"][(device.nis, device.site)]
        assert loaded["municipalities"][site["nis"]]["name_nl"]
    school = next(d for d in loaded["devices"].values() if d["kind"] == "cpe")
    assert school["link_capacity_mbps"] == 100 and school["ports"][0]["speed_mbps"] == 100
