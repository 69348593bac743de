"""Real fault: the grandmaster dies (kill -9) while a worse-ranked master stands by (issue 9).

Three namespaces on a bridge: ptp4l GM (priority1 50), ptp4l backup (priority1 60, a SLAVE of
the GM until it goes), and `netclock run` slave-only recording its run. Both masters are
free-running ptp4l on the one shared system clock, so they serve the same time; the backup's own
"master offset" lines (its measurement of the GM) give the masters' measured disagreement.

After ``SIGKILL`` of the GM the daemon must:
* go HOLDOVER (its PTP source goes quiet) with the published time running on, its error staying
  inside the published error bound (plus the stamp noise it had while locked);
* follow the backup (identity in the shared memory = the backup's clockIdentity) within the
  announce receipt timeout of the backup (3 s to become master) plus the daemon's own (3 s to
  drop the old parent) plus qualification (2 Announces), plus a margin for a loaded 2-core box;
* never move its published time by more than the disagreement + 10 µs (issue 9) after the kill.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from pathlib import Path

import pytest

from netclock.observe import LockState
from netclock.platform.clockmap import ClockMap
from tests.faults.faultlib import (
    Probe,
    clock_identity,
    errors,
    probe,
    published_jumps,
    read_record,
    rms,
)
from tests.support.daemons import (
    Lines,
    daemon_config,
    daemon_log,
    open_clock,
    ptp4l_offsets,
    ptp_section,
    start_daemon,
    start_ptp4l,
    wait_locked,
)
from tests.support.netns import Topology, topology_fixture

pytestmark = pytest.mark.interop

#: announce interval 1 s, receipt timeout 3 (both sides): the backup is master ≈3 s after the
#: kill (ptp4l's own timeout), the daemon qualifies it after 2 of its Announces. Generous
#: margin for a loaded 2-core CI box.
FAILOVER_LIMIT_S = 3.0 + 3.0 + 2.0 + 6.0
#: issue 9: no published step larger than 10 µs beyond the masters' disagreement
STEP_MARGIN_NS = 10_000


topo = topology_fixture(3, 231, "ptp4l")


def test_kill_grandmaster_holdover_then_failover_to_backup(topo: Topology, tmp_path: Path) -> None:
    n0, n1, n2 = topo.nodes
    gm = start_ptp4l(n0, 50, tmp_path)
    backup_lines = Lines(start_ptp4l(n1, 60, tmp_path))
    cfg = daemon_config(
        tmp_path,
        "slave",
        ptp_section("slave-only")
        + """
[holdover]
source-timeout-s = 1.5
[clock]
# software stamps on a loaded 2-core box wander by several µs: the default 10 µs lock
# threshold flaps there, and lock quality is not what this test is about
lock-threshold-ns = 30000
""",
    )
    record = tmp_path / "slave.jsonl"
    start_daemon(n2, cfg, "--record", str(record))
    cmap = ClockMap()
    clk = open_clock(tmp_path / "slave" / "clock.shm", 15.0)
    assert clk is not None, daemon_log(cfg)
    assert wait_locked(clk, 15.0), daemon_log(cfg)
    gm_id, backup_id = clock_identity(n0), clock_identity(n1)
    assert clk.status().identity == gm_id
    time.sleep(3.0)  # some seconds of rate measurement for the holdover that follows
    baseline = errors(clk, cmap, 2.0)
    # the masters' measured disagreement: the backup's view of the GM (one line per second)
    offsets = ptp4l_offsets(backup_lines.lines)
    assert len(offsets) >= 5, backup_lines.lines[-10:]
    disagreement = abs(statistics.median(offsets[-5:]))

    t_kill = time.monotonic()
    t_kill_ns = time.monotonic_ns()
    os.kill(gm.pid, signal.SIGKILL)
    n0.stop(gm)  # reaps it (already dead)
    probes: list[Probe] = []
    while time.monotonic() - t_kill < FAILOVER_LIMIT_S + 3.0:
        p = probe(clk, cmap)
        probes.append(p)
        if (
            p.identity == backup_id
            and p.state == LockState.LOCKED
            and time.monotonic() - t_kill > 1.0
        ):
            break
        time.sleep(0.05)
    log = daemon_log(cfg)
    holdover = [p for p in probes if p.state == LockState.HOLDOVER]
    assert holdover, ([(round(p.t - t_kill, 2), p.state.name) for p in probes[::10]], log)
    # the published time kept going through the holdover, inside its own error bound
    # (plus the baseline stamp noise: the bound describes drift since the last fit)
    noise = max(abs(e) for e in baseline)
    for p in holdover:
        assert p.error_ns is not None, "holdover must keep publishing"
        assert abs(p.error_ns) <= p.bound_ns + noise + 5_000, (p, noise)
    t_backup = next((p.t for p in probes if p.identity == backup_id), None)
    assert t_backup is not None, (probes[-1], log)
    t_locked = next(
        (p.t for p in probes if p.identity == backup_id and p.state == LockState.LOCKED), None
    )
    assert t_locked is not None, (probes[-1], log)
    assert t_locked - t_kill < FAILOVER_LIMIT_S, (t_backup - t_kill, t_locked - t_kill)
    after = errors(clk, cmap, 2.0)

    jumps = published_jumps(read_record(record), t_kill_ns)
    biggest = max(jumps)
    # The sources' disagreement as the daemon measures them: both masters serve the one shared
    # clock, so it is how far its view of the true time moved from the GM to the backup (the
    # published error after the failover less the error before). The backup's view of the GM
    # (its ptp4l offsets) crosses another path of the bridge, whose asymmetry differs from the
    # daemon's by several µs from run to run (issue 4), so it is only a floor.
    seen = round(abs(statistics.median(after) - statistics.median(baseline)))
    disagreement = max(disagreement, seen)
    print(
        f"gm kill: baseline error rms {rms(baseline):.0f} ns max {noise} ns; masters "
        f"disagree by {disagreement} ns (the daemon's view moved {seen} ns); holdover at "
        f"+{holdover[0].t - t_kill:.2f} s "
        f"(max |error| {max(abs(p.error_ns or 0) for p in holdover)} ns, bound up to "
        f"{max(p.bound_ns for p in holdover)} ns); backup followed at +{t_backup - t_kill:.2f} s,"
        f" LOCKED at +{t_locked - t_kill:.2f} s; largest published jump after the kill "
        f"{biggest} ns; error after: rms {rms(after):.0f} ns max {max(map(abs, after))} ns"
    )
    assert biggest <= disagreement + STEP_MARGIN_NS, (biggest, disagreement, log)
    assert max(abs(e) for e in after) < 50_000, after
