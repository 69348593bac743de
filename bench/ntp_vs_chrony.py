"""netclock's NTP client vs ``chronyd -x``, both at minpoll -4, against one server on a veth link.

Prints a table; asserts nothing. Needs root (network namespaces) and chronyd.

Topology: namespace A runs the server (``chronyd -x`` with ``local stratum 1``, which answers
interleaved requests too); namespace B runs both clients at the same time, over one veth link.
All namespaces share the system clock, so the true offset is 0 and every figure is error:

* netclock: the published time minus the true time, i.e. ``calibration.to_external(MONOTONIC)``
  minus CLOCK_REALTIME, read every 100 ms with a tight MONOTONIC/REALTIME/MONOTONIC bracket;
* chronyd: its remaining correction under -x (``chronyc tracking``, "System time"), every 250 ms,
  signed the same way (chrony's estimate of the true time minus the true time).

Lock time: first moment after which |error| stays below 10 us for the rest of the run. RMS and
p99 are over the steady state (after the first 25 % of the run). CPU seconds and RSS are the
clients' own (chronyd: /proc; netclock: getrusage and /proc/self/status of its process).

    python bench/ntp_vs_chrony.py [--seconds 60] [--no-xleave] [--warm-up-port 0]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOCK_NS = 10_000


# -- the netclock client (runs as a child process inside the client namespace) ----------------


def netclock_client(
    server: str, seconds: float, xleave: bool, out: str, filter_length: int, window: int,
    warm_up_port: int,
) -> None:
    import asyncio
    import random
    import resource
    import socket

    from netclock.calibration import WindowedCalibration
    from netclock.ntp.select import NtpClient
    from netclock.ntp.source import NtpSample, NtpSource, SourceConfig
    from netclock.platform.ntp_transport import SourceDriver, open_client_socket

    async def run() -> dict[str, Any]:
        cal = WindowedCalibration(window_size=window, window_threshold=4)
        client = NtpClient(cal)
        kinds: dict[str, int] = {}

        def on_sample(s: NtpSample, kind: str) -> None:
            kinds[kind] = kinds.get(kind, 0) + 1
            client.add_sample("server", s)

        driver: SourceDriver | None = None

        def on_rx(r: Any) -> None:
            assert driver is not None
            driver.handle_received(r)

        sock = open_client_socket(socket.AF_INET, on_receive=on_rx)
        cfg = SourceConfig(minpoll=-4, maxpoll=-4, iburst=True, xleave=xleave,
                           filter_length=filter_length)
        source = NtpSource(cfg, random.Random(), pivot_unix_ns=time.time_ns())
        driver = SourceDriver(source, sock, (server, 123), on_sample,
                              warm_up_port=warm_up_port)
        t0 = time.monotonic_ns()
        driver.start()
        errors: list[tuple[float, int | None]] = []
        while (now := time.monotonic_ns()) - t0 < seconds * 1e9:
            await asyncio.sleep(0.1)
            c = cal.calibration
            for _ in range(5):
                m1 = time.monotonic_ns()
                rt = time.time_ns()
                m2 = time.monotonic_ns()
                if m2 - m1 < 1_000:
                    break
            err = None if c is None else c.to_external((m1 + m2) // 2) - rt
            errors.append(((now - t0) / 1e9, err))
        driver.stop()
        sock.close()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        m = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
        rss = int(m[1]) if m else 0
        snap = source.observe()
        return {"errors": errors, "cpu_s": ru.ru_utime + ru.ru_stime, "rss_kb": rss,
                "kinds": kinds, "requests": snap.requests, "responses": snap.responses,
                "interleaved": snap.interleaved}

    Path(out).write_text(json.dumps(asyncio.run(run())))


# -- the driver --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m[1]) if m else 0


def chrony_error_ns(sock: Path) -> int | None:
    out = subprocess.run(["chronyc", "-h", str(sock), "tracking"], capture_output=True,
                         text=True, timeout=5).stdout
    m = re.search(r"System time\s*:\s*([\d.]+) seconds (fast|slow)", out)
    if not m or "Reference ID    : 00000000" in out:
        return None
    # "fast": the system clock (= true time here) is ahead of chrony's estimate of NTP time,
    # so chrony's estimate minus the truth is negative.
    v = round(float(m[1]) * 1e9)
    return -v if m[2] == "fast" else v


def lock_time(series: list[tuple[float, int | None]]) -> float | None:
    """First time after which every |error| stays below LOCK_NS."""
    last_bad = None
    for t, e in series:
        if e is None or abs(e) >= LOCK_NS:
            last_bad = t
    if last_bad is None:
        return series[0][0] if series else None
    later = [t for t, _ in series if t > last_bad]
    return later[0] if later else None


def stats(series: list[tuple[float, int | None]], seconds: float) -> dict[str, float | None]:
    signed = [e for t, e in series if e is not None and t >= seconds * 0.25]
    steady = [abs(e) for e in signed]
    if not steady:
        return {"rms": None, "p99": None, "lock": lock_time(series), "n": 0, "mean": None}
    steady.sort()
    p99 = steady[min(len(steady) - 1, math.ceil(0.99 * len(steady)) - 1)]
    rms = math.sqrt(sum(e * e for e in steady) / len(steady))
    return {"rms": rms, "p99": float(p99), "lock": lock_time(series), "n": len(steady),
            "mean": sum(signed) / len(signed)}


def main() -> int:
    from netclock.platform.ntp_transport import WARM_UP_PORT

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--no-xleave", action="store_true", help="basic mode for both clients")
    ap.add_argument("--filter", type=int, default=8, help="netclock clock filter length")
    ap.add_argument("--window", type=int, default=128, help="netclock calibration window")
    ap.add_argument("--warm-up-port", type=int, default=WARM_UP_PORT,
                    help="netclock's empty datagram before each request goes to this port of "
                         f"the server (default {WARM_UP_PORT}, the daemon's; 0 = none)")
    ap.add_argument("--netclock-client", nargs=3, metavar=("SERVER", "SECONDS", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    xleave = not args.no_xleave
    if args.netclock_client:
        server, secs, out = args.netclock_client
        netclock_client(server, float(secs), xleave, out, args.filter, args.window,
                        args.warm_up_port)
        return 0
    if os.geteuid() != 0 or shutil.which("chronyd") is None:
        print("needs root and chronyd")
        return 1
    from tests.support import netns

    with tempfile.TemporaryDirectory() as d, netns.veth_pair(subnet=215) as topo:
        tmp = Path(d)
        a, b = topo.nodes
        (tmp / "server.conf").write_text("\n".join([
            "local stratum 1", "allow", f"bindaddress {a.ip4}", "port 123",
            f"pidfile {tmp}/server.pid", "cmdport 0", ""]))
        a.popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(tmp / "server.conf")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        csock = tmp / "client.sock"
        xl = " xleave" if xleave else ""
        (tmp / "client.conf").write_text("\n".join([
            f"server {a.ip4} iburst minpoll -4 maxpoll -4{xl}", f"bindcmdaddress {csock}",
            "cmdport 0", f"pidfile {tmp}/client.pid", ""]))
        time.sleep(0.5)
        out = tmp / "netclock.json"
        t0 = time.monotonic()
        chrony = b.popen(["chronyd", "-x", "-d", "-u", "root", "-f", str(tmp / "client.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours = b.python([__file__, *(["--no-xleave"] if not xleave else []),
                         "--filter", str(args.filter), "--window", str(args.window),
                         "--warm-up-port", str(args.warm_up_port),
                         "--netclock-client", a.ip4, str(args.seconds), str(out)])
        chrony_series: list[tuple[float, int | None]] = []
        while time.monotonic() - t0 < args.seconds:
            time.sleep(0.25)
            try:
                e = chrony_error_ns(csock)
            except (subprocess.TimeoutExpired, OSError):
                e = None
            chrony_series.append((time.monotonic() - t0, e))
        chrony_cpu, chrony_rss = cpu_seconds(chrony.pid), rss_kb(chrony.pid)
        b.stop(chrony)
        ours.wait(timeout=args.seconds + 30)
        res = json.loads(out.read_text())
    ours_series = [(t, e) for t, e in res["errors"]]
    n = stats(ours_series, args.seconds)
    c = stats(chrony_series, args.seconds)

    def us(v: float | None) -> str:
        return "-" if v is None else f"{v / 1000:+.2f}"

    def s(v: float | None) -> str:
        return "never" if v is None else f"{v:.1f}"

    def ratio(x: float | None, y: float | None) -> str:
        return "-" if x is None or y is None or y == 0 else f"{x / y:.2f}"

    mode = "interleaved (xleave)" if xleave else "basic"
    print(f"\nNTP client vs chronyd 4.3 -x: minpoll -4, {mode}, {args.seconds:.0f} s, one veth "
          f"link, server chronyd -x local stratum 1; steady state = after {args.seconds / 4:.0f} s")
    warm = f"port {args.warm_up_port}" if args.warm_up_port else "none"
    print(f"netclock: clock filter {args.filter}, calibration window {args.window}, "
          f"warm-up datagram {warm}; "
          f"samples: {res['kinds']} (requests {res['requests']}, responses "
          f"{res['responses']}, interleaved {res['interleaved']})\n")
    print("| client | error RMS (us) | p99 abs error (us) | mean error (us) | lock <10us (s) "
          "| CPU (s) | RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| netclock | {us(n['rms'])} | {us(n['p99'])} | {us(n['mean'])} | {s(n['lock'])} "
          f"| {res['cpu_s']:.2f} | {res['rss_kb'] / 1024:.1f} |")
    print(f"| chronyd -x | {us(c['rms'])} | {us(c['p99'])} | {us(c['mean'])} | {s(c['lock'])} "
          f"| {chrony_cpu:.2f} | {chrony_rss / 1024:.1f} |")
    print(f"| ratio netclock/chronyd | {ratio(n['rms'], c['rms'])} | {ratio(n['p99'], c['p99'])} "
          f"| | {ratio(n['lock'], c['lock'])} | {ratio(res['cpu_s'], chrony_cpu)} "
          f"| {ratio(res['rss_kb'], chrony_rss)} |")
    print(f"\n(error samples in steady state: netclock {n['n']}, chronyd {c['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
