"""``netclock demo``: a loopback grandmaster and agents, no root, live convergence and a summary.

The demo starts real daemons (``netclock run``) as child processes on 127.0.0.1 high ports:

* a **grandmaster** whose local reference is CLOCK_REALTIME shifted by ``--shift`` (so a correct
  result cannot be an accident of the shared system clock) and which serves it over NTP with
  kernel RX/TX timestamps and interleaved mode;
* ``--agents`` **agents** (default 2), each an NTP client of the grandmaster polling
  2^``--poll`` s, each publishing its calibration in its own shared-memory file.

Every second the demo reads each agent's shared memory through :class:`netclock.client.SharedClock`
(what any local process would do) and compares the agent's network time with the truth: all
processes share one system clock, so the truth is CLOCK_REALTIME + shift at the same
CLOCK_MONOTONIC instant. It ends with a summary table (lock time, error RMS / p99 / max, error
bound) and stops the daemons by PID.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

LOCK_ERROR_NS = 10_000


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="loopback grandmaster + agents, live convergence (no root)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds to run (default 20)")
    p.add_argument("--agents", type=int, default=2, help="number of agents (default 2)")
    p.add_argument("--poll", type=int, default=-4, help="agents' NTP poll, log2 s (default -4)")
    p.add_argument(
        "--shift", type=int, default=1_234_567_890, help="grandmaster domain - REALTIME, ns"
    )
    p.add_argument("--no-xleave", action="store_true", help="basic NTP mode instead of xleave")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    p.set_defaults(func=cmd_demo)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gm_config(port: int, shift: int, work: str) -> str:
    return f"""# netclock demo grandmaster
[reference]
enabled = true
clock = "realtime"
shift-ns = {shift}
timescale = "arb"
interval-s = 0.1

[ntp]
serve = true
listen-address = "127.0.0.1"
listen-port = {port}
# every demo agent polls from 127.0.0.1 at up to 16 Hz: allow 128 requests/s per address
rate-limit-interval-log2 = -7

[publish]
shm-path = "{work}/gm/clock.shm"

[metrics]
enabled = false
"""


def _agent_config(i: int, port: int, poll: int, xleave: bool, work: str) -> str:
    return f"""# netclock demo agent {i}
[[ntp.server]]
address = "127.0.0.1"
port = {port}
minpoll = {poll}
maxpoll = {poll}
iburst = true
xleave = {"true" if xleave else "false"}

[holdover]
source-timeout-s = 2.0
state-file = "{work}/agent{i}/state.json"

[publish]
shm-path = "{work}/agent{i}/clock.shm"

[metrics]
enabled = false
"""


@dataclass
class _Track:
    name: str
    shm: str
    errors: list[tuple[float, int]] = field(default_factory=list)
    state: str = "starting"
    bound_ns: int | None = None
    rate_ppb: float | None = None
    lock_time_s: float | None = None

    def lock_time(self) -> float | None:
        """First time after which |error| stays below 10 us."""
        t_lock = None
        for t, e in self.errors:
            if abs(e) >= LOCK_ERROR_NS:
                t_lock = None
            elif t_lock is None:
                t_lock = t
        return t_lock


def _stats(errs: list[int]) -> dict[str, float]:
    if not errs:
        return {"rms_ns": math.nan, "p99_ns": math.nan, "max_ns": math.nan}
    a = sorted(abs(e) for e in errs)
    rms = math.sqrt(sum(e * e for e in errs) / len(errs))
    p99 = a[min(len(a) - 1, math.ceil(0.99 * len(a)) - 1)]
    return {"rms_ns": rms, "p99_ns": float(p99), "max_ns": float(a[-1])}


def _fmt_ns(v: float | int | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a < 1_000:
        return f"{v:+.0f} ns"
    if a < 1_000_000:
        return f"{v / 1e3:+.2f} us"
    return f"{v / 1e6:+.3f} ms"


def cmd_demo(args: argparse.Namespace) -> int:
    from netclock.client import ClockUnavailable, SharedClock
    from netclock.platform.clockmap import ClockMap

    if args.agents < 1:
        print("netclock demo: --agents must be at least 1", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="netclock-demo-")
    port = _free_udp_port()
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    tracks: list[_Track] = []
    clock_map = ClockMap()
    quiet = args.json
    try:
        os.makedirs(f"{work}/gm")
        with open(f"{work}/gm.toml", "w") as f:
            f.write(_gm_config(port, args.shift, work))
        configs = [("grandmaster", f"{work}/gm.toml")]
        for i in range(1, args.agents + 1):
            os.makedirs(f"{work}/agent{i}")
            path = f"{work}/agent{i}.toml"
            with open(path, "w") as f:
                f.write(_agent_config(i, port, args.poll, not args.no_xleave, work))
            configs.append((f"agent{i}", path))
            tracks.append(_Track(f"agent{i}", f"{work}/agent{i}/clock.shm"))
        for name, path in configs:
            log = open(f"{work}/{name}.log", "wb")  # noqa: SIM115 - closed with the process
            cmd = [sys.executable, "-m", "netclock", "run", "--config", path]
            procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
            log.close()
        if not quiet:
            print(
                f"netclock demo: grandmaster serves CLOCK_REALTIME {_fmt_ns(args.shift)} over NTP "
                f"on 127.0.0.1:{port}; {args.agents} agent(s) poll every 2^{args.poll} s "
                f"({'interleaved' if not args.no_xleave else 'basic'} mode, kernel timestamps)."
            )
            print(f"error = agent's published time - grandmaster truth; work dir {work}\n")
        clocks: dict[str, SharedClock] = {}
        t0 = time.monotonic()
        next_t = t0 + 1.0
        while time.monotonic() - t0 < args.duration:
            time.sleep(max(0.0, next_t - time.monotonic()))
            next_t += 1.0
            for name, p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with status {p.returncode}; see {work}")
            t = time.monotonic() - t0
            cols = []
            for tr in tracks:
                try:
                    clk = clocks.get(tr.name) or SharedClock(tr.shm)
                    clocks[tr.name] = clk
                    st = clk.status()
                    tr.state = st.lock_state.name
                    tr.bound_ns = st.error_bound_ns
                    tr.rate_ppb = st.rate_ppb
                    if st.calibration is not None:
                        mono = time.monotonic_ns()
                        truth = clock_map.to_realtime(mono) + args.shift
                        err = st.calibration.to_external(mono) - truth
                        tr.errors.append((t, err))
                        cols.append(f"{tr.name} {tr.state:<8} err {_fmt_ns(err):>11}")
                    else:
                        cols.append(f"{tr.name} {tr.state:<8} err {'-':>11}")
                except ClockUnavailable as e:
                    cols.append(f"{tr.name} {type(e).__name__}")
            if not quiet:
                print(f"t={t:5.1f}s  " + "   ".join(cols), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for _, p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _, p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    summary: list[dict[str, Any]] = []
    for tr in tracks:
        lock = tr.lock_time()
        steady = [e for t, e in tr.errors if lock is not None and t >= lock]
        summary.append(
            {
                "agent": tr.name,
                "final_state": tr.state,
                "lock_time_s": lock,
                **_stats(steady),
                "error_bound_ns": tr.bound_ns,
                "rate_ppb": tr.rate_ppb,
                "samples": len(steady),
            }
        )
    if args.json:
        print(json.dumps({"agents": summary, "shift_ns": args.shift}))
    else:
        print("\nsummary (after lock; truth = grandmaster's CLOCK_REALTIME + shift)")
        print(
            f"{'agent':<8} {'state':<9} {'lock':>7} {'rms':>11} {'p99':>11} {'max':>11} "
            f"{'bound':>11} {'rate ppb':>9}"
        )
        for s in summary:
            lk = f"{s['lock_time_s']:.1f}s" if s["lock_time_s"] is not None else "never"
            rate = f"{s['rate_ppb']:+.1f}" if s["rate_ppb"] is not None else "-"
            print(
                f"{s['agent']:<8} {s['final_state']:<9} {lk:>7} {_fmt_ns(s['rms_ns']):>11} "
                f"{_fmt_ns(s['p99_ns']):>11} {_fmt_ns(s['max_ns']):>11} "
                f"{_fmt_ns(s['error_bound_ns']):>11} {rate:>9}"
            )
    if args.keep:
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    locked = all(s["lock_time_s"] is not None for s in summary)
    return 0 if locked else 1
