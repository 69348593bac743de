"""The Unix-socket status API (real asyncio server on a temp socket), snapshots' JSON form,
and ``netclock status`` against the real server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.cli import status as status_cli
from netclock.observe import (
    DomainSnapshot,
    LockState,
    PacketCounters,
    Quality,
    Snapshot,
    SnapshotError,
    SourceSnapshot,
    Timescale,
)
from netclock.platform.status_socket import (
    MAX_LINE,
    StatusServer,
    StatusUnavailable,
    fetch_snapshot,
    query,
)

SNAP = Snapshot(
    taken_mono_ns=70_000_000_000,
    version="1.2.3",
    pid=99,
    started_mono_ns=10_000_000_000,
    domains=(
        DomainSnapshot(
            domain=0,
            lock_state=LockState.LOCKED,
            quality=Quality.LOCKED,
            timescale=Timescale.TAI,
            error_bound_ns=180,
            epoch=2,
            steps_total=1,
            internal=5,
            external=6,
            rate_num=7,
            rate_denom=8,
            rate_ppb=3.25,
            r_squared=0.9999,
            grandmaster="001122.fffe.334455",
            utc_offset_s=37,
            utc_offset_valid=True,
            update_mono_ns=69_000_000_000,
        ),
    ),
    sources=(
        SourceSnapshot(
            name="ptp:veth0:0",
            kind="ptp",
            priority=1,
            selected=True,
            reachable=True,
            state="SLAVE",
            identity="001122.fffe.334455",
            offset_ns=-42,
            path_delay_ns=12_345,
            rate_ppb=3.25,
            stamp_source="kernel",
            packets=(PacketCounters("sync", 100, 0, 1), PacketCounters("delay_req", 0, 50, 0)),
        ),
    ),
)


class _ServerThread:
    """A StatusServer on its own event loop in a background thread."""

    def __init__(self, path: Path, snapshot: Callable[[], Snapshot | None]) -> None:
        self.server = StatusServer(path, snapshot)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[Snapshot | None]]]:
    current: list[Snapshot | None] = [SNAP]
    path = tmp_path / "status.sock"
    srv = _ServerThread(path, lambda: current[0])
    try:
        yield str(path), current
    finally:
        srv.stop()


def _raw(path: str, data: bytes) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


# -- server and client --------------------------------------------------------------------------


def test_status_round_trip(served: tuple[str, list[Snapshot | None]]) -> None:
    path, _ = served
    assert fetch_snapshot(path) == SNAP
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660


def test_several_requests_on_one_connection(served: tuple[str, list[Snapshot | None]]) -> None:
    path, _ = served
    out = _raw(path, b'{"get":"version"}\n\nnot json\n{"get":"nope"}\n{"get":"status"}\n')
    assert out[0]["ok"] is True and isinstance(out[0]["version"], str)
    assert out[1]["ok"] is False and "not JSON" in str(out[1]["error"])
    assert out[2] == {"ok": False, "error": "unknown request 'nope' (known: status, version)"}
    assert Snapshot.from_dict(out[3]["status"]) == SNAP


def test_bad_request_shapes(served: tuple[str, list[Snapshot | None]]) -> None:
    path, _ = served
    out = _raw(path, b'[1]\n{"get":"status","x":1}\n')
    assert all(r["ok"] is False and "must be" in str(r["error"]) for r in out)


def test_overlong_line_is_refused(served: tuple[str, list[Snapshot | None]]) -> None:
    path, _ = served
    out = _raw(path, b"x" * (MAX_LINE + 10) + b"\n")
    assert out == [{"ok": False, "error": f"line over {MAX_LINE} bytes"}]
    assert fetch_snapshot(path) == SNAP  # the server still serves


def test_no_snapshot_yet(served: tuple[str, list[Snapshot | None]]) -> None:
    path, current = served
    current[0] = None
    with pytest.raises(StatusUnavailable, match="daemon is starting"):
        query(path)


def test_missing_socket_message(tmp_path: Path) -> None:
    p = str(tmp_path / "none.sock")
    with pytest.raises(StatusUnavailable, match=f"no status socket at {p}: is the netclock"):
        query(p)


def test_stale_socket_replaced_live_socket_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # file left behind, nobody listening
    with pytest.raises(StatusUnavailable, match="nothing listens"):
        query(str(path))
    srv = _ServerThread(path, lambda: SNAP)
    try:
        assert fetch_snapshot(str(path)) == SNAP
        with pytest.raises(StatusUnavailable, match="in use"):
            _ServerThread(path, lambda: SNAP)
    finally:
        srv.stop()
    assert not path.exists()  # removed on close


# -- the JSON form ------------------------------------------------------------------------------


def test_snapshot_json_round_trip() -> None:
    assert Snapshot.from_json(SNAP.to_json()) == SNAP
    assert json.loads(SNAP.to_json())["domains"][0]["lock_state"] == "locked"


def test_snapshot_json_errors() -> None:
    d = SNAP.to_dict()
    with pytest.raises(SnapshotError, match="snapshot_version 7"):
        Snapshot.from_dict({**d, "snapshot_version": 7})
    bad = json.loads(SNAP.to_json())
    bad["domains"][0]["lock_state"] = "wobbly"
    with pytest.raises(SnapshotError, match=r"domains\[0\].lock_state: 'wobbly' is not one of"):
        Snapshot.from_dict(bad)
    bad = json.loads(SNAP.to_json())
    del bad["sources"][0]["packets"][0]["sent"]
    with pytest.raises(SnapshotError, match=r"sources\[0\].packets\[0\].sent: missing"):
        Snapshot.from_dict(bad)
    with pytest.raises(SnapshotError, match="not valid JSON"):
        Snapshot.from_json("{")


_i = st.integers(-(1 << 70), 1 << 70)
_f = st.none() | st.floats(allow_nan=False, allow_infinity=False)


@given(
    st.builds(
        Snapshot,
        taken_mono_ns=_i,
        program=st.text(),
        version=st.text(),
        pid=_i,
        started_mono_ns=_i,
        domains=st.tuples(
            st.builds(
                DomainSnapshot,
                domain=_i,
                lock_state=st.sampled_from(list(LockState)),
                quality=st.sampled_from(list(Quality)),
                timescale=st.sampled_from(list(Timescale)),
                error_bound_ns=_i,
                internal=st.none() | _i,
                rate_ppb=_f,
                r_squared=_f,
                grandmaster=st.text(),
                leap61=st.booleans(),
            )
        ),
        sources=st.lists(
            st.builds(
                SourceSnapshot,
                name=st.text(),
                kind=st.text(),
                offset_ns=st.none() | _i,
                rate_ppb=_f,
                packets=st.lists(st.builds(PacketCounters, st.text(), _i, _i, _i)).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    )
)
def test_snapshot_json_round_trip_any(snap: Snapshot) -> None:
    assert Snapshot.from_json(snap.to_json()) == snap


@settings(max_examples=50)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
        max_leaves=8,
    )
)
def test_any_json_is_a_snapshot_or_snapshot_error(data: object) -> None:
    with contextlib.suppress(SnapshotError):
        Snapshot.from_dict(data)


# -- the CLI against the real server -----------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    status_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_status_table(
    served: tuple[str, list[Snapshot | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = served
    assert _cli(["status", "--socket", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("netclock 1.2.3  pid 99  up 60.000 s\n")
    lines = out.splitlines()
    dom = next(line for line in lines if line.startswith("0 "))
    for cell in ("LOCKED", "locked", "TAI", "180 ns", "+3.250", "0.999900", "001122.fffe.334455"):
        assert cell in dom
    src = next(line for line in lines if line.startswith("*ptp:veth0:0"))
    for cell in ("SLAVE", "yes", "-42 ns", "12.345 us", "kernel", " 100 ", " 50 ", " 1"):
        assert cell in src


def test_cli_status_json(
    served: tuple[str, list[Snapshot | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = served
    assert _cli(["status", "--json", "--socket", path]) == 0
    assert Snapshot.from_json(capsys.readouterr().out) == SNAP


def test_cli_status_without_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["status", "--socket", str(tmp_path / "x.sock")]) == 1
    assert "is the netclock daemon running?" in capsys.readouterr().err


def test_resolve_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    from netclock.platform.shm_writer import resolve_shm_path
    from netclock.platform.status_socket import resolve_socket_path

    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert resolve_shm_path("") == "/run/user/7/netclock/clock.shm"
    assert resolve_shm_path("/a/b.shm") == "/a/b.shm"
    assert resolve_socket_path("/x.sock", "/a/b.shm") == "/x.sock"
    assert resolve_socket_path("", "/a/b.shm") == "/a/status.sock"
    assert resolve_socket_path("", "") == "/run/user/7/netclock/status.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert resolve_shm_path("") == "/run/netclock/clock.shm"


def test_close_ends_the_connections_it_still_serves(tmp_path: Path) -> None:
    """A client still connected (idle, or connecting as the server closes) has its handler
    ended by close(): nothing is left pending for a closed loop's garbage collector."""

    async def main() -> None:
        server = StatusServer(tmp_path / "status.sock", lambda: SNAP)
        await server.start()
        idle = await asyncio.open_unix_connection(str(tmp_path / "status.sock"))
        late = await asyncio.open_unix_connection(str(tmp_path / "status.sock"))
        await asyncio.sleep(0.05)  # the idle one's handler is waiting for a line
        await server.close()
        me = asyncio.current_task()
        assert all(t.done() for t in asyncio.all_tasks() if t is not me)
        for _, w in (idle, late):
            w.close()

    asyncio.run(main())
