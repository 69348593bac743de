"""Seqlock stress: four reader processes against a writer updating two records at 1 kHz.

Every field of record *k* (its epoch) is a function of *k* and the domain, so a reader can
check that each record it got is one the writer wrote, whole: a torn read (fields from two
updates) fails the check. The record CRC is checked as well (a mismatch surfaces as
``ClockUnavailable``), and ``to_network`` results must come from one whole calibration.

This file is also the reader program: ``python test_shm_stress.py --reader PATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netclock.calibration import Calibration
from netclock.observe import LockState, Quality, Timescale
from netclock.shm import DomainRecord, IdentityKind

READERS = 4
DURATION_S = 3.0
RATE_HZ = 1000
DOMAINS = (0, 7)


def expected(k: int, domain: int) -> DomainRecord:
    """The record the writer publishes as update ``k`` for ``domain``."""
    return DomainRecord(
        domain=domain,
        calibration=Calibration(
            internal=k + domain,
            external=(k << 20) + domain,
            rate_num=k + 1,
            rate_denom=k + 2 + domain,
            epoch=k,
        ),
        lock_state=LockState(k % 4),
        quality=Quality((k // 4) % 4),
        timescale=Timescale(k % 3),
        error_bound_ns=3 * k + domain,
        error_growth_ps_per_s=k ^ 0xABCDEF,
        update_mono_ns=-k,
        utc_offset_s=(k % 60000) - 30000,
        utc_offset_valid=bool(k & 1),
        leap61=bool(k & 2),
        leap59=bool(k & 4),
        time_traceable=bool(k & 8),
        frequency_traceable=bool(k & 16),
        identity_kind=IdentityKind.PTP_CLOCK,
        identity=((k * 0x9E3779B97F4A7C15 + domain) % (1 << 64)).to_bytes(8, "little"),
        hops=k % 65536,
    )


def reader(path: str) -> dict[str, int]:
    from netclock.client import ClockUnavailable, DaemonNotRunning, SharedClock

    clocks = [SharedClock(path, domain=d) for d in DOMAINS]
    print("ready", flush=True)
    stats = {"records": 0, "conversions": 0, "torn": 0, "unavailable": 0, "distinct": 0}
    last = dict.fromkeys(DOMAINS, -1)
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    i = 0
    while time.monotonic() < deadline:
        c = clocks[i % len(clocks)]
        d = DOMAINS[i % len(clocks)]
        i += 1
        try:
            rec = c.record()
            assert rec.calibration is not None
            k = rec.calibration.epoch
            stats["records"] += 1
            if rec != expected(k, d) or k < last[d]:
                stats["torn"] += 1
            last[d] = k
            seen.add(k)
            v = c.to_network(0)
            stats["conversions"] += 1
            kk = v >> 20
            if not any(
                j >= k
                and (cal := expected(j, d).calibration) is not None
                and cal.to_external(0) == v
                for j in (kk - 1, kk, kk + 1)
            ):
                stats["torn"] += 1
        except DaemonNotRunning:
            break  # the writer closed the file: the run is over
        except ClockUnavailable:
            stats["unavailable"] += 1  # a CRC mismatch or a stuck record
    stats["distinct"] = len(seen)
    return stats


def test_the_checks_catch_a_torn_record() -> None:
    """A record spliced from two updates fails the CRC, and the redundancy check too when the
    splice falls inside the fields (a splice in the trailing reserved bytes leaves a whole
    record 10 with record 11's CRC)."""
    from netclock.shm import ShmLayoutError, pack_record, unpack_record

    a, b = pack_record(expected(10, 0), 20), pack_record(expected(11, 0), 20)
    for cut in (16, 40, 64, 90, 120):
        torn = a[:cut] + b[cut:]
        with pytest.raises(ShmLayoutError, match="CRC"):
            unpack_record(torn)
        if cut < 104:
            _, rec = unpack_record(torn, verify=False)
            assert rec is not None and rec.calibration is not None
            assert rec != expected(rec.calibration.epoch, 0)


@pytest.mark.slow
def test_four_readers_see_no_torn_record(tmp_path: Path) -> None:
    from netclock.platform.shm_writer import ShmWriter

    path = tmp_path / "clock.shm"
    w = ShmWriter(path, slots=2)
    k = 0
    w.publish([expected(k, d) for d in DOMAINS])
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--reader", str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        for _ in range(READERS)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        period = 1_000_000_000 // RATE_HZ
        start = time.monotonic_ns()
        end = start + int(DURATION_S * 1e9)
        nxt = start
        while (now := time.monotonic_ns()) < end:
            if now < nxt:
                time.sleep((nxt - now) / 1e9)
            k += 1
            w.publish([expected(k, d) for d in DOMAINS])
            nxt += period
        w.close()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=30)
            assert p.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        w.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    print(f"\nwriter updates: {k}; readers: {results}")
    assert k > 100
    for r in results:
        assert r["torn"] == 0
        assert r["unavailable"] == 0
        assert r["records"] > 0 and r["conversions"] > 0
        assert r["distinct"] > 50  # the reads really overlapped the writes


if __name__ == "__main__" and sys.argv[1:2] == ["--reader"]:
    print(json.dumps(reader(sys.argv[2])), flush=True)
