"""FilteredCallbacks finds the same message_callback_add callbacks as paho's MQTTMatcher.

Random filters (levels, "+", "#", "$SYS") and random topics, including the "$" rule (a wildcard
at the first level does not match a topic beginning with "$"): both must yield the same callbacks.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.matcher import MQTTMatcher

from collector.source.paho_internals import FilteredCallbacks

level = st.sampled_from(["a", "b", "bxl", "$SYS", "broker", ""])
topics = st.lists(level, min_size=1, max_size=4).map("/".join)
filter_levels = st.lists(st.one_of(level, st.just("+")), min_size=1, max_size=4)
filters = st.tuples(filter_levels, st.booleans()).map(lambda f: "/".join(f[0] + (["#"] if f[1] else [])))


@given(st.lists(filters, max_size=4, unique=True), st.lists(topics, min_size=1, max_size=8))
def test_the_same_callbacks_match_every_topic(registered: list[str], asked: list[str]) -> None:
    pahos, ours = MQTTMatcher(), FilteredCallbacks()  # type: ignore[no-untyped-call]  # paho's matcher is unannotated
    for name in registered:
        pahos[name] = name
        ours[name] = name
    for topic in asked:
        theirs = pahos.iter_match(topic)  # type: ignore[no-untyped-call]  # paho's matcher is unannotated
        assert sorted(ours.iter_match(topic)) == sorted(theirs), (registered, topic)
