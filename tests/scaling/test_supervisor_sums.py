"""The supervisor's view of the whole (collector/app/workers.py), from reports as the workers send them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from collector.app.config import load_config
from collector.app.workers import Supervisor, check_workers, worker_config


class _Running:
    """Stands for a running worker process in the supervisor's table (only returncode and pid are read)."""

    returncode = None
    pid = 4242


def report(received: int, status: str = "healthy", ready: bool = True, **more: Any) -> dict[str, Any]:
    stats = {"received": received, "pending_lines": 5, "backpressure": False, "broker_dropped": 7, **more}
    stats["rejected_by_reason"] = {"bad_json": 1}
    return {"stats": stats, "health": [status, {"mqtt_connected": True}], "ready": [ready, {}]}


def supervisor(tmp_path: Path, workers: int = 2) -> Supervisor:
    config = load_config(None, {"CITY_TELEMETRY__MQTT__SHARED_GROUP": "g", "CITY_TELEMETRY__KPI__ENABLED": "false"})
    return Supervisor(config, None, workers, grace_s=1.0)


def test_counters_are_summed_and_never_go_back_when_a_worker_restarts(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    one, two = sup.workers
    for worker, received in ((one, 100), (two, 50)):
        worker.process = _Running()  # type: ignore[assignment]
        worker.report, worker.reported_at = report(received), time.monotonic()
    stats = sup.stats()
    assert stats["received"] == 150 and stats["pending_lines"] == 10
    assert stats["broker_dropped"] == 7  # the broker's count, not a sum
    assert stats["rejected_by_reason"] == {"bad_json": 2}
    assert sup.health()[0] == "healthy" and sup.ready()[0]
    two.retire()  # it died: its counters are kept, its gauges are not
    two.report, two.reported_at = report(3), time.monotonic()  # the new run's first report
    stats = sup.stats()
    assert stats["received"] == 153 and stats["pending_lines"] == 10
    assert stats["rejected_by_reason"] == {"bad_json": 3}


def test_a_silent_or_stopped_worker_makes_the_whole_unhealthy_and_unready(tmp_path: Path) -> None:
    sup = supervisor(tmp_path)
    one, two = sup.workers
    one.process = _Running()  # type: ignore[assignment]
    one.report, one.reported_at = report(1, "degraded"), time.monotonic()
    two.process = None
    assert sup.health()[0] == "unhealthy"
    assert sup.health()[1]["workers"]["2"]["running"] is False
    assert not sup.ready()[0]
    two.process = _Running()  # type: ignore[assignment]
    two.report, two.reported_at = report(1), time.monotonic() - 60  # not heard from for a minute
    assert sup.health()[0] == "unhealthy"
    two.reported_at = time.monotonic()
    assert sup.health()[0] == "degraded" and sup.ready()[0]


def test_worker_k_always_gets_the_same_names(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "CITY_TELEMETRY__MQTT__CLIENT_ID": "c",
            "CITY_TELEMETRY__SPOOL__FOLDER": f"{tmp_path}/spool",
            "CITY_TELEMETRY__DEAD_LETTER__FILE": f"{tmp_path}/dl/dead.jsonl",
            "CITY_TELEMETRY__HEALTH__LISTEN": "127.0.0.1:9108",
        },
    )
    two = worker_config(config, 2)
    assert two.mqtt.client_id == "c-2"
    assert two.spool.folder == tmp_path / "spool" / "worker-2"
    assert two.dead_letter.file == tmp_path / "dl" / "worker-2" / "dead.jsonl"
    assert two.health.listen is None
    assert worker_config(config, 2) == two


@pytest.mark.parametrize(
    ("env", "workers", "problem"),
    [
        ({}, 2, "mqtt.shared_group is not set"),
        ({"CITY_TELEMETRY__MQTT__SHARED_GROUP": "g"}, 2, "kpi.pseudonym_key_file is not set"),
        ({"CITY_TELEMETRY__MQTT__SHARED_GROUP": "g", "CITY_TELEMETRY__KPI__ENABLED": "false"}, 0, "between 1"),
    ],
)
def test_a_config_that_cannot_share_is_refused_naming_why(env: dict[str, str], workers: int, problem: str) -> None:
    problems = check_workers(load_config(None, env), workers)
    assert any(problem in line for line in problems), problems


def test_a_spool_folder_that_cannot_be_made_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    env = {
        "CITY_TELEMETRY__MQTT__SHARED_GROUP": "g",
        "CITY_TELEMETRY__KPI__ENABLED": "false",
        "CITY_TELEMETRY__SPOOL__FOLDER": f"{in_the_way}/spool",
        "CITY_TELEMETRY__DEAD_LETTER__FILE": f"{tmp_path}/dl/dead.jsonl",  # missing but can be made: fine
    }
    problems = check_workers(load_config(None, env), 2)
    assert problems == [
        f"spool.folder: '{in_the_way}' is in the way of '{in_the_way}/spool': not a folder"
        " (check the path and that the collector's user may write there)"
    ]
    assert not (tmp_path / "dl").exists()  # nothing made by the check


def test_a_shared_group_name_with_a_slash_is_refused() -> None:
    from collector.app.config import ConfigError

    with pytest.raises(ConfigError, match=r"mqtt\.shared_group"):
        load_config(None, {"CITY_TELEMETRY__MQTT__SHARED_GROUP": "a/b"})


def test_run_workers_refuses_a_config_that_cannot_share_with_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "collector.app.cli", "run", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "mqtt.shared_group is not set" in result.stderr
    result = subprocess.run([*command, "--drain"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "--worker, --drain are for one process" in result.stderr
