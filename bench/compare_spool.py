"""Why our own spool and not SQLite: the same durable append and ordered drain, timed in one run.

The spool (``collector/delivery/spool.py``) appends a batch as one record (length, CRC32, lines) to a
segment file and fsyncs it before the batch's messages are acknowledged; the drainer reads records in
order and deletes a segment once all of it is written. The alternative measured is the standard
library's sqlite3 with the same guarantee: WAL journal, ``synchronous=FULL`` (every commit fsynced),
one row per batch, drained in id order and deleted row by row.

For each: milliseconds per durable append of a 5,000-line batch, per drained batch, and the disk
space still used once everything is drained (a drained spool gives its space back at once; SQLite
keeps its pages until VACUUM). Same folder (under the working directory), same batches; bounded by --batches.
Run: .venv/bin/python -m bench.compare_spool [--batches 20]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.ingest import make_messages, new_pipeline
from collector.delivery.spool import Spool

BATCH_LINES = 5000  # batch.max_lines' default


def make_batches(count: int) -> list[list[str]]:
    """``count`` batches of the pipeline's own lines for the ingest benchmark's message mix."""
    pipeline = new_pipeline(kpi=False)
    now = time.time_ns()
    lines: list[str] = []
    for topic, payload in make_messages(count * BATCH_LINES // 2):  # about 2.4 lines per message
        result = pipeline.process(topic, payload, False, now)
        assert isinstance(result, list), result
        lines += result
    return [lines[i : i + BATCH_LINES] for i in range(0, count * BATCH_LINES, BATCH_LINES)]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def ours(folder: Path, batches: list[list[str]]) -> tuple[float, float, int]:
    spool = Spool(folder, max_bytes=2 * 1024**3)
    started = time.perf_counter()
    for batch in batches:
        assert spool.append(batch)
    appended = time.perf_counter() - started
    started = time.perf_counter()
    drained = 0
    while (chunk := spool.peek(len(batches[0]))) is not None:
        drained += len(chunk.lines)
        spool.consume(chunk)
    drain = time.perf_counter() - started
    spool.close()
    assert drained == sum(len(b) for b in batches)
    return appended / len(batches), drain / len(batches), folder_bytes(folder)


def sqlite(folder: Path, batches: list[list[str]]) -> tuple[float, float, int]:
    db = sqlite3.connect(folder / "spool.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE spool (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    started = time.perf_counter()
    for batch in batches:
        db.execute("BEGIN")
        db.execute("INSERT INTO spool (body) VALUES (?)", ("\n".join(batch).encode(),))
        db.execute("COMMIT")
    appended = time.perf_counter() - started
    started = time.perf_counter()
    drained = 0
    while (row := db.execute("SELECT id, body FROM spool ORDER BY id LIMIT 1").fetchone()) is not None:
        drained += len(row[1].decode().split("\n"))
        db.execute("BEGIN")
        db.execute("DELETE FROM spool WHERE id = ?", (row[0],))
        db.execute("COMMIT")
    drain = time.perf_counter() - started
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert drained == sum(len(b) for b in batches)
    return appended / len(batches), drain / len(batches), folder_bytes(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    batches = make_batches(args.batches)
    size = sum(len("\n".join(b)) for b in batches)
    print(f"{len(batches)} batches of {len(batches[0]):,} lines, {size / len(batches) / 1024**2:.2f} MiB each")
    print(f"{'spool':<34} {'ms per append':>14} {'ms per drain':>13} {'bytes left':>11}")
    for round_ in range(2):
        for name, run in (("ours (segments, CRC, fsync)", ours), ("sqlite3 (WAL, synchronous=FULL)", sqlite)):
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
                append_s, drain_s, left = run(Path(tmp), batches)
            print(f"{name:<34} {append_s * 1000:>14.1f} {drain_s * 1000:>13.1f} {left:>11,}  (round {round_ + 1})")


if __name__ == "__main__":
    main()
