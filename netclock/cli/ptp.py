"""``netclock ptp slave|master``: run one PTP ordinary-clock port on an interface.

Prints one summary line per second in the style of ptp4l's ``summary_interval`` output, or
with ``--json-log`` one JSON object per line: ``port_state``, ``offset_ns`` (latest offset of
master time from the published time), ``offset_rms_ns``, ``offset_max_ns``, ``path_delay_ns``,
``freq_ppb`` (published rate − 1), plus ``parent``, ``gm_identity``, ``samples`` and
``realtime_error_ns`` (published time, as UTC, minus this host's CLOCK_REALTIME: the true
error when master and host share a clock, as in the namespace tests).
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ptp", help="PTP (IEEE 1588) ordinary clock: slave or master")
    sub = p.add_subparsers(dest="ptp_role", metavar="ROLE")
    sub.required = True
    for role, helptext in (("slave", "follow the best master (slave-only)"),
                           ("master", "take part in BMCA and serve time when best")):
        r = sub.add_parser(role, help=helptext)
        r.add_argument("--interface", "-i", required=True, help="network interface")
        r.add_argument("--domain", type=int, default=0, help="domainNumber (default 0)")
        r.add_argument("--profile", default="default", choices=["default"],
                       help="PTP profile (default: the IEEE 1588 default profile)")
        r.add_argument("--json-log", action="store_true", help="one JSON object per line")
        r.add_argument("--priority1", type=int, default=128)
        r.add_argument("--priority2", type=int, default=128)
        r.add_argument("--clock-class", type=int, default=248)
        r.add_argument("--log-sync-interval", type=int, default=0)
        r.add_argument("--log-announce-interval", type=int, default=1)
        r.add_argument("--log-min-delay-req-interval", type=int, default=0)
        r.add_argument("--announce-receipt-timeout", type=int, default=3)
        r.add_argument("--event-port", type=int, default=319,
                       help="UDP event port (default 319; >1023 needs no privilege)")
        r.add_argument("--general-port", type=int, default=320)
        r.add_argument("--master-only", action="store_true",
                       help="(master) never become slave")
        r.add_argument("--arb-timescale", action="store_true",
                       help="(master) announce the ARB timescale (CLOCK_REALTIME as is)")
        r.add_argument("--duration", type=float, default=0.0,
                       help="stop after this many seconds (0 = run until interrupted)")
        r.set_defaults(func=_run, slave_only=(role == "slave"))


def _run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_main(args))


async def _main(args: argparse.Namespace) -> int:
    import asyncio
    import random
    import time

    from netclock.platform.ptp_transport import PtpRunner
    from netclock.ptp.datasets import TimePropertiesDS
    from netclock.ptp.port import PortConfig, PtpPort
    from netclock.ptp.wire import ClockIdentity, ClockQuality, PortIdentity
    from netclock.time import NS_PER_S

    mac = _mac(args.interface)
    identity = PortIdentity(ClockIdentity.from_mac(mac), 1)
    tp = TimePropertiesDS(current_utc_offset=37, current_utc_offset_valid=not args.arb_timescale,
                          ptp_timescale=not args.arb_timescale)
    cfg = PortConfig(
        domain_number=args.domain,
        priority1=args.priority1,
        priority2=args.priority2,
        clock_quality=ClockQuality(255 if args.slave_only else args.clock_class),
        slave_only=args.slave_only,
        master_only=args.master_only,
        log_announce_interval=args.log_announce_interval,
        log_sync_interval=args.log_sync_interval,
        log_min_delay_req_interval=args.log_min_delay_req_interval,
        announce_receipt_timeout=args.announce_receipt_timeout,
        time_properties=tp,
    )
    port = PtpPort(cfg, identity, random.Random())

    def on_state(sc: Any) -> None:
        if args.json_log:
            print(json.dumps({"event": "state", "old": sc.old.name, "new": sc.new.name,
                              "reason": sc.reason}), flush=True)
        else:
            print(f"netclock: port 1: {sc.old.name} to {sc.new.name} on {sc.reason}", flush=True)

    runner = PtpRunner(port, args.interface, event_port=args.event_port,
                       general_port=args.general_port, on_state=on_state)
    runner.start()
    start = time.monotonic()
    try:
        while not args.duration or time.monotonic() - start < args.duration:
            await asyncio.sleep(1.0)
            offsets, runner.stats.offsets = runner.stats.offsets, []
            rms = (sum(o * o for o in offsets) / len(offsets)) ** 0.5 if offsets else None
            mx = max((abs(o) for o in offsets), default=None)
            last = runner.stats.last
            cal = runner.servo.published
            rt_err = None
            if cal is not None:
                mono = time.monotonic_ns()
                rt = time.clock_gettime_ns(time.CLOCK_REALTIME)
                mono2 = time.monotonic_ns()
                ptp = cal.to_external((mono + mono2) // 2)
                tprops = port.time_properties
                utc = ptp - tprops.current_utc_offset * NS_PER_S if tprops.ptp_timescale else ptp
                rt_err = utc - rt
            snap = port.observe()
            rec = {
                "port_state": port.state.name,
                "offset_ns": last.offset_ns if last else None,
                "offset_rms_ns": round(rms, 1) if rms is not None else None,
                "offset_max_ns": mx,
                "path_delay_ns": last.path_delay_ns if last else None,
                "freq_ppb": round(last.freq_ppb, 3) if last else None,
                "samples": len(offsets),
                "clock_identity": str(identity.clock_identity),
                "parent": str(snap.parent_ds.parent_port_identity),
                "gm_identity": str(snap.parent_ds.grandmaster_identity),
                "realtime_error_ns": rt_err,
                "stamps": runner.transport.mode,
                "stamp_counters": runner.transport.event.counters.as_dict(),
            }
            if args.json_log:
                print(json.dumps(rec), flush=True)
            elif offsets:
                print(f"netclock: rms {rms:8.0f} max {mx:8d} freq {rec['freq_ppb']:+9.3f} "
                      f"delay {rec['path_delay_ns']:8d} state {rec['port_state']}", flush=True)
            else:
                print(f"netclock: state {rec['port_state']} gm {rec['gm_identity']}", flush=True)
    finally:
        runner.close()
    return 0


def _mac(interface: str) -> bytes:
    try:
        with open(f"/sys/class/net/{interface}/address") as f:
            mac = bytes.fromhex(f.read().strip().replace(":", ""))
        if len(mac) == 6 and any(mac):
            return mac
    except (OSError, ValueError):
        pass
    import random

    return bytes([0x02]) + random.randbytes(5)
