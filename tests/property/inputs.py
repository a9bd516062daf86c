"""What the property and hostile-input tests feed the pipeline: one pipeline with every route (the
builtin vendor adapters and the adapter tests' two declarative mappings), and valid payloads for
each route to start from (the canonical samples and the vendor fixtures)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.app.config import load_config
from collector.ingest.pipeline import DecodeOptions, Pipeline
from collector.ingest.routing import build_routes
from collector.ingest.topics import TopicPattern
from tests import samples
from tests.adapters.helpers import ADAPTERS, CANONICAL_PATTERN, fixture

RECEIVED = datetime(2026, 6, 1, tzinfo=UTC)
RECEIVED_NS = samples.ns(RECEIVED)
MAX_PAST_S = 10 * 365 * 86_400.0  # the vendor fixtures date from 2017 on
MAX_DETAIL = 500  # characters: a dead letter's reason must stay readable whatever the payload


def make_pipeline(*, max_payload_bytes: int = DecodeOptions().max_payload_bytes) -> Pipeline:
    config = load_config(ADAPTERS / "mapping" / "testdata" / "mappings.toml", environ={})
    options = DecodeOptions(
        routes=build_routes(config.routing), max_past_s=MAX_PAST_S, max_payload_bytes=max_payload_bytes
    )
    return Pipeline(TopicPattern(CANONICAL_PATTERN), options)


@dataclass(frozen=True)
class Seed:
    name: str
    topic: str
    payload: bytes

    @property
    def is_json(self) -> bool:
        return self.payload.lstrip()[:1] in (b"{", b"[")

    def document(self) -> Any:
        return json.loads(self.payload)


# Each route's topic pattern, with a valid topic for it (the tests swap one level for a bad value).
ROUTES = {
    "canonical": "bxl/v1/{nis}/{site}/{kind}/{device}/{message}",
    "unifi": "unifi/{nis}/{site}/{device}/stat",
    "openwrt": "openwrt/{nis}/{site}/{device}/monitoring",
    "telegraf": "telegraf/{nis}/{site}/{device}/+",
    "meraki": "meraki/{nis}/{site}/{device}/alert",
    "acme-fiberbox": "acme/fiberbox/{nis}/{site}/{device}",
    "sensa-ap": "sensa/{nis}/{site}/{device}/+",
}


def _seeds() -> dict[str, Seed]:
    seeds = []
    for builder in samples.BUILDERS:
        topic, payload, _ = builder(7, RECEIVED - timedelta(hours=1))
        seeds.append(Seed(builder.__name__, topic, json.dumps(payload).encode()))
    vendor = [
        (
            "unifi/21004/gare/ap-1/stat",
            "unifi",
            ["uap_stat_device.json", "uap_wrapped_6ghz.json", "usw_stat_device.json"],
        ),
        ("openwrt/21004/s/ap-2/monitoring", "openwrt", ["ap_monitoring.json", "router_monitoring.json"]),
        (
            "telegraf/21004/s/sw-1/snmp",
            "telegraf",
            ["snmp_ifxtable_kind.lp", "snmp_interface.lp", "net.lp", "net_speed.lp", "json_interface_batch.json"],
        ),
        (
            "meraki/21004/s/ap-3/alert",
            "meraki",
            ["aps_went_down.json", "aps_came_up.json", "switch_port_disconnected.json", "client_connectivity.json"],
        ),
        ("acme/fiberbox/21016/school/cpe-1", "mapping", ["acme_fiberbox.json"]),
        ("sensa/21009/flagey/ap-7/stats", "mapping", ["sensa_ap.json"]),
    ]
    for topic, folder, names in vendor:
        seeds += [Seed(f"{folder}/{name}", topic, fixture(folder, name)) for name in names]
    return {seed.name: seed for seed in seeds}


SEEDS = _seeds()
TOPICS = sorted({seed.topic for seed in SEEDS.values()})
# One valid payload per route, in ROUTES order.
ROUTE_SEEDS = {
    "canonical": SEEDS["device_state"],
    "unifi": SEEDS["unifi/uap_wrapped_6ghz.json"],
    "openwrt": SEEDS["openwrt/ap_monitoring.json"],
    "telegraf": SEEDS["telegraf/snmp_ifxtable_kind.lp"],
    "meraki": SEEDS["meraki/aps_went_down.json"],
    "acme-fiberbox": SEEDS["mapping/acme_fiberbox.json"],
    "sensa-ap": SEEDS["mapping/sensa_ap.json"],
}
