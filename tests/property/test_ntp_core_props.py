"""Hypothesis: the NTP server and client cores take any bytes without raising."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from netclock.ntp.server import DisciplineState, NtpServer, RateLimit
from netclock.ntp.source import NtpSource, Send, SourceConfig
from netclock.ntp.wire import Mode, NtpPacket
from netclock.time import NS_PER_S, NtpTimestamp

BASE = 1_790_000_000 * NS_PER_S
ns = st.integers(0, 10**15)


@given(st.binary(max_size=120), ns, st.integers(0, 10**6), st.sampled_from([None, "a", "b"]))
def test_server_any_bytes(raw: bytes, rx: int, proc: int, client: str | None) -> None:
    srv = NtpServer(lambda m: m + BASE, DisciplineState(), rate_limit=RateLimit(burst=2))
    resp = srv.respond(raw, rx, rx + proc, client)
    if resp is not None:
        assert len(resp.data) <= len(raw)
        assert NtpPacket.unpack(resp.data).mode == Mode.SERVER


@given(
    st.lists(st.tuples(st.booleans(), st.binary(min_size=0, max_size=80), ns), max_size=12),
    st.booleans(),
)
def test_client_any_responses(events: list[tuple[bool, bytes, int]], xleave: bool) -> None:
    """Mixed timers and arbitrary datagrams (some echoing the right cookie) never raise."""
    src = NtpSource(SourceConfig(minpoll=-4, maxpoll=0, xleave=xleave), random.Random(0),
                    pivot_unix_ns=BASE)
    now = 0
    last: NtpPacket | None = None
    for is_timer, raw, dt in events:
        now += dt
        if is_timer:
            for a in src.handle_timer(now):
                if isinstance(a, Send):
                    last = NtpPacket.unpack(a.data)
                    src.handle_tx_timestamp(a.request_id, now + 5)
            continue
        data = raw
        if last is not None and len(raw) >= 48:
            # graft the expected origin into arbitrary bytes, so the deeper paths run too
            data = raw[:24] + last.transmit_ts.pack() + raw[32:]
        src.handle_incoming(data, now, now)
    snap = src.observe()
    assert 0 <= snap.reach <= 0xFF and snap.responses <= snap.requests


@given(st.integers(-(2**40), 2**40), st.integers(0, 10**9))
def test_server_served_time_round_trips_on_the_wire(shift: int, rx: int) -> None:
    srv = NtpServer(lambda m: m + BASE + shift, DisciplineState(), rate_limit=None)
    req = NtpPacket(mode=Mode.CLIENT, transmit_ts=NtpTimestamp(1, 2))
    resp = srv.respond(req.pack(), rx, rx)
    assert resp is not None
    got = NtpPacket.unpack(resp.data).receive_ts.to_unix_ns(pivot=BASE)
    assert abs(got - (rx + BASE + shift)) <= 1
