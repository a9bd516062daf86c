from __future__ import annotations

import pytest

from collector.lineprotocol import EncodeError, encode_line, format_field_value, series_key


def test_series_key_sorts_tags_and_escapes() -> None:
    key = series_key("my meas,x", [("site", "gare du midi"), ("a=b", "c,d"), ("empty", "")])
    assert key == r"my\ meas\,x,a\=b=c\,d,site=gare\ du\ midi"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (-(2**63), "-9223372036854775808i"),
        (2**63 - 1, "9223372036854775807i"),
        (1.5, "1.5"),
        (1e-7, "1e-07"),
        (17.0, "17.0"),
        ('say "hi" \\ bye', r'"say \"hi\" \\ bye"'),
        ("", '""'),
    ],
)
def test_field_values(value: int | float | str | bool, text: str) -> None:
    assert format_field_value(value) == text


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, float("nan"), float("inf"), "two\nlines"])
def test_unencodable_values_are_refused(value: int | float | str) -> None:
    with pytest.raises(EncodeError):
        format_field_value(value)


@pytest.mark.parametrize("tag_value", ["back\\slash", "new\nline", "carriage\rreturn"])
def test_tag_values_line_protocol_cannot_carry_are_refused(tag_value: str) -> None:
    with pytest.raises(EncodeError):
        series_key("m", [("t", tag_value)])


def test_comment_like_measurement_refused() -> None:
    with pytest.raises(EncodeError):
        series_key("#m", [])


def test_line_leaves_out_none_and_needs_a_field() -> None:
    assert encode_line("m,t=1", [("a", None), ("b", 2)], 5) == "m,t=1 b=2i 5"
    with pytest.raises(EncodeError):
        encode_line("m", [("a", None)], 5)
