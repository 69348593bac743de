"""Two "machines" (network namespaces) capture the same PipeWire producer; align their records.

Real daemons: a grandmaster ``netclock run`` serving NTP from its reference, and in each of two
namespaces a slave ``netclock run`` synced to it and a ``netclock capture`` agent reading that
slave's shared memory (see :mod:`tests.capture.twomachines`). Every namespace shares the system
clock, so the true Δ of each pair is 0 and ``netclock align`` measures the chain's error.

The slaves reach the grandmaster over direct veth links (a star): this kernel's bridge adds
10-20 µs of cold-path latency with µs of jitter to each packet, for every implementation, which
no daemon can filter down to the 2 µs target (see ``bench/capture_two_machines.py --topology
bridge``). Both slaves must be LOCKED before capture starts.

Asserted, on the output of the real ``netclock align --json`` CLI: every frame of both agents
carries the producer's pts exactly, is synced, in the same domain; p99 |Δ| ≤ 2 µs (issue 7);
≥ 99 % of pairs inside their combined uncertainty (the bounds are honest), and none unsynced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capture.headless import HeadlessPipeWire
from tests.capture import twomachines
from tests.support.netns import REPO_ROOT

pytestmark = pytest.mark.interop

P99_TARGET_NS = 2_000


def test_two_namespaces_capture_same_producer(
    pipewire_session: HeadlessPipeWire, tmp_path: Path
) -> None:
    r = twomachines.run(
        tmp_path, pipewire_session.env, frames=100, protocol="ntp", topology="star",
        settle=3.0, lock_timeout=30.0,
    )
    assert r.daemon_exit == [None, None, None], "a daemon died during the run"
    assert r.bad_lines == 0 and len(r.a) >= 100 and len(r.b) >= 100
    assert all(rec.raw_ns == r.produced[rec.seq] for rec in r.a + r.b)
    assert all(rec.net_ns is not None and rec.synced for rec in r.a + r.b)
    assert len({rec.domain for rec in r.a + r.b}) == 1

    out = subprocess.run(
        [sys.executable, "-m", "netclock", "align", "--by", "pts", "--json",
         str(tmp_path / "0.jsonl"), str(tmp_path / "1.jsonl")],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=True,
    )
    s = json.loads(out.stdout)
    print(json.dumps(s))
    assert s["bad_lines_a"] == s["bad_lines_b"] == 0
    assert {k: s[k] for k in r.result.summary()} == r.result.summary()  # the CLI agrees
    assert s["compared"] >= 80, s
    assert s["unsynced_pairs"] == 0, s
    assert s["fraction_inside"] >= 0.99, s
    assert s["abs_delta_p99_ns"] <= P99_TARGET_NS, s
