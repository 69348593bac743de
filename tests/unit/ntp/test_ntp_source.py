"""NtpSource on fake time, against the real sans-IO NtpServer over a fake link."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from netclock.ntp.server import DisciplineState, NtpServer, RateLimit
from netclock.ntp.source import (
    Demobilize,
    Measured,
    NtpSample,
    NtpSource,
    SampleMode,
    Send,
    SetTimer,
    SourceConfig,
    poll_interval_ns,
)
from netclock.ntp.wire import Leap, Mode, NtpPacket, refid_ascii
from netclock.time import NS_PER_S, NtpTimestamp

UNIX_BASE = 1_790_000_000 * NS_PER_S
SHIFT = 1_234_567_000


@dataclass
class Link:
    """True time T. Server local MONOTONIC = T, served = T + UNIX_BASE + SHIFT.
    Client local MONOTONIC = T + 50 ppm + 777 ns."""

    source: NtpSource
    server: NtpServer
    up_ns: int = 40_000
    down_ns: int = 40_000
    proc_ns: int = 15_000
    tx_late_ns: int = 3_000  # client kernel TX stamp after the userspace "now"
    server_tx_late_ns: int = 0  # server real TX after its pre-transmit "now"
    next_timer: int = 0  # local time of the client's next timer
    give_client_tx: bool = True
    give_server_tx: bool = True
    samples: list[NtpSample] = field(default_factory=list)
    other: list[object] = field(default_factory=list)

    @staticmethod
    def client_clock(t: int) -> int:
        return t + t * 50 // 1_000_000 + 777

    def poll(self, t: int) -> bool:
        """Run the client timer at true time t; deliver request and response. True if sent."""
        actions = self.source.handle_timer(self.client_clock(t))
        self.next_timer = max(a.at_ns for a in actions if isinstance(a, SetTimer))
        sends = [a for a in actions if isinstance(a, Send)]
        self.other += [a for a in actions if not isinstance(a, Send | SetTimer)]
        for s in sends:
            if self.give_client_tx:
                t1 = self.client_clock(t + self.tx_late_ns)
                self.source.handle_tx_timestamp(s.request_id, t1)
            rx = t + self.tx_late_ns + self.up_ns
            resp = self.server.respond(s.data, rx, rx + self.proc_ns, "client")
            if resp is None:
                continue
            tx = rx + self.proc_ns + self.server_tx_late_ns
            if self.give_server_tx and resp.tx_token is not None:
                self.server.handle_tx_timestamp(resp.tx_token, tx)
            t4 = self.client_clock(tx + self.down_ns)
            self.deliver(resp.data, t4)
        return bool(sends)

    def poll_next(self) -> bool:
        """Run the client timer when it is due."""
        return self.poll(true_of(self.next_timer))

    def deliver(self, data: bytes, t4: int) -> None:
        for a in self.source.handle_incoming(data, t4, t4):
            if isinstance(a, Measured):
                self.samples.append(a.sample)
            else:
                self.other.append(a)


def served(mono: int) -> int:
    return mono + UNIX_BASE + SHIFT


def true_of(local: int) -> int:
    """The first true time T with client_clock(T) >= local."""
    t = (local - 777) * 1_000_000 // 1_000_050
    while Link.client_clock(t) < local:
        t += 1
    return t


def true_offset_at(local: int) -> int:
    """served(T) - client_clock(T) at the T where client_clock(T) == local."""
    t = true_of(local)
    return served(t) - Link.client_clock(t)


def make(cfg: SourceConfig | None = None, **kw: object) -> Link:
    src = NtpSource(cfg or SourceConfig(minpoll=-4, maxpoll=-4), random.Random(1),
                    pivot_unix_ns=UNIX_BASE)
    srv = NtpServer(served, DisciplineState(stratum=1, reference_id=b"GPS\x00"), rate_limit=None)
    return Link(src, srv, **kw)  # type: ignore[arg-type]


def test_basic_exchange_measures_offset_with_kernel_tx_stamp() -> None:
    link = make()
    assert link.poll(10 * NS_PER_S)
    (s,) = link.samples
    assert s.mode == SampleMode.BASIC and s.t1_source == "kernel"
    # symmetric path, t1 = real departure: the offset is exact to rounding (NTP 2^-32 s)
    assert abs(s.raw_offset_ns - true_offset_at(s.internal)) <= 2
    assert abs(s.delay_ns - (40_000 + 40_000) * 1_000_050 // 1_000_000) <= 3
    assert s.error_ns == s.delay_ns // 2 and s.stratum == 1 and s.reference_id == b"GPS\x00"
    assert s.external - s.internal == s.raw_offset_ns


def test_userspace_t1_is_biased_and_labelled() -> None:
    link = make(give_client_tx=False)
    link.poll(10 * NS_PER_S)
    (s,) = link.samples
    assert s.t1_source == "user"
    # t1 3 us early: offset biased by half of it
    assert 1_400 <= s.raw_offset_ns - true_offset_at(s.internal) <= 1_600


def test_interleaved_uses_server_tx_stamp() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=-4, xleave=True, filter_length=1),
                server_tx_late_ns=3_000)
    link.poll(10 * NS_PER_S)
    for _ in range(4):
        link.poll_next()
    # the first (basic) exchange is measured again, interleaved, by the second response
    assert [s.mode for s in link.samples] == [SampleMode.INTERLEAVED] * 4
    assert link.source.observe().interleaved == 4
    for s in link.samples:
        # basic t3 would be 3 us early (pre-transmit); interleaved t3 is the real TX time
        assert abs(s.raw_offset_ns - true_offset_at(s.internal)) <= 2
    basic = link.source.observe().last_sample
    assert basic is not None and basic.mode == SampleMode.INTERLEAVED


def test_xleave_against_a_basic_only_server_uses_basic_samples() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=-4, xleave=True, filter_length=1),
                server_tx_late_ns=3_000)
    link.server.xleave = False
    link.poll(10 * NS_PER_S)
    for _ in range(3):
        link.poll_next()
    assert [s.mode for s in link.samples] == [SampleMode.BASIC] * 4
    s = link.samples[0]
    assert 1_400 <= true_offset_at(s.internal) - s.raw_offset_ns <= 1_600


def test_interleaved_falls_back_to_basic_after_a_loss() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=-4, xleave=True, filter_length=1))
    link.poll(10 * NS_PER_S)
    link.poll_next()
    # lose one response
    link.source.handle_timer(Link.client_clock(11 * NS_PER_S))
    link.poll(12 * NS_PER_S)
    link.poll_next()
    modes = [s.mode for s in link.samples]
    assert modes == [SampleMode.INTERLEAVED, SampleMode.INTERLEAVED]
    assert link.source.observe().interleaved == 2


def test_origin_check_rejects_stale_duplicate_and_forged() -> None:
    link = make()
    actions = link.source.handle_timer(Link.client_clock(NS_PER_S))
    (send,) = [a for a in actions if isinstance(a, Send)]
    req = NtpPacket.unpack(send.data)
    assert req.mode == Mode.CLIENT and req.origin_ts.is_zero and not req.transmit_ts.is_zero
    resp = link.server.respond(send.data, NS_PER_S + 10, NS_PER_S + 20)
    assert resp is not None
    forged = NtpPacket.unpack(resp.data)
    forged = dataclasses.replace(forged, origin_ts=NtpTimestamp(5, 5))
    link.deliver(forged.pack(), Link.client_clock(NS_PER_S + 100_000))
    assert link.samples == []
    link.deliver(resp.data, Link.client_clock(NS_PER_S + 100_000))
    link.deliver(resp.data, Link.client_clock(NS_PER_S + 200_000))  # duplicate
    link.deliver(b"garbage", Link.client_clock(NS_PER_S + 300_000))
    assert len(link.samples) == 1
    assert link.source.observe().bogus == 3


def test_poll_schedule_iburst_minpoll_and_adaptation() -> None:
    cfg = SourceConfig(minpoll=-4, maxpoll=-2, iburst=True, burst_count=4, poll_up_after=8)
    src = NtpSource(cfg, random.Random(3))
    now = 0
    (_, timer) = src.handle_timer(now)
    assert isinstance(timer, SetTimer)
    # not due yet: only the timer again
    assert src.handle_timer(timer.at_ns - 1) == [SetTimer(timer.at_ns)]
    interval = timer.at_ns - now
    assert abs(interval - NS_PER_S // 16) <= NS_PER_S // 16 // 16
    assert poll_interval_ns(-4) == 62_500_000 and poll_interval_ns(3) == 8 * NS_PER_S
    link = make(cfg)
    link.poll(0)
    for _ in range(40):
        assert link.poll_next()
    assert link.source.poll == -2
    assert link.source.reach == 0xFF


def test_iburst_caps_initial_interval_at_2s() -> None:
    src = NtpSource(SourceConfig(minpoll=6, maxpoll=10, burst_count=3), random.Random(0))
    gaps = []
    now = 0
    for _ in range(5):
        timer = next(a for a in src.handle_timer(now) if isinstance(a, SetTimer))
        gaps.append(timer.at_ns - now)
        now = timer.at_ns
    assert all(g <= 2 * NS_PER_S + NS_PER_S // 8 for g in gaps[:3])
    assert all(g >= 60 * NS_PER_S for g in gaps[3:])


def test_reach_register_and_fallback_to_minpoll() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=0, poll_up_after=1))
    link.poll(0)
    for _ in range(5):
        link.poll_next()
    assert link.source.poll == 0 and link.source.reach == 0x3F
    for i in range(9):  # no answers
        link.source.handle_timer(Link.client_clock((10 + 2 * i) * NS_PER_S))
    assert link.source.reach == 0 and link.source.poll == -4


def test_clock_filter_picks_lowest_delay_of_last_8() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=-4, filter_length=8))
    link.poll(NS_PER_S)  # delay ~98 us, emitted
    link.up_ns = 400_000
    for i in range(3):
        link.poll(2 * NS_PER_S + i * NS_PER_S)  # slow: never better than the first
    assert len(link.samples) == 1
    # every valid answer entered the filter (held back or not): what a driver reads to tell
    # a held-back answer from none
    assert link.source.filtered == 4
    link.up_ns = 10_000
    link.poll(6 * NS_PER_S)
    assert len(link.samples) == 2 and link.samples[1].delay_ns < link.samples[0].delay_ns
    link.up_ns = 400_000
    for i in range(8):
        link.poll(7 * NS_PER_S + i * NS_PER_S)
    # the good sample left the 8-long register: the best of the slow ones is emitted
    assert len(link.samples) >= 3 and link.samples[2].delay_ns > 400_000


def test_kod_rate_backs_off_and_deny_demobilizes() -> None:
    link = make(SourceConfig(minpoll=-4, maxpoll=-4))
    link.server.rate_limit = RateLimit(interval_ns=NS_PER_S, burst=1, kod_interval_ns=1)
    link.poll(NS_PER_S)
    link.poll_next()
    # the KoD asks for the server's 1 s interval: the client goes there at once
    assert link.source.poll == 0 and link.source.observe().kod == 1
    # DENY
    src = NtpSource(SourceConfig(), random.Random(0))
    (send, _) = src.handle_timer(0)
    assert isinstance(send, Send)
    req = NtpPacket.unpack(send.data)
    deny = NtpPacket(mode=Mode.SERVER, stratum=0, reference_id=refid_ascii("DENY"),
                     origin_ts=req.transmit_ts, transmit_ts=NtpTimestamp(1, 0))
    assert src.handle_incoming(deny.pack(), 10, 10) == [Demobilize("DENY")]
    assert src.demobilized and src.handle_timer(10 * NS_PER_S) == []


def test_unsynchronized_server_gives_reach_but_no_sample() -> None:
    link = make()
    link.server = NtpServer(served, DisciplineState(stratum=16, leap=Leap.UNSYNCHRONIZED),
                            rate_limit=None)
    link.poll(NS_PER_S)
    assert link.samples == [] and link.source.reach == 1


@pytest.mark.parametrize("bad", [dict(minpoll=-8), dict(minpoll=5, maxpoll=4), dict(version=5)])
def test_config_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SourceConfig(**bad)
