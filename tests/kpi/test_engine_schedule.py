"""The KPI engine's bookkeeping (engine.py): which windows a reading makes pending, when each is due,
that a window touched while it is being computed is computed again, that a window written before it
was final is computed once more when it is, and that all of this survives a restart in the state
file. The computation itself is replaced by a recorder here: what it computes is tested against the
truth on real servers (test_kpi_e2e.py); this is about when."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.ingest.decode import Decoded
from collector.kpi.billing import month_window
from collector.kpi.compute import KpiConfig
from collector.kpi.engine import Computed, KpiEngine, month_final
from collector.kpi.enrich import Places
from collector.kpi.pseudonym import Pseudonymiser
from collector.kpi.stage import KpiStage
from collector.kpi.windows import NS, Window, day_window, local_date, window_of
from collector.sink.config import InfluxConfig
from collector.sink.influxdb import InfluxWriter
from collector.sink.query import InfluxQuery
from schemas.canonical import ApMetrics

# Far in the future, so that the clock never is the watermark: the readings' own time is.
T0 = int(datetime(2100, 6, 15, 10, 2, tzinfo=UTC).timestamp()) * NS
SETTINGS = KpiConfig(period_s=60.0, clients_period_s=300.0, missed_reports=3)  # lookahead 20 min
LOOKAHEAD = int(SETTINGS.lookahead_s * NS)
LATENESS_S = 4 * 3600.0


class RecordingEngine(KpiEngine):
    """The engine with its computation replaced by a record of what it was asked to compute; ``during``
    runs while a computation is in flight (a reading arriving meanwhile)."""

    def __init__(self, stage: KpiStage, state_file: Path | None = None) -> None:
        config = InfluxConfig()
        super().__init__(
            SETTINGS,
            Places(),
            InfluxQuery(config),
            InfluxWriter(config),
            stage=stage,
            state_file=state_file,
            lateness_s=LATENESS_S,
        )
        self.kpi_stage = stage  # the engine's own stage, which here is never None
        self.asked: list[list[Window]] = []
        self.during: list[int] = []  # reading times to see while the next computation runs
        self.arriving: list[frozenset[Window]] = []  # per computation, the windows still receiving readings

    async def compute_windows(self, windows: list[Window], arriving: frozenset[Window] = frozenset()) -> Computed:
        self.asked.append(sorted(windows))
        self.arriving.append(arriving)
        for ts_ns in self.during:
            see(self.stage, ts_ns)
            self.before_ack()
        self.during = []
        watermark = self.watermark_ns()
        return Computed([(w, watermark >= w.end_ns + self.lateness_ns and w not in arriving, 3) for w in windows], 0)


def reading(ts_ns: int) -> Decoded:
    stamp = datetime.fromtimestamp(ts_ns / NS, UTC).isoformat()
    return Decoded(
        ApMetrics.model_validate(
            {"schema": "ap.metrics/1", "device_id": "ap-1", "seq": 1, "ts": stamp, "uptime_s": 10, "num_clients": 1}
        ),
        (),
    )


def see(stage: KpiStage | None, ts_ns: int) -> None:
    assert stage is not None
    stage([reading(ts_ns)], ts_ns)


async def ready() -> bool:
    return True


def new_engine(tmp_path: Path | None = None) -> RecordingEngine:
    stage = KpiStage(Pseudonymiser(b"k" * 32))
    return RecordingEngine(stage, tmp_path / "kpi-state.json" if tmp_path else None)


def grains(windows: list[Window]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.grain] = counts.get(w.grain, 0) + 1
    return counts


def test_a_reading_makes_the_windows_around_it_pending_and_each_is_due_when_closed() -> None:
    engine = new_engine()
    see(engine.stage, T0)  # 10:02 UTC
    engine.before_ack()
    five = window_of(T0, "5m")
    # Every window within the lookback (20 min) of the reading's bucket [10:00, 10:05): the 5-minute
    # windows from 9:40 to 10:20 (9), the hours 9:00 and 10:00, and the day.
    assert grains(sorted(engine.pending)) == {"5m": 9, "1h": 2, "day": 1}
    assert five in engine.pending
    # The open day is due at once (then at most every day_every_s); the 5-minute window when the
    # watermark is its end plus the lookahead.
    due = engine.due(five.end_ns + LOOKAHEAD - 1, now_s=0.0)
    assert five not in due and grains(due)["day"] == 1
    assert five in engine.due(five.end_ns + LOOKAHEAD, now_s=0.0)
    engine._done_at[day_window(local_date(T0))] = 0.0
    assert "day" not in grains(engine.due(T0, now_s=899.0))
    assert "day" in grains(engine.due(T0, now_s=900.0))


def test_a_window_touched_while_it_is_computed_is_computed_again() -> None:
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3 * 3600 * NS  # the watermark: every window around T0 is closed
    engine.before_ack()
    engine.during = [T0 + 1]  # a late reading of the same 5 minutes arrives while they are computed
    assert asyncio.run(engine.cycle(ready)) == 12
    assert window_of(T0, "5m") in engine.pending  # ... so they are pending again, not lost
    # Just computed and just touched: they wait until their readings stop (or late_every_s) ...
    assert asyncio.run(engine.cycle(ready)) == 0
    # ... which they have, here: the next pass computes them again, but for the day: still open, it
    # waits for day_every_s.
    engine.quiet_s = 0.0
    assert asyncio.run(engine.cycle(ready)) == 11
    day = day_window(local_date(T0))
    assert engine.pending == {day} and engine.in_flight == set()
    assert engine.asked[1] == [w for w in engine.asked[0] if w != day]


def test_a_window_written_before_it_was_final_is_computed_once_more_when_final() -> None:
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3600 * NS
    engine.before_ack()
    first = asyncio.run(engine.cycle(ready))
    assert first == 12 - 1  # all but the 10:00 hour (its end + lookahead, 11:20, is not reached)
    assert len(engine.unfinal) == first  # written with final=false
    assert asyncio.run(engine.cycle(ready)) == 0  # nothing new, nothing final yet
    engine.kpi_stage.newest_ns = T0 + 3 * 86400 * NS  # far past every end + lateness
    engine.quiet_s = 0.0  # and no reading of them since (a window still receiving readings waits: below)
    assert asyncio.run(engine.cycle(ready)) == 12  # the final pass, and the last hour
    assert engine.unfinal == set() and engine.pending == set()


def test_a_window_whose_readings_are_still_arriving_is_not_final_until_they_stop() -> None:
    """A backlog replayed after the lateness: the windows are closed by the watermark, but their
    readings are still coming in. Computed meanwhile (never computed: at once), they are not final;
    once no reading has come for quiet_s they are computed again, final."""
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3 * 86400 * NS  # far past every end + lateness
    engine.before_ack()  # touched now
    assert asyncio.run(engine.cycle(ready)) == 12
    assert engine.arriving[0] == frozenset(engine.asked[0])  # all of them just touched
    assert len(engine.unfinal) == 12  # written with final=false
    assert asyncio.run(engine.cycle(ready)) == 0  # still within quiet_s of the last reading: not yet
    engine.quiet_s = 0.0  # ... and now the readings have stopped
    assert asyncio.run(engine.cycle(ready)) == 12
    assert engine.arriving[1] == frozenset() and engine.unfinal == set()


def test_pending_and_unfinal_windows_survive_a_restart_and_the_old_state_file_is_read(tmp_path: Path) -> None:
    engine = new_engine(tmp_path)
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3600 * NS
    engine.before_ack()  # written before the batch is acknowledged
    pending = set(engine.pending)
    assert new_engine(tmp_path).pending == pending
    asyncio.run(engine.cycle(ready))
    again = new_engine(tmp_path)
    assert (again.pending, again.unfinal) == (engine.pending, engine.unfinal)
    assert again.pending and again.unfinal

    (tmp_path / "kpi-state.json").write_text(json.dumps({"dirty_days": ["2100-06-15"]}))
    legacy = new_engine(tmp_path)
    assert grains(sorted(legacy.pending)) == {"5m": 288, "1h": 24, "day": 1}
    assert legacy.unfinal == set()


def test_a_closed_day_replayed_from_a_backlog_waits_until_its_readings_stop_or_day_every_s() -> None:
    engine = new_engine()
    day = day_window(local_date(T0))
    watermark = day.end_ns + 86400 * NS  # the day is closed: a backlog of it is being replayed
    engine.pending.add(day)
    engine._done_at[day] = 0.0  # computed at 0 s
    engine._touched_at[day] = 10.0  # ... and touched again at 10 s
    assert day not in engine.due(watermark, now_s=20.0)  # readings of it still coming: not yet
    assert day in engine.due(watermark, now_s=10.0 + engine.quiet_s)  # they stopped: at once
    engine._touched_at[day] = 899.0  # touched all along: every day_every_s
    assert day not in engine.due(watermark, now_s=899.5)
    assert day in engine.due(watermark, now_s=900.0)


def test_a_closed_window_that_late_readings_keep_touching_is_computed_at_most_every_late_every_s() -> None:
    engine = new_engine()
    five = window_of(T0, "5m")
    hour = window_of(T0, "1h")
    watermark = T0 + 3 * 3600 * NS  # both closed: readings of them arrive an hour or more late
    engine.pending |= {five, hour}
    # Never computed: at once, touched or not.
    engine._touched_at[five] = engine._touched_at[hour] = 100.0
    assert engine.due(watermark, now_s=100.0) == [five, hour]
    # Computed at 100 s and touched on every pass since (a stream of late readings): not again until
    # late_every_s (300 s) has passed ...
    engine._done_at[five] = engine._done_at[hour] = 100.0
    for now_s in (130.0, 250.0, 399.0):
        engine._touched_at[five] = engine._touched_at[hour] = now_s
        assert engine.due(watermark, now_s=now_s) == []
    assert engine.due(watermark, now_s=400.0) == [five, hour]
    # ... or until the readings have stopped for quiet_s: then at once, so the last of them count.
    engine._done_at[five] = engine._done_at[hour] = 400.0
    engine._touched_at[five] = 410.0
    engine._touched_at[hour] = 420.0
    assert engine.due(watermark, now_s=410.0 + engine.quiet_s) == [five]
    assert engine.due(watermark, now_s=420.0 + engine.quiet_s) == [five, hour]
    # A window not closed yet waits for the watermark, however long ago it was computed.
    assert engine.due(five.end_ns, now_s=10_000.0) == []


def test_a_single_late_reading_recomputes_a_window_computed_long_ago_at_the_next_pass() -> None:
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3 * 3600 * NS
    engine.before_ack()
    assert asyncio.run(engine.cycle(ready)) == 12
    computed = [w for w in engine._done_at if w.grain != "day"]
    for w in computed:  # computed more than late_every_s (300 s) ago
        engine._done_at[w] = time.monotonic() - engine.late_every_s - 1
    see(engine.stage, T0 + 1)  # one late reading of the same 5 minutes, just touched
    engine.before_ack()
    assert asyncio.run(engine.cycle(ready)) == 11  # all but the open day, at once
    assert engine.asked[-1] == sorted(computed)


def test_the_times_of_windows_no_longer_in_play_are_forgotten() -> None:
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3 * 86400 * NS  # everything closed and final at once
    engine.before_ack()
    asyncio.run(engine.cycle(ready))
    assert engine.pending == set() and len(engine._done_at) == 12 and len(engine._touched_at) == 12
    five = window_of(T0, "5m")
    engine._done_at = dict.fromkeys(engine._done_at, 0.0)
    engine._touched_at = dict.fromkeys(engine._touched_at, 0.0)
    engine.pending.add(five)  # pending: its times are kept, however old
    # Within the longest wait (day_every_s, 900 s) nothing is forgotten: a window computed 899 s ago
    # and touched again still waits for quiet, as if its times were kept for ever.
    engine._forget(899.0)
    assert len(engine._done_at) == 12 and len(engine._touched_at) == 12
    engine._forget(max(engine.day_every_s, engine.late_every_s) + 1.0)
    assert engine._done_at == {five: 0.0} and engine._touched_at == {five: 0.0}


def test_the_last_pass_before_a_stop_does_not_wait_for_late_readings_to_stop() -> None:
    engine = new_engine()
    see(engine.stage, T0)
    engine.kpi_stage.newest_ns = T0 + 3 * 3600 * NS  # every window around T0 is closed
    engine.before_ack()
    assert asyncio.run(engine.cycle(ready)) == 12
    see(engine.stage, T0 + 1)  # late readings of them still coming ...
    engine.before_ack()
    assert asyncio.run(engine.cycle(ready)) == 0  # ... so a running engine waits
    # Stopping, nothing more will come to this process: computed now, but for the open day (day_every_s).
    assert asyncio.run(engine.cycle(ready, stopping=True)) == 11
    assert engine.pending == {day_window(local_date(T0))}
    # ... and not final: the broker may hold more of their readings for the next process, which the
    # state file tells to compute them again, final, once they stop.
    assert engine.arriving[-1] == frozenset(engine.asked[-1])
    assert set(engine.asked[-1]) <= engine.unfinal


def test_a_billing_month_is_final_only_when_none_of_its_windows_still_receives_readings() -> None:
    day = local_date(T0)
    month, window, hour = month_window(day), day_window(day), window_of(T0, "1h")
    after = month.end_ns + int(LATENESS_S * NS)
    assert month_final(month, [window, hour], after, int(LATENESS_S * NS), frozenset())
    assert not month_final(month, [window, hour], after - 1, int(LATENESS_S * NS), frozenset())  # not closed
    assert not month_final(month, [window, hour], after, int(LATENESS_S * NS), frozenset({hour}))
    elsewhere = day_window(day + timedelta(days=40))  # another month's window still receiving readings
    assert month_final(month, [window, elsewhere], after, int(LATENESS_S * NS), frozenset({elsewhere}))


def test_a_closed_day_still_replayed_waits_even_at_a_stop() -> None:
    engine = new_engine()
    day = day_window(local_date(T0))
    watermark = day.end_ns + 86400 * NS  # closed, its backlog still arriving
    engine.pending.add(day)
    engine._done_at[day] = 0.0
    engine._touched_at[day] = 10.0
    # A day's read can take longer than a stop may wait: the state file keeps it for the next process.
    assert engine.due(watermark, now_s=20.0, stopping=True) == []
