"""Two "machines" (network namespaces) capture the same PipeWire producer; align their records.

Every namespace shares the system clock, so the true Δ of each frame pair is 0: whatever
``netclock align`` measures is the error of the chain (NTP sync over a veth bridge, published
calibration, reader, stamping). The per-namespace sync comes from ``ntp_publisher.py``, a
stand-in built from netclock's NTP client, calibration and shared-memory writer, because the
slave daemon that publishes is another issue; swap it for ``netclock run`` when that lands.
Asserted: every frame of both agents is paired and ≥ 99 % lie inside their combined bound.
The |Δ| figures are printed, not asserted (no timing figures in tests).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from capture import pipewire as pw
from capture.align import align, load
from capture.headless import HeadlessPipeWire
from tests.support import netns

pytestmark = pytest.mark.interop
HERE = Path(__file__).parent


def _wait_published(proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if "published" in line:
            return
        if proc.poll() is not None:
            break
    raise AssertionError("publisher did not publish a calibration")


def test_two_namespaces_capture_same_producer(
    pipewire_session: HeadlessPipeWire, tmp_path: Path
) -> None:
    with netns.bridge(3, subnet=207) as topo:
        master, m1, m2 = topo.nodes
        master.python(
            ["-m", "netclock", "ntp", "serve", "--listen", f"{master.ip4}:12399"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        pubs = []
        for i, node in enumerate((m1, m2)):
            pubs.append(
                node.python(
                    [
                        str(HERE / "ntp_publisher.py"),
                        master.ip4,
                        "12399",
                        str(tmp_path / f"{i}.shm"),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        for p in pubs:
            _wait_published(p)
        time.sleep(1.0)  # a few more observations in each fit
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
                        str(tmp_path / f"{i}.shm"),
                        "--out",
                        str(tmp_path / f"{i}.jsonl"),
                        "--max-frames",
                        "50",
                    ],
                    env=pipewire_session.env,
                )
                for i, node in enumerate((m1, m2))
            ]
            for proc in agents:
                assert proc.wait(timeout=20) == 0
        finally:
            prod.close()
    a, bad_a = load(tmp_path / "0.jsonl")
    b, bad_b = load(tmp_path / "1.jsonl")
    assert bad_a == bad_b == 0 and len(a) >= 50 and len(b) >= 50
    assert all(r.synced and r.domain.startswith("UTC:256") for r in a + b)
    assert all(r.raw_ns == prod.produced[r.seq] for r in a + b)
    res = align(a, b, "pts")
    assert res.compared >= 40
    assert res.fraction_inside >= 0.99
    s = res.summary()
    print(
        json.dumps(
            {
                k: s[k]
                for k in (
                    "compared",
                    "abs_delta_p50_ns",
                    "abs_delta_p99_ns",
                    "abs_delta_max_ns",
                    "fraction_inside",
                )
            }
        )
    )
    print("median combined bound ns:", sorted(res.bounds_ns)[len(res.bounds_ns) // 2])
