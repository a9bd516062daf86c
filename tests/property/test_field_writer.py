"""FieldWriter writes what encode_line writes, value for value, and refuses what it refuses.

``FieldWriter`` (collector/ingest/lineprotocol.py) is the fast path that normalise.py uses for the
canonical models' fixed field sets; ``encode_line`` over (name, value) pairs is the general one,
whose output the round-trip property test checks against a real InfluxDB. Random objects with every
kind of value either side of each limit (None, ints past 64 bits, int subclasses, non-finite floats,
booleans, texts with quotes, backslashes and newlines) must give the same text or both an EncodeError.
"""

from __future__ import annotations

import enum
from types import SimpleNamespace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from collector.ingest.lineprotocol import (
    EncodeError,
    FieldValue,
    FieldWriter,
    encode_field,
    encode_line,
    join_line,
)
from schemas.timestamps import EpochNs


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2**40


values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(alphabet='ab "\\\n\r,=é', max_size=6),
    st.integers(min_value=0, max_value=2**63).map(EpochNs),
    st.sampled_from(list(Level)),
)
names = st.lists(
    st.text(alphabet="abc ,=_é", min_size=1, max_size=5).filter(lambda n: n != "time"),
    min_size=2,
    max_size=6,
    unique=True,
)


def _general(pairs: list[tuple[str, FieldValue | None]]) -> str | type[Exception]:
    try:
        return encode_line("m", pairs, 1)
    except EncodeError:
        return EncodeError


def _fast(writer: FieldWriter, obj: object) -> str | type[Exception]:
    try:
        return join_line("m", writer.fields(obj), 1)
    except EncodeError:
        return EncodeError


# Each limit once for sure, whatever the random examples reach: 64-bit ints either side, non-finite
# floats, an int subclass, a bool, a text with a newline, every value None.
@example((["a", "b"], [2**63 - 1, -(2**63)]))
@example((["a", "b"], [2**63, None]))
@example((["a", "b"], [None, -(2**63) - 1]))
@example((["a", "b"], [float("nan"), 1.5]))
@example((["a", "b"], [float("-inf"), None]))
@example((["a", "b"], [EpochNs(5), Level.HIGH]))
@example((["a", "b"], [True, "x\ny"]))
@example((["a", "b"], [None, None]))
@given(names.flatmap(lambda keys: st.tuples(st.just(keys), st.lists(values, min_size=len(keys), max_size=len(keys)))))
def test_the_same_text_or_the_same_refusal(case: tuple[list[str], list[FieldValue | None]]) -> None:
    keys, given_values = case
    obj = SimpleNamespace(**dict(zip(keys, given_values, strict=True)))
    writer = FieldWriter(*keys)
    assert _fast(writer, obj) == _general(list(zip(keys, given_values, strict=True))), (keys, given_values)


def test_keys_are_escaped_once_and_checked_when_the_writer_is_made() -> None:
    writer = FieldWriter("a b", "c,d", "e=f")
    assert writer.fields(SimpleNamespace(**{"a b": 1, "c,d": 2.5, "e=f": "x"})) == [
        r"a\ b=1i",
        r"c\,d=2.5",
        r'e\=f="x"',
    ]
    with pytest.raises(EncodeError):
        FieldWriter("time", "x")  # influxd would drop it without a word
    with pytest.raises(ValueError, match="two names"):
        FieldWriter("only")
    with pytest.raises(ValueError, match="dot"):
        FieldWriter("radio.band", "x")  # attrgetter would read obj.radio.band


def test_a_line_needs_a_field_and_a_time_influxdb_can_hold() -> None:
    assert join_line("m,t=1", [encode_field("a", 1)], 5) == "m,t=1 a=1i 5"
    with pytest.raises(EncodeError):
        join_line("m", FieldWriter("a", "b").fields(SimpleNamespace(a=None, b=None)), 5)
    with pytest.raises(EncodeError):
        join_line("m", ["a=1i"], 2**63)
