"""The two-machine capture setup, shared by the test and ``bench/capture_two_machines.py``.

A bridge of three network namespaces: a grandmaster ``netclock run`` (local reference =
CLOCK_REALTIME, served as a PTP grandmaster at 16 Sync/s, or as an NTP server) and two slave
``netclock run`` daemons, each a PTP slave (or NTP client) of the grandmaster publishing its
calibration in its own shared-memory file. A capture agent runs
in each slave namespace, reads that file (``--clock shared --shm``) and captures the same
PipeWire producer. Every namespace shares the system clock, so the true Δ of each frame pair is
0: what ``netclock align`` measures is the error of the whole chain.

Every process is a direct child started through :class:`tests.support.netns.Node` (stopped by
PID and waited for at teardown).
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capture import pipewire as pw
from capture.align import AlignResult, align, load
from capture.frame import FrameRecord
from tests.support import netns

NTP_PORT = 12399


PTP_SECTION = """
[ptp]
enabled = true
interface = "eth0"
role = "{role}"
log-announce-interval = 0
log-sync-interval = -4
log-min-delay-req-interval = -3
"""


def gm_config(ip: str, work: Path, protocol: str = "ptp") -> str:
    ptp = PTP_SECTION.format(role="master-only") + "priority1 = 100\n" if protocol == "ptp" else ""
    return f"""[reference]
enabled = true
clock = "realtime"
timescale = "utc"
interval-s = 0.1
{ptp}
[ntp]
serve = true
listen-address = "{ip}"
listen-port = {NTP_PORT}

[publish]
shm-path = "{work}/gm/clock.shm"

[metrics]
enabled = false
"""


def slave_config(i: int, master_ip: str, work: Path, poll: int, protocol: str = "ptp") -> str:
    if protocol == "ptp":
        source = PTP_SECTION.format(role="slave-only")
    else:
        source = f"""[[ntp.server]]
address = "{master_ip}"
port = {NTP_PORT}
minpoll = {poll}
maxpoll = {poll}
iburst = true
xleave = true
"""
    return f"""{source}
[publish]
shm-path = "{work}/slave{i}/clock.shm"

[metrics]
enabled = false
"""


def wait_calibrated(shm: Path, timeout: float, locked: bool = False) -> Any:
    """Until the daemon publishing ``shm`` has a calibration (state LOCKING or LOCKED; only
    LOCKED when ``locked``).

    Through the bridge LOCKED is not required: the daemon declares it only while its error
    bound (best observation error + 3 residual RMS) stays under its lock threshold (10 µs),
    which the bridge's 10-20 µs of jitter may not allow for a long time. Frames stamped while
    not LOCKED are flagged unsynced and carry the daemon's (larger) bound."""
    from netclock.client import ClockUnavailable, SharedClock
    from netclock.observe import LockState

    wanted = (LockState.LOCKED,) if locked else (LockState.LOCKING, LockState.LOCKED)
    end = time.monotonic() + timeout
    last: object = "no file"
    while time.monotonic() < end:
        if shm.exists():
            try:
                with SharedClock(shm) as clk:
                    st = clk.status()
                    last = st.lock_state.name
                    if st.lock_state in wanted and st.calibration is not None:
                        return st
            except ClockUnavailable as e:
                last = e
        time.sleep(0.1)
    raise AssertionError(f"daemon publishing {shm}: no calibration after {timeout} s: {last}")


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def stop_when_all_have(
    procs: list[subprocess.Popen[Any]], outs: list[Path], n: int, timeout: float
) -> list[int]:
    """Let capture agents run until every output file holds ``n`` records, then SIGTERM them
    all (they flush and exit 0) and return their exit codes.

    Agents on one producer connect at different moments (seconds apart on a loaded machine),
    so a per-agent ``--max-frames`` can leave two files with no frame in common. Stopping all
    of them only once the last one has ``n`` frames makes its frames (all captured while the
    others were running too) the common set."""
    end = time.monotonic() + timeout
    try:
        while any(lines(o) < n for o in outs):
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"capture agent exited early ({p.returncode})")
            if time.monotonic() > end:
                raise AssertionError(f"agents wrote {[lines(o) for o in outs]} < {n} records")
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=20))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


@dataclass
class Run:
    a: list[FrameRecord]
    b: list[FrameRecord]
    bad_lines: int
    produced: dict[int, int]
    result: AlignResult
    daemon_exit: list[int | None]


def run(
    work: Path,
    session_env: dict[str, str],
    *,
    frames: int = 50,
    poll: int = -3,
    settle: float = 3.0,
    lock_timeout: float = 20.0,
    subnet: int = 207,
    protocol: str = "ptp",
    topology: str = "bridge",
) -> Run:
    """Start the daemons (``protocol`` "ptp" or "ntp"), wait for both slaves to calibrate,
    capture ``frames`` frames in each namespace, stop everything and align the two files by
    pts.

    ``topology`` "bridge": the three namespaces on one bridge (any protocol; the slaves need
    only calibrate). "star": each slave on its own direct veth link to the grandmaster's
    namespace, whose one daemon serves NTP on one address routed over every link (``protocol``
    must be "ntp": a PTP port runs on one interface); the slaves must be LOCKED before capture
    starts."""
    if topology not in ("bridge", "star"):
        raise ValueError(f"unknown topology {topology!r}")
    if topology == "star" and protocol != "ntp":
        raise ValueError("the star topology serves the slaves over NTP")
    for d in ("gm", "slave0", "slave1"):
        (work / d).mkdir(parents=True, exist_ok=True)
    topo_cm = netns.star(2, subnet) if topology == "star" else netns.bridge(3, subnet=subnet)
    with topo_cm as topo:
        master, m1, m2 = topo.nodes
        cfg = work / "gm.toml"
        cfg.write_text(gm_config(master.ip4, work, protocol))
        log = (work / "daemons.log").open("ab")
        try:
            daemons = [
                master.python(
                    ["-m", "netclock", "run", "--config", str(cfg)], stdout=log, stderr=log
                )
            ]
            for i, node in enumerate((m1, m2)):
                scfg = work / f"slave{i}.toml"
                scfg.write_text(slave_config(i, master.ip4, work, poll, protocol))
                daemons.append(
                    node.python(
                        ["-m", "netclock", "run", "--config", str(scfg)], stdout=log, stderr=log
                    )
                )
        finally:
            log.close()
        for i in range(2):
            wait_calibrated(work / f"slave{i}" / "clock.shm", lock_timeout, topology == "star")
        time.sleep(settle)  # a few more observations in each fit
        prod = pw.Producer("netclock-producer")
        try:
            agents = [
                node.python(
                    [
                        "-m",
                        "netclock",
                        "capture",
                        "--source",
                        "pipewire:netclock-producer",
                        "--clock",
                        "shared",
                        "--shm",
                        str(work / f"slave{i}" / "clock.shm"),
                        "--out",
                        str(work / f"{i}.jsonl"),
                    ],
                    env=session_env,
                )
                for i, node in enumerate((m1, m2))
            ]
            outs = [work / "0.jsonl", work / "1.jsonl"]
            codes = stop_when_all_have(agents, outs, frames, timeout=60)
            if codes != [0, 0]:
                raise AssertionError(f"capture agents exited {codes}")
        finally:
            prod.close()
        alive = [d.poll() for d in daemons]
    a, bad_a = load(work / "0.jsonl")
    b, bad_b = load(work / "1.jsonl")
    return Run(a, b, bad_a + bad_b, dict(prod.produced), align(a, b, "pts"), alive)
