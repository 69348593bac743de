"""``netclock ptp slave|master``: run one PTP ordinary-clock port on an interface.

Prints one summary line per second in the style of ptp4l's ``summary_interval`` output, or
with ``--json-log`` one JSON object per line: ``port_state``, ``offset_ns`` (latest offset of
master time from the published time), ``offset_rms_ns``, ``offset_max_ns``, ``path_delay_ns``,
``freq_ppb`` (published rate − 1), plus ``parent``, ``gm_identity``, ``samples`` and
``realtime_error_ns`` (published time, as UTC, minus this host's CLOCK_REALTIME: the true
error when master and host share a clock, as in the namespace tests).

``--profile NAME|FILE`` loads a profile (a built-in one, documented in deploy/profiles/NAME.toml,
or a TOML file); explicit
options override its values. ``--uds PATH`` answers ``pmc -u -s PATH`` on a Unix socket.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any


def resolve_profile(spec: str) -> Any:
    """``--profile`` argument → Profile (a file, or a name: /etc/netclock/profiles, then the
    built-in ones); see :func:`netclock.platform.ptp_transport.find_profile`."""
    from netclock.platform.ptp_transport import find_profile

    return find_profile(spec)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ptp", help="PTP (IEEE 1588) ordinary clock: slave or master")
    sub = p.add_subparsers(dest="ptp_role", metavar="ROLE")
    sub.required = True
    for role, helptext in (("slave", "follow the best master (slave-only)"),
                           ("master", "take part in BMCA and serve time when best")):
        r = sub.add_parser(role, help=helptext)
        r.add_argument("--interface", "-i", required=True, help="network interface")
        r.add_argument("--profile", default="default",
                       help="PTP profile: a name (default-e2e, default-p2p, smpte-2059-2, "
                            "aes67-media, gptp) or a TOML file; options below override it")
        r.add_argument("--domain", type=int, default=None, help="domainNumber")
        r.add_argument("--json-log", action="store_true", help="one JSON object per line")
        r.add_argument("--priority1", type=int, default=None)
        r.add_argument("--priority2", type=int, default=None)
        r.add_argument("--clock-class", type=int, default=None)
        r.add_argument("--log-sync-interval", type=int, default=None)
        r.add_argument("--log-announce-interval", type=int, default=None)
        r.add_argument("--log-min-delay-req-interval", type=int, default=None)
        r.add_argument("--log-min-pdelay-req-interval", type=int, default=None)
        r.add_argument("--announce-receipt-timeout", type=int, default=None)
        r.add_argument("--delay-mechanism", choices=["E2E", "P2P", "NONE"], default=None,
                       type=str.upper, help="delay mechanism of the port")
        r.add_argument("--transport", choices=["udpv4", "udpv6", "l2"], default=None,
                       type=str.lower,
                       help="network transport (l2 = Ethernet 0x88F7, needs CAP_NET_RAW)")
        r.add_argument("--udp6-scope", type=lambda v: int(v, 0), default=None,
                       help="IPv6 multicast scope nibble (default 0xE: FF0E::181)")
        r.add_argument("--transport-specific", type=int, default=None,
                       help="majorSdoId / transportSpecific")
        r.add_argument("--unicast-master", action="append", default=[], metavar="ADDR",
                       help="(slave) unicast master table entry (repeatable): request unicast "
                            "Announce/Sync/Delay_Resp from ADDR by negotiation (§16.1)")
        r.add_argument("--hybrid-e2e", action="store_true",
                       help="(slave) hybrid E2E: Delay_Req unicast to the master's address, "
                            "Announce and Sync multicast (ptp4l's hybrid_e2e)")
        r.add_argument("--also-domain", type=int, action="append", default=[], metavar="N",
                       help="also follow domain N (repeatable): one port per domain, one "
                            "calibration each; --domain (or the profile's) is the primary")
        r.add_argument("--uds", default=None, metavar="PATH",
                       help="answer management (pmc -u -s PATH) on a Unix socket at PATH")
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
    import sys
    import time
    from dataclasses import replace

    from netclock.platform.ptp_transport import PtpRunner
    from netclock.ptp.datasets import TimePropertiesDS
    from netclock.ptp.port import PtpPort
    from netclock.ptp.profiles import DELAY_MECHANISMS
    from netclock.ptp.wire import ClockIdentity, ClockQuality, PortIdentity

    try:
        profile = resolve_profile(args.profile)
    except ValueError as exc:
        print(f"netclock ptp: {exc}", file=sys.stderr)
        return 2
    overrides = {
        "domain_number": args.domain,
        "priority1": args.priority1,
        "priority2": args.priority2,
        "clock_class": args.clock_class,
        "log_sync_interval": args.log_sync_interval,
        "log_announce_interval": args.log_announce_interval,
        "log_min_delay_req_interval": args.log_min_delay_req_interval,
        "log_min_pdelay_req_interval": args.log_min_pdelay_req_interval,
        "announce_receipt_timeout": args.announce_receipt_timeout,
        "delay_mechanism": args.delay_mechanism,
        "transport": args.transport,
        "udp6_scope": args.udp6_scope,
        "transport_specific": args.transport_specific,
    }
    profile = replace(profile, **{k: v for k, v in overrides.items() if v is not None})
    assert profile.delay_mechanism in DELAY_MECHANISMS
    mac = _mac(args.interface)
    identity = PortIdentity(ClockIdentity.from_mac(mac), 1)
    tp = TimePropertiesDS(current_utc_offset=37, current_utc_offset_valid=not args.arb_timescale,
                          ptp_timescale=not args.arb_timescale)
    cfg = profile.port_config(
        clock_quality=ClockQuality(255 if args.slave_only else profile.clock_class),
        slave_only=args.slave_only,
        master_only=args.master_only,
        time_properties=tp,
        unicast_masters=tuple(args.unicast_master),
        hybrid_e2e=args.hybrid_e2e,
    )
    port = PtpPort(cfg, identity, random.Random())
    domains = [cfg.domain_number] + [d for d in args.also_domain if d != cfg.domain_number]
    ports = [port] + [PtpPort(replace(cfg, domain_number=d), identity, random.Random())
                      for d in domains[1:]]

    def on_state(sc: Any) -> None:
        if args.json_log:
            print(json.dumps({"event": "state", "old": sc.old.name, "new": sc.new.name,
                              "reason": sc.reason}), flush=True)
        else:
            print(f"netclock: port 1: {sc.old.name} to {sc.new.name} on {sc.reason}", flush=True)

    runners: list[PtpRunner] = []
    try:
        for i, p in enumerate(ports):
            runners.append(PtpRunner(p, args.interface, event_port=args.event_port,
                                     general_port=args.general_port, on_state=on_state,
                                     transport=profile.transport,
                                     udp6_scope=profile.udp6_scope,
                                     uds_path=args.uds if i == 0 else None,
                                     l2_primary_mac=profile.l2_primary_mac))
    except PermissionError as exc:
        for r in runners:
            r.close()
        print(f"netclock ptp: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if runners[0].uds is not None and len(runners) > 1:
        by_domain = {r.port.config.domain_number: r.port for r in runners}

        def dispatch(data: bytes) -> bytes | None:
            # pmc -d N: the management message's domainNumber picks the port
            target = by_domain.get(data[4] if len(data) > 4 else -1, port)
            return target.handle_management(data, time.monotonic_ns())

        runners[0].uds.handler = dispatch
    for r in runners:
        r.start()
    start = time.monotonic()
    try:
        while not args.duration or time.monotonic() - start < args.duration:
            await asyncio.sleep(1.0)
            primary_now = None
            for i, runner in enumerate(runners):
                rec, offsets, primary_now = _record(runner, identity, profile, primary_now,
                                                    i == 0)
                rec["primary_domain"] = cfg.domain_number
                _emit(args, rec, offsets)
    finally:
        for r in runners:
            r.close()
    return 0


def _record(runner: Any, identity: Any, profile: Any, primary: tuple[int, int] | None,
            is_primary: bool) -> tuple[dict[str, Any], list[int], Any]:
    """One status record for one runner. ``primary`` is (mono, PTP ns) of the primary domain's
    calibration at one instant; other domains report their published offset from it."""
    from netclock.platform.clockmap import estimate_offset, read_bracket
    from netclock.time import NS_PER_S

    port = runner.port
    offsets, runner.stats.offsets = runner.stats.offsets, []
    rms = (sum(o * o for o in offsets) / len(offsets)) ** 0.5 if offsets else None
    mx = max((abs(o) for o in offsets), default=None)
    last = runner.stats.last
    cal = runner.servo.published
    rt_err = None
    if cal is not None:
        # REALTIME at a MONOTONIC instant from the tightest of a few fresh brackets: a lone
        # bracket that an interrupt or a preemption widened put µs of its own into the figure.
        # Fresh, not the stamps' cached map, so that map's error is not subtracted out.
        est = estimate_offset([read_bracket() for _ in range(9)])
        mono = est.measured_at
        rt = est.to_realtime(mono)
        ptp = cal.to_external(mono)
        tprops = port.time_properties
        utc = ptp - tprops.current_utc_offset * NS_PER_S if tprops.ptp_timescale else ptp
        rt_err = utc - rt
    snap = port.observe()
    domain_offset = None
    if is_primary:
        primary = (mono, ptp) if cal is not None else None
    elif cal is not None and primary is not None:
        domain_offset = cal.to_external(primary[0]) - primary[1]
    rec = {
        "domain": port.config.domain_number,
        "domain_offset_ns": domain_offset,
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
        "profile": profile.name,
        "delay_mechanism": profile.delay_mechanism,
        "neighbor_prop_delay_ns": port.neighbor_prop_delay,
        "neighbor_rate_ratio": port.neighbor_rate_ratio_float,
        "unicast_grants": {f"{addr}/{mt}": d for (addr, mt), d in port.unicast_grants.items()},
        "stamp_counters": runner.transport.event.counters.as_dict(),
        #: the parent's ST 2059-2 synchronization metadata, as received (None: none)
        "sync_metadata": dataclasses.asdict(port.sync_metadata) if port.sync_metadata else None,
    }
    return rec, offsets, primary


def _emit(args: argparse.Namespace, rec: dict[str, Any], offsets: list[int]) -> None:
    d = f"domain {rec['domain']} " if args.also_domain else ""
    if args.json_log:
        print(json.dumps(rec), flush=True)
    elif offsets:
        print(f"netclock: {d}rms {rec['offset_rms_ns']:8.0f} max {rec['offset_max_ns']:8d} "
              f"freq {rec['freq_ppb']:+9.3f} delay {rec['path_delay_ns']:8d} "
              f"state {rec['port_state']}", flush=True)
    else:
        print(f"netclock: {d}state {rec['port_state']} gm {rec['gm_identity']}", flush=True)


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
