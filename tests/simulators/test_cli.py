"""``city-telemetry simulate``: help, inventory file, dry runs to a file with the truth, refusals."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from collector.app.cli import main
from simulators.inventory import load_inventory


def test_help_names_every_option_and_fault(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--seed",
        "--scale",
        "--accelerated",
        "--rate",
        "--vendor-share",
        "--faults",
        "--truth",
        "--write-inventory",
        "--max-messages",
        "--max-seconds",
    ):
        assert option in text
    for fault in (
        "outage",
        "reboot",
        "counter32",
        "duplicate",
        "out_of_order",
        "late",
        "clock_skew",
        "malformed",
        "oversized",
        "burst",
    ):
        assert fault in text


def test_write_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "city.json"
    assert main(["simulate", "--write-inventory", str(path), "--scale", "0.1", "--seed", "3"]) == 0
    assert "90 APs" in capsys.readouterr().out
    inventory = load_inventory(path)
    assert sum(1 for d in inventory["devices"].values() if d["kind"] == "ap") == 90


def test_dry_run_writes_items_and_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "items.jsonl", tmp_path / "truth.json"
    code = main(
        [
            "simulate",
            "--accelerated",
            "--scale",
            "0.02",
            "--duration",
            "3h",
            "--start",
            "2026-11-23T09:00",
            "--faults",
            "none,malformed=0.05",
            "--out",
            str(out),
            "--truth",
            str(truth),
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) > 200
    assert any("payload_base64" in r or any(lb.startswith("malformed") for lb in r["labels"]) for r in records)
    assert all(r["qos"] == 1 and r["topic"].startswith("bxl/v1/210") for r in records)
    result = json.loads(truth.read_text())
    assert result["simulation"]["start"] == "2026-11-23T08:00:00.000Z"  # 09:00 Brussels time
    assert result["days"][0]["date"] == "2026-11-23" and result["days"][0]["period_s"] == 3 * 3600
    assert "messages:" in capsys.readouterr().err


def test_refuses_what_the_collector_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--accelerated", "--start", "now", "--port", "1"]) == 2
    assert "ahead of the clock" in capsys.readouterr().err
    assert main(["simulate", "--faults", "reboot=7", "--dry-run"]) == 2
    assert main(["simulate", "--duration", "soon", "--dry-run"]) == 2
    assert main(["simulate", "--duration", "1m", "--port", "1", "--quiet"]) == 1  # nobody listens on port 1


@pytest.mark.parametrize(
    ("now", "options", "start_utc", "hours"),
    [
        ("2026-10-26T10:00:00+00:00", ["--duration", "1d"], "2026-10-24T22:00:00+00:00", 25),  # yesterday: 25 h
        ("2026-03-30T10:00:00+00:00", ["--duration", "1d"], "2026-03-28T23:00:00+00:00", 23),  # and 23 here
        ("2026-11-24T10:00:00+00:00", ["--duration", "1d"], "2026-11-22T23:00:00+00:00", 24),
        (
            "2026-10-26T10:00:00+00:00",
            ["--start", "2026-10-24T00:00", "--duration", "2d"],
            "2026-10-23T22:00:00+00:00",
            49,
        ),
        ("2026-10-26T10:00:00+00:00", ["--duration", "24h"], "2026-10-24T22:00:00+00:00", 24),  # hours are hours
    ],
)
def test_a_simulated_day_is_a_local_day_on_clock_changes(
    now: str, options: list[str], start_utc: str, hours: int
) -> None:
    from datetime import datetime

    from simulators.cli import add_simulate_parser, build_config

    parser = argparse.ArgumentParser()
    add_simulate_parser(parser.add_subparsers())
    config, _ = build_config(parser.parse_args(["simulate", "--accelerated", *options]), datetime.fromisoformat(now))
    assert config.start_ms == datetime.fromisoformat(start_utc).timestamp() * 1000
    assert config.duration_s == hours * 3600
