"""SO_TIMESTAMPING layer: constants, pure cmsg parsers (crafted bytes + hypothesis), and real
loopback sockets (kernel RX/TX stamps, error-queue draining, userspace fallback labels)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import struct
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.platform import cmsg
from netclock.platform.clockmap import ClockMap, Mapped
from netclock.platform.cmsg import (
    Ancillary,
    CmsgError,
    pack_extended_err,
    pack_scm_timestamping,
    parse_ancillary,
    parse_extended_err,
    parse_scm_timestamping,
    tx_software_stamp,
)
from netclock.platform.timestamping import (
    SOCKET_FLAGS,
    Received,
    SocketClosedError,
    Stamp,
    StampedSocket,
    enable_timestamping,
    query_ts_info,
    request_hardware_timestamping,
)
from netclock.platform.udp import open_udp

T = TypeVar("T")
RT = 1_795_000_000_123_456_789  # a CLOCK_REALTIME value in ns


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


# ---------------------------------------------------------------------------------------------
# Constants against the installed UAPI headers
# ---------------------------------------------------------------------------------------------

INCLUDE = Path("/usr/include")


def _header_values(path: Path, pattern: str) -> dict[str, int]:
    """``NAME -> value`` for each (name, number) match; numbers are decimal or hex."""
    return {name: int(value, 0) for name, value in re.findall(pattern, path.read_text())}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not installed (apt-get install linux-libc-dev)")
    return path


def test_sof_flags_match_net_tstamp_h() -> None:
    shifts = _header_values(
        _need(INCLUDE / "linux/net_tstamp.h"),
        r"\b(SOF_TIMESTAMPING_[A-Z_]+)\s*=\s*\(\s*1\s*<<\s*(\d+)\s*\)",
    )
    values = {name: 1 << shift for name, shift in shifts.items()}
    assert len(values) >= 15
    for name, value in values.items():
        if hasattr(cmsg, name):
            assert getattr(cmsg, name) == value, name
    for name in ("TX_SOFTWARE", "RX_SOFTWARE", "SOFTWARE", "OPT_ID", "OPT_TSONLY", "RAW_HARDWARE"):
        assert values[f"SOF_TIMESTAMPING_{name}"] == getattr(cmsg, f"SOF_TIMESTAMPING_{name}")


def test_socket_and_errqueue_constants_match_headers() -> None:
    define = r"#define\s+({})\s+(0x[0-9a-fA-F]+|\d+)\b"
    sock_h = _header_values(
        _need(INCLUDE / "asm-generic/socket.h"),
        define.format("SO_TIMESTAMPING_OLD|SO_TIMESTAMPNS_OLD|SO_SELECT_ERR_QUEUE|SO_RCVBUFFORCE"),
    )
    assert sock_h["SO_TIMESTAMPING_OLD"] == cmsg.SO_TIMESTAMPING == cmsg.SCM_TIMESTAMPING
    assert sock_h["SO_TIMESTAMPNS_OLD"] == cmsg.SO_TIMESTAMPNS
    assert sock_h["SO_SELECT_ERR_QUEUE"] == cmsg.SO_SELECT_ERR_QUEUE
    assert sock_h["SO_RCVBUFFORCE"] == cmsg.SO_RCVBUFFORCE
    assert _header_values(_need(INCLUDE / "linux/in.h"), define.format("IP_RECVERR")) == {
        "IP_RECVERR": cmsg.IP_RECVERR
    }
    assert _header_values(_need(INCLUDE / "linux/in6.h"), define.format("IPV6_RECVERR")) == {
        "IPV6_RECVERR": cmsg.IPV6_RECVERR
    }
    errq = _header_values(
        _need(INCLUDE / "linux/errqueue.h"), define.format("SO_EE_ORIGIN_TXSTATUS")
    )
    assert errq["SO_EE_ORIGIN_TXSTATUS"] == cmsg.SO_EE_ORIGIN_TIMESTAMPING == 4
    ios = _header_values(
        _need(INCLUDE / "linux/sockios.h"),
        define.format("SIOCSHWTSTAMP|SIOCGHWTSTAMP|SIOCETHTOOL"),
    )
    assert ios == {
        "SIOCSHWTSTAMP": cmsg.SIOCSHWTSTAMP,
        "SIOCGHWTSTAMP": cmsg.SIOCGHWTSTAMP,
        "SIOCETHTOOL": cmsg.SIOCETHTOOL,
    }
    # The kernel agrees that 37 is SO_TIMESTAMPING: it reads our flags back.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, cmsg.SO_TIMESTAMPING, cmsg.SOFTWARE_FLAGS)
        assert s.getsockopt(socket.SOL_SOCKET, cmsg.SO_TIMESTAMPING) == cmsg.SOFTWARE_FLAGS


def test_levels_match_socket_module() -> None:
    assert cmsg.SOL_SOCKET == socket.SOL_SOCKET
    assert cmsg.SOL_IP == socket.SOL_IP
    assert cmsg.SOL_IPV6 == socket.IPPROTO_IPV6


# ---------------------------------------------------------------------------------------------
# Pure parsers on crafted bytes
# ---------------------------------------------------------------------------------------------


def test_scm_timestamping_software_only() -> None:
    data = struct.pack("=qqqqqq", RT // 10**9, RT % 10**9, 0, 0, 0, 0)
    ts = parse_scm_timestamping(data)
    assert ts.software_ns == RT and ts.hardware_ns is None
    assert pack_scm_timestamping(RT) == data


def test_scm_timestamping_hardware_only() -> None:
    ts = parse_scm_timestamping(struct.pack("=qqqqqq", 0, 0, 0, 0, 37, 5))
    assert ts.software_ns is None and ts.hardware_ns == 37 * 10**9 + 5


def test_scm_timestamping_errors() -> None:
    with pytest.raises(CmsgError, match="48 bytes"):
        parse_scm_timestamping(b"\0" * 47)
    with pytest.raises(CmsgError, match="tv_nsec"):
        parse_scm_timestamping(struct.pack("=qqqqqq", 1, 10**9, 0, 0, 0, 0))
    with pytest.raises(CmsgError, match="tv_nsec"):
        parse_scm_timestamping(struct.pack("=qqqqqq", 0, 0, 0, 0, 1, -1))


def test_extended_err_tx_timestamp() -> None:
    data = struct.pack("=IBBBBII", errno.ENOMSG, 4, 0, 0, 0, cmsg.SCM_TSTAMP_SND, 41)
    err = parse_extended_err(data + b"\0" * 16)  # an offender sockaddr may follow
    assert err.is_timestamp and err.ee_data == 41 and err.ee_info == cmsg.SCM_TSTAMP_SND
    assert pack_extended_err(ee_data=41) == data
    with pytest.raises(CmsgError, match="16 bytes"):
        parse_extended_err(data[:15])


def test_ancillary_tx_report_ipv4_and_ipv6() -> None:
    stamp = pack_scm_timestamping(RT)
    for level, typ in ((cmsg.SOL_IP, cmsg.IP_RECVERR), (cmsg.SOL_IPV6, cmsg.IPV6_RECVERR)):
        anc = parse_ancillary(
            [
                (cmsg.SOL_SOCKET, cmsg.SCM_TIMESTAMPING, stamp),
                (level, typ, pack_extended_err(ee_data=7)),
            ]
        )
        assert anc.tx_key == 7 and anc.tstamp_type == cmsg.SCM_TSTAMP_SND
        assert anc.timestamping is not None and anc.timestamping.software_ns == RT


def test_ancillary_icmp_error_is_not_a_tx_stamp() -> None:
    icmp = pack_extended_err(
        ee_errno=errno.ECONNREFUSED, ee_origin=cmsg.SO_EE_ORIGIN_ICMP, ee_data=3
    )
    anc = parse_ancillary([(cmsg.SOL_IP, cmsg.IP_RECVERR, icmp)])
    assert anc.error is not None and anc.tx_key is None and anc.tstamp_type is None


def test_ancillary_skips_unknown_cmsgs() -> None:
    pktinfo = (cmsg.SOL_SOCKET, cmsg.SCM_TIMESTAMPING_PKTINFO, b"\1" * 8)
    anc = parse_ancillary([pktinfo, (99, 1, b"")])
    assert anc == Ancillary()


_cmsg_item = st.tuples(
    st.sampled_from([cmsg.SOL_SOCKET, cmsg.SOL_IP, cmsg.SOL_IPV6, 6, 17, 255]),
    st.sampled_from([cmsg.SCM_TIMESTAMPING, cmsg.IP_RECVERR, cmsg.IPV6_RECVERR, 0, 29, 35, 58]),
    st.binary(max_size=96),
)


@given(st.lists(_cmsg_item, max_size=6))
def test_parse_ancillary_never_crashes(items: list[tuple[int, int, bytes]]) -> None:
    try:
        anc = parse_ancillary(items)
    except CmsgError:
        return
    assert isinstance(anc, Ancillary)
    if anc.timestamping is not None and anc.timestamping.software_ns is not None:
        assert anc.timestamping.software_ns % 10**9 < 10**9


def _stamp_payload() -> st.SearchStrategy[bytes]:
    """SCM_TIMESTAMPING payloads: well-formed (software, hardware, both, none) or not."""
    ns = st.one_of(st.none(), st.integers(1, 2**62))
    return st.one_of(
        st.builds(lambda sw, hw: pack_scm_timestamping(sw, hw), ns, ns),
        st.builds(lambda s, n: struct.pack("=qqqqqq", s, n, 0, 0, 0, 0),
                  st.integers(-3, 3), st.integers(-1, 2 * 10**9)),
        st.binary(max_size=56),
    )


def _err_payload() -> st.SearchStrategy[bytes]:
    """sock_extended_err payloads: TX stamp reports, ICMP errors, odd origins, short ones."""
    return st.one_of(
        st.builds(
            lambda e, o, k, tail: pack_extended_err(ee_errno=e, ee_origin=o, ee_data=k) + tail,
            st.sampled_from([errno.ENOMSG, errno.ECONNREFUSED, 0]),
            st.sampled_from([cmsg.SO_EE_ORIGIN_TIMESTAMPING, cmsg.SO_EE_ORIGIN_ICMP, 0, 5]),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=16),
        ),
        st.binary(max_size=20),
    )


_tx_item = st.one_of(
    st.tuples(st.just(cmsg.SOL_SOCKET), st.just(cmsg.SCM_TIMESTAMPING), _stamp_payload()),
    st.tuples(st.just(cmsg.SOL_IP), st.just(cmsg.IP_RECVERR), _err_payload()),
    st.tuples(st.just(cmsg.SOL_IPV6), st.just(cmsg.IPV6_RECVERR), _err_payload()),
    _cmsg_item,
)


@given(st.lists(_tx_item, max_size=3))
def test_tx_fast_path_agrees_with_parse_ancillary(items: list[tuple[int, int, bytes]]) -> None:
    """The TX-report fast path says nothing parse_ancillary would decode otherwise: where it
    answers, the full parse gives the same key and software stamp and no hardware stamp."""
    fast = tx_software_stamp(items)
    if fast is None:
        return
    anc = parse_ancillary(items)  # must not raise
    assert anc.tx_key == fast[0]
    assert anc.timestamping is not None
    assert anc.timestamping.software_ns == fast[1] and anc.timestamping.hardware_ns is None


def test_tx_fast_path_takes_the_kernels_report_in_either_order() -> None:
    stamp = (cmsg.SOL_SOCKET, cmsg.SCM_TIMESTAMPING, pack_scm_timestamping(RT))
    for err in ((cmsg.SOL_IP, cmsg.IP_RECVERR, pack_extended_err(ee_data=9)),
                (cmsg.SOL_IPV6, cmsg.IPV6_RECVERR, pack_extended_err(ee_data=9))):
        assert tx_software_stamp([stamp, err]) == (9, RT)
        assert tx_software_stamp([err, stamp]) == (9, RT)
    icmp = (cmsg.SOL_IP, cmsg.IP_RECVERR, pack_extended_err(
        ee_errno=errno.ECONNREFUSED, ee_origin=cmsg.SO_EE_ORIGIN_ICMP, ee_data=9))
    hw = (cmsg.SOL_SOCKET, cmsg.SCM_TIMESTAMPING, pack_scm_timestamping(RT, 5))
    err = (cmsg.SOL_IP, cmsg.IP_RECVERR, pack_extended_err(ee_data=9))
    assert tx_software_stamp([stamp, icmp]) is None  # not a stamp report: the full parse
    assert tx_software_stamp([hw, err]) is None  # a hardware stamp: the full parse maps it
    assert tx_software_stamp([stamp]) is None and tx_software_stamp([stamp, err, err]) is None


def test_the_kernels_tx_report_takes_the_fast_path() -> None:
    """What this kernel puts on the error queue for a software-stamped send is what the fast
    path takes, with the key and stamp the full parse reads."""
    rx = open_udp("127.0.0.1", 0)
    tx = open_udp("127.0.0.1", 0)
    try:
        enable_timestamping(tx, SOCKET_FLAGS)
        flags = struct.pack("=I", cmsg.SOF_TIMESTAMPING_TX_SOFTWARE)
        tx.sendmsg([b"x"], [(cmsg.SOL_SOCKET, cmsg.SO_TIMESTAMPING, flags)], 0,
                   rx.getsockname())
        deadline = time.monotonic() + 2.0
        while True:
            try:
                _, anc, _, _ = tx.recvmsg(0, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "no TX stamp on the error queue"
                time.sleep(0.001)
        fast = tx_software_stamp(anc)
        assert fast is not None, anc
        full = parse_ancillary(anc)
        assert full.timestamping is not None
        assert fast == (full.tx_key, full.timestamping.software_ns)
    finally:
        rx.close()
        tx.close()


@given(st.integers(-(2**62), 2**62), st.one_of(st.none(), st.integers(1, 2**62)))
def test_scm_timestamping_round_trip(sw: int, hw: int | None) -> None:
    ts = parse_scm_timestamping(pack_scm_timestamping(sw, hw))
    assert ts.software_ns == (sw or None)
    assert ts.hardware_ns == hw


# ---------------------------------------------------------------------------------------------
# Real sockets on loopback
# ---------------------------------------------------------------------------------------------

Bounds = tuple[int, int]


async def _stamped_send(
    sock: StampedSocket, data: bytes, addr: tuple[Any, ...]
) -> tuple[Stamp | None, Bounds]:
    before = time.monotonic_ns()
    fut = sock.send_event(data, addr)
    after = time.monotonic_ns()
    return await fut, (before, after)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_loopback_kernel_rx_and_tx_stamps_are_sane(host: str) -> None:
    async def main() -> None:
        shared = ClockMap()
        a = StampedSocket(open_udp(host), clock_map=shared)
        b = StampedSocket(open_udp(host), clock_map=shared)
        try:
            assert a.mode == b.mode == "kernel"
            for i in range(20):
                tx, (before, after) = await _stamped_send(a, b"ping %d" % i, b.local_address)
                rx = await b.recv()
                got = time.monotonic_ns()
                assert tx is not None and tx.source == "kernel"
                assert rx.stamp_source == "kernel" and rx.data == b"ping %d" % i
                slack = tx.uncertainty_ns + 1
                # TX stamp between the readings around sendmsg (after REALTIME→MONOTONIC).
                assert before - slack <= tx.ns <= after + slack
                # RX stamp after the send started and before recv() returned.
                assert before - slack <= rx.rx_ns <= got + slack
                assert tx.ns <= rx.rx_ns + 2 * slack
                assert rx.addr[:2] == a.local_address[:2]
            assert a.counters.tx_kernel == 20 and a.counters.tx_user == 0
            assert a.counters.tx_unmatched == 0 and a.counters.tx_timeouts == 0
            assert b.counters.rx_kernel == 20 and b.counters.rx_user == 0
        finally:
            a.close()
            b.close()

    run(main())


def test_a_stamped_send_leaves_the_loops_epoll_set_and_comes_back() -> None:
    """The kernel reports a TX stamp to the socket's waiters before the datagram goes on: in
    an epoll set that work falls inside the stamped interval, so the socket is off the set for
    the send. Reading still works around it, and a paused (polled) socket stays off."""

    seen: list[bool] = []

    class Probe(StampedSocket):

        def _sendmsg(self, data: bytes, ancdata: list[tuple[int, int, bytes]],
                     addr: Any) -> None:
            if ancdata:  # a stamped send; remove_reader is True only if it was still on
                seen.append(self.loop.remove_reader(self.sock.fileno()))
            super()._sendmsg(data, ancdata, addr)

    async def main() -> None:
        a = Probe(open_udp("127.0.0.1"))
        b = StampedSocket(open_udp("127.0.0.1"))
        try:
            assert a.mode == "kernel"
            for i in range(3):
                tx = await a.send_event(b"x%d" % i, b.local_address)
                assert tx is not None and tx.source == "kernel"
                assert (await b.recv()).data == b"x%d" % i
                b.send_general(b"back %d" % i, a.local_address)  # a reads again after the send
                assert (await a.recv()).data == b"back %d" % i
            a.pause_reader()
            await a.send_event(b"polled", b.local_address)
            assert seen == [False] * 4
            assert a.loop.remove_reader(a.sock.fileno()) is False  # a paused socket stays off
        finally:
            a.close()
            b.close()

    run(main())


def _kernel_at_least(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= (major, minor)


@pytest.mark.parametrize("explicit_keys", [True, False])
def test_general_sends_do_not_consume_opt_id_keys(explicit_keys: bool) -> None:
    async def main() -> None:
        a = StampedSocket(open_udp("127.0.0.1"), explicit_keys=explicit_keys)
        b = StampedSocket(open_udp("127.0.0.1"))
        try:
            keys = []
            stamps: list[Stamp | None] = []
            for i in range(6):
                a.send_general(b"general", b.local_address)
                keys.append(a.send_event_cb(b"event %d" % i, b.local_address, stamps.append))
            await asyncio.sleep(0.05)
            assert keys == list(range(6))
            if not explicit_keys:
                assert a.key_mode == "counted"
            else:
                assert a.key_mode == ("explicit" if _kernel_at_least(6, 13) else "counted")
            assert len(stamps) == 6 and all(s is not None and s.source == "kernel" for s in stamps)
            ns = [s.ns for s in stamps if s is not None]
            assert ns == sorted(ns)
            assert a.counters.tx_general == 6 and a.counters.tx_event == 6
            assert a.counters.errqueue_reads == 6 and a.counters.tx_unmatched == 0
            received = [await b.recv() for _ in range(12)]
            assert [r.data for r in received][:2] == [b"general", b"event 0"]
        finally:
            a.close()
            b.close()

    run(main())


def test_pending_errqueue_does_not_make_the_loop_spin() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        s = StampedSocket(open_udp("127.0.0.1"))
        peer = open_udp("127.0.0.1")
        try:
            # Queue a TX stamp behind StampedSocket's back: only the reader can drain it.
            tx_on = struct.pack("=I", cmsg.SOF_TIMESTAMPING_TX_SOFTWARE)
            s.sock.sendmsg([b"x"], [(socket.SOL_SOCKET, cmsg.SO_TIMESTAMPING, tx_on)], 0,
                           peer.getsockname())
            await asyncio.sleep(0.2)
            assert s.counters.errqueue_reads == 1 and s.counters.tx_unmatched == 1
            bounded = s.counters.reader_calls

            # Control: the same situation with a reader that skips the error queue spins.
            raw = open_udp("127.0.0.1")
            raw.setblocking(False)
            raw.setsockopt(socket.SOL_SOCKET, cmsg.SO_TIMESTAMPING, cmsg.SOFTWARE_FLAGS)
            calls = 0

            def naive() -> None:
                nonlocal calls
                calls += 1
                with contextlib.suppress(BlockingIOError):
                    raw.recvmsg(2048, 512)

            loop.add_reader(raw.fileno(), naive)
            raw.sendmsg([b"y"], [], 0, peer.getsockname())
            await asyncio.sleep(0.2)
            loop.remove_reader(raw.fileno())
            raw.close()
            return bounded, calls
        finally:
            s.close()
            peer.close()

    bounded, spinning = run(main())
    assert bounded <= 2  # one wakeup for the stamp (EPOLLERR), drained, then quiet
    assert spinning > 50  # level-triggered EPOLLERR: the naive reader is called over and over


def test_reader_batch_is_bounded_then_errqueue_drained() -> None:
    async def main() -> None:
        rx = StampedSocket(open_udp("127.0.0.1"), batch=16, on_receive=got.append)
        tx = open_udp("127.0.0.1")
        try:
            for i in range(40):
                tx.sendto(b"%d" % i, rx.local_address)
            # A TX stamp waiting in rx's own error queue, to be drained after the batch.
            tx_on = struct.pack("=I", cmsg.SOF_TIMESTAMPING_TX_SOFTWARE)
            rx.sock.sendmsg([b"z"], [(socket.SOL_SOCKET, cmsg.SO_TIMESTAMPING, tx_on)], 0,
                            tx.getsockname())
            rx.handle_readable()  # one reader call, as the loop would make it
            assert len(got) == 16
            assert rx.counters.errqueue_reads == 1
            await asyncio.sleep(0.1)  # the loop's reader picks up the rest
            assert len(got) == 40
            assert [r.data for r in got] == [b"%d" % i for i in range(40)]
        finally:
            rx.close()
            tx.close()

    got: list[Received] = []
    run(main())


def test_userspace_fallback_is_labelled() -> None:
    async def main() -> None:
        a = StampedSocket(open_udp("127.0.0.1"), timestamping=False)
        b = StampedSocket(open_udp("127.0.0.1"), timestamping=False)
        try:
            assert a.mode == "user"
            tx, (before, after) = await _stamped_send(a, b"u", b.local_address)
            rx = await b.recv()
            assert tx is not None and tx.source == "user" and before <= tx.ns <= after
            assert rx.stamp_source == "user" and rx.stamp.uncertainty_ns == 0
            assert a.counters.tx_user == 1 and a.counters.tx_kernel == 0
            assert b.counters.rx_user == 1 and b.counters.rx_kernel == 0
        finally:
            a.close()
            b.close()

    run(main())


def test_missing_tx_stamp_times_out_to_user_stamp_or_none() -> None:
    async def main() -> None:
        peer = open_udp("127.0.0.1")
        # Counted keys (no SCM_TS_OPT_ID), so the counter can be put out of step below.
        fallback = StampedSocket(open_udp("127.0.0.1"), tx_timeout_s=0.05, explicit_keys=False)
        strict = StampedSocket(
            open_udp("127.0.0.1"), tx_timeout_s=0.05, user_fallback=False, explicit_keys=False
        )
        try:
            for s in (fallback, strict):
                # Put the key counter out of step with the kernel's: the real stamp (key 0)
                # then matches nothing and the send waits for a key that never comes.
                s._next_key = 1000
            stamp, (before, after) = await _stamped_send(fallback, b"a", peer.getsockname())
            assert stamp is not None and stamp.source == "user" and before <= stamp.ns <= after
            assert fallback.counters.tx_timeouts == 1 and fallback.counters.tx_user == 1
            assert fallback.counters.tx_unmatched == 1
            none, _ = await _stamped_send(strict, b"b", peer.getsockname())
            assert none is None and strict.counters.tx_none == 1
        finally:
            fallback.close()
            strict.close()
            peer.close()

    run(main())


def test_callback_style_and_close() -> None:
    async def main() -> None:
        seen: list[Received] = []
        cb = StampedSocket(open_udp("127.0.0.1"), on_receive=seen.append)
        q = StampedSocket(open_udp("127.0.0.1"))
        try:
            waiter = asyncio.ensure_future(q.recv())
            await asyncio.sleep(0)
            q.send_general(b"to-cb", cb.local_address)
            cb.send_general(b"to-q", q.local_address)
            got = await waiter
            await asyncio.sleep(0.02)
            assert got.data == b"to-q" and [r.data for r in seen] == [b"to-cb"]
            waiter2 = asyncio.ensure_future(q.recv())
            await asyncio.sleep(0)
        finally:
            cb.close()
            q.close()
        with pytest.raises(SocketClosedError):
            await waiter2
        assert q.closed
        with pytest.raises(SocketClosedError):
            q.send_event_cb(b"x", ("127.0.0.1", 9), lambda s: None)

    run(main())


def test_connected_socket_and_icmp_error_do_not_spin() -> None:
    async def main() -> None:
        closed = open_udp("127.0.0.1")
        dead_addr = closed.getsockname()
        closed.close()  # nothing listens there now: the kernel answers with port unreachable
        raw = open_udp("127.0.0.1")
        raw.connect(dead_addr)
        s = StampedSocket(raw)
        try:
            stamp = await s.send_event(b"anyone?", None)  # connected: no address
            assert stamp is not None and stamp.source == "kernel"
            await asyncio.sleep(0.1)
            assert s.counters.rx_errors == 1  # ECONNREFUSED consumed by the reader
            assert s.counters.reader_calls <= 3
            assert s.counters.rx_datagrams == 0
        finally:
            s.close()

    run(main())


def test_sockets_share_one_clock_map_by_default() -> None:
    async def main() -> None:
        a = StampedSocket(open_udp("127.0.0.1"))
        b = StampedSocket(open_udp("::1"))
        try:
            assert a.clock_map is b.clock_map
        finally:
            a.close()
            b.close()

    run(main())


def test_failing_callbacks_reach_the_loop_handler_not_the_io_path() -> None:
    async def main() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

        def boom(_: object) -> None:
            raise RuntimeError("callback bug")

        a = StampedSocket(open_udp("127.0.0.1"), on_receive=boom)
        try:
            key = a.send_event_cb(b"x", a.local_address, boom)  # must not raise
            assert key == 0 and a.pending_tx == 0
            await asyncio.sleep(0.05)
            assert a.counters.rx_datagrams == 1 and a.counters.tx_kernel == 1
        finally:
            a.close()
        return errors

    errors = run(main())
    assert len(errors) == 2
    assert all(isinstance(e["exception"], RuntimeError) for e in errors)


def test_recv_queue_is_bounded() -> None:
    async def main() -> None:
        rx = StampedSocket(open_udp("127.0.0.1"), queue_size=4)
        tx = open_udp("127.0.0.1")
        try:
            for i in range(10):
                tx.sendto(b"%d" % i, rx.local_address)
            await asyncio.sleep(0.05)
            assert rx.counters.rx_dropped == 6
            assert [(await rx.recv()).data for _ in range(4)] == [b"6", b"7", b"8", b"9"]
        finally:
            rx.close()
            tx.close()

    run(main())


def test_hardware_request_fails_cleanly_and_falls_back_to_software() -> None:
    info = query_ts_info("lo")
    assert info.so_timestamping & cmsg.SOF_TIMESTAMPING_RX_SOFTWARE
    assert not info.hardware and info.phc_index == -1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        request_hardware_timestamping(s, "lo")

    async def main() -> None:
        no_map = StampedSocket(open_udp("127.0.0.1"), hardware_interface="lo")
        no_map.close()
        assert no_map.mode == "kernel" and "phc_to_mono" in str(no_map.hardware_error)
        a = StampedSocket(
            open_udp("127.0.0.1"),
            hardware_interface="lo",
            phc_to_mono=lambda ns: Mapped(ns, 0),  # never called: lo has no PHC
        )
        try:
            assert a.mode == "kernel" and "SIOCSHWTSTAMP" in str(a.hardware_error)
            stamp = await a.send_event(b"x", a.local_address)
            assert stamp is not None and stamp.source == "kernel"
            assert (await a.recv()).stamp_source == "kernel"
        finally:
            a.close()

    run(main())


def test_interface_name_validation() -> None:
    with pytest.raises(ValueError):
        query_ts_info("x" * 16)
    with pytest.raises(OSError):
        query_ts_info("nosuchif0")

