"""``netclock status``, ``netclock now`` and ``netclock config check|default``.

* ``status [--json] [--socket PATH]``: the daemon's snapshot from the status socket, as a
  table or as JSON.
* ``now [--domain N] [--shm PATH] [--json]``: network time read from shared memory (the
  :mod:`netclock.client` path every local process uses).
* ``config check FILE``: validate a configuration file; exits 1 with messages naming each bad
  key. ``config default`` prints every knob with its default.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

NS_PER_S = 1_000_000_000


def register(subparsers: Any) -> None:
    s = subparsers.add_parser("status", help="show the daemon's lock state, sources and time")
    s.add_argument("--json", action="store_true", help="print the snapshot as JSON")
    s.add_argument("--socket", metavar="PATH", default=None, help="status socket path")
    s.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for an answer")
    s.set_defaults(func=_status)

    n = subparsers.add_parser("now", help="print the network time from shared memory")
    n.add_argument("--domain", type=int, default=None, metavar="N", help="domain number")
    n.add_argument("--shm", metavar="PATH", default=None, help="shared-memory file")
    n.add_argument("--json", action="store_true", help="print one JSON object")
    n.set_defaults(func=_now)

    c = subparsers.add_parser("config", help="check a configuration file, print the defaults")
    csub = c.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    chk = csub.add_parser("check", help="validate FILE; errors name the key")
    chk.add_argument("file", metavar="FILE")
    chk.set_defaults(func=_config_check)
    d = csub.add_parser("default", help="print every knob, commented, with its default")
    d.set_defaults(func=_config_default)


# -- formatting helpers -------------------------------------------------------------------------


def _dur(ns: int | None, signed: bool = False) -> str:
    if ns is None:
        return "-"
    sign = ("-" if ns < 0 else "+") if signed else ("-" if ns < 0 else "")
    a = abs(ns)
    if a < 1_000:
        return f"{sign}{a} ns"
    if a < 1_000_000:
        return f"{sign}{a / 1e3:.3f} us"
    if a < NS_PER_S:
        return f"{sign}{a / 1e6:.3f} ms"
    return f"{sign}{a / 1e9:.3f} s"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _iso(ns: int) -> str:
    s, frac = divmod(ns, NS_PER_S)
    try:
        base = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "(out of range)"
    return f"{base}.{frac:09d}"


def render_status(snap: Any) -> str:
    """The human table for a :class:`netclock.observe.Snapshot`."""
    up = _dur(snap.taken_mono_ns - snap.started_mono_ns) if snap.started_mono_ns else "-"
    out = [f"{snap.program} {snap.version}  pid {snap.pid}  up {up}", ""]
    drows = []
    for d in snap.domains:
        drows.append(
            [
                str(d.domain),
                d.lock_state.name,
                d.quality.name.lower(),
                d.timescale.name,
                _dur(d.error_bound_ns),
                str(d.epoch),
                str(d.steps_total),
                "-" if d.rate_ppb is None else f"{d.rate_ppb:+.3f}",
                "-" if d.r_squared is None else f"{d.r_squared:.6f}",
                _dur(d.holdover_ns) if d.holdover_ns else "-",
                d.grandmaster or "-",
            ]
        )
    out.append(
        _table(
            [
                "DOMAIN",
                "STATE",
                "QUALITY",
                "SCALE",
                "ERROR BOUND",
                "EPOCH",
                "STEPS",
                "RATE ppb",
                "R2",
                "HOLDOVER",
                "GRANDMASTER",
            ],
            drows,
        )
        if drows
        else "no domain published yet"
    )
    out.append("")
    srows = []
    for s in snap.sources:
        rx = sum(p.received for p in s.packets)
        tx = sum(p.sent for p in s.packets)
        bad = sum(p.malformed for p in s.packets)
        srows.append(
            [
                ("*" if s.selected else " ") + s.name,
                s.kind,
                str(s.priority),
                s.state or "-",
                "yes" if s.reachable else "no",
                _dur(s.offset_ns, signed=True),
                _dur(s.path_delay_ns),
                s.stamp_source + (f"/{s.rx_poll_ms}ms" if s.rx_poll_ms else ""),
                str(rx),
                str(tx),
                str(bad),
            ]
        )
    out.append(
        _table(
            [
                "SOURCE",
                "KIND",
                "PRIO",
                "STATE",
                "REACH",
                "OFFSET",
                "DELAY",
                "STAMPS",
                "RX",
                "TX",
                "BAD",
            ],
            srows,
        )
        if srows
        else "no sources configured"
    )
    return "\n".join(out)


# -- commands -----------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from netclock.observe import SnapshotError
    from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot

    try:
        snap = fetch_snapshot(args.socket, timeout=args.timeout)
    except (StatusUnavailable, SnapshotError) as e:
        print(f"netclock status: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snap.to_dict(), indent=2, sort_keys=True))
    else:
        print(render_status(snap))
    return 0


def _now(args: argparse.Namespace) -> int:
    import time

    from netclock.client import ClockUnavailable, SharedClock
    from netclock.observe import Timescale

    try:
        with SharedClock(args.shm, domain=args.domain) as clock:
            mono = time.monotonic_ns()
            net = clock.to_network(mono)
            st = clock.status()
    except ClockUnavailable as e:
        print(f"netclock now: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "network_ns": net,
                    "mono_ns": mono,
                    "domain": st.domain,
                    "timescale": st.timescale.name.lower(),
                    "lock_state": st.lock_state.name.lower(),
                    "error_bound_ns": st.error_bound_ns,
                    "epoch": st.epoch,
                    "utc_offset_s": st.utc_offset_s if st.utc_offset_valid else None,
                },
                sort_keys=True,
            )
        )
        return 0
    s, frac = divmod(net, NS_PER_S)
    line = f"{s}.{frac:09d} {st.timescale.name}  {_iso(net)}"
    if st.timescale == Timescale.TAI and st.utc_offset_valid:
        line += f"  (UTC {_iso(net - st.utc_offset_s * NS_PER_S)})"
    print(line)
    print(
        f"domain {st.domain}  {st.lock_state.name}  error bound {_dur(st.error_bound_ns)}  "
        f"epoch {st.epoch}  source {st.identity or '-'}  updated {_dur(st.age_ns)} ago"
    )
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from netclock.config import ConfigError, load_file

    try:
        cfg = load_file(args.file)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK (ptp {'on' if cfg.ptp.enabled else 'off'}, "
        f"{len(cfg.ntp.servers)} NTP server(s))"
    )
    return 0


def _config_default(args: argparse.Namespace) -> int:
    from netclock.config import render_default_toml

    sys.stdout.write(render_default_toml())
    return 0
