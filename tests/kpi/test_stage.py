"""The KPI stage in the pipeline: client MACs become daily pseudonyms, touched days are noted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from time import time_ns

from collector.ingest.pipeline import DecodeOptions, Pipeline
from collector.ingest.topics import TopicPattern
from collector.kpi.pseudonym import Pseudonymiser
from collector.kpi.stage import KpiStage
from collector.kpi.windows import BUCKET_NS, NS, day_window, local_date, midnight_ns, touched_by_buckets
from tests import samples

SECRET = b"0123456789abcdef-test-secret"
PATTERN = "bxl/v1/{nis}/{site}/{kind}/{device}/{message}"
MACS = ("a4:83:e7:12:34:56", "da:a1:19:00:00:01")


def pipeline(stage: KpiStage) -> Pipeline:
    return Pipeline(TopicPattern(PATTERN), DecodeOptions(max_past_s=10 * 365 * 86400.0), stages=[stage])


def test_clients_become_pseudonyms_and_no_mac_is_encoded() -> None:
    stage = KpiStage(Pseudonymiser(SECRET))
    t = samples.recent()
    topic, payload, _ = samples.ap_clients(1, t)
    lines = pipeline(stage).process(topic, json.dumps(payload).encode(), False, samples.ns(t) + 10**9)
    assert isinstance(lines, list) and len(lines) == 2
    assert lines[0].startswith("ap_clients,")
    reference = Pseudonymiser(SECRET)  # another process with the same secret: the same pseudonyms
    pids = []
    for mac in MACS:
        pid = reference.pid(mac, local_date(samples.ns(t)))
        assert isinstance(pid, str), pid  # both are MACs
        pids.append(pid)
    pids.sort()
    assert lines[1] == (
        f'ap_client_presence,device=ap-0001,kind=ap,nis=21009,site=place-flagey pids="{",".join(pids)}",'
        f"clients=2i {samples.ns(t)}"
    )
    text = "\n".join(lines).lower()
    for mac in MACS:
        assert mac not in text and mac.replace(":", "") not in text


def test_touched_buckets_follow_event_time_not_arrival() -> None:
    stage = KpiStage(Pseudonymiser(SECRET))
    p = pipeline(stage)
    now = datetime.now(UTC)
    late = now - timedelta(days=3)  # a late reading of an earlier day
    for moment in (now, late):
        topic, payload, _ = samples.ap_metrics(1, moment)
        assert isinstance(p.process(topic, json.dumps(payload).encode(), False, samples.ns(now) + 10**9), list)
    assert stage.take_touched() == {samples.ns(now) // BUCKET_NS, samples.ns(late) // BUCKET_NS}
    assert stage.take_touched() == set()
    topic, payload, _ = samples.ap_metrics(1, now)
    p.process(topic, json.dumps(payload).encode(), False, samples.ns(now) + 10**9)
    assert stage.take_touched() == {samples.ns(now) // BUCKET_NS}  # the same bucket again, after a take


def test_a_reading_near_midnight_touches_the_neighbouring_day_too() -> None:
    stage = KpiStage(Pseudonymiser(SECRET))
    p = pipeline(stage)
    day = local_date(samples.ns(datetime.now(UTC))) - timedelta(days=2)
    just_after = datetime.fromtimestamp((midnight_ns(day) + 300 * 10**9) / 1e9, UTC)  # 00:05 local
    topic, payload, _ = samples.ap_metrics(1, just_after)
    assert isinstance(p.process(topic, json.dumps(payload).encode(), False, time_ns()), list)
    windows = touched_by_buckets(stage.take_touched(), 1200 * NS, ["day", "1h"])
    # its counter interval reaches back: the day before and its last hour too
    assert {w for w in windows if w.grain == "day"} == {day_window(day), day_window(day - timedelta(days=1))}
    assert min(w.start_ns for w in windows if w.grain == "1h") == midnight_ns(day) - 3600 * NS
    midday = datetime.fromtimestamp((midnight_ns(day) + 12 * 3600 * 10**9) / 1e9, UTC)
    topic, payload, _ = samples.ap_metrics(1, midday)
    p.process(topic, json.dumps(payload).encode(), False, time_ns())
    assert touched_by_buckets(stage.take_touched(), 1200 * NS, ["day"]) == {day_window(day)}


def test_every_spelling_of_one_mac_is_accepted_and_is_one_client() -> None:
    """The trial found the Cisco spelling (aabb.ccdd.eeff) refused by ap.clients/1, the whole report
    with it, though the pseudonyms read it: every spelling is taken, and is the same client."""
    t = samples.recent()
    spellings = ["a4:83:e7:12:34:56", "A4-83-E7-12-34-56", "a483e7123456", "a483.e712.3456"]
    presence = []
    for mac in spellings:
        topic, payload, _ = samples.ap_clients(1, t)
        payload["clients"] = [{"mac": mac, "band": "5", "rssi_dbm": -60.0}]
        payload["num_clients"] = 1
        lines = pipeline(KpiStage(Pseudonymiser(SECRET))).process(
            topic, json.dumps(payload).encode(), False, samples.ns(t) + 10**9
        )
        assert isinstance(lines, list), lines
        presence.append(lines[1])
    assert len(set(presence)) == 1 and "clients=1i" in presence[0]
    for bad in ["a4:83:e7:12:34:56\n", "a483.e712.345", "a4:83:e7:12:34", "a483.e712.3456.7890"]:
        topic, payload, _ = samples.ap_clients(1, t)
        payload["clients"] = [{"mac": bad, "band": "5", "rssi_dbm": -60.0}]
        refused = pipeline(KpiStage(Pseudonymiser(SECRET))).process(topic, json.dumps(payload).encode(), False, 1)
        assert not isinstance(refused, list) and refused.reason == "invalid", bad
