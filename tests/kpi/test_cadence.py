"""``kpi.cadence``: each device's typical gap between readings, and the warning when the devices
report less often than ``kpi.report_period_s`` / ``kpi.clients_every_s`` say."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from collector.kpi.cadence import Cadence, CadenceWarning, median_gap_s

S = 1_000_000_000


def test_the_typical_gap_is_the_median_of_the_gaps_between_distinct_times() -> None:
    assert median_gap_s([0, 60 * S, 120 * S, 120 * S, 1000 * S, 1060 * S]) == 60.0  # a repeat, an outage
    assert median_gap_s([30 * S, 0, 15 * S]) == 15.0  # in any order
    assert median_gap_s([0, 60 * S]) is None and median_gap_s([]) is None  # too few to say


def test_a_warning_only_beyond_one_and_a_half_periods_and_for_what_exceeds() -> None:
    cadence = Cadence()
    for i, gap in enumerate((900, 900, 60)):  # two of three devices every 15 minutes
        cadence.add(f"ap-{i}", [k * gap * S for k in range(5)], [k * 300 * S for k in range(5)])
    assert cadence.check(60.0, 300.0) == CadenceWarning(900.0, None, 3)
    assert cadence.check(600.0, 300.0) == CadenceWarning(None, None, 3)  # 900 is 1.5 times 600: fits
    assert cadence.check(900.0, 180.0) == CadenceWarning(None, 300.0, 3)
    assert Cadence().check(60.0, 300.0) is None  # nothing measured: cannot say


def test_a_device_read_again_keeps_its_latest_figure() -> None:
    cadence = Cadence()
    cadence.add("ap-1", [k * 60 * S for k in range(5)], [])
    cadence.add("ap-1", [k * 900 * S for k in range(5)], [])
    cadence.add("ap-1", [0], [])  # too few readings in this span: the figure stays
    assert cadence.reports == {"ap-1": 900.0} and cadence.clients == {}


def test_the_engine_warns_once_and_again_only_when_the_finding_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.kpi import engine as engine_module
    from collector.kpi.compute import KpiConfig

    logged: list[dict[str, object]] = []
    monkeypatch.setattr(engine_module.log, "warning", lambda event, **fields: logged.append(fields))
    engine = SimpleNamespace(settings=KpiConfig(period_s=60.0, clients_period_s=300.0), _cadence_warned=None)

    def see(found: CadenceWarning | None) -> None:
        engine_module.KpiEngine._warn_of_cadence(engine, found)  # type: ignore[arg-type]

    see(CadenceWarning(900.0, 1800.0, 10))
    see(CadenceWarning(899.98, 1800.2, 10))  # clock jitter: the same finding
    see(None)  # a read too short to say
    see(CadenceWarning(905.0, None, 10, clients_seen=False))  # client lists not measured: still 1800
    assert [(f["report_gap_s"], f["clients_gap_s"]) for f in logged] == [(900.0, 1800.0)]
    see(CadenceWarning(300.0, 1800.0, 10))  # changed by more than 10 %: said again
    see(CadenceWarning(None, None, 10))  # the settings fit now ...
    see(CadenceWarning(300.0, 1800.0, 10))  # ... so a mismatch after that is new
    assert [f["report_gap_s"] for f in logged] == [900.0, 300.0, 300.0]
    assert logged[0]["report_period_s"] == 60.0 and "set kpi.report_period_s" in str(logged[0]["hint"])
