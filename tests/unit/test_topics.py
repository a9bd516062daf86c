from __future__ import annotations

import pytest

from collector.ingest.topics import TopicError, TopicPattern

PATTERN = TopicPattern("bxl/v1/{nis}/{site}/{kind}/{device}/{message}")


def test_parse_gives_sorted_tags_without_message() -> None:
    match = PATTERN.parse("bxl/v1/21004/gare-du-midi/ap/ap-7/metrics")
    assert match.tags == (("device", "ap-7"), ("kind", "ap"), ("nis", "21004"), ("site", "gare-du-midi"))
    assert match.device == "ap-7" and match.message == "metrics"


@pytest.mark.parametrize(
    ("topic", "words"),
    [
        ("bxl/v1/21004/s/ap/d", "7 levels"),
        ("bxl/v1/21004/s/ap/d/metrics/x", "got 8"),
        ("bxl/v2/21004/s/ap/d/metrics", "'v1' expected"),
        ("bxl/v1/21004/s p/ap/d/metrics", "{site} has a bad value"),
        ("bxl/v1/21004/s,x=1/ap/d/metrics", "{site} has a bad value"),
        ("bxl/v1/21004//ap/d/metrics", "{site} has a bad value"),
        ("bxl/v1/21004/s/ap/d/telemetry", "unknown message level 'telemetry'"),
    ],
)
def test_bad_topics_say_why(topic: str, words: str) -> None:
    with pytest.raises(TopicError, match=words.replace("{", r"\{").replace("}", r"\}")):
        PATTERN.parse(topic)


def test_subscription_is_the_root() -> None:
    assert PATTERN.subscription == "bxl/#"
    assert TopicPattern("{nis}/{device}/{message}").subscription == "#"


def test_build_is_the_inverse_of_parse() -> None:
    topic = PATTERN.build(nis="21009", site="flagey", kind="ap", device="ap-1", message="clients")
    assert topic == "bxl/v1/21009/flagey/ap/ap-1/clients"


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("bxl/{nis}/{message}", "must contain {device}"),
        ("a/{device}/{device}/{message}", "used twice"),
        ("a/+/{device}/{message}", "bad level"),
        ("a//{device}/{message}", "bad level"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        TopicPattern(pattern)
