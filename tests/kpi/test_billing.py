"""The monthly 95th percentile of a link (collector/kpi/billing.py): the month's local bounds, the
nearest-rank percentile that drops the top 5 %, the larger direction billed, rates from capacity."""

from __future__ import annotations

import random
from datetime import date

from collector.kpi.billing import billing, month_rows, month_window
from collector.kpi.enrich import Place, Places
from collector.kpi.windows import NS, TZ, midnight_ns

HOUR = 3600 * NS


def test_a_month_is_its_local_calendar_month_dst_included() -> None:
    october = month_window(date(2026, 10, 25))  # clocks go back on the 25th: one hour more
    assert october.start_ns == midnight_ns(date(2026, 10, 1), TZ)
    assert october.end_ns - october.start_ns == (31 * 24 + 1) * HOUR
    march = month_window(date(2026, 3, 1))  # clocks go forward on the 29th: one hour less
    assert march.end_ns - march.start_ns == (31 * 24 - 1) * HOUR
    december = month_window(date(2026, 12, 31))
    assert december.end_ns == midnight_ns(date(2027, 1, 1), TZ)
    assert month_window(date(2026, 2, 14)).end_ns - month_window(date(2026, 2, 1)).start_ns == 28 * 24 * HOUR


def test_the_top_five_percent_is_dropped_and_the_larger_direction_billed() -> None:
    # A 30-day month: 8,640 samples; the top 432 (36 hours) are dropped, the 8,208th is billed.
    rates_in = [float(v) for v in range(1, 8641)]
    random.Random(3).shuffle(rates_in)
    rates_out = [v / 2 for v in rates_in]
    found = billing(rates_in, rates_out)
    assert found is not None
    assert (found.in_bps, found.out_bps, found.billed_bps, found.samples) == (8208.0, 4104.0, 8208.0, 8640)
    small = billing([1.0, 2.0], [5.0, 7.0])
    assert small is not None and small.billed_bps == 7.0
    assert billing([], []) is None


def test_rows_turn_utilisation_into_bit_rates_of_the_links_capacity() -> None:
    places = Places(
        {
            "cpe-1": Place("cpe-1", "cpe", "school-1", "21001", "Anderlecht", capacity_mbps=100, link="wan0"),
            "sw-1": Place("sw-1", "switch", "dc", "21004", "Bruxelles", capacity_mbps=10_000, link="te1"),
        },
        {"21001": "Anderlecht", "21004": "Bruxelles"},
    )
    month = month_window(date(2026, 11, 1))
    in_pct = [float(i % 20) for i in range(100)]  # 0..19 %, five of each
    out_pct = [1.0] * 100
    rows = month_rows(
        {"cpe-1": (in_pct, out_pct), "sw-1": ([50.0], [60.0]), "stranger": ([10.0], [10.0])},
        places,
        month,
        upto_ns=month.start_ns + 100 * 300 * NS + 7,
    )
    by_device = {row.key: row for row in rows}
    assert set(by_device) == {"cpe-1", "sw-1"}  # no capacity for a device missing from the inventory
    cpe = by_device["cpe-1"]
    assert (cpe.level, cpe.grain, cpe.start_ns) == ("device", "month", month.start_ns)
    # Nearest rank 95 of 100 samples: the 95th smallest, 18 % of 100 Mbit/s.
    assert cpe.fields["school_billing_in_p95_bps"] == 18_000_000.0
    assert cpe.fields["school_billing_out_p95_bps"] == 1_000_000.0
    assert cpe.fields["school_billing_p95_bps"] == 18_000_000.0
    assert (cpe.fields["billing_samples"], cpe.fields["billing_buckets"]) == (100, 100)
    assert by_device["sw-1"].fields["switch_billing_p95_bps"] == 6_000_000_000.0
