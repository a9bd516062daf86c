"""The pure parts of bench/sizing.py: the bisection over offered rates, the sustained rate it
concludes, the count of each kind expected among the first messages of the mix, the report's
table and the sizing guide's arithmetic. No timing here: the benchmark itself is run by hand."""

from __future__ import annotations

from bench.sizing import (
    MIX,
    cpu_per_million,
    expected_per_kind,
    next_rate,
    sizing_line,
    sustained,
    table,
    templates,
)

LADDER = [2000.0, 3000.0, 4000.0, 5000.0, 6000.0]


def test_bisection_starts_in_the_middle_and_goes_up_after_a_lossless_step() -> None:
    assert next_rate(LADDER, {}, 5) == 4000.0
    assert next_rate(LADDER, {4000.0: True}, 5) == 5000.0
    assert next_rate(LADDER, {4000.0: True, 5000.0: True}, 5) == 6000.0
    assert next_rate(LADDER, {4000.0: True, 5000.0: True, 6000.0: True}, 5) is None


def test_bisection_goes_down_after_a_lossy_step_and_stops_when_the_answer_is_known() -> None:
    assert next_rate(LADDER, {4000.0: False}, 5) == 2000.0
    assert next_rate(LADDER, {4000.0: False, 2000.0: True}, 5) == 3000.0
    assert next_rate(LADDER, {4000.0: False, 2000.0: True, 3000.0: False}, 5) is None
    assert next_rate(LADDER, {4000.0: False, 2000.0: False}, 5) is None


def test_bisection_is_bounded_by_max_steps() -> None:
    assert next_rate(LADDER, {4000.0: True}, 1) is None
    assert next_rate(LADDER, {}, 0) is None


def test_sustained_is_the_highest_lossless_rate_below_every_lossy_one() -> None:
    assert sustained({4000.0: True, 5000.0: False}) == 4000.0
    assert sustained({4000.0: False, 2000.0: True, 3000.0: True}) == 3000.0
    assert sustained({4000.0: False}) is None
    assert sustained({}) is None
    # a lossless step above a lossy one (a quiet moment on a shared machine) does not count
    assert sustained({3000.0: True, 4000.0: False, 5000.0: True}) == 3000.0


def test_expected_per_kind_follows_the_mix() -> None:
    sites = [site for _, _, site in templates()]
    assert len(sites) == len(MIX) == 10
    counts = expected_per_kind(23)
    assert sum(counts.values()) == 23
    # 2 whole rounds of 10 (6 ap.metrics, 2 ap.clients, 1 each of the rest), then 3 ap.metrics
    assert counts[sites[0]] == 6 * 2 + 3
    assert counts[sites[6]] == 2 * 2
    assert counts[sites[8]] == 2 and counts[sites[9]] == 2


def test_templates_carry_marks_for_device_and_time() -> None:
    for topic, payload, _ in templates():
        assert "@DEV@" in topic and '"@DEV@"' in payload and '"@TS@"' in payload


def test_report_table_and_sizing_arithmetic() -> None:
    assert table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    assert cpu_per_million(3.0, 1_500_000) == 2.0
    line = sizing_line(30_000, 60, 2000.0, 300.0, 100.0)
    # 500 msg/s: a quarter of 2,000; 500 * 400 CPU s per million = 0.2 core
    assert line.startswith("30,000 devices every 60 s = 500 msg/s: 25% of one collector's sustained rate")
    assert "about 0.20 core" in line
