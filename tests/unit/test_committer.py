"""The delivery policy in-process: an in-memory sink and acknowledger, a real spool and dead-letter file.

What must hold whatever the sink does: a message is acknowledged only after its lines are accepted,
refused and dead-lettered, or spooled; acknowledgements keep receive order; nothing overtakes spooled
lines; a full spool holds acknowledgements back until the drainer makes room; an abandoned batch is
never acknowledged. And when it writes: as soon as it is free (no timer), with what arrived during
the previous write forming the next batch, in requests of at most ``batch.max_lines``.
The real-process tests (tests/faults/) check the same with mosquitto and influxd.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import structlog
import structlog.testing

from collector.delivery.committer import Committer
from collector.delivery.config import BatchConfig, SpoolConfig
from collector.delivery.deadletter import DeadLetters, make_record
from collector.delivery.spool import Spool
from collector.delivery.stamps import StampLedger
from collector.sink.influxdb import WriteAborted, WriteReport, WriteStalled


class MemorySink:
    """Accepts lines, except while ``down`` (stalls) or for lines containing ``refuse``."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.down = False
        self.recovered_at = 0.0
        self.aborted = False
        self.calls = 0
        self.requests: list[int] = []  # lines per write request, in order
        self.up_again = asyncio.Event()
        self.gate: asyncio.Event | None = None  # when set to an Event, every write waits for it
        self.write_s = 0.0  # every write takes this long (a slow database)

    async def write(self, lines: list[str], give_up_after_s: float | None = None) -> WriteReport:
        self.calls += 1
        self.requests.append(len(lines))
        if self.gate is not None:
            await self.gate.wait()
        if self.write_s:
            await asyncio.sleep(self.write_s)
        while self.down:
            if self.aborted:
                raise WriteAborted()
            if give_up_after_s is not None:
                raise WriteStalled("down")
            self.up_again.clear()
            await self.up_again.wait()
        report = WriteReport()
        for line in lines:
            if "refuse" in line:
                report.refused.append((line, "HTTP 400: bad"))
            else:
                self.stored.append(line)
                report.accepted += 1
        return report

    def abort(self) -> None:
        self.aborted = True
        self.up_again.set()

    def recover(self) -> None:
        self.down = False
        self.up_again.set()


class Acks:
    def __init__(self) -> None:
        self.acked: list[tuple[int, int]] = []
        self.released = 0

    def ack(self, acks: list[tuple[int, int]]) -> int:
        self.acked.extend(acks)
        return len(acks)

    def release(self, count: int) -> None:
        self.released += count


def make(
    tmp_path: Path,
    *,
    spool_bytes: int | None = 1024**2,
    max_lines: int = 100,
    publish: Callable[[bytes], Awaitable[object]] | None = None,
    dead_file: bool = True,
    max_interval_s: float = 0.05,
    linger_s: float = 0.0,
) -> tuple[Committer, MemorySink, Acks, Spool | None, DeadLetters]:
    sink, acks = MemorySink(), Acks()
    spool = Spool(tmp_path / "spool", spool_bytes, 1024) if spool_bytes is not None else None
    dead = DeadLetters(tmp_path / "dead.jsonl" if dead_file else None, publish=publish)
    committer = Committer(
        BatchConfig(max_lines=max_lines, max_interval_s=max_interval_s, linger_s=linger_s),
        SpoolConfig(enabled=spool is not None, folder=tmp_path / "spool", after_s=0.01),
        sink=sink,
        spool=spool,
        dead_letters=dead,
        acknowledger=acks,
    )
    return committer, sink, acks, spool, dead


def add(committer: Committer, first: int, count: int, *, dead: bool = False) -> None:
    """Messages first..first+count-1, one line each (or one refusal each), packet id = number."""
    batch = committer.batch
    for number in range(first, first + count):
        if dead:
            batch.dead.append(make_record("invalid", "bad", f"t/{number}", b"x", 0))
        else:
            batch.lines.append(f"m v={number}i {number}")
        batch.acks.append((0, number))
    committer.batch_grew(count)


async def run(committer: Committer, body: Callable[[], Awaitable[None]]) -> None:
    tasks = [asyncio.create_task(committer.run_flusher()), asyncio.create_task(committer.run_drainer())]
    try:
        async with asyncio.timeout(10):
            await body()
    finally:
        committer.abandon()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_written_then_acknowledged_in_receive_order(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path)

    async def body() -> None:
        add(committer, 1, 250)  # over max_lines: flushed at once, in chunks of 100
        await committer.finish()

    await run(committer, body)
    assert sink.stored == [f"m v={n}i {n}" for n in range(1, 251)]
    assert acks.acked == [(0, n) for n in range(1, 251)]
    assert acks.released == 250


async def test_refusals_are_dead_lettered_before_the_acknowledgement(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path)

    async def body() -> None:
        add(committer, 1, 3, dead=True)
        committer.batch.lines.append("m refuse=1i 4")
        committer.batch.acks.append((0, 4))
        committer.batch_grew(1)
        await committer.finish()

    await run(committer, body)
    records = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in records] == ["invalid"] * 3 + ["influxdb_rejected"]
    assert records[-1]["line"] == "m refuse=1i 4"
    assert acks.acked == [(0, n) for n in range(1, 5)]
    assert sink.stored == []


async def test_a_stalled_sink_spools_then_drains_in_order(tmp_path: Path) -> None:
    committer, sink, acks, spool, _ = make(tmp_path)
    assert spool is not None
    sink.down = True

    async def body() -> None:
        add(committer, 1, 50)
        await committer.finish()
        assert acks.acked == [(0, n) for n in range(1, 51)]  # durable in the spool: acknowledged
        assert sink.stored == [] and spool.lines == 50
        add(committer, 51, 10)  # while lines are spooled, new ones queue behind them
        await committer.finish()
        assert spool.lines == 60
        sink.recover()
        while not spool.empty:
            await asyncio.sleep(0.01)

    await run(committer, body)
    assert sink.stored == [f"m v={n}i {n}" for n in range(1, 61)]
    assert committer.counters["lines_spooled"] == 60 and committer.counters["lines_drained"] == 60


async def test_a_full_spool_holds_acknowledgements_until_the_drainer_makes_room(tmp_path: Path) -> None:
    committer, sink, acks, spool, _ = make(tmp_path, spool_bytes=2048, max_lines=20)
    assert spool is not None
    sink.down = True

    async def body() -> None:
        add(committer, 1, 200)
        await asyncio.sleep(0.3)
        assert committer.backpressure
        held = len(acks.acked)
        assert held < 200  # not everything fits: the rest waits unacknowledged
        sink.recover()
        await committer.finish()
        assert not committer.backpressure

    with structlog.testing.capture_logs() as logs:
        await run(committer, body)
    # The spool is "full" for the next record, not to the byte: the log says what did not fit.
    (event,) = [e for e in logs if e["event"] == "backpressure_on"]
    assert event["reason"].startswith("spool full: 20 lines (about ") and "of 2048 bytes in use" in event["reason"]
    assert acks.acked == [(0, n) for n in range(1, 201)]
    assert sorted(sink.stored, key=lambda line: int(line.rsplit(" ", 1)[1])) == sink.stored
    assert len(sink.stored) == 200
    assert committer.counters["backpressure_episodes"] == 1


async def test_an_abandoned_batch_is_never_acknowledged(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path, spool_bytes=None)
    sink.down = True  # no spool: the write waits for InfluxDB for ever

    async def body() -> None:
        add(committer, 1, 5)
        await asyncio.sleep(0.2)
        committer.abandon()
        await asyncio.sleep(0.05)

    await run(committer, body)
    assert acks.acked == [] and acks.released == 5
    assert committer.counters["batches_abandoned"] == 1


async def test_without_a_file_dead_letters_wait_for_the_broker(tmp_path: Path) -> None:
    pending: list[asyncio.Future[None]] = []

    def publish(payload: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.append(future)
        return future

    committer, _, acks, _, _ = make(tmp_path, publish=publish, dead_file=False)

    async def body() -> None:
        add(committer, 1, 2, dead=True)
        await asyncio.sleep(0.2)
        assert len(pending) == 2 and acks.acked == []  # published, not yet acknowledged by the broker
        for future in pending:
            future.set_result(None)
        await committer.finish()

    await run(committer, body)
    assert acks.acked == [(0, 1), (0, 2)]


async def test_a_failing_dead_letter_file_is_retried_without_acknowledging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer, _, acks, _, dead = make(tmp_path)
    real_write = dead.write
    failures = [OSError(28, "No space left on device")]

    def flaky(records: list[dict[str, object]]) -> list[Awaitable[object]]:
        if failures:
            raise failures.pop()
        return real_write(records)

    monkeypatch.setattr(dead, "write", flaky)
    monkeypatch.setattr("collector.delivery.committer.DEAD_LETTER_RETRY_S", 0.05)

    async def body() -> None:
        add(committer, 1, 1, dead=True)
        await committer.finish()

    await run(committer, body)
    assert acks.acked == [(0, 1)]
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 1


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> float:
    """Seconds until ``condition`` holds (checked every millisecond, for at most ``timeout_s``)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.001)
    return time.monotonic() - started


async def test_a_lone_message_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path, max_interval_s=30.0)

    async def body() -> None:
        await asyncio.sleep(0.05)  # the flusher is up and idle
        add(committer, 1, 1)
        waited = await until(lambda: acks.acked == [(0, 1)])
        assert waited < 1.0  # not the 30 s interval: the writer was free
        assert sink.requests == [1]

    await run(committer, body)
    assert sink.stored == ["m v=1i 1"]


async def test_while_a_write_is_in_flight_arriving_messages_form_the_next_batch(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path, max_interval_s=30.0)
    gate = sink.gate = asyncio.Event()

    async def body() -> None:
        add(committer, 1, 1)
        await until(lambda: sink.calls == 1)  # the lone message is being written, and held there
        for first, count in ((2, 3), (5, 3), (8, 4)):  # three arrivals during the write
            add(committer, first, count)
            await asyncio.sleep(0.02)
        assert sink.calls == 1 and acks.acked == []  # one write at a time; nothing durable yet
        gate.set()
        await until(lambda: len(acks.acked) == 11)
        assert sink.requests == [1, 10]  # everything that arrived meanwhile, in one request

    await run(committer, body)
    assert sink.stored == [f"m v={n}i {n}" for n in range(1, 12)]
    assert acks.acked == [(0, n) for n in range(1, 12)]
    assert committer.counters["messages_committed"] == 11


async def test_a_slow_writer_lets_batches_grow_up_to_max_lines(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path, max_lines=10, max_interval_s=30.0)
    sink.write_s = 0.05  # each write takes 50 ms; a message arrives every millisecond or so
    total = 300

    async def body() -> None:
        for number in range(1, total + 1):
            add(committer, number, 1)
            await asyncio.sleep(0.001)
        await committer.finish()

    await run(committer, body)
    assert sink.requests[0] == 1  # the first message found the writer free
    assert max(sink.requests) == 10  # later ones waited for a write, and filled requests up to max_lines
    assert sink.requests.count(10) >= 5
    assert len(sink.requests) < total / 3  # batched, not one write per message
    assert sink.stored == [f"m v={n}i {n}" for n in range(1, total + 1)]
    assert acks.acked == [(0, n) for n in range(1, total + 1)]


async def test_linger_waits_for_more_lines_unless_the_batch_is_full(tmp_path: Path) -> None:
    committer, sink, acks, _, _ = make(tmp_path, max_lines=10, linger_s=0.3)

    async def body() -> None:
        await asyncio.sleep(0.05)
        add(committer, 1, 1)
        await asyncio.sleep(0.1)
        assert sink.calls == 0  # lingering
        add(committer, 2, 2)
        waited = await until(lambda: len(acks.acked) == 3)
        assert waited < 1.0
        assert sink.requests == [3]  # the lone message waited for the next ones
        add(committer, 4, 10)  # a full batch: no lingering
        waited = await until(lambda: len(acks.acked) == 13)
        assert waited < 0.2
        assert sink.requests == [3, 10]

    await run(committer, body)
    assert acks.acked == [(0, n) for n in range(1, 14)]


async def test_receipt_stamps_are_durable_before_the_write_and_a_failure_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    committer, sink, acks, _, _ = make(tmp_path)
    ledger = StampLedger(tmp_path / "spool" / "receipt-stamps")
    committer.stamps = ledger
    real_persist = ledger.persist
    failures = [OSError(28, "No space left on device")]
    seen_at_persist: list[int] = []

    def flaky() -> None:
        seen_at_persist.append(len(sink.stored))
        if failures:
            raise failures.pop()
        real_persist()

    monkeypatch.setattr(ledger, "persist", flaky)
    monkeypatch.setattr("collector.delivery.committer.DEAD_LETTER_RETRY_S", 0.05)

    async def body() -> None:
        ledger.remember("a" * 32, 17, 0)  # the consumer stamps message 1 on receipt
        add(committer, 1, 2)
        await committer.finish()
        ledger.remember("b" * 32, 18, 0)  # the next batch's
        add(committer, 3, 1)
        await committer.finish()

    await run(committer, body)
    assert seen_at_persist[:2] == [0, 0]  # failed, retried: nothing written before it succeeded
    assert acks.acked == [(0, 1), (0, 2), (0, 3)]
    text = (tmp_path / "spool" / "receipt-stamps").read_text().splitlines()
    assert [line.split()[:2] for line in text[1:]] == [["a" * 32, "17"], ["b" * 32, "18"]]
    assert all(entry.acked_at is not None for entry in ledger.entries.values())  # acknowledged: may expire
