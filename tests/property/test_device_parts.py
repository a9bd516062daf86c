r"""A day read back in parts of the devices reads every device exactly once, whatever the names.

``raw.device_parts(names, parts)`` turns the listed device names into InfluxQL regex conditions; the
KPI process reads a day part by part (engine.day_points) and a device read twice, or not at all,
would be counted twice or not at all. The listed names only guide the split: a device that is not
listed (it first reported after the listing) must still fall in exactly one part. The conditions
are RE2 regexes; the ones made here (character classes, ``(?s:.{n})``, anchors) mean the same in
Python's ``re``, which checks them, but for ``$``: RE2's matches only at the very end, Python's also
before a final newline, so it is read as ``\Z`` here.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from collector.kpi.raw import device_parts

CONDITION = re.compile(r'^"device" (=~|!~) /(.*)/$', re.S)

names = st.text(
    alphabet=st.one_of(st.sampled_from("0123456789abcfxyzABZ-_.:/"), st.characters(codec="utf-8")),
    max_size=24,
)


def parts_of(name: str, conditions: list[str]) -> list[int]:
    found = []
    for i, condition in enumerate(conditions):
        match = CONDITION.match(condition)
        assert match is not None, condition
        operator, pattern = match.groups()
        if (re.search(pattern.replace("$", r"\Z"), name) is not None) == (operator == "=~"):
            found.append(i)
    return found


@given(st.lists(names, max_size=40), st.lists(names, max_size=20), st.integers(min_value=1, max_value=200))
def test_every_name_listed_or_not_is_in_exactly_one_part(listed: list[str], others: list[str], parts: int) -> None:
    conditions = device_parts(listed, parts)
    assert len(conditions) <= max(1, parts) + 1
    if conditions == [""]:
        assert parts <= 1
        return
    for name in listed + others:
        assert len(parts_of(name, conditions)) == 1, (name, conditions)


def test_parts_are_near_equal_for_numbered_and_dotted_names() -> None:
    numbered = [f"ap-{nis}-{i:04d}" for nis in (21001, 21004, 21015, 21009) for i in range(1, 48)]
    dotted = [f"ap{i}.schools.brussels" for i in range(300)]
    macs = [f"{i * 7919:012x}" for i in range(500)]
    for listed in (numbered, dotted, macs):
        for parts in (4, 8, 10):
            conditions = device_parts(listed, parts)
            sizes = [0] * len(conditions)
            for name in listed:
                (i,) = parts_of(name, conditions)
                sizes[i] += 1
            # A position holds one of 10 digits (16 hex): 8 parts of 10 digits are 2 digits in some parts.
            assert max(sizes) <= 2 * len(listed) / parts + 1, (listed[0], parts, sizes)
            assert max(sizes) <= len(listed) / 3, (listed[0], parts, sizes)
            assert max(sizes) <= 1.25 * len(listed) / parts + 1, (listed[0], parts, sizes)


def test_more_parts_than_one_position_gives_come_from_two() -> None:
    """Ten digits at one position make ten parts at most, and eight parts of ten digits are two digits
    in some: the characters at two positions (a grid of their sets) share the names out finer."""
    numbered = [f"ap-{n:04d}" for n in range(2700)]
    macs = [f"{i * 7919:012x}" for i in range(5000)]
    for listed in (numbered, macs):
        for parts in (8, 16, 36, 64, 100):
            conditions = device_parts(listed, parts)
            assert len(conditions) <= parts + 1
            sizes = [0] * len(conditions)
            for name in listed:
                (i,) = parts_of(name, conditions)
                sizes[i] += 1
            assert max(sizes) <= 1.5 * len(listed) / parts, (listed[0], parts, sizes)


def test_a_name_ending_in_a_newline_is_in_one_part() -> None:
    """RE2's ``$`` is the very end of the name: a newline at the end is a character like any other."""
    conditions = device_parts([f"a{i}x" for i in range(10)], 10)
    for name in ("62\n", "\n", "a1x\n", "x\n\n"):
        assert len(parts_of(name, conditions)) == 1, (name, conditions)


def test_one_part_is_one_read_of_everything() -> None:
    assert device_parts(["a1", "a2"], 1) == [""]


def test_without_names_the_last_character_splits() -> None:
    """The server could not list the devices: the day is still read in parts, by the last character."""
    conditions = device_parts([], 8)
    assert len(conditions) == 9
    sizes = [0] * len(conditions)
    for n in range(1000):
        (i,) = parts_of(f"ap-{n:04d}", conditions)
        sizes[i] += 1
    assert max(sizes) <= 200, sizes
