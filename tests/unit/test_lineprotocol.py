from __future__ import annotations

import pytest

from collector.ingest.lineprotocol import EncodeError, encode_line, format_field_value, series_key


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


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "timestamp"),
    [
        ("m", [("t", "x")], [("time", 1), ("f", 2)], 1),  # influxd drops a "time" field without a word
        ("m", [("time", "x")], [("f", 1)], 1),  # and refuses a "time" tag
        ("\tm", [], [("f", 1)], 1),  # leading whitespace is skipped by influxd
        ("\x00m", [], [("f", 1)], 1),
        ("m", [], [("\tf", 1)], 1),
        ("m", [], [("\x00f", 1)], 1),
        ("m", [], [("f", 1)], -(2**63) + 1),  # influxd: "time outside range"
        ("m", [], [("f", 1)], 2**63 - 1),
        ("m" * 60_000, [], [("k" * 5_600, 1)], 1),  # influxd: "max key length exceeded"
        ("m", [("t", "é" * 30_000)], [("f" * 5_528, 1)], 1),  # counted in bytes, not characters
    ],
)
def test_what_influxdb_would_store_differently_is_refused(
    measurement: str, tags: list[tuple[str, str]], fields: list[tuple[str, int]], timestamp: int
) -> None:
    with pytest.raises(EncodeError):
        encode_line(series_key(measurement, tags), fields, timestamp)


def test_the_limits_themselves_are_accepted() -> None:
    assert encode_line("m", [("f", 1)], -(2**63) + 2) == "m f=1i -9223372036854775806"
    assert encode_line("m", [("f", 1)], 2**63 - 2) == "m f=1i 9223372036854775806"
    series = series_key("m", [("t", "é" * 30_000)])  # 60,004 bytes
    assert encode_line(series, [("f" * 5_527, 1)], 1).endswith(" 1")  # + 4 + 5,527 = 65,535 bytes
    with pytest.raises(EncodeError):
        encode_line(series, [("f" * 5_528, 1)], 1)
    assert encode_line("m", [("Time", 1), ("t ime", 2)], 1) == r"m Time=1i,t\ ime=2i 1"
