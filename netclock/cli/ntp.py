"""``netclock ntp query`` and ``netclock ntp serve``."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ntp", help="NTP client query and server")
    sub = p.add_subparsers(dest="ntp_command", metavar="SUBCOMMAND")
    sub.required = True

    q = sub.add_parser("query", help="measure a server's offset once (like chronyd -Q)")
    q.add_argument("server", metavar="HOST[:PORT]", help="server; [v6addr]:port for IPv6")
    q.add_argument("--count", "-n", type=int, default=4, help="samples to take (default 4)")
    q.add_argument("--poll", type=int, default=-3,
                   help="log2 s between requests (default -3 = 125 ms)")
    q.add_argument("--timeout", type=float, default=5.0, help="give up after this many s")
    q.add_argument("--xleave", action="store_true", help="request interleaved mode")
    q.add_argument("--user-timestamps", action="store_true",
                   help="do not ask the kernel for timestamps")
    q.add_argument("--warm-up-port", type=int, default=9, metavar="PORT",
                   help="before each request, two empty TX-stamped datagrams to this port of "
                        "the server to wake the path (default 9, discard; 0 = none)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_query)

    s = sub.add_parser("serve", help="serve the local time domain over NTP")
    s.add_argument("--listen", metavar="ADDR:PORT", default=None,
                   action="append", dest="listen_list",
                   help="address to serve on; repeat for several (default 0.0.0.0:123)")
    s.add_argument("--shift-ns", type=int, default=0,
                   help="serve the domain shifted by this many ns (for tests)")
    s.add_argument("--stratum", type=int, default=1)
    s.add_argument("--refid", default="LOCL", help="reference id (≤ 4 ASCII chars)")
    s.add_argument("--rate-limit-log2", type=int, default=None, metavar="LOG2S",
                   help="rate limit: one request per 2^LOG2S s on average per client, burst 16 "
                   "(default: no limit)")
    s.add_argument("--no-xleave", action="store_true", help="never answer in interleaved mode")
    s.add_argument("--user-timestamps", action="store_true",
                   help="do not ask the kernel for timestamps")
    s.add_argument("--duration", type=float, default=None, help="stop after this many s")
    s.add_argument("--key-file", default=None, metavar="FILE",
                   help="symmetric keys (chrony keyfile format: ID TYPE HEX:...); requests "
                        "with a valid MAC are answered signed")
    s.add_argument("--require-auth", action="store_true",
                   help="with --key-file: drop requests without a valid MAC")
    s.add_argument("--allow", metavar="SUBNET", action="append", default=[],
                   help="answer clients in SUBNET (CIDR; repeatable). Once any is given, clients "
                        "outside every --allow/--deny are refused; the most specific rule wins")
    s.add_argument("--deny", metavar="SUBNET", action="append", default=[],
                   help="refuse clients in SUBNET (repeatable; deny wins a tie with allow)")
    s.add_argument("--deny-kod", action="store_true",
                   help="answer refused clients with KoD DENY instead of silence")
    s.set_defaults(func=_serve)


def _query(args: argparse.Namespace) -> int:
    import asyncio

    from netclock.platform.ntp_transport import parse_hostport, query
    from netclock.time import format_ns

    host, port = parse_hostport(args.server)
    try:
        res = asyncio.run(query(host, port, count=args.count, poll=args.poll,
                                timeout_s=args.timeout, xleave=args.xleave,
                                timestamping=not args.user_timestamps,
                                warm_up_port=args.warm_up_port))
    except (OSError, TimeoutError) as exc:
        if args.json:
            print(json.dumps({"server": args.server, "error": str(exc)}))
        else:
            print(f"netclock ntp query: {exc}")
        return 1
    if args.json:
        print(json.dumps(res.as_dict()))
    else:
        print(f"server {res.server} stratum {res.stratum} refid {res.reference_id} "
              f"offset {format_ns(res.offset_ns)} delay {format_ns(res.delay_ns)} "
              f"({res.samples} samples, {res.mode}, {res.timestamping} timestamps)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from netclock.ntp.server import AccessControl, DisciplineState, NtpServer, RateLimit
    from netclock.ntp.wire import refid_ascii
    from netclock.platform.clockmap import ClockMap
    from netclock.platform.ntp_transport import (
        ServerDriver,
        open_server_socket,
        parse_hostport,
        system_served_time,
    )
    from netclock.time import NS_PER_S

    listens = args.listen_list or ["0.0.0.0:123"]
    clock_map = ClockMap()
    rl = None
    if args.rate_limit_log2 is not None:
        n = args.rate_limit_log2
        rl = RateLimit(interval_ns=NS_PER_S << n if n >= 0 else NS_PER_S >> -n)
    keys = {}
    if args.key_file is not None:
        from netclock.ntp.auth import KeyFileError
        from netclock.platform.ntp_transport import load_key_file

        try:
            keys = load_key_file(args.key_file)
        except KeyFileError as exc:
            print(f"netclock ntp serve: {exc}")
            return 2
    try:
        access = AccessControl.parse(" ".join(args.allow), " ".join(args.deny),
                                     kod=args.deny_kod)
    except ValueError as exc:
        print(f"netclock ntp serve: {exc}")
        return 2
    server = NtpServer(
        system_served_time(clock_map, args.shift_ns),
        DisciplineState(stratum=args.stratum, reference_id=refid_ascii(args.refid)),
        rate_limit=rl,
        xleave=not args.no_xleave,
        keys=keys,
        require_auth=args.require_auth,
        access=access,
    )

    async def run() -> None:
        socks = []
        drivers = []
        for text in listens:
            host, port = parse_hostport(text)
            sock = open_server_socket(host, port, timestamping=not args.user_timestamps,
                                      clock_map=clock_map)
            drivers.append(ServerDriver(server, sock))
            socks.append(sock)
            print(f"serving NTP on {text} ({sock.mode} timestamps, shift {args.shift_ns} ns)",
                  flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), args.duration)
        except TimeoutError:
            pass
        finally:
            for sock in socks:
                sock.close()
            for d in drivers:
                st = d.stats
                print(f"timestamps rx kernel {st.rx_kernel} user {st.rx_user}, "
                      f"tx kernel {st.tx_kernel} user {st.tx_user}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    c = server.counters
    print(f"received {c.received} responded {c.responded} interleaved {c.interleaved} "
          f"rate-limited {c.rate_limited} bad {c.dropped_bad} "
          f"send-latency {server.tx_latency_ns} ns auth-ok {c.auth_ok} "
          f"auth-failed {c.auth_failed} crypto-nak {c.crypto_nak_sent} denied {c.denied} "
          f"deny-kod {c.deny_kod_sent}", flush=True)
    return 0
