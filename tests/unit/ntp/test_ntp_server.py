"""NtpServer on fake time: fields, KoD/rate limiting, interleaved responses, size rule."""

from __future__ import annotations

import ntplib

from netclock.ntp.server import DisciplineState, NtpServer, RateLimit
from netclock.ntp.wire import KISS_RATE, ExtensionField, Leap, Mac, Mode, NtpPacket
from netclock.time import NS_PER_MS, NS_PER_S, NtpShort, NtpTimestamp

UNIX_BASE = 1_790_000_000 * NS_PER_S  # served time = local MONOTONIC + this
SHIFT = 1_234_567_000


def served(mono: int) -> int:
    return mono + UNIX_BASE + SHIFT


STATE = DisciplineState(
    stratum=2, reference_id=bytes([10, 0, 0, 1]), leap=Leap.NO_WARNING, precision=-22,
    root_delay_ns=3 * NS_PER_MS, root_dispersion_ns=NS_PER_MS, reference_mono_ns=5 * NS_PER_S,
)


def request(xmt: int = 0x1234_5678_9ABC_DEF0, **kw: object) -> NtpPacket:
    return NtpPacket(mode=Mode.CLIENT, transmit_ts=NtpTimestamp.from_u64(xmt), **kw)  # type: ignore[arg-type]


def test_basic_response_fields() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    req = request(poll=-4)
    rx, now = 10 * NS_PER_S, 10 * NS_PER_S + 20_000
    resp = srv.respond(req.pack(), rx, now, ("10.0.0.2", 123))
    assert resp is not None and not resp.interleaved and not resp.kod
    pkt = NtpPacket.unpack(resp.data)
    assert (pkt.mode, pkt.version, pkt.stratum, pkt.leap) == (Mode.SERVER, 4, 2, Leap.NO_WARNING)
    assert pkt.reference_id == bytes([10, 0, 0, 1]) and pkt.precision == -22 and pkt.poll == -4
    assert pkt.root_delay == NtpShort.from_ns(3 * NS_PER_MS)
    assert pkt.origin_ts == req.transmit_ts
    assert abs(pkt.receive_ts.to_unix_ns(era=0) - served(rx)) <= 1
    assert abs(pkt.transmit_ts.to_unix_ns(era=0) - served(now)) <= 1
    assert abs(pkt.reference_ts.to_unix_ns(era=0) - served(5 * NS_PER_S)) <= 1


def test_version_is_echoed_for_ntplib_v2() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    raw = ntplib.NTPPacket(version=2, mode=3, tx_timestamp=3_900_000_000.5).to_data()
    resp = srv.respond(raw, NS_PER_S, NS_PER_S + 1000)
    assert resp is not None
    back = ntplib.NTPPacket()
    back.from_data(resp.data)
    assert back.version == 2 and back.mode == 4
    assert abs(back.recv_timestamp - ntplib.system_to_ntp_time(served(NS_PER_S) / 1e9)) < 1e-6


def test_response_never_larger_than_request() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    big = request(extensions=(ExtensionField.padded(0xF323, b"", 28),), mac=Mac(1, bytes(16)))
    for req in (request(), big):
        resp = srv.respond(req.pack(), NS_PER_S, NS_PER_S)
        assert resp is not None and len(resp.data) == 48 <= len(req.pack())


def test_drops_non_requests() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    for raw in (b"", bytes(47), NtpPacket(mode=Mode.SERVER).pack(),
                NtpPacket(mode=Mode.CLIENT, version=0).pack(),
                NtpPacket(mode=Mode.CLIENT, version=5).pack()):
        assert srv.respond(raw, 1, 1) is None
    assert srv.counters.dropped_bad == 5


def test_unsynchronized_state_is_served_as_such() -> None:
    st = DisciplineState(stratum=16, reference_id=b"INIT", leap=Leap.UNSYNCHRONIZED)
    srv = NtpServer(served, lambda: st, rate_limit=None)
    resp = srv.respond(request().pack(), 1, 2)
    assert resp is not None
    pkt = NtpPacket.unpack(resp.data)
    assert pkt.leap == Leap.UNSYNCHRONIZED and pkt.stratum == 16 and pkt.reference_ts.is_zero


def test_rate_limit_kod_then_drop_then_recover() -> None:
    rl = RateLimit(interval_ns=NS_PER_S, burst=3, kod_interval_ns=10 * NS_PER_S)
    srv = NtpServer(served, STATE, rate_limit=rl)
    client = ("192.0.2.9", 40000)
    t = 100 * NS_PER_S
    answers = [srv.respond(request(xmt=i + 1).pack(), t + i, t + i, client) for i in range(6)]
    assert all(a is not None and not a.kod for a in answers[:3])
    kod = answers[3]
    assert kod is not None and kod.kod
    pkt = NtpPacket.unpack(kod.data)
    assert pkt.stratum == 0 and pkt.kiss_code == KISS_RATE and pkt.is_kod
    assert pkt.origin_ts == NtpTimestamp.from_u64(4)
    assert answers[4] is None and answers[5] is None
    # another client is not affected
    other = srv.respond(request().pack(), t, t, ("192.0.2.10", 1))
    assert other is not None and not other.kod
    # one interval later one more request is allowed
    later = srv.respond(request().pack(), t + NS_PER_S + 10, t + NS_PER_S + 10, client)
    assert later is not None and not later.kod
    assert srv.counters.kod_sent == 1 and srv.counters.rate_limited == 3


def test_interleaved_response_uses_saved_tx_stamp() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    rx1, now1, tx1 = 10 * NS_PER_S, 10 * NS_PER_S + 30_000, 10 * NS_PER_S + 41_000
    r1 = srv.respond(request(xmt=111).pack(), rx1, now1)
    assert r1 is not None and r1.tx_token is not None
    srv.handle_tx_timestamp(r1.tx_token, tx1)
    p1 = NtpPacket.unpack(r1.data)
    # interleaved request: origin = previous server receive, receive = a second cookie
    req2 = request(xmt=222, origin_ts=p1.receive_ts, receive_ts=NtpTimestamp.from_u64(333))
    rx2 = 11 * NS_PER_S
    r2 = srv.respond(req2.pack(), rx2, rx2 + 5000)
    assert r2 is not None and r2.interleaved
    p2 = NtpPacket.unpack(r2.data)
    assert p2.origin_ts == NtpTimestamp.from_u64(333)
    assert abs(p2.transmit_ts.to_unix_ns(era=0) - served(tx1)) <= 1
    assert abs(p2.receive_ts.to_unix_ns(era=0) - served(rx2)) <= 1
    # an unknown origin gets a basic answer
    req3 = request(xmt=444, origin_ts=NtpTimestamp.from_u64(999), receive_ts=NtpTimestamp(1, 1))
    r3 = srv.respond(req3.pack(), rx2 + 1, rx2 + 2)
    assert r3 is not None and not r3.interleaved
    assert NtpPacket.unpack(r3.data).origin_ts == NtpTimestamp.from_u64(444)


def test_interleaved_needs_tx_stamp_and_xleave() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    r1 = srv.respond(request(xmt=1).pack(), NS_PER_S, NS_PER_S)
    assert r1 is not None
    p1 = NtpPacket.unpack(r1.data)
    req2 = request(xmt=2, origin_ts=p1.receive_ts, receive_ts=NtpTimestamp.from_u64(3))
    r2 = srv.respond(req2.pack(), 2 * NS_PER_S, 2 * NS_PER_S)
    assert r2 is not None and not r2.interleaved  # no TX stamp was reported for r1
    off = NtpServer(served, STATE, rate_limit=None, xleave=False)
    assert off.respond(request().pack(), 1, 1).tx_token is None  # type: ignore[union-attr]


def test_receive_timestamps_are_unique() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    seen = set()
    for i in range(5):
        resp = srv.respond(request(xmt=i + 1).pack(), NS_PER_S, NS_PER_S)
        assert resp is not None
        seen.add(NtpPacket.unpack(resp.data).receive_ts)
    assert len(seen) == 5


def test_restamp_refreshes_basic_transmit_only() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    resp = srv.respond(request().pack(), NS_PER_S, NS_PER_S + 10)
    assert resp is not None and resp.restampable
    later = srv.restamp(resp, NS_PER_S + 70_000)
    pkt = NtpPacket.unpack(later)
    assert abs(pkt.transmit_ts.to_unix_ns(era=0) - served(NS_PER_S + 70_000)) <= 1
    assert later[:40] == resp.data[:40]
    # never before the receive timestamp
    pkt2 = NtpPacket.unpack(srv.restamp(resp, 0))
    assert pkt2.transmit_ts > pkt2.receive_ts


def test_restamp_learns_send_latency_from_tx_stamps() -> None:
    srv = NtpServer(served, STATE, rate_limit=None)
    for i in range(20):
        t = (i + 1) * NS_PER_S
        resp = srv.respond(request(xmt=i + 1).pack(), t, t + 1000)
        assert resp is not None and resp.tx_token is not None
        srv.restamp(resp, t + 2000)
        srv.handle_tx_timestamp(resp.tx_token, t + 2000 + 25_000 + (i % 3) * 1000)
    assert srv.tx_latency_ns == 26_000
    resp = srv.respond(request(xmt=99).pack(), 30 * NS_PER_S, 30 * NS_PER_S)
    assert resp is not None
    pkt = NtpPacket.unpack(srv.restamp(resp, 30 * NS_PER_S + 500))
    assert abs(pkt.transmit_ts.to_unix_ns(era=0) - served(30 * NS_PER_S + 26_500)) <= 1
