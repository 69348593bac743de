"""``netclock run --config FILE``: the per-machine daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the netclock daemon",
        description="Run the per-machine agent: follow PTP/NTP sources (or a local reference), "
        "publish the calibration in shared memory, serve status, metrics and NTP. "
        "Never adjusts a kernel clock.",
    )
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config (default: built-in)")
    p.add_argument("--record", metavar="RUN.jsonl", help="append a run record (docs/run-record.md)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from netclock.config import Config, ConfigError, load_file

    try:
        cfg = load_file(args.config) if args.config else Config()
    except ConfigError as e:
        print(f"netclock: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=(args.log_level or cfg.log.level).upper(),
        format="%(asctime)s netclock[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(_main(cfg, args.record))
    except PermissionError as e:
        print(f"netclock: {e}", file=sys.stderr)
        return 77
    except OSError as e:
        print(f"netclock: {e}", file=sys.stderr)
        return 1
    except ValueError as e:  # a configured feature the daemon cannot run (named in e)
        print(f"netclock: {e}", file=sys.stderr)
        return 2


async def _main(cfg: Any, record: str | None) -> int:
    from netclock.daemon.agent import Agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Agent(cfg, record_path=record).run(stop)
    return 0
