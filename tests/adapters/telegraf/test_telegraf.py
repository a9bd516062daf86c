"""Telegraf over MQTT: line protocol (inputs.snmp IF-MIB, inputs.net) and the JSON serializer."""

from __future__ import annotations

import pytest

from collector.app.config import ConfigError, load_config
from collector.ingest.adapters.base import AdapterError
from collector.ingest.adapters.telegraf.adapter import DEFAULT_POLL_TOLERANCE_S, TelegrafAdapter
from collector.ingest.adapters.telegraf.lineprotocol import parse
from collector.ingest.routing import build_routes
from schemas.canonical import IfCounters, LinkProbe
from tests.adapters.helpers import fixture, ns, pipeline, points, source, utc

ADAPTER = TelegrafAdapter()


def counters(name: str, device: str = "sw-1", kind: str | None = None) -> tuple[str, IfCounters]:
    readings = ADAPTER.decode(fixture("telegraf", name), source(device, kind), ns("2025-11-28T14:00:00Z"))
    assert len(readings) == 1
    message = readings[0].message
    assert isinstance(message, IfCounters)
    return readings[0].kind, message


def test_snmp_readme_output_gives_32_bit_interface_counters() -> None:
    kind, poll = counters("snmp_interface.lp")
    assert kind == "switch"  # nothing says otherwise
    assert poll.ts == utc("2019-12-05T01:36:55Z")  # 1575509815000000000 ns
    assert poll.sys_uptime_s == 113_319  # the snmp row's uptime=113319.74 (seconds)
    ifs = {i.name: i for i in poll.interfaces}
    assert list(ifs) == ["wlan0", "eth0", "lo"]  # ifDescr
    eth0 = ifs["eth0"]
    assert (eth0.oper_status, eth0.counter_bits, eth0.speed_mbps) == ("up", 32, 1000)  # ifSpeed 10^9 bit/s
    assert (eth0.in_octets, eth0.out_octets) == (3_852_386_380, 434_865_441)
    assert (eth0.in_ucast_pkts, eth0.out_ucast_pkts) == (3_634_004, 2_110_394)
    assert (eth0.in_errors, eth0.out_errors, eth0.in_discards, eth0.out_discards) == (0, 0, 0, 0)
    assert ifs["lo"].speed_mbps == 10 and ifs["wlan0"].speed_mbps == 0
    assert ifs["wlan0"].in_octets == 3_436_617_431


def test_ifxtable_columns_and_a_kind_tag() -> None:
    kind, poll = counters("snmp_ifxtable_kind.lp", "cpe-21016-007")
    assert kind == "cpe"  # [inputs.snmp.tags] kind = "cpe"
    assert poll.ts == utc("2025-11-28T14:00:00.123456789Z")  # to the nanosecond Telegraf wrote
    assert poll.sys_uptime_s == 7_776_000
    wan, lan = poll.interfaces
    assert wan.name == "wan0" and lan.name == "lan0"  # ifName wins over ifDescr
    assert (wan.counter_bits, wan.speed_mbps) == (64, 100)  # ifHighSpeed
    assert (wan.in_octets, wan.out_octets) == (9_123_456_789_012, 1_234_567_890_123)  # ifHC*, not ifInOctets
    assert (wan.in_ucast_pkts, wan.out_ucast_pkts) == (8_000_000_000, 2_000_000_000)
    assert (wan.in_errors, wan.in_discards, wan.out_discards) == (5, 12, 1)
    assert lan.oper_status == "lowerLayerDown"  # ifOperStatus 7


def test_net_input_skips_the_protocol_row() -> None:
    _, poll = counters("net.lp", "edge-01")
    assert poll.ts == utc("2017-04-22T04:09:40Z")
    (eth0,) = poll.interfaces  # interface=all (protocol counters) is not an interface
    assert (eth0.name, eth0.oper_status, eth0.counter_bits) == ("eth0", "unknown", 64)
    assert (eth0.in_octets, eth0.out_octets) == (3_284_081_640, 451_838_509)
    assert (eth0.in_errors, eth0.out_errors, eth0.in_discards, eth0.out_discards) == (0, 0, 4, 0)
    assert eth0.in_ucast_pkts is None  # packets_recv counts multicast too: not unicast


def test_net_speed_field() -> None:
    _, poll = counters("net_speed.lp", "edge-01")
    ifs = {i.name: i for i in poll.interfaces}
    assert ifs["eth0"].speed_mbps == 1000 and ifs["eth1"].speed_mbps is None  # -1: unknown
    assert (ifs["eth0"].in_errors, ifs["eth0"].out_errors, ifs["eth0"].in_discards, ifs["eth0"].out_discards) == (
        1,
        2,
        3,
        4,
    )


def test_json_batch_poll() -> None:
    _, poll = counters("json_interface_batch.json")
    assert poll.ts == utc("2025-11-28T14:00:00Z")  # epoch seconds, told from the magnitude
    assert poll.sys_uptime_s == 86_400
    gi, second = poll.interfaces
    assert (gi.name, gi.counter_bits, gi.in_octets, gi.out_octets) == ("GigabitEthernet0/1", 32, 4_000_000_000, 123)
    assert gi.speed_mbps is None  # ifSpeed saturated at 2^32-1: see ifHighSpeed, which is absent
    assert (gi.in_errors, gi.out_errors, gi.in_discards, gi.out_discards) == (1, 2, 3, 4)
    assert (second.name, second.oper_status, second.speed_mbps) == ("if2", "down", 10)  # only ifIndex


@pytest.mark.parametrize(
    ("name", "measurement"),
    [("json_standard_form.json", "docker"), ("json_batch_form.json", "docker"), ("json_nested_fields_out.json", "in")],
)
def test_serializer_readme_metrics_are_refused_by_name(name: str, measurement: str) -> None:
    with pytest.raises(AdapterError) as refused:
        ADAPTER.decode(fixture("telegraf", name), source(), 0)
    assert refused.value.reason == "unsupported"
    assert f"'{measurement}'" in refused.value.detail


def test_stored_lines_through_the_pipeline() -> None:
    stored = points(
        pipeline().process(
            "telegraf/21016/school-21016-007/cpe-21016-007/snmp",
            fixture("telegraf", "snmp_ifxtable_kind.lp"),
            False,
            ns("2025-11-28T14:00:01Z"),
        )
    )
    tags = {"device": "cpe-21016-007", "kind": "cpe", "nis": "21016", "site": "school-21016-007"}
    assert stored[0] == {
        "measurement": "netdev",
        "tags": tags,
        "time": ns("2025-11-28T14:00:00.123456789Z"),
        "fields": {"sys_uptime_s": 7_776_000, "interfaces_up": 1, "interfaces_total": 2, "seq": 0},
    }
    assert stored[1]["tags"] == {**tags, "ifname": "wan0"}
    assert stored[1]["fields"]["in_octets"] == 9_123_456_789_012
    assert "02:00:5e" not in str(stored)  # ifPhysAddress is not copied


def test_line_protocol_reader_escapes_and_types() -> None:
    (point,) = parse('m\\,x,t\\ k=v\\,1\\=2 s="a \\"q\\" \\\\ b,c=d",i=-3i,u=4u,f=1.5e3,b=T,c=false 17\r\n# x\n')
    assert point.name == "m,x"
    assert point.tags == {"t k": "v,1=2"}
    assert point.fields == {"s": 'a "q" \\ b,c=d', "i": -3, "u": 4, "f": 1500.0, "b": True, "c": False}
    assert point.timestamp_ns == 17


# --- Telegraf as it really publishes: per-table timestamps, two IF-MIB tables, ping ------------------
T0 = "2025-11-28T14:00:00Z"


def decoded(name: str, adapter: TelegrafAdapter = ADAPTER) -> list[IfCounters | LinkProbe]:
    readings = adapter.decode(fixture("telegraf", name), source("dev-1"), ns(T0))
    return [r.message for r in readings]  # type: ignore[misc]


def refused(payload: bytes, adapter: TelegrafAdapter = ADAPTER) -> AdapterError:
    with pytest.raises(AdapterError) as error:
        adapter.decode(payload, source("dev-1"), ns(T0))
    return error.value


def test_iftable_and_ifxtable_walked_as_two_tables_seconds_apart_make_one_poll_each() -> None:
    first, second = decoded("snmp_two_tables.lp")  # 14 rows: two polls of uptime + 3 ifTable + 3 ifXTable rows
    assert isinstance(first, IfCounters) and isinstance(second, IfCounters)
    assert first.ts == utc("2025-11-28T14:00:00.312Z")  # the poll's first row (the scalars), not its tables'
    assert second.ts == utc("2025-11-28T14:01:00.298Z")
    assert (first.sys_uptime_s, second.sys_uptime_s) == (7_776_000, 7_776_060)  # sysUpTime TimeTicks / 100
    ifs = {i.name: i for i in first.interfaces}
    assert list(ifs) == ["Gi0/1", "Gi0/2", "Gi0/3"]  # ifName of the ifXTable row, joined on ifDescr
    gi1 = ifs["Gi0/1"]
    assert (gi1.counter_bits, gi1.speed_mbps, gi1.oper_status) == (64, 1000, "up")  # ifHighSpeed; ifTable status
    assert (gi1.in_octets, gi1.out_octets) == (9_123_456_789_012, 1_234_567_890_123)  # ifHC*, not the 32-bit ones
    assert (gi1.in_ucast_pkts, gi1.out_ucast_pkts) == (9_123_456_789_012 // 700, 1_234_567_890_123 // 900)
    assert (gi1.in_errors, gi1.in_discards, gi1.out_errors, gi1.out_discards) == (2, 1, 0, 0)  # from ifTable
    assert (ifs["Gi0/3"].oper_status, ifs["Gi0/3"].speed_mbps) == ("down", 100)
    assert {i.name: i.in_octets for i in second.interfaces} == {
        "Gi0/1": 9_123_456_789_012 + 60 * 1_000_003,
        "Gi0/2": 4_400_000_000 + 60 * 2 * 1_000_003,
        "Gi0/3": 0,
    }


def test_the_same_polls_through_the_json_serializer_stamped_in_whole_seconds() -> None:
    lp, js = decoded("snmp_two_tables.lp"), decoded("json_two_tables_batch.json")
    assert [m.ts for m in js] == [utc("2025-11-28T14:00:00Z"), utc("2025-11-28T14:01:00Z")]
    assert [m.model_dump(exclude={"ts"}) for m in js] == [m.model_dump(exclude={"ts"}) for m in lp]


def test_a_32_bit_iftable_poll_one_table() -> None:
    first, second = decoded("snmp_iftable_32bit.lp")
    assert isinstance(first, IfCounters) and isinstance(second, IfCounters)
    assert (first.ts, second.ts) == (utc("2025-11-28T14:00:00.104Z"), utc("2025-11-28T14:01:00.101Z"))
    wan = first.interfaces[0]
    assert (wan.name, wan.counter_bits, wan.speed_mbps, wan.in_octets, wan.out_octets) == (
        "wan",
        32,
        100,
        4_294_000_000,
        123_456_789,
    )
    assert second.interfaces[0].in_octets == (4_294_000_000 + 60 * 20_000) % 2**32  # wrapped, as a 32-bit counter


def test_a_tolerance_shorter_than_the_walk_leaves_ifxtable_rows_alone_and_refuses_them() -> None:
    error = refused(fixture("telegraf", "snmp_two_tables.lp"), TelegrafAdapter(poll_tolerance_s=3.0))
    assert error.reason == "unsupported"
    assert "'GigabitEthernet0/1' has no ifTable columns" in error.detail and "half poll" in error.detail


def test_a_poll_without_its_iftable_walk_is_refused_with_the_reason() -> None:
    lines = fixture("telegraf", "snmp_two_tables.lp").splitlines(keepends=True)
    cut = b"".join(line for line in lines if b"ifOperStatus" not in line)  # the ifTable walk failed
    error = refused(cut)
    assert error.reason == "unsupported"
    assert "no ifTable columns" in error.detail and "split over two messages" in error.detail


def test_a_poll_cut_by_a_flush_after_its_iftable_walk_stores_that_half_as_documented() -> None:
    """docs/adapters.md, "Not detectable": the first message of a split poll (uptime + ifTable rows)
    reads as an agent without ifXTable: stored, 32-bit, named by ifDescr; the second is refused."""
    lines = fixture("telegraf", "snmp_two_tables.lp").splitlines(keepends=True)[:7]  # the first poll
    first = b"".join(line for line in lines if b"ifHCInOctets" not in line)
    second = b"".join(line for line in lines if b"ifHCInOctets" in line)
    (reading,) = ADAPTER.decode(first, source("sw-1", None), ns("2025-11-28T14:00:00Z"))
    assert isinstance(reading.message, IfCounters)
    names = [(i.name, i.counter_bits) for i in reading.message.interfaces]
    assert names == [("GigabitEthernet0/1", 32), ("GigabitEthernet0/2", 32), ("GigabitEthernet0/3", 32)]
    assert refused(second).reason == "unsupported"


def test_two_polls_inside_the_tolerance_disagree_and_are_refused() -> None:
    error = refused(fixture("telegraf", "snmp_two_tables.lp"), TelegrafAdapter(poll_tolerance_s=120.0))
    assert error.reason == "invalid"
    assert "rows of one poll disagree" in error.detail and "poll_tolerance_s" in error.detail


def test_rows_of_two_agents_on_one_device_topic_are_refused() -> None:
    polls = fixture("telegraf", "snmp_two_tables.lp")
    error = refused(polls + polls.replace(b"agent_host=10.21.4.2", b"agent_host=10.21.4.3"))
    assert error.reason == "invalid"
    assert "rows of 2 SNMP agents ['10.21.4.2', '10.21.4.3'] in one message" in error.detail


def test_rows_joined_on_index_as_tag() -> None:
    payload = (
        b"snmp,agent_host=a sysUpTime=500i 1764338400000000000\n"
        b'interface,agent_host=a,index=7 ifDescr="port 7",ifOperStatus=1i,ifInOctets=5i 1764338401000000000\n'
        b'interface,agent_host=a,index=7 ifName="p7",ifHCInOctets=9000000000i 1764338402500000000\n'
    )
    (poll,) = ADAPTER.decode(payload, source(), 0)
    assert isinstance(poll.message, IfCounters)
    (port,) = poll.message.interfaces
    assert (port.name, port.counter_bits, port.in_octets, port.oper_status) == ("p7", 64, 9_000_000_000, "up")


def test_ping_is_a_link_probe() -> None:
    ok, lost = decoded("ping.lp")
    assert isinstance(ok, LinkProbe) and isinstance(lost, LinkProbe)
    assert ok.model_dump(by_alias=True) == {
        "schema": "link.probe/1",
        "device_id": "dev-1",
        "ts": utc("2025-11-28T14:00:02Z"),
        "seq": 0,
        "target": "10.21.16.1",
        "method": "icmp",
        "sent": 5,
        "received": 5,
        "rtt_min_ms": 11.305,
        "rtt_avg_ms": 12.0,  # written "12" by the serializer: a float all the same
        "rtt_max_ms": 14.872,
        "jitter_ms": None,  # standard_deviation_ms is not IPDV
    }
    # Linux ping exits 1 when nothing came back: Telegraf writes result_code 1 and the counts, no times
    assert (lost.target, lost.sent, lost.received, lost.rtt_avg_ms, lost.loss_pct) == (
        "core-gw.city.example",
        5,
        0,
        None,
        100.0,
    )


def test_a_ping_that_sent_nothing_is_refused() -> None:
    error = refused(fixture("telegraf", "ping_failed.lp"))
    assert error.reason == "unsupported"
    assert "'no-such-host.city.example' measured nothing (result_code 2" in error.detail


def test_poll_tolerance_is_a_route_setting() -> None:
    config = load_config(None, environ={"CITY_TELEMETRY__ROUTING__TELEGRAF__POLL_TOLERANCE_S": "3.0"})
    # The [routing.<adapter>] sections are built at run time from the registry: mypy sees no attribute.
    assert config.routing.model_dump()["telegraf"]["poll_tolerance_s"] == 3.0
    (route,) = [r for r in build_routes(config.routing) if r.name == "telegraf"]
    assert isinstance(route.adapter, TelegrafAdapter) and route.adapter.tolerance_ns == 3_000_000_000
    default = load_config(None, environ={}).routing.model_dump()["telegraf"]["poll_tolerance_s"]
    assert default == DEFAULT_POLL_TOLERANCE_S == 20.0
    with pytest.raises(ConfigError, match=r"routing\.telegraf\.poll_tolerance_s: Input should be greater"):
        load_config(None, environ={"CITY_TELEMETRY__ROUTING__TELEGRAF__POLL_TOLERANCE_S": "-1"})
