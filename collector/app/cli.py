"""``city-telemetry``: the one command-line entry point."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import sys
from pathlib import Path

from collector.app.bridge_cli import add_bridge_parser
from collector.app.broker_cli import add_broker_parser
from collector.app.config import ConfigError, load_config
from collector.app.influx_cli import add_influxdb_parser
from collector.app.kpi_cli import add_kpi_parser
from collector.app.workers import add_worker_arguments
from simulators.cli import add_simulate_parser


def _cmd_run(args: argparse.Namespace) -> int:
    from collector.app.service import CannotStart, Collector
    from collector.app.workers import (
        check_workers,
        report_to_supervisor,
        run_supervisor,
        stop_when_drained,
        tag_worker_logs,
        worker_config,
    )
    from collector.ops.health import HealthPortUnavailable
    from collector.ops.logs import configure_logging
    from collector.ops.systemd import install_test_block_hook
    from collector.source.mqtt import MqttSource

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    if args.workers is not None and (args.worker is not None or args.drain or args.stats_fd is not None):
        print(
            "city-telemetry run: --workers runs the supervisor; --worker, --drain are for one process", file=sys.stderr
        )
        return 2
    if args.workers is not None:  # the supervisor (collector/app/workers.py)
        problems = check_workers(config, args.workers)
        if problems:
            print("city-telemetry run --workers: cannot start:\n" + "\n".join(problems), file=sys.stderr)
            return 2
        configure_logging(config.log.level, config.log.format)
        try:
            return run_supervisor(config, args)
        except HealthPortUnavailable as error:
            print(f"city-telemetry run: {error}", file=sys.stderr)
            return 2
    if args.worker is not None:
        config = worker_config(config, args.worker)
    configure_logging(config.log.level, config.log.format)
    if args.worker is not None:
        tag_worker_logs(args.worker)

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        source = MqttSource(config.mqtt, config.subscriptions, drain_only=True) if args.drain else None
        collector = Collector(config, source=source)
        helpers = []
        if args.stats_fd is not None:
            report = lambda: {"stats": collector.stats(), "health": collector.health(), "ready": collector.ready()}  # noqa: E731
            helpers.append(asyncio.create_task(report_to_supervisor(report, args.stats_fd, stop)))
        if args.drain:
            helpers.append(asyncio.create_task(stop_when_drained(collector, stop, args.idle)))
        # SIGUSR1: log the statistics and what every task is waiting for (for an operator's "why?").
        loop.add_signal_handler(signal.SIGUSR1, collector.log_diagnostics)
        # SIGHUP: reopen the dead-letter file (after an external logrotate moved it away).
        loop.add_signal_handler(signal.SIGHUP, collector.dead_letters.request_reopen)
        install_test_block_hook(loop)  # only with CITY_TELEMETRY_TEST_BLOCK_LOOP_S set (tests)
        try:
            return await collector.run(stop, grace_s=args.grace)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    from collector.source.paho_internals import UnsupportedPaho

    # Non-zero after an internal failure, so that systemd's Restart= starts a fresh process.
    try:
        return 0 if asyncio.run(main()) else 1
    except HealthPortUnavailable as error:  # checked before connecting to the broker
        print(f"city-telemetry run: {error}", file=sys.stderr)
        return 2
    except (UnsupportedPaho, CannotStart) as error:  # refused before connecting: say why in one line
        print(f"city-telemetry run: cannot start: {error}", file=sys.stderr)
        return 2


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    # With --show, standard output is the JSON alone (for jq and the like); the verdict goes to stderr.
    print(f"{args.config or '(defaults)'}: ok", file=sys.stderr if args.show else sys.stdout)
    if args.show:
        print(config.model_dump_json(indent=2))
    return 0


def _cmd_schemas_export(args: argparse.Namespace) -> int:
    from schemas.export import export, json_schemas

    if args.out is None:
        print(json.dumps(json_schemas(), indent=2))
        return 0
    for path in export(args.out):
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from collector.harness.demo import run_demo

    return run_demo(args)


def package_version() -> str:
    """The installed package's version (pyproject.toml), as ``--version`` prints it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("city-telemetry")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="city-telemetry",
        description="Collect a city network's MQTT telemetry into InfluxDB, without losing a reading.",
    )
    parser.add_argument(
        "--version", action="version", version=f"city-telemetry {package_version()}", help="print the version and exit"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the collector daemon until SIGTERM/SIGINT")
    run.add_argument("-c", "--config", type=Path, help="TOML config file (env CITY_TELEMETRY__* overrides it)")
    run.add_argument("--grace", type=float, default=10.0, help="seconds to flush on shutdown (default 10)")
    add_worker_arguments(run)
    run.set_defaults(func=_cmd_run)

    check = commands.add_parser("check-config", help="validate a config; exit 2 naming every bad key")
    check.add_argument(
        "-c",
        "--config",
        type=Path,
        help="the collector's TOML config (env CITY_TELEMETRY__* overrides it; none: the defaults)",
    )
    check.add_argument("--show", action="store_true", help="print the effective config (secrets hidden)")
    check.set_defaults(func=_cmd_check_config)

    schemas = commands.add_parser("schemas", help="the canonical message schemas")
    schemas_commands = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    export = schemas_commands.add_parser("export", help="write JSON Schema files (or print them)")
    export.add_argument("-o", "--out", type=Path, help="folder to write *.schema.json into")
    export.set_defaults(func=_cmd_schemas_export)

    demo = commands.add_parser("demo", help="start a local broker and database, publish, collect, show")
    demo.add_argument(
        "--state-dir", type=Path, default=Path(".demo"), help="where the demo's servers keep their data (default .demo)"
    )
    demo.add_argument("--seed", type=int, default=7, help="the simulated city's random seed (default 7)")
    demo.set_defaults(func=_cmd_demo)

    add_simulate_parser(commands)
    add_kpi_parser(commands)
    add_broker_parser(commands)
    add_influxdb_parser(commands)
    add_bridge_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, not at exit: a reader gone away is handled below, not printed as a traceback
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # a socket of the command's own (simulate, demo): its failure, not the reader's
        # The reader went away (``... | head``): what it did not read, it did not want.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 1


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader has closed it (poll says POLLERR)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
