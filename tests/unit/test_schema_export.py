"""The exported JSON Schemas agree with the pydantic models on what is valid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from schemas.export import json_schemas
from tests import samples


@pytest.mark.parametrize("build", samples.BUILDERS, ids=lambda b: b.__name__)
def test_samples_validate_against_exported_schema(build: samples.Builder) -> None:
    _, payload, _ = build(3, samples.recent())
    schema = json_schemas()[payload["schema"]]
    jsonschema.Draft202012Validator(schema).validate(payload)
    broken = {**payload, "unexpected": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)


def test_export_command_writes_one_file_per_schema(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "collector.app.cli", "schemas", "export", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(
        [
            "ap.metrics.v1.schema.json",
            "ap.clients.v1.schema.json",
            "if.counters.v1.schema.json",
            "link.probe.v1.schema.json",
            "device.state.v1.schema.json",
            "device.event.v1.schema.json",
        ]
    )
    metrics = json.loads((tmp_path / "ap.metrics.v1.schema.json").read_text())
    assert metrics["properties"]["schema"]["const"] == "ap.metrics/1"
    assert metrics["properties"]["cpu_pct"]["anyOf"][0]["maximum"] == 100.0
    assert "device_id" in metrics["required"]
    assert result.stdout.count("\n") == 6
