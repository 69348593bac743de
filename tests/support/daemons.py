"""Starting and watching daemons in test namespaces: ptp4l and `netclock run`.

Everything started here is a direct child (PID 1 does not reap orphans): the caller's
:class:`~tests.support.netns.Topology` stops it by PID and waits for it. Every ptp4l runs with
``free_running 1`` and software stamps, so no clock is ever touched; all namespaces share one
system clock, so the truth at a CLOCK_MONOTONIC instant is CLOCK_REALTIME (+ a known shift).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from netclock.client import ClockUnavailable, SharedClock
from netclock.observe import LockState
from netclock.platform.clockmap import ClockMap
from tests.support.netns import Node

#: TAI - UTC announced by a netclock grandmaster whose reference is CLOCK_REALTIME
UTC_OFFSET_NS = 37_000_000_000

PTP4L_CFG = """[global]
free_running 1
time_stamping software
logAnnounceInterval 0
announceReceiptTimeout 3
logSyncInterval {sync}
logMinDelayReqInterval -2
summary_interval {sync}
use_syslog 0
verbose 1
priority1 {p1}
freq_est_interval 0
{extra}
"""


def popen_ptp4l(node: Node, cfg: Path, flags: Sequence[str]) -> subprocess.Popen[str]:
    """``ptp4l -f CFG -i IFACE FLAGS -m`` on ``node``, stdout piped (wrap it in :class:`Lines`)."""
    return node.popen(
        ["ptp4l", "-f", str(cfg), "-i", node.ifname, *flags, "-m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def start_ptp4l(
    node: Node,
    p1: int,
    tmp: Path,
    *,
    sync: int = -4,
    extra: str = "",
    flags: tuple[str, ...] = ("-4", "-S"),
) -> subprocess.Popen[str]:
    """ptp4l on ``node``'s interface (UDPv4, software stamps unless ``flags`` say otherwise),
    stdout piped (wrap it in :class:`Lines` to read it)."""
    cfg = tmp / f"ptp4l-{node.ns}-{p1}.cfg"
    cfg.write_text(PTP4L_CFG.format(p1=p1, sync=sync, extra=extra))
    return popen_ptp4l(node, cfg, flags)


GPTP_CFG = "/usr/share/doc/linuxptp/configs/gPTP.cfg"
#: on top of linuxptp's gPTP.cfg: no clock adjustment, software stamps, and a neighbor delay
#: threshold that software-stamped veth links meet (gPTP.cfg's 800 ns needs hardware stamps)
GPTP_TEST = """
free_running 1
time_stamping software
neighborPropDelayThresh 20000000
logMinPdelayReqInterval -2
summary_interval -3
freq_est_interval 0
use_syslog 0
verbose 1
"""


def start_ptp4l_gptp(
    node: Node, tmp: Path, extra: str, flags: Sequence[str]
) -> tuple[subprocess.Popen[str], Lines]:
    """ptp4l with linuxptp's own gPTP.cfg (L2, P2P, transportSpecific 1) plus GPTP_TEST and
    ``extra``; skips when linuxptp's example configs are not installed."""
    try:
        base = Path(GPTP_CFG).read_text()
    except OSError:
        pytest.skip(f"{GPTP_CFG} not installed")
    cfg = tmp / f"ptp4l-gptp-{node.ns}.cfg"
    cfg.write_text(base + GPTP_TEST + extra)
    proc = popen_ptp4l(node, cfg, flags)
    return proc, Lines(proc)


class Lines:
    """A child's stdout lines, collected on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        out = proc.stdout
        self._t = threading.Thread(
            target=lambda: self.lines.extend(iter(out.readline, "")), daemon=True
        )
        self._t.start()

    def json(self) -> list[dict[str, Any]]:
        out = []
        for ln in list(self.lines):
            try:
                out.append(json.loads(ln))
            except ValueError:
                continue
        return out


def ptp4l_offsets(lines: list[str]) -> list[int]:
    """The ``master offset`` figures of ptp4l's summary lines, in ns."""
    return [
        int(m.group(1)) for ln in list(lines) if (m := re.search(r"master offset\s+(-?\d+)", ln))
    ]


def mean_offset(offsets: list[int]) -> float:
    """The average of a free-running ptp4l's offsets, single-sample outliers left out.

    A free-running ptp4l prints one raw measurement a second, with no servo filter behind it:
    on a loaded 2-core box one of them can be hundreds of µs off (seen once in CI: 335 µs among
    values of about 1 µs). Samples farther than 10× the median absolute deviation (and at
    least 20 µs) from the median are left out of the average; at most a quarter may be.
    """
    med = statistics.median(offsets)
    mad = statistics.median(abs(x - med) for x in offsets)
    kept = [x for x in offsets if abs(x - med) <= max(10 * mad, 20_000)]
    assert 4 * len(kept) >= 3 * len(offsets), ("too many outliers", offsets)
    return sum(kept) / len(kept)


def wait_for(pred: Callable[[], Any], timeout: float, step: float = 0.2) -> bool:
    """Poll ``pred`` every ``step`` s until it is true or ``timeout`` s have passed; it is asked
    once more at the deadline."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def daemon_config(tmp: Path, name: str, body: str) -> Path:
    """``tmp/name.toml``: ``body`` plus shared memory in ``tmp/name/`` and metrics off."""
    d = tmp / name
    d.mkdir(exist_ok=True)
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        body
        + f"""
[publish]
shm-path = "{d}/clock.shm"
[metrics]
enabled = false
"""
    )
    return cfg


def ptp_section(role: str, *, sync: int = -4, extra: str = "") -> str:
    return f"""
[ptp]
enabled = true
interface = "eth0"
role = "{role}"
log-announce-interval = 0
log-sync-interval = {sync}
log-min-delay-req-interval = -2
{extra}
"""


def start_daemon(node: Node, cfg: Path, *extra: str) -> subprocess.Popen[str]:
    """`netclock run --config cfg` in ``node``'s namespace, its output in ``cfg``.log."""
    log = open(cfg.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the test's tmp dir
    return node.python(
        ["-m", "netclock", "run", "--config", str(cfg), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def daemon_log(cfg: Path) -> str:
    p = cfg.with_suffix(".log")
    return p.read_text()[-3000:] if p.exists() else ""


def open_clock(path: Path, timeout: float) -> SharedClock | None:
    """The shared clock at ``path`` once it is synchronized, or ``None`` after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            clk = SharedClock(path)
            if clk.status().synchronized:
                return clk
            clk.close()
        except ClockUnavailable:
            pass
        time.sleep(0.05)
    return None


def wait_locked(clk: SharedClock, timeout: float) -> bool:
    return wait_for(lambda: clk.status().lock_state == LockState.LOCKED, timeout, 0.1)


def errors_against(clk: SharedClock, cmap: ClockMap, shift_ns: int, n: int = 20) -> list[int]:
    """Published network time minus (CLOCK_REALTIME + shift) at the same MONOTONIC instant."""
    out = []
    for _ in range(n):
        mono = time.monotonic_ns()
        out.append(clk.to_network(mono) - (cmap.to_realtime(mono) + shift_ns))
        time.sleep(0.05)
    return out
