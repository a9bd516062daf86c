"""Every decoder on generated payloads: the canonical path and each vendor route (UniFi, OpenWrt
NetJSON, Telegraf, Meraki, and the two declarative mappings of the adapter tests' config).

Property: ``Pipeline.process`` never raises; it returns a Rejection with a known reason code (never
``adapter_failed``, which means an adapter bug) and a short non-empty detail, or lines that a real
InfluxDB 1.x accepts (no 400) and stores exactly as written (read back and compared).

Payloads: arbitrary bytes, arbitrary JSON documents (NaN/Infinity tokens, huge integers, wrong
types, the keys the real formats use), and mutations of the valid samples and vendor fixtures.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from collector.ingest.decode import REASONS, Rejection
from tests.property.conftest import scaled
from tests.property.inputs import MAX_DETAIL, RECEIVED_NS, SEEDS, TOPICS, Seed, make_pipeline
from tests.property.store import Store, assert_stored_exactly

PIPELINE = make_pipeline()  # shared, like the service's: its caches fill as the examples run


def test_every_seed_is_stored_as_it_stands() -> None:
    """The mutations start from payloads the pipeline stores (so that they reach deep code)."""
    for seed in SEEDS.values():
        result = PIPELINE.process(seed.topic, seed.payload, False, RECEIVED_NS)
        assert isinstance(result, list) and result, (seed.name, result)


def _keys(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(key)
            _keys(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys(item, found)
    return found


KEYS = sorted(set().union(*(_keys(json.loads(s.payload), set()) for s in SEEDS.values() if s.is_json)))
HOSTILE_TEXT = [
    "",
    " ",
    ",",
    "=",
    '"',
    "\\",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "#",
    "a,kind=x b=1i",
    'x" y=1i',
    "time",
    "é",
    "😀",
    "\ufeff",
    "02:00:5e:10:00:01",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+00:00",
    "2026-05-31T23:59:00",
    "NaN",
    "1e400",
    "-1",
    "0x10",
    " 7 ",
    "a" * 3000,
]
HOSTILE_NUMBERS: list[int | float] = [
    0,
    -1,
    1,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**400),
    0.5,
    -0.0,
    1e308,
    1e-300,
    math.nan,
    math.inf,
    -math.inf,
    4_102_444_800,
    1.8e18,
    10**12,
]

texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.sampled_from(KEYS), st.text(max_size=20))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from(HOSTILE_NUMBERS), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.sampled_from(KEYS), texts), inner, max_size=6)
    ),
    max_leaves=25,
)


def dumps(value: Any) -> bytes:
    """JSON as a careless sender writes it: NaN and Infinity tokens, integers of any size."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode()


# --- mutations -------------------------------------------------------------------------------------
def _containers(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON document."""
    if isinstance(value, dict):
        for key in value:
            found.append((value, key))
            _containers(value[key], found)
    elif isinstance(value, list):
        for index in range(len(value)):
            found.append((value, index))
            _containers(value[index], found)
    return found


@st.composite
def mutated_json(draw: st.DrawFn, seed: Seed) -> bytes:
    document = json.loads(seed.payload)
    for _ in range(draw(st.integers(1, 3))):
        places = _containers(document, [])
        if not places:
            break
        container, key = draw(st.sampled_from(places))
        operation = draw(st.sampled_from(["replace", "hostile", "delete", "add", "rename", "double"]))
        if operation == "replace":
            container[key] = draw(json_values)
        elif operation == "hostile":
            old = container[key]
            if isinstance(old, str):
                container[key] = draw(st.sampled_from([old + h for h in HOSTILE_TEXT] + HOSTILE_TEXT))
            else:
                container[key] = draw(st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(HOSTILE_TEXT)))
        elif operation == "delete":
            del container[key]
        elif operation == "add" and isinstance(container, dict):
            container[draw(st.one_of(st.sampled_from(KEYS), texts))] = draw(json_values)
        elif operation == "rename" and isinstance(container, dict):
            container[draw(st.sampled_from(HOSTILE_TEXT))] = container.pop(key)
        elif isinstance(container, list):
            container.append(json.loads(json.dumps(container[key])))
    return dumps(document)


LP_PIECES = [
    *' ,="\\\n#=iutfTF-.eE+0123456789',
    "nan",
    "inf",
    "1e400",
    "99999999999999999999999",
    "9223372036854775808i",
    "18446744073709551616u",
    "\\ ",
    "a,kind=x",
    "ifName=",
    "interface,",
    "\n\n",
    "a" * 3000,
]


LP_TOKEN = re.compile(r'[^ ,=\n"]+')


@st.composite
def mutated_line_protocol(draw: st.DrawFn, seed: Seed) -> bytes:
    text = seed.payload.decode()
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):  # a whole token (a name, a value, a timestamp) becomes something else
            token = draw(st.sampled_from(list(LP_TOKEN.finditer(text))))
            start, end = token.span()
        else:
            start = draw(st.integers(0, len(text)))
            end = draw(st.integers(start, min(len(text), start + 12)))
        piece = "".join(draw(st.lists(st.sampled_from(LP_PIECES), max_size=3)))
        text = text[:start] + piece + text[end:]
        if not LP_TOKEN.search(text):
            break
    return text.encode()


@st.composite
def mutated_bytes(draw: st.DrawFn, payload: bytes) -> bytes:
    operation = draw(st.sampled_from(["none", "none", "truncate", "byte", "insert"]))
    if operation == "none" or not payload:
        return payload
    at = draw(st.integers(0, len(payload) - 1))
    if operation == "truncate":
        return payload[:at]
    byte = bytes([draw(st.integers(0, 255))])
    return payload[:at] + byte + payload[at + (operation == "byte") :]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    seed = draw(st.sampled_from(list(SEEDS.values())))
    payload = draw(mutated_json(seed) if seed.is_json else mutated_line_protocol(seed))
    return seed.topic, draw(mutated_bytes(payload))


# --- the property ----------------------------------------------------------------------------------
def check(store: Store, topic: str, payload: bytes, retained: bool) -> None:
    result = PIPELINE.process(topic, payload, retained, RECEIVED_NS)
    if isinstance(result, Rejection):
        event(f"rejected: {result.reason}")
        assert result.reason in REASONS, result
        assert result.reason not in ("adapter_failed", "influxdb_rejected"), result
        assert isinstance(result.detail, str) and result.detail.strip(), result
        assert len(result.detail) <= MAX_DETAIL, (result.reason, result.detail[:300], len(result.detail))
        return
    assert isinstance(result, list), result
    event("stored" if result else "nothing to store")
    for line in result:
        assert isinstance(line, str) and "\n" not in line and "\r" not in line, line
    if result:
        assert_stored_exactly(store, result)


@pytest.mark.servers
@settings(max_examples=scaled(400))
@given(topic_payload=mutations(), retained=st.booleans())
def test_mutated_samples_are_refused_with_a_reason_or_stored_exactly(
    store: Store, topic_payload: tuple[str, bytes], retained: bool
) -> None:
    check(store, *topic_payload, retained)


@pytest.mark.servers
@settings(max_examples=scaled(200))
@given(topic=st.sampled_from(TOPICS), document=json_values, retained=st.booleans())
def test_any_json_is_refused_with_a_reason_or_stored_exactly(
    store: Store, topic: str, document: Any, retained: bool
) -> None:
    check(store, topic, dumps(document), retained)


@pytest.mark.servers
@settings(max_examples=scaled(200))
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=600), retained=st.booleans())
def test_any_bytes_are_refused_with_a_reason_or_stored_exactly(
    store: Store, topic: str, payload: bytes, retained: bool
) -> None:
    check(store, topic, payload, retained)
