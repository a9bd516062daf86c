"""JSON Schema export of the canonical messages, for device makers to validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.canonical import SCHEMA_MODELS


def json_schemas() -> dict[str, dict[str, Any]]:
    """``{"ap.metrics/1": {...}, ...}``: one JSON Schema (draft 2020-12) per canonical schema."""
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:city-telemetry:schema:{name}"
        schema["description"] = (model.__doc__ or "").strip()
        out[name] = schema
    return out


def export(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / (name.replace("/", ".v") + ".schema.json")
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written
