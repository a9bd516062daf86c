"""docs/adapters.md ("Connect your equipment") shows configuration a city copies as is: every block
marked ``# collector.toml`` must load, and the mapping example must store exactly the line the page
says it stores, from the payload the page shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from collector.app.config import load_config
from collector.ingest.adapters.telegraf.lineprotocol import parse
from tests.adapters.helpers import pipeline, points

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = [b for b in re.findall(r"```toml\n(.*?)```", TEXT, re.DOTALL) if b.lstrip().startswith("# collector.toml")]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_collector_config_blocks_load(block: str, tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(block, encoding="utf-8")
    load_config(path, environ={})


def test_there_are_blocks_to_check() -> None:
    assert len(BLOCKS) >= 2


def test_the_mapping_example_stores_the_line_the_page_shows(tmp_path: Path) -> None:
    (mapping,) = [b for b in BLOCKS if "[[routing.mappings]]" in b]
    path = tmp_path / "collector.toml"
    path.write_text(mapping, encoding="utf-8")
    routing = load_config(path, environ={}).routing
    payload = re.search(r"probe box publishing\n`(\{.*?\})`", TEXT, re.DOTALL)
    topic = re.search(r"on `(probes/[^`]+)`:", TEXT)
    shown = re.search(r"stores `(link_probe,[^`]+)`", TEXT)
    assert payload and topic and shown
    document = json.loads(payload.group(1))
    stored = points(
        pipeline(routing).process(topic.group(1), payload.group(1).encode(), False, (document["ts"] + 1) * 10**9)
    )
    (expected,) = [{"measurement": p.name, "tags": p.tags, "fields": p.fields} for p in parse(shown.group(1))]
    assert stored == [{**expected, "time": document["ts"] * 10**9}]
