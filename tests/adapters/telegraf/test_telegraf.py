"""Telegraf over MQTT: line protocol (inputs.snmp IF-MIB, inputs.net) and the JSON serializer."""

from __future__ import annotations

import pytest

from collector.ingest.adapters.base import AdapterError
from collector.ingest.adapters.telegraf.adapter import TelegrafAdapter
from collector.ingest.adapters.telegraf.lineprotocol import parse
from schemas.canonical import IfCounters
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
