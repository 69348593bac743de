"""The reader library (netclock.client) against the real writer (netclock.platform.shm_writer)."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netclock.calibration import RATE_DENOM, Calibration
from netclock.client import (
    ClockUnavailable,
    DaemonNotRunning,
    DomainNotFound,
    NotSynchronized,
    SharedClock,
    UnsupportedLayout,
    candidate_paths,
)
from netclock.observe import LockState, Quality, Timescale
from netclock.platform.shm_writer import ShmPermissionError, ShmWriter, resolve_group
from netclock.shm import (
    HEADER_SIZE,
    DomainRecord,
    Header,
    IdentityKind,
    WriterState,
    pack_header,
    record_offset,
    unpack_header,
)

NS = 1_000_000_000


def _rec(domain: int = 0, cal: Calibration | None = None, **kw: object) -> DomainRecord:
    return DomainRecord(domain=domain, calibration=cal, **kw)  # type: ignore[arg-type]


@pytest.fixture
def shm(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = ShmWriter(tmp_path / "clock.shm")
    try:
        yield w
    finally:
        w.close()


def test_file_mode_header_and_no_temp_left(shm: ShmWriter, tmp_path: Path) -> None:
    st = os.stat(shm.path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    with open(shm.path, "rb") as f:
        h = unpack_header(f.read(HEADER_SIZE))
    assert h.state == WriterState.RUNNING and h.writer_pid == os.getpid()
    assert h.record_count == 8 and st.st_size == h.file_size
    assert sorted(os.listdir(tmp_path)) == ["clock.shm"]


def test_now_ns_follows_the_calibration(shm: ShmWriter) -> None:
    m = time.monotonic_ns()
    cal = Calibration(m, 1_700_000_000 * NS, RATE_DENOM + 12345, RATE_DENOM, epoch=4)
    shm.publish([_rec(0, cal, lock_state=LockState.LOCKED)])
    c = SharedClock(shm.path)
    before = time.monotonic_ns()
    now = c.now_ns()
    after = time.monotonic_ns()
    assert cal.to_external(before) <= now <= cal.to_external(after)


@pytest.mark.parametrize(
    "cal",
    [
        Calibration(10**18, 5 * 10**17, RATE_DENOM + 99_999, RATE_DENOM, 1),
        Calibration(-(10**15), 3, RATE_DENOM - 7, RATE_DENOM, 0),
        Calibration(0, 0, 2, 3, 0),
        Calibration(123, -(10**18), (1 << 41), (1 << 41) - 1, 7),
    ],
)
def test_conversions_match_calibration_exactly(shm: ShmWriter, cal: Calibration) -> None:
    shm.publish([_rec(0, cal)])
    c = SharedClock(shm.path)
    for x in [-(10**18), -12345, -1, 0, 1, 2, 3, 999, 10**9 + 7, cal.internal, 4 * 10**18]:
        assert c.to_network(x) == cal.to_external(x)
        assert c.to_monotonic(x) == cal.to_internal(x)


def test_new_calibration_is_picked_up(shm: ShmWriter) -> None:
    shm.publish([_rec(0, Calibration(0, 0, 1, 1))])
    c = SharedClock(shm.path)
    assert c.to_network(1000) == 1000
    shm.publish([_rec(0, Calibration(0, 500, 1, 1, epoch=1))])
    assert c.to_network(1000) == 1500
    assert c.calibration().epoch == 1


def test_unsynchronized_raises_but_status_works(shm: ShmWriter) -> None:
    shm.publish([_rec(0, None, lock_state=LockState.FREERUN)])
    c = SharedClock(shm.path)
    with pytest.raises(NotSynchronized, match="no calibration yet"):
        c.now_ns()
    with pytest.raises(NotSynchronized):
        c.to_monotonic(5)
    st = c.status()
    assert st.lock_state == LockState.FREERUN and not st.synchronized
    shm.publish([_rec(0, Calibration(0, 7, 1, 1))])
    assert c.to_network(0) == 7


def test_status_reports_bound_now(shm: ShmWriter) -> None:
    m = time.monotonic_ns()
    shm.publish(
        [
            _rec(
                0,
                Calibration(m, 0, RATE_DENOM, RATE_DENOM, epoch=2),
                lock_state=LockState.HOLDOVER,
                quality=Quality.HOLDOVER_IN_SPEC,
                timescale=Timescale.TAI,
                error_bound_ns=1000,
                error_growth_ps_per_s=10**9,  # 1 ms per second
                update_mono_ns=m - 2 * NS,
                utc_offset_s=37,
                utc_offset_valid=True,
                identity_kind=IdentityKind.PTP_CLOCK,
                identity=bytes.fromhex("0011 22ff fe33 4455"),
                hops=1,
            )
        ]
    )
    st = SharedClock(shm.path).status()
    assert st.age_ns >= 2 * NS
    assert st.error_bound_ns >= 1000 + 2_000_000
    assert st.error_bound_ns == 1000 + -(-(10**9) * st.age_ns // 10**12)
    assert (st.epoch, st.identity, st.timescale) == (2, "001122.fffe.334455", Timescale.TAI)
    assert (st.lock_state, st.quality, st.utc_offset_s, st.hops) == (
        LockState.HOLDOVER,
        Quality.HOLDOVER_IN_SPEC,
        37,
        1,
    )
    assert st.writer_pid == os.getpid() and st.rate_ppb == 0.0


def test_domain_lookup_and_reassignment(shm: ShmWriter) -> None:
    shm.publish([_rec(0, Calibration(0, 0, 1, 1)), _rec(5, Calibration(0, 5, 1, 1))])
    assert SharedClock(shm.path).to_network(0) == 0
    c5 = SharedClock(shm.path, domain=5)
    assert c5.to_network(0) == 5
    with pytest.raises(DomainNotFound, match=r"domain 9 is not published .*published: 0, 5"):
        SharedClock(shm.path, domain=9)
    # The daemon reorders its slots: the reader finds domain 5 again.
    shm.publish(
        [_rec(7, Calibration(0, 70, 1, 1)), _rec(0, None), _rec(5, Calibration(0, 6, 1, 1))]
    )
    assert c5.to_network(0) == 6
    assert c5.domain == 5


def test_missing_file_says_daemon_not_running(tmp_path: Path) -> None:
    p = tmp_path / "nothing.shm"
    with pytest.raises(DaemonNotRunning, match=f"not running: no shared-memory file at {p}"):
        SharedClock(p)


def test_candidate_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETCLOCK_SHM", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/42")
    assert candidate_paths() == ["/run/user/42/netclock/clock.shm", "/run/netclock/clock.shm"]
    monkeypatch.setenv("NETCLOCK_SHM", "/x.shm")
    assert candidate_paths() == ["/x.shm"]
    assert candidate_paths("/y") == ["/y"]


def test_not_a_netclock_file(tmp_path: Path) -> None:
    p = tmp_path / "junk"
    p.write_bytes(b"hello" * 100)
    with pytest.raises(UnsupportedLayout, match="bad magic"):
        SharedClock(p)


def test_unknown_layout_version(tmp_path: Path) -> None:
    p = tmp_path / "v2.shm"
    raw = bytearray(pack_header(Header(record_count=1)))
    struct.pack_into("<H", raw, 8, 2)
    p.write_bytes(bytes(raw) + bytes(128))
    with pytest.raises(UnsupportedLayout, match="layout version 2 is not supported"):
        SharedClock(p)


def test_stopped_daemon(shm: ShmWriter) -> None:
    shm.publish([_rec(0, Calibration(0, 0, 1, 1))])
    c = SharedClock(shm.path)
    c.now_ns()
    shm.close()
    with pytest.raises(DaemonNotRunning, match="stopped"):
        c.now_ns()
    with pytest.raises(DaemonNotRunning, match="stopped"):
        SharedClock(shm.path)


def test_restarted_daemon_replaces_file_and_readers_follow(tmp_path: Path) -> None:
    path = tmp_path / "clock.shm"
    old = ShmWriter(path)
    old.publish([_rec(0, Calibration(0, 1, 1, 1))])
    c = SharedClock(path)
    assert c.to_network(0) == 1
    ino = os.stat(path).st_ino
    new = ShmWriter(path)
    try:
        assert os.stat(path).st_ino != ino
        new.publish([_rec(0, Calibration(0, 2, 1, 1))])
        assert c.to_network(0) == 2
        with open(path, "rb") as f:
            assert unpack_header(f.read(64)).state == WriterState.RUNNING
    finally:
        new.close()
        old.close()


def test_writer_died_mid_update(shm: ShmWriter) -> None:
    shm.publish([_rec(0, Calibration(0, 0, 1, 1))])
    c = SharedClock(shm.path, spin_limit=1000)
    fd = os.open(shm.path, os.O_RDWR)
    try:
        with mmap.mmap(fd, 0) as mm:
            off = record_offset(0)
            (seq,) = struct.unpack_from("<Q", mm, off)
            struct.pack_into("<Q", mm, off, seq + 1)  # odd: "being written" forever
            with pytest.raises(ClockUnavailable, match="mid-update"):
                c.now_ns()
            struct.pack_into("<Q", mm, off, seq + 2)
            assert c.to_network(3) == 3
    finally:
        os.close(fd)


def test_closed_reader(shm: ShmWriter) -> None:
    shm.publish([_rec(0, Calibration(0, 0, 1, 1))])
    c = SharedClock(shm.path)
    c.close()
    with pytest.raises(ClockUnavailable, match="closed"):
        c.now_ns()


def test_publish_checks_slot_count(shm: ShmWriter) -> None:
    with pytest.raises(ValueError, match="9 records for 8 slots"):
        shm.publish([None] * 9)


def test_unknown_group() -> None:
    with pytest.raises(ValueError, match="unknown group 'no-such-group-xyz'"):
        resolve_group("no-such-group-xyz")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
def test_group_ownership(tmp_path: Path) -> None:
    w = ShmWriter(tmp_path / "g.shm", group=1)
    try:
        assert os.stat(w.path).st_gid == 1
    finally:
        w.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_group_failure_is_reported_clearly() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="netclock-shm-"))  # pytest's tmp is root-only
    tmp_path.chmod(0o777)
    try:
        _group_failure(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _group_failure(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from netclock.platform.shm_writer import ShmWriter, ShmPermissionError\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    ShmWriter({str(tmp_path / 'x.shm')!r}, group=0)\n"
        "except ShmPermissionError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode == 3, r.stderr
    assert "cannot give" in r.stdout and "group 0" in r.stdout and "CAP_CHOWN" in r.stdout
    assert os.listdir(tmp_path) == []  # nothing half-created left behind
    assert issubclass(ShmPermissionError, PermissionError)


# -- ``netclock now`` ---------------------------------------------------------------------------


def _now_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netclock", "now", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_cli_now(shm: ShmWriter) -> None:
    m = time.monotonic_ns()
    offset = 1_700_000_000 * NS
    shm.publish(
        [
            _rec(0, Calibration(m, m + offset, 1, 1), lock_state=LockState.LOCKED),
            _rec(
                3,
                Calibration(m, m + 2 * offset, 1, 1),
                timescale=Timescale.TAI,
                utc_offset_s=37,
                utc_offset_valid=True,
            ),
        ]
    )
    r = _now_cli("--shm", shm.path, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["network_ns"] - d["mono_ns"] == offset
    assert (d["domain"], d["lock_state"], d["timescale"]) == (0, "locked", "arb")
    r = _now_cli("--shm", shm.path, "--domain", "3")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert " TAI  " in first and "(UTC " in first
    assert second.startswith("domain 3  FREERUN  error bound 0 ns  epoch 0")


def test_cli_now_without_daemon(tmp_path: Path) -> None:
    r = _now_cli("--shm", str(tmp_path / "none.shm"))
    assert r.returncode == 1
    assert "netclock daemon is not running" in r.stderr


def test_invalid_record_is_refused_before_the_seqlock(shm: ShmWriter) -> None:
    from netclock.shm import ShmLayoutError

    shm.publish([_rec(0, Calibration(0, 4, 1, 1))])
    c = SharedClock(shm.path, spin_limit=100)
    bad = _rec(0, Calibration(0, 5, 1, 1), identity_kind=IdentityKind.IPV4, identity=b"\1")
    with pytest.raises(ShmLayoutError, match="IPV4 must be 4 bytes"):
        shm.publish([bad])
    assert c.to_network(0) == 4  # the record was not left mid-update


def test_close_with_unlink(tmp_path: Path) -> None:
    w = ShmWriter(tmp_path / "u.shm")
    w.close(unlink=True)
    assert not (tmp_path / "u.shm").exists()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.publish([])
