"""``city-telemetry bridge unifi|meraki``: run one bridge (collector/bridges/, docs/bridges.md).

A bridge has its own TOML file, validated whole at start (``--check`` validates and exits): ``[mqtt]``
(the collector's settings: host, port, credentials, TLS; ``client_id`` defaults to
``city-telemetry-bridge-<vendor>`` so it never takes the collector's session), ``[inventory]``
``file``, ``[log]``, and the bridge's own section (``[unifi]`` or ``[meraki]``). ``--once`` does one
poll, publishes it, logs the counters and exits 0 if everything was fetched and acknowledged, 1 if
not. Without it the bridge runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from collector.app.config import format_validation_error
from collector.bridges.common import DeviceIndex, MqttPublisher, Stats
from collector.bridges.meraki.config import MerakiConfig
from collector.bridges.unifi.config import UnifiConfig
from collector.ingest.inventory import InventoryError
from collector.ops.config import LogConfig
from collector.settings import Section
from collector.source.config import MqttConfig

VENDORS = ("unifi", "meraki")


class BridgeInventory(Section):
    file: Path


class BridgeConfig(Section):
    mqtt: MqttConfig = MqttConfig()
    inventory: BridgeInventory
    log: LogConfig = LogConfig()
    unifi: UnifiConfig | None = None
    meraki: MerakiConfig | None = None


def load_bridge_config(path: Path, vendor: str) -> tuple[BridgeConfig, DeviceIndex]:
    """The file, validated (a ValueError naming every bad key), and the inventory it names."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    mqtt = data.setdefault("mqtt", {})
    if isinstance(mqtt, dict):
        mqtt.setdefault("client_id", f"city-telemetry-bridge-{vendor}")
    try:
        config = BridgeConfig.model_validate(data)
    except ValidationError as error:
        raise ValueError(format_validation_error(error)) from None
    if getattr(config, vendor) is None:
        raise ValueError(f"{vendor}: section [{vendor}] missing")
    try:
        index = DeviceIndex.load(config.inventory.file)
    except InventoryError as error:
        raise ValueError(f"inventory.file: {error}") from None
    return config, index


def _cmd_bridge(args: argparse.Namespace) -> int:
    from collector.ops.logs import configure_logging

    vendor: str = args.vendor
    try:
        config, index = load_bridge_config(args.config, vendor)
    except ValueError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.config}: ok ({vendor}, {len(index)} devices in the inventory)")
        return 0
    configure_logging(config.log.level, config.log.format)
    return 0 if asyncio.run(_run(config, index, vendor, args.once)) else 1


async def _run(config: BridgeConfig, index: DeviceIndex, vendor: str, once: bool) -> bool:
    import structlog

    log = structlog.get_logger("collector.bridges")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stats = Stats(vendor)
    publisher = MqttPublisher(config.mqtt, stats)
    publisher.start()
    log.info("bridge_starting", bridge=vendor, devices_in_inventory=len(index), once=once)
    try:
        if not await publisher.wait_connected(config.mqtt.keepalive_s):
            log.warning("mqtt_not_connected_yet", hint="publishing waits for the broker; is it up?")
        if vendor == "unifi":
            from collector.bridges.unifi.bridge import UnifiBridge

            assert config.unifi is not None
            return await UnifiBridge(config.unifi, index, publisher, stats).run(stop, once)
        from collector.bridges.meraki.bridge import MerakiBridge

        assert config.meraki is not None
        return await MerakiBridge(config.meraki, index, publisher, stats).run(stop, once)
    finally:
        stats.log()
        publisher.stop()


def add_bridge_parser(commands: Any) -> None:
    bridge = commands.add_parser(
        "bridge", help="fetch a vendor's data (UniFi controller, Meraki) and publish it on MQTT (docs/bridges.md)"
    )
    vendors = bridge.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    helps = {
        "unifi": "poll a UniFi Network controller (stat/device, stat/sta) at [unifi] period_s",
        "meraki": "receive Meraki webhooks and poll the Dashboard API (device statuses, channel utilisation)",
    }
    for vendor in VENDORS:
        sub = vendors.add_parser(vendor, help=helps[vendor], description=helps[vendor])
        sub.add_argument("-c", "--config", type=Path, required=True, help="the bridge's TOML file (sample.toml)")
        sub.add_argument("--once", action="store_true", help="one poll, publish it, exit 0 if all went through")
        sub.add_argument("--check", action="store_true", help="validate the config and the inventory, then exit")
        sub.set_defaults(func=_cmd_bridge)
