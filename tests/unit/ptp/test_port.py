"""PtpPort on fake time: master/slave exchange, BMCA, timers, TX contexts, every state × input."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ptp_pair import Net

from netclock.calibration import Calibration
from netclock.ptp.actions import (
    Action,
    CancelTimer,
    Measurement,
    PortTimer,
    SendEvent,
    SendGeneral,
    SetTimer,
    StateChanged,
    TxContextReusedError,
    TxKind,
)
from netclock.ptp.datasets import PortState
from netclock.ptp.fsm import FsmEvent
from netclock.ptp.port import MAX_PENDING_DELAY_REQS, PortConfig, PtpPort
from netclock.ptp.wire import (
    Announce,
    ClockIdentity,
    ClockQuality,
    DelayReq,
    DelayResp,
    Flags,
    FollowUp,
    Header,
    PortIdentity,
    Sync,
    parse,
)
from netclock.time import PtpTimestamp, TimeInterval

NS = 1_000_000_000
EPOCH = 1_700_000_000 * NS  # master PTP time at local 0
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)
GM = PortIdentity(ClockIdentity(b"\x01" * 8), 1)
WORSE = PortIdentity(ClockIdentity(b"\x99" * 8), 1)


def sent(actions: list[Action]) -> list[object]:
    return [parse(a.data) for a in actions if isinstance(a, SendEvent | SendGeneral)]


class Peer:
    """Builds messages from a remote port."""

    def __init__(self, ident: PortIdentity = GM, p1: int = 100, cls: int = 248) -> None:
        self.ident, self.p1, self.cls = ident, p1, cls

    def announce(self, seq: int = 0) -> bytes:
        return Announce(
            header=Header(self.ident, seq, log_message_interval=1,
                          flags=Flags.PTP_TIMESCALE | Flags.CURRENT_UTC_OFFSET_VALID),
            current_utc_offset=37,
            grandmaster_priority1=self.p1,
            grandmaster_clock_quality=ClockQuality(self.cls),
            grandmaster_identity=self.ident.clock_identity,
        ).pack()

    def sync(self, seq: int, t1: int | None = None, corr: int = 0) -> bytes:
        two = t1 is None
        return Sync(
            Header(self.ident, seq, flags=Flags.TWO_STEP if two else Flags.NONE,
                   correction=TimeInterval.from_ns(corr)),
            PtpTimestamp.from_ns(t1 or 0),
        ).pack()

    def follow_up(self, seq: int, t1: int, corr: int = 0) -> bytes:
        return FollowUp(Header(self.ident, seq, correction=TimeInterval.from_ns(corr)),
                        PtpTimestamp.from_ns(t1)).pack()

    def delay_resp(self, seq: int, t4: int, corr: int = 0, who: PortIdentity = ME) -> bytes:
        return DelayResp(Header(self.ident, seq, log_message_interval=-3,
                                correction=TimeInterval.from_ns(corr)),
                         PtpTimestamp.from_ns(t4), who).pack()


def new_port(**cfg: object) -> PtpPort:
    cfg.setdefault("min_delay_samples", 1)  # measure from the first delay exchange
    return PtpPort(PortConfig(**cfg), ME, random.Random(7))  # type: ignore[arg-type]


def timers(actions: list[Action]) -> dict[PortTimer, int]:
    return {a.timer: a.at for a in actions if isinstance(a, SetTimer)}


def to_uncalibrated(port: PtpPort, peer: Peer, now: int = 0) -> int:
    port.start(now)
    port.handle_general_receive(peer.announce(0), now + NS)
    acts = port.handle_general_receive(peer.announce(1), now + 2 * NS)
    assert StateChanged(PortState.LISTENING, PortState.UNCALIBRATED,
                        "RS_SLAVE: announce: BMCA S1") in acts
    return now + 2 * NS


def exchange(port: PtpPort, peer: Peer, seq: int, t_local: int, offset: int, delay: int,
             *, one_step: bool = False, corr: int = 0) -> list[Action]:
    """One Sync (+Follow_Up) and one Delay_Req/Resp with true offset and delay."""
    out: list[Action] = []
    t1 = t_local - offset + EPOCH
    t2 = t_local + delay
    if one_step:
        out += port.handle_event_receive(peer.sync(seq, t1, corr), t2, t2)
    else:
        out += port.handle_event_receive(peer.sync(seq), t2, t2)
        out += port.handle_general_receive(peer.follow_up(seq, t1, corr), t2 + 1000)
    acts = port.handle_timer(PortTimer.DELAY_REQ, t2 + 2000)
    out += acts
    (req,) = [a for a in acts if isinstance(a, SendEvent)]
    assert req.context.kind is TxKind.DELAY_REQ
    t3 = t2 + 3000
    out += port.handle_send_timestamp(req.context, t3, t3)
    msg = parse(req.data)
    assert isinstance(msg, DelayReq)
    t4 = t3 + delay - offset + EPOCH
    out += port.handle_general_receive(peer.delay_resp(msg.header.sequence_id, t4), t3 + 5000)
    return out


def test_start_goes_listening_and_arms_announce_receipt() -> None:
    port = new_port()
    acts = port.start(0)
    assert acts[0] == StateChanged(PortState.INITIALIZING, PortState.LISTENING,
                                   "INIT_COMPLETE: init complete")
    t = timers(acts)[PortTimer.ANNOUNCE_RECEIPT]
    assert 3 * 2 * NS <= t < 4 * 2 * NS  # 3 announce intervals + random fraction


def test_announce_timeout_makes_master_which_sends_announce_and_two_step_sync() -> None:
    port = new_port(priority1=100)
    t = timers(port.start(0))[PortTimer.ANNOUNCE_RECEIPT]
    acts = port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, t)
    assert port.state is PortState.MASTER
    assert set(timers(acts)) == {PortTimer.ANNOUNCE, PortTimer.SYNC}
    port.set_time_source(Calibration(0, EPOCH))
    (ann,) = sent(port.handle_timer(PortTimer.ANNOUNCE, t))
    assert isinstance(ann, Announce) and ann.grandmaster_priority1 == 100
    assert ann.grandmaster_identity == ME.clock_identity
    acts = port.handle_timer(PortTimer.SYNC, t)
    (ev,) = [a for a in acts if isinstance(a, SendEvent)]
    sync = parse(ev.data)
    assert isinstance(sync, Sync) and Flags.TWO_STEP in sync.header.flags
    (fu,) = sent(port.handle_send_timestamp(ev.context, t + 12_345, t + 20_000))
    assert isinstance(fu, FollowUp)
    assert fu.header.sequence_id == sync.header.sequence_id
    assert fu.precise_origin_timestamp.to_ns() == EPOCH + t + 12_345


def test_tx_context_is_single_use() -> None:
    port = new_port(master_only=True)
    port.start(0)
    assert port.state is PortState.MASTER
    (ev,) = [a for a in port.handle_timer(PortTimer.SYNC, 0) if isinstance(a, SendEvent)]
    port.handle_send_timestamp(ev.context, 5, 5)
    with pytest.raises(TxContextReusedError):
        port.handle_send_timestamp(ev.context, 5, 5)
    other = new_port()
    with pytest.raises(ValueError, match="another port"):
        other.handle_send_timestamp(ev.context, 5, 5)


def test_master_answers_delay_req_with_correction_copied() -> None:
    port = new_port(master_only=True, log_min_delay_req_interval=-4)
    port.start(0)
    port.set_time_source(Calibration(0, EPOCH))
    req = DelayReq(Header(WORSE, 77, correction=TimeInterval(12345)), PtpTimestamp(0, 0))
    (resp,) = sent(port.handle_event_receive(req.pack(), 1_000_000, 1_000_100))
    assert isinstance(resp, DelayResp)
    assert resp.requesting_port_identity == WORSE
    assert resp.header.sequence_id == 77
    assert resp.header.correction == TimeInterval(12345)
    assert resp.header.log_message_interval == -4
    assert resp.receive_timestamp.to_ns() == EPOCH + 1_000_000


@pytest.mark.parametrize("one_step", [False, True])
def test_slave_measures_offset_and_delay(one_step: bool) -> None:
    port = new_port(slave_only=True, calibration_measurements=2)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    offset, delay = 2_500, 40_000
    meas: list[Measurement] = []
    states: list[StateChanged] = []
    for seq in range(4):
        acts = exchange(port, peer, seq, now + seq * NS, offset, delay, one_step=one_step)
        meas += [a for a in acts if isinstance(a, Measurement)]
        states += [a for a in acts if isinstance(a, StateChanged)]
    assert meas
    for m in meas:
        assert m.delay == delay
        assert m.offset == offset - EPOCH  # local minus master-PTP
        assert m.t2 - m.t1 == m.offset + m.delay + m.correction
    assert [s.new for s in states] == [PortState.SLAVE]
    assert port.state is PortState.SLAVE
    assert port.current_ds.steps_removed == 1
    assert port.parent == GM
    assert port.time_properties.ptp_timescale and port.time_properties.current_utc_offset == 37


def test_correction_field_is_applied() -> None:
    port = new_port(slave_only=True)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    # the transparent clock adds 7 µs residence to the Sync path: t2 - t1 grows by 7 µs
    ms: list[Measurement] = []
    for seq in range(3):
        t_local = now + seq * NS
        t1 = t_local + EPOCH
        t2 = t_local + 40_000 + 7_000
        port.handle_event_receive(peer.sync(seq), t2, t2)
        ms += [a for a in port.handle_general_receive(peer.follow_up(seq, t1, 7_000), t2)
               if isinstance(a, Measurement)]
        (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, t2) if isinstance(a, SendEvent)]
        t3 = t2 + 1000
        port.handle_send_timestamp(req.context, t3, t3)
        seq_req = parse(req.data).header.sequence_id  # type: ignore[attr-defined]
        ms += [a for a in port.handle_general_receive(
            peer.delay_resp(seq_req, t3 + 40_000 + EPOCH), t3) if isinstance(a, Measurement)]
    assert ms and all(m.delay == 40_000 and m.offset == -EPOCH for m in ms)
    assert all(m.correction == 7_000 for m in ms)


def test_follow_up_before_sync_is_matched() -> None:
    port = new_port(slave_only=True)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    exchange(port, peer, 0, now, 0, 10_000)
    t1, t2 = now + NS + EPOCH, now + NS + 10_000
    assert port.handle_general_receive(peer.follow_up(1, t1), t2 - 5) == []
    acts = port.handle_event_receive(peer.sync(1), t2, t2)
    (m,) = [a for a in acts if isinstance(a, Measurement)]
    assert m.offset == -EPOCH and m.sequence_id == 1


def test_offsets_wait_for_min_delay_samples() -> None:
    port = new_port(slave_only=True, min_delay_samples=3)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    counts = []
    for seq in range(4):
        acts = exchange(port, peer, seq, now + seq * NS, 0, 10_000)
        counts.append(sum(isinstance(a, Measurement) for a in acts))
    # nothing until the third delay exchange completes; then one per Sync
    assert counts == [0, 0, 1, 1]


def test_delay_req_spacing_is_randomised_within_bounds() -> None:
    port = new_port(slave_only=True, log_min_delay_req_interval=-2)
    now = to_uncalibrated(port, Peer())
    gaps = set()
    for i in range(30):
        acts = port.handle_timer(PortTimer.DELAY_REQ, now)
        nxt = timers(acts)[PortTimer.DELAY_REQ]
        gaps.add(nxt - now)
        now = nxt
        assert i >= 0
    assert len(gaps) > 20
    assert all(0 < g <= 2 * NS // 4 for g in gaps)


def test_delay_resp_for_someone_else_is_ignored() -> None:
    port = new_port(slave_only=True)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, now) if isinstance(a, SendEvent)]
    seq = parse(req.data).header.sequence_id  # type: ignore[attr-defined]
    before = port.counters["dropped"]
    port.handle_general_receive(peer.delay_resp(seq, EPOCH, who=WORSE), now)
    assert port.counters["dropped"] == before + 1


@pytest.mark.parametrize("hybrid", [False, True])
def test_delay_reqs_from_the_packed_template_equal_a_fresh_pack(hybrid: bool) -> None:
    """Delay_Reqs are packed once and only their sequenceId changed: byte for byte what a
    freshly built message packs to, across sequence wrap-around and a domain change."""
    port = new_port(slave_only=True, hybrid_e2e=hybrid)
    peer = Peer()
    port.start(0)
    port.handle_general_receive(peer.announce(0), NS, "10.1.2.3")
    port.handle_general_receive(peer.announce(1), 2 * NS, "10.1.2.3")
    port._seq["delay_req"] = 0xFFFD
    flags = Flags.UNICAST if hybrid else Flags.NONE
    for i in range(6):
        if i == 3:
            port.reconfigure(2 * NS, domain_number=7)
        (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, 2 * NS + i)
                  if isinstance(a, SendEvent)]
        seq = (0xFFFD + i) & 0xFFFF
        fresh = DelayReq(port._header(seq, log_interval=0x7F, flags=flags), PtpTimestamp(0, 0))
        assert req.data == fresh.pack() and req.context.sequence_id == seq
        msg = parse(req.data)
        assert isinstance(msg, DelayReq) and msg.header.sequence_id == seq
        assert msg.header.domain_number == (7 if i >= 3 else 0)


def test_an_answer_read_after_the_next_delay_req_went_out_still_completes_its_exchange() -> None:
    """A slave that reads its sockets on a tick may send the next Delay_Req before it reads the
    last one's Delay_Resp: that answer must still complete its own exchange (with its own t3),
    an older answer after a newer exchange completed is dropped, and at most
    MAX_PENDING_DELAY_REQS wait."""
    port = new_port(slave_only=True)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    port.handle_event_receive(peer.sync(1), now, now)
    port.handle_general_receive(peer.follow_up(1, EPOCH + now - 50_000), now)

    def send(at: int) -> tuple[int, int]:
        (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, at)
                  if isinstance(a, SendEvent)]
        port.handle_send_timestamp(req.context, at + 1_000, at + 1_000)
        return parse(req.data).header.sequence_id, at + 1_000  # type: ignore[attr-defined]

    (s1, t3a), (s2, t3b), (s3, t3c) = send(now + 10), send(now + 20), send(now + 30)
    before = port.counters["dropped"]
    port.handle_general_receive(peer.delay_resp(s2, EPOCH + t3b + 50_000), now + 40)
    assert port._last_exchange[:2] == (t3b, EPOCH + t3b + 50_000)
    assert port.counters["dropped"] == before
    # s1 is older than the exchange just completed: done with, its late answer dropped
    port.handle_general_receive(peer.delay_resp(s1, EPOCH + t3a + 50_000), now + 50)
    assert port.counters["dropped"] == before + 1
    port.handle_general_receive(peer.delay_resp(s3, EPOCH + t3c + 50_000), now + 60)
    assert port._last_exchange[:2] == (t3c, EPOCH + t3c + 50_000)
    # a duplicate answer completes nothing
    port.handle_general_receive(peer.delay_resp(s3, EPOCH + t3c + 50_000), now + 70)
    assert port.counters["dropped"] == before + 2
    # of many unanswered requests only the newest MAX_PENDING_DELAY_REQS wait
    sent = [send(now + 100 + i) for i in range(MAX_PENDING_DELAY_REQS + 2)]
    port.handle_general_receive(peer.delay_resp(sent[1][0], EPOCH), now + 200)
    assert port.counters["dropped"] == before + 3
    port.handle_general_receive(peer.delay_resp(sent[2][0], EPOCH + sent[2][1]), now + 210)
    assert port._last_exchange[0] == sent[2][1] and port.counters["dropped"] == before + 3


@pytest.mark.parametrize("hybrid", [False, True])
def test_hybrid_e2e_sends_delay_req_unicast_to_the_parent(hybrid: bool) -> None:
    port = new_port(slave_only=True, hybrid_e2e=hybrid)
    peer = Peer()
    port.start(0)
    port.handle_general_receive(peer.announce(0), NS, "10.1.2.3")
    port.handle_general_receive(peer.announce(1), 2 * NS, "10.1.2.3")
    assert port.state is PortState.UNCALIBRATED
    (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, 2 * NS)
              if isinstance(a, SendEvent)]
    msg = parse(req.data)
    assert isinstance(msg, DelayReq)
    if hybrid:
        assert req.dest == "10.1.2.3" and Flags.UNICAST in msg.header.flags
    else:
        assert req.dest is None and Flags.UNICAST not in msg.header.flags
    # the master's unicast answer completes the exchange as a multicast one would
    t3 = 2 * NS + 10_000
    port.handle_send_timestamp(req.context, t3, t3)
    resp = peer.delay_resp(msg.header.sequence_id, EPOCH + t3 + 5_000)
    port.handle_general_receive(resp, t3 + 20_000, "10.1.2.3")
    assert port.counters["dropped"] == 0


def test_hybrid_e2e_without_an_address_stays_multicast() -> None:
    port = new_port(slave_only=True, hybrid_e2e=True)
    now = to_uncalibrated(port, Peer())  # announces without a source address (L2)
    (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, now) if isinstance(a, SendEvent)]
    assert req.dest is None


def test_other_slaves_delay_traffic_is_dropped_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a multicast E2E network each slave hears every other slave's Delay_Req and the
    master's answers to them: a slave drops both without parsing them, counted as dropped."""
    import netclock.ptp.port as port_module

    port = new_port(slave_only=True)
    peer = Peer()
    now = to_uncalibrated(port, peer)
    (req,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, now) if isinstance(a, SendEvent)]
    seq = parse(req.data).header.sequence_id  # type: ignore[attr-defined]
    parsed: list[bytes] = []

    def counting_parse(data: bytes) -> object:
        parsed.append(data)
        return parse(data)

    monkeypatch.setattr(port_module, "parse", counting_parse)
    rx, dropped = port.counters["rx"], port.counters["dropped"]
    other = DelayReq(Header(WORSE, 5), PtpTimestamp(0, 0)).pack()
    assert port.handle_event_receive(other, now, now) == []
    assert port.handle_general_receive(peer.delay_resp(seq, EPOCH, who=WORSE), now) == []
    assert parsed == []
    assert port.counters["rx"] == rx + 2 and port.counters["dropped"] == dropped + 2
    # the answer to this port's own Delay_Req is parsed and taken
    port.handle_general_receive(peer.delay_resp(seq, EPOCH), now)
    assert len(parsed) == 1 and port.counters["dropped"] == dropped + 2
    # anything that would not parse cleanly goes through the parser and counts as malformed:
    # too short, a bad version, a messageLength that is not the message's, bad nanoseconds
    errors = port.counters["parse_errors"]
    resp = peer.delay_resp(seq, EPOCH, who=WORSE)
    bad = [
        (other[:40], resp[:50]),
        (other[:1] + b"\x03" + other[2:], resp[:1] + b"\x03" + resp[2:]),
        (other[:2] + (60).to_bytes(2, "big") + other[4:],
         resp[:2] + (99).to_bytes(2, "big") + resp[4:]),
        (other[:40] + (10**9).to_bytes(4, "big"), resp[:40] + (10**9).to_bytes(4, "big")
         + resp[44:]),
    ]
    for req_bad, resp_bad in bad:
        port.handle_event_receive(req_bad, now, now)
        port.handle_general_receive(resp_bad, now)
    assert len(parsed) == 1 + 2 * len(bad)
    assert port.counters["parse_errors"] == errors + 2 * len(bad)
    # a master still parses and answers every Delay_Req
    master = new_port(master_only=True)
    master.start(0)
    master.set_time_source(Calibration(0, EPOCH))
    (resp,) = sent(master.handle_event_receive(other, 1_000, 1_000))
    assert isinstance(resp, DelayResp) and resp.requesting_port_identity == WORSE


def test_better_master_takes_over_and_announce_timeout_returns_to_master() -> None:
    port = new_port(priority1=128)
    port.start(0)
    worse = Peer(WORSE, p1=200)
    port.handle_general_receive(worse.announce(0), NS)
    port.handle_general_receive(worse.announce(1), 2 * NS)
    assert port.state is PortState.MASTER  # we beat it: M2
    better = Peer(GM, p1=100)
    port.handle_general_receive(better.announce(0), 3 * NS)
    acts = port.handle_general_receive(better.announce(1), 4 * NS)
    assert port.state is PortState.UNCALIBRATED and port.parent == GM
    assert CancelTimer(PortTimer.SYNC) in acts and CancelTimer(PortTimer.ANNOUNCE) in acts
    deadline = timers(acts)[PortTimer.ANNOUNCE_RECEIPT]
    acts = port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, deadline)
    assert port.state is PortState.MASTER
    assert port.counters["announce_timeouts"] == 1


def test_slave_only_port_never_becomes_master() -> None:
    port = new_port(slave_only=True)
    t = timers(port.start(0))[PortTimer.ANNOUNCE_RECEIPT]
    port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, t)
    assert port.state is PortState.LISTENING
    worse = Peer(WORSE, p1=255, cls=255)
    port.handle_general_receive(worse.announce(0), t + NS)
    port.handle_general_receive(worse.announce(1), t + 2 * NS)
    assert port.state is PortState.UNCALIBRATED  # any master will do


def test_passive_when_local_class_below_128_loses() -> None:
    port = new_port(clock_quality=ClockQuality(100))
    port.start(0)
    gm = Peer(GM, p1=128, cls=6)
    port.handle_general_receive(gm.announce(0), NS)
    port.handle_general_receive(gm.announce(1), 2 * NS)
    assert port.state is PortState.PASSIVE


def test_own_and_other_domain_messages_dropped() -> None:
    port = new_port(domain_number=3)
    port.start(0)
    own = Peer(PortIdentity(ME.clock_identity, 2))
    port.handle_general_receive(own.announce(0), NS)
    port.handle_general_receive(Peer().announce(0), NS)  # domain 0
    assert port.counters["dropped"] == 2 and len(port.foreign) == 0


def test_reconfigure_priority_at_run_time_flips_roles() -> None:
    port = new_port(priority1=100)
    port.start(0)
    peer = Peer(GM, p1=120)
    port.handle_general_receive(peer.announce(0), NS)
    port.handle_general_receive(peer.announce(1), 2 * NS)
    assert port.state is PortState.MASTER
    port.reconfigure(2 * NS, priority1=130)
    assert port.state is PortState.UNCALIBRATED


def test_master_and_slave_ports_over_a_fake_link() -> None:
    net = Net(delay_ns=30_000)
    gm = net.add(PortConfig(priority1=100, log_sync_interval=-2), 0x0A, ptp_epoch=EPOCH)
    sl = net.add(PortConfig(priority1=200, log_min_delay_req_interval=-2), 0x0B, offset=777_777)
    net.start()
    net.run_until(20 * NS)
    assert gm.port.state is PortState.MASTER
    assert sl.port.state is PortState.SLAVE
    assert sl.measurements
    for m in sl.measurements:
        assert m.delay == 30_000
        assert m.offset == 777_777 - EPOCH
    # grandmaster leaves: the slave takes over after the announce receipt timeout
    gm.up = False
    net.run_until(21 * NS)
    assert sl.port.state is PortState.SLAVE
    net.run_until(30 * NS)
    assert sl.port.state is PortState.MASTER


# ---------------------------------------------------------------- every port state × input

STATES = list(PortState)


def port_in(state: PortState) -> tuple[PtpPort, Peer, int]:
    peer = Peer()
    if state is PortState.PASSIVE:
        port = new_port(clock_quality=ClockQuality(100), calibration_measurements=1)
        peer = Peer(GM, p1=128, cls=6)
    else:
        port = new_port(calibration_measurements=1)
    now = 0
    if state is PortState.INITIALIZING:
        return port, peer, now
    port.start(now)
    if state in (PortState.FAULTY, PortState.DISABLED):
        (port.fault if state is PortState.FAULTY else port.disable)(now)
    elif state is PortState.MASTER:
        port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, 10 * NS)
        now = 10 * NS
    elif state is PortState.PRE_MASTER:
        port._transition(FsmEvent.RS_MASTER, now, [], "test")
    elif state in (PortState.UNCALIBRATED, PortState.SLAVE, PortState.PASSIVE):
        now = to_uncalibrated(port, peer) if state is not PortState.PASSIVE else now
        if state is PortState.PASSIVE:
            port.handle_general_receive(peer.announce(0), NS)
            port.handle_general_receive(peer.announce(1), 2 * NS)
            now = 2 * NS
        if state is PortState.SLAVE:
            exchange(port, peer, 0, now, 0, 10_000)
            now += NS
    assert port.state is state
    return port, peer, now


def _fire(timer: PortTimer) -> Callable[[PtpPort, Peer, int], list[Action]]:
    return lambda p, g, t: p.handle_timer(timer, t + 100 * NS)


INPUTS: dict[str, Callable[[PtpPort, Peer, int], list[Action]]] = {
    "announce_better": lambda p, g, t: p.handle_general_receive(Peer(GM, p1=1).announce(9), t),
    "announce_worse": lambda p, g, t: p.handle_general_receive(Peer(WORSE, p1=250).announce(9), t),
    "sync_two_step": lambda p, g, t: p.handle_event_receive(g.sync(50), t, t),
    "sync_one_step": lambda p, g, t: p.handle_event_receive(g.sync(51, EPOCH + t), t, t),
    "follow_up": lambda p, g, t: p.handle_general_receive(g.follow_up(50, EPOCH + t), t),
    "delay_req": lambda p, g, t: p.handle_event_receive(
        DelayReq(Header(WORSE, 3), PtpTimestamp(0, 0)).pack(), t, t),
    "delay_resp": lambda p, g, t: p.handle_general_receive(g.delay_resp(0, EPOCH + t), t),
    "garbage": lambda p, g, t: p.handle_general_receive(b"\x0b\x02\x00", t),
    "fault": lambda p, g, t: p.fault(t),
    "clear_fault": lambda p, g, t: p.clear_fault(t),
    "disable": lambda p, g, t: p.disable(t),
    "enable": lambda p, g, t: p.enable(t),
    **{f"timer_{tm.value}": _fire(tm) for tm in PortTimer},
}


def check_invariants(port: PtpPort, before: PortState, acts: list[Action]) -> None:
    changes = [a for a in acts if isinstance(a, StateChanged)]
    chain = [before] + [c.new for c in changes]
    for c, prev in zip(changes, chain, strict=False):
        assert c.old is prev and c.new is not c.old
    assert chain[-1] is port.state
    for m in sent(acts):
        if isinstance(m, Sync | Announce | FollowUp | DelayResp):
            assert port.state is PortState.MASTER or any(
                c.new is PortState.MASTER for c in changes)
        if isinstance(m, DelayReq):
            assert port.state in (PortState.SLAVE, PortState.UNCALIBRATED)
    armed = set(port._timers)
    if port.state in (PortState.INITIALIZING, PortState.FAULTY, PortState.DISABLED):
        assert not armed
    if port.state in (PortState.SLAVE, PortState.UNCALIBRATED):
        assert {PortTimer.ANNOUNCE_RECEIPT, PortTimer.DELAY_REQ} <= armed
        assert not armed & {PortTimer.SYNC, PortTimer.ANNOUNCE}
    if port.state is PortState.MASTER:
        assert not armed & {PortTimer.DELAY_REQ, PortTimer.ANNOUNCE_RECEIPT}
    if port.state in (PortState.LISTENING, PortState.PASSIVE):
        assert PortTimer.ANNOUNCE_RECEIPT in armed


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_port_state_and_input(state: PortState, name: str) -> None:
    port, peer, now = port_in(state)
    acts = INPUTS[name](port, peer, now + 1000)
    check_invariants(port, state, acts)
    if name == "fault" and state not in (PortState.DISABLED, PortState.FAULTY):
        assert port.state is PortState.FAULTY
    if name == "disable":
        assert port.state is PortState.DISABLED
    if name == "garbage":
        assert port.state is state


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STATES), st.lists(st.sampled_from(list(INPUTS)), min_size=1, max_size=8))
def test_random_input_sequences_keep_invariants(state: PortState, names: list[str]) -> None:
    port, peer, now = port_in(state)
    for i, name in enumerate(names):
        before = port.state
        acts = INPUTS[name](port, peer, now + (i + 1) * NS)
        check_invariants(port, before, acts)
