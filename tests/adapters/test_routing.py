"""Routing by topic: which code reads a topic, what we subscribe to, and the reasons for refusals."""

from __future__ import annotations

import json

import pytest

from collector.app.config import ConfigError, load_config
from collector.app.service import build_pipeline
from collector.ingest.pipeline import Rejection
from collector.ingest.routing import RouteError, RoutingConfig
from collector.ingest.topics import TopicPattern
from tests import samples
from tests.adapters.helpers import fixture, ns, pipeline, points

RECEIVED = ns("2025-11-28T14:05:00Z")


def test_default_subscriptions_cover_the_canonical_root_and_every_vendor_route() -> None:
    assert load_config(None, environ={}).subscriptions == ["bxl/#", "meraki/#", "openwrt/#", "telegraf/#", "unifi/#"]


def test_a_disabled_adapter_is_neither_subscribed_nor_routed() -> None:
    config = load_config(None, environ={"CITY_TELEMETRY__ROUTING__UNIFI__ENABLED": "false"})
    assert "unifi/#" not in config.subscriptions
    result = build_pipeline(config).process(
        "unifi/21004/s/ap-1/stat", fixture("unifi", "uap_wrapped_6ghz.json"), False, RECEIVED
    )
    assert isinstance(result, Rejection) and result.reason == "no_route"


def test_explicit_mqtt_topics_are_used_as_given() -> None:
    config = load_config(None, environ={"CITY_TELEMETRY__MQTT__TOPICS": '["bxl/v1/21004/#"]'})
    assert config.subscriptions == ["bxl/v1/21004/#"]


def test_a_topic_no_route_claims_is_dead_lettered_as_no_route() -> None:
    result = pipeline().process("acme/21004/s/box-1/status", b"{}", False, RECEIVED)
    assert result == Rejection("no_route", "no route claims this topic; roots: bxl, meraki, openwrt, telegraf, unifi")


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("unifi/21004/s/ap-1", ["route 'unifi'", "expected 5 levels", "unifi/{nis}/{site}/{device}/stat"]),
        ("unifi/21004/s/ap-1/events", ["route 'unifi'", "'stat' expected", "'events'"]),
        ("meraki/21004/s p/ap-1/alert", ["route 'meraki'", "{site}", "'s p'"]),
        ("telegraf/21004/s/sw-1/sn mp", ["route 'telegraf'", "level +", "'sn mp'"]),
    ],
)
def test_a_vendor_topic_that_does_not_fit_its_route_is_a_bad_topic(topic: str, words: list[str]) -> None:
    result = pipeline().process(topic, b"{}", False, RECEIVED)
    assert isinstance(result, Rejection) and result.reason == "bad_topic", result
    for word in words:
        assert word in result.detail


@pytest.mark.parametrize(
    ("topic", "word"),
    [
        ("bxl/v1/21004/s/ap/ap-1/metrics/extra", "levels"),
        ("bxl/v2/21004/s/ap/ap-1/metrics", "v1"),
        ("bxl/v1/21004/s/ap/ap-1/gossip", "gossip"),
    ],
)
def test_the_canonical_root_keeps_its_own_reasons(topic: str, word: str) -> None:
    result = pipeline().process(topic, b"{}", False, RECEIVED)
    assert isinstance(result, Rejection) and result.reason == "bad_topic" and word in result.detail


def test_canonical_messages_are_stored_as_before() -> None:
    topic, payload, rows = samples.ap_metrics(3, samples.recent())
    stored = points(pipeline().process(topic, json.dumps(payload).encode(), False, samples.ns(samples.recent())))
    assert stored[0]["measurement"] == "ap"
    assert stored[0]["fields"]["uptime_s"] == rows[0]["uptime_s"]


def test_a_route_pattern_may_live_under_the_canonical_root() -> None:
    routing = RoutingConfig.model_validate({"unifi": {"pattern": "bxl/vendor/unifi/{nis}/{site}/{device}"}})
    config = load_config(
        None, environ={"CITY_TELEMETRY__ROUTING__UNIFI__PATTERN": '"bxl/vendor/unifi/{nis}/{site}/{device}"'}
    )
    assert config.subscriptions == ["bxl/#", "meraki/#", "openwrt/#", "telegraf/#"]  # no overlapping subscription
    p = pipeline(routing)
    lines = p.process(
        "bxl/vendor/unifi/21004/s/ap-1", fixture("unifi", "uap_wrapped_6ghz.json"), False, ns("2025-11-28T14:00:10Z")
    )
    assert isinstance(lines, list) and lines
    other = p.process("bxl/vendor/unifi/21004/s", b"{}", False, RECEIVED)
    assert isinstance(other, Rejection) and other.reason == "bad_topic" and "7 levels" in other.detail


def test_resolution_is_cached_per_accepted_topic_only() -> None:
    p = pipeline()
    p.process("unifi/21004/s/ap-1/stat", b"{}", False, RECEIVED)
    p.process("nowhere/x", b"{}", False, RECEIVED)
    p.process("bxl/v1/21004/s/ap/d/nonsense", b"{}", False, RECEIVED)
    # A refused topic is resolved again next time rather than kept: distinct bad topics cost no memory.
    assert set(p.decoder._targets) == {"unifi/21004/s/ap-1/stat"}


def test_topic_cache_is_bounded_in_bytes() -> None:
    p = pipeline()
    p.decoder._cache_bytes = 1000
    for i in range(100):
        p.process(f"unifi/21004/{'s' * 40}/ap-{i}/stat", b"{}", False, RECEIVED)
    assert sum(len(topic) for topic in p.decoder._targets) <= 1000 + 70


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (
            {"CITY_TELEMETRY__ROUTING__TELEGRAF__PATTERN": '"telegraf/{nis}/{site}"'},
            ["routing.telegraf.pattern", "{device}"],
        ),
        ({"CITY_TELEMETRY__ROUTING__MERAKI__PATTERN": '"{nis}/{device}"'}, ["routing.meraki.pattern", "literal"]),
        ({"CITY_TELEMETRY__ROUTING__MERAKI__PATTERN": '"m/#/{device}"'}, ["routing.meraki.pattern", "'#'"]),
        ({"CITY_TELEMETRY__ROUTING__OPENWRT__KIND": '"a/b"'}, ["routing.openwrt.kind"]),
        ({"CITY_TELEMETRY__ROUTING__UNIFI__COLOUR": '"red"'}, ["routing.unifi.colour", "unknown key"]),
        ({"CITY_TELEMETRY__DEAD_LETTER__TOPIC": '"meraki/dead-letter"'}, ["meraki/#", "its own rejections"]),
    ],
)
def test_bad_routing_settings_are_named(env: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, environ=env)
    for word in words:
        assert word in str(error.value)


def test_route_pattern_levels() -> None:
    pattern = TopicPattern.for_route("a/{nis}/+/{device}")
    assert (pattern.prefix, pattern.subscription, pattern.names) == (("a",), "a/#", ("nis", "device"))
    assert pattern.match(["a", "1", "anything", "d"]) == {"nis": "1", "device": "d"}
    with pytest.raises(RouteError, match="expected 4 levels"):
        pattern.match(["a", "1", "d"])
