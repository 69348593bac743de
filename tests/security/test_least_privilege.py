"""Least privilege, for real: `netclock run` as uid/gid 65534 (nobody), in network namespaces.

* With **no capabilities** it follows an NTP server, publishes shared memory and serves NTP on
  a high port.
* Ports 123 (NTP), 319/320 (PTP) need exactly CAP_NET_BIND_SERVICE: without it the daemon
  stops with exit 77 naming the capability; given it as an ambient capability (setpriv, as a
  systemd ``AmbientCapabilities=CAP_NET_BIND_SERVICE`` unit would) it binds all three and its
  /proc/PID/status shows that one capability and nothing else (no CAP_SYS_TIME).
* Under strace, a daemon that follows NTP and serves NTP and PTP never calls clock_settime,
  clock_adjtime, adjtimex, settimeofday or stime; the same trace shows its bind/sendmsg calls,
  so an empty result is not a tracing failure.

tests/deploy/test_deploy_filecaps.py covers the container image's file-capability variant.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netclock.platform.status_socket import StatusUnavailable, fetch_snapshot
from tests.support.daemons import open_clock, wait_for
from tests.support.netns import REPO_ROOT, Node, Topology, topology_fixture

pytestmark = pytest.mark.interop

NOBODY = 65534
CAP_NET_BIND_SERVICE = 1 << 10
CAP_SYS_TIME = 1 << 25
CLOCK_SETTERS = ("clock_settime", "clock_adjtime", "adjtimex", "settimeofday", "stime")


topo = topology_fixture(2, 223, "setpriv", veth=True)


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory uid 65534 owns (pytest's tmp dirs are 0700 root)."""
    d = Path(tempfile.mkdtemp(prefix="netclock-nobody-"))
    try:
        d.chmod(0o755)
        os.chown(d, NOBODY, NOBODY)
        yield d
    finally:
        shutil.rmtree(d)


def upstream(node: Node) -> subprocess.Popen[Any]:
    """A netclock NTP server (root, in its own namespace) for the daemon to follow."""
    proc = node.python(["-m", "netclock", "ntp", "serve", "--listen", f"{node.ip4}:123"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def config(home: Path, server: Node, body: str) -> Path:
    """The daemon's configuration. Metrics are off: the interpreter uid 65534 runs may not see
    the site-packages prometheus_client lives in (here: under root's 0700 home)."""
    cfg = home / "netclock.toml"
    cfg.write_text(
        f"""
[[ntp.server]]
address = "{server.ip4}"
minpoll = -2
maxpoll = -2
[publish]
shm-path = "{home}/run/clock.shm"
[metrics]
enabled = false
{body}"""
    )
    os.chown(cfg, NOBODY, NOBODY)
    return cfg


def as_nobody(node: Node, cfg: Path, *, ambient: str = "", pre: tuple[str, ...] = ()
              ) -> subprocess.Popen[str]:
    """`netclock run` as 65534:65534, no supplementary groups; ``ambient`` capabilities
    (e.g. ``+net_bind_service``) are raised in the inheritable and ambient sets."""
    caps = ["--inh-caps", ambient, "--ambient-caps", ambient] if ambient else []
    log = open(cfg.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the directory
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return node.popen(
        [*pre, "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
         *caps, sys.executable, "-m", "netclock", "run", "--config", str(cfg)],
        stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd="/",
    )


def daemon_pid(node: Node, launcher: subprocess.Popen[str]) -> int:
    """The daemon's pid: the launcher itself (setpriv execs), or strace's traced child."""
    def find() -> int | None:
        for p in [launcher.pid, *_children(launcher.pid)]:
            try:
                cmd = Path(f"/proc/{p}/cmdline").read_bytes()
                uid = _status(p)["Uid"].split()[0]
            except (OSError, KeyError):
                continue
            if b"netclock\0run" in cmd and uid == str(NOBODY):
                return p
        return None

    assert wait_for(lambda: find() is not None, 10.0)
    pid = find()
    assert pid is not None
    return pid


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def caps(pid: int) -> dict[str, int]:
    st = _status(pid)
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb")}


def log_of(cfg: Path) -> str:
    return cfg.with_suffix(".log").read_text()


def served_ntp(node: Node, address: str, port: int) -> bool:
    r = node.run([sys.executable, "-m", "netclock", "ntp", "query", f"{address}:{port}",
                  "-n", "2", "--timeout", "3"], check=False)
    return r.returncode == 0 and "stratum" in r.stdout


def bound_udp_ports(node: Node, pid: int) -> set[int]:
    out = node.run(["ss", "-H", "-ulnp"]).stdout
    return {int(m[1]) for line in out.splitlines() if f"pid={pid}," in line
            if (m := re.search(r":(\d+)\s", line))}


def test_no_capabilities_follows_publishes_and_serves_on_high_ports(
    topo: Topology, home: Path
) -> None:
    up, me = topo.nodes
    upstream(up)
    cfg = config(home, up, f'[ntp]\nserve = true\nlisten-address = "{me.ip4}"\n'
                           "listen-port = 11123\n")
    proc = as_nobody(me, cfg)
    pid = daemon_pid(me, proc)
    assert caps(pid) == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0}
    clk = open_clock(home / "run" / "clock.shm", 20.0)
    assert clk is not None, log_of(cfg)
    shm = home / "run" / "clock.shm"
    st = shm.stat()
    assert st.st_uid == NOBODY and st.st_mode & 0o022 == 0  # only the daemon writes it
    assert wait_for(lambda: served_ntp(up, me.ip4, 11123), 15.0, 0.5), log_of(cfg)
    snap = fetch_snapshot(str(home / "run" / "status.sock"))
    assert snap.pid == pid and any(s.kind == "ntp" and s.reachable for s in snap.sources)
    assert proc.poll() is None, log_of(cfg)


def test_low_ports_without_net_bind_service_fail_naming_it(topo: Topology, home: Path) -> None:
    up, me = topo.nodes
    cfg = config(home, up, '[ptp]\nenabled = true\ninterface = "eth0"\nrole = "master-only"\n'
                           "[reference]\nenabled = true\n")
    proc = as_nobody(me, cfg)
    assert proc.wait(timeout=30) == 77, log_of(cfg)
    assert "PTP: binding port 319 needs CAP_NET_BIND_SERVICE" in log_of(cfg)


def test_exactly_net_bind_service_for_123_319_320_and_no_clock_setting(
    topo: Topology, home: Path
) -> None:
    up, me = topo.nodes
    upstream(up)
    strace = shutil.which("strace")
    trace = home / "strace.out"
    pre: tuple[str, ...] = ()
    if strace is not None:
        watched = ",".join((*CLOCK_SETTERS, "bind", "sendmsg", "sendto"))
        pre = (strace, "-f", "-qq", "-e", f"trace={watched}", "-e", "signal=none",
               "-o", str(trace))
    body = f"""[ntp]
serve = true
listen-address = "{me.ip4}"
listen-port = 123
[ptp]
enabled = true
interface = "eth0"
role = "master-only"
log-sync-interval = -3
"""
    cfg = config(home, up, body)
    proc = as_nobody(me, cfg, ambient="+net_bind_service", pre=pre)
    pid = daemon_pid(me, proc)
    try:
        _check_net_bind_service_only(me, up, home, cfg, pid)
    finally:
        # Stop the daemon itself: a SIGTERM to strace only detaches it, and it would run on
        # as an orphan. strace exits with its tracee and is then waited for.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        me.stop(proc, timeout=10)
        if Path(f"/proc/{pid}").exists():  # it outlived strace: it was orphaned, kill it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"the daemon (pid {pid}) did not stop on SIGTERM")
    assert "Traceback" not in log_of(cfg), log_of(cfg)
    if strace is None:
        pytest.skip("strace not installed: capability part checked, syscall trace not")
    calls = trace.read_text()
    names = re.findall(r"^\d+\s+(\w+)\(", calls, re.MULTILINE)
    assert "bind" in names and ("sendmsg" in names or "sendto" in names), calls[-2000:]
    assert not set(names) & set(CLOCK_SETTERS), [ln for ln in calls.splitlines()
                                                  if any(s in ln for s in CLOCK_SETTERS)]


def _check_net_bind_service_only(me: Node, up: Node, home: Path, cfg: Path, pid: int) -> None:
    c = caps(pid)
    assert c["CapEff"] == c["CapPrm"] == c["CapAmb"] == CAP_NET_BIND_SERVICE, c
    assert not c["CapEff"] & CAP_SYS_TIME
    assert open_clock(home / "run" / "clock.shm", 30.0) is not None, log_of(cfg)
    assert wait_for(lambda: {123, 319, 320} <= bound_udp_ports(me, pid), 10.0), log_of(cfg)
    assert wait_for(lambda: served_ntp(up, me.ip4, 123), 15.0, 0.5), log_of(cfg)

    def ptp_master() -> bool:
        try:
            snap = fetch_snapshot(str(home / "run" / "status.sock"))
        except (OSError, StatusUnavailable):
            return False
        return any(s.kind == "ptp" and s.state == "master" for s in snap.sources)

    assert wait_for(ptp_master, 10.0), log_of(cfg)
    assert caps(pid) == c  # nothing gained while running
