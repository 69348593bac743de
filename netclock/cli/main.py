"""``netclock`` entry point: one argparse tree; each command lives in its own module.

A command module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func(args) -> int`` as the parser default. Modules are imported when the CLI starts, so keep
their imports light (import heavy packages inside ``func``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from netclock import __version__

#: Command modules under netclock.cli, in the order ``netclock --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = ("run", "demo", "status", "ntp", "ptp", "sim", "capture", "plot")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netclock",
        description="Network clock synchronization into a shared time domain "
        "(PTP, NTP), without touching the system clock.",
    )
    parser.add_argument("--version", action="version", version=f"netclock {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"netclock.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
