"""Peer delay (IEEE 1588-2019 §11.4) in PtpPort on fake time: one- and two-step, both roles,
neighborRateRatio, per-port delay mechanism, gPTP Follow_Up information TLV."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ptp_pair import Net

from netclock.ptp.actions import PortTimer, SendEvent, SendGeneral, TxKind
from netclock.ptp.datasets import DelayMechanism, PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import (
    ClockIdentity,
    DelayReq,
    Flags,
    FollowUp,
    Header,
    MessageType,
    PdelayReq,
    PdelayResp,
    PdelayRespFollowUp,
    PortIdentity,
    parse,
)
from netclock.ptp.wire.gptp import FollowUpInfo
from netclock.time import PtpTimestamp, TimeInterval

NS = 1_000_000_000
EPOCH = 1_700_000_000 * NS
P2P = DelayMechanism.P2P
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)
PEER = PortIdentity(ClockIdentity(b"\x60" * 8), 1)


def pair(two_step: bool = True, delay: int = 40_000, mech: DelayMechanism = P2P,
         **slave_kw: object) -> tuple[Net, object, object]:
    net = Net(delay_ns=delay)
    gm = net.add(PortConfig(priority1=100, log_sync_interval=-2, delay_mechanism=mech,
                            two_step=two_step, log_min_pdelay_req_interval=-2),
                 0x0A, ptp_epoch=EPOCH)
    sl = net.add(PortConfig(slave_only=True, delay_mechanism=mech, two_step=two_step,
                            log_min_pdelay_req_interval=-2, **slave_kw),  # type: ignore[arg-type]
                 0x0B, offset=123_456)
    net.start()
    net.run_until(15 * NS)
    return net, gm, sl


@pytest.mark.parametrize("two_step", [True, False])
def test_p2p_measures_link_delay_both_ways_and_locks(two_step: bool) -> None:
    _, gm, sl = pair(two_step)
    assert gm.port.state is PortState.MASTER  # type: ignore[attr-defined]
    assert sl.port.state is PortState.SLAVE  # type: ignore[attr-defined]
    for node in (gm, sl):  # every P2P port is requester and responder
        port: PtpPort = node.port  # type: ignore[attr-defined]
        assert port.neighbor_prop_delay == 40_000
        assert port.counters["pdelay_exchanges"] >= 40
        assert port.counters["pdelay_lost"] == 0
        assert port.as_capable
    ms = sl.measurements  # type: ignore[attr-defined]
    assert ms and all(m.delay == 40_000 and m.offset == 123_456 - EPOCH for m in ms)
    assert all(m.t3 == 0 and m.t4 == 0 for m in ms)
    assert sl.port.port_ds.delay_mechanism is P2P  # type: ignore[attr-defined]
    assert sl.port.port_ds.mean_link_delay == 40_000  # type: ignore[attr-defined]


def test_p2p_port_sends_no_delay_req_and_ignores_one() -> None:
    port = PtpPort(PortConfig(delay_mechanism=P2P, master_only=True), ME, random.Random(1))
    acts = port.start(0)
    assert PortTimer.DELAY_REQ not in [getattr(a, "timer", None) for a in acts]
    req = DelayReq(Header(source_port_identity=PEER))
    assert port.handle_event_receive(req.pack(), 5, 5) == []
    assert port.counters["dropped"] == 1


def test_e2e_port_ignores_pdelay_req() -> None:
    port = PtpPort(PortConfig(), ME, random.Random(1))
    port.start(0)
    req = PdelayReq(Header(source_port_identity=PEER, sequence_id=3))
    assert port.handle_event_receive(req.pack(), 5, 5) == []


def test_no_mechanism_uses_zero_delay() -> None:
    _, _, sl = pair(mech=DelayMechanism.NO_MECHANISM)
    ms = sl.measurements  # type: ignore[attr-defined]
    assert ms and all(m.delay == 0 and m.offset == 123_456 - EPOCH + 40_000 for m in ms)


def _responder(two_step: bool) -> PtpPort:
    port = PtpPort(PortConfig(delay_mechanism=P2P, two_step=two_step), ME, random.Random(1))
    port.start(0)
    return port


def test_two_step_responder_messages() -> None:
    port = _responder(True)
    req = PdelayReq(Header(source_port_identity=PEER, sequence_id=9,
                           correction=TimeInterval.from_ns(77)))
    acts = port.handle_event_receive(req.pack(), 1_000, 1_100)
    (ev,) = acts
    assert isinstance(ev, SendEvent) and ev.context.kind is TxKind.PDELAY_RESP
    resp = parse(ev.data)
    assert isinstance(resp, PdelayResp)
    assert Flags.TWO_STEP in resp.header.flags and resp.header.sequence_id == 9
    assert resp.request_receipt_timestamp == PtpTimestamp.from_ns(1_000)
    assert resp.requesting_port_identity == PEER
    (fu_act,) = port.handle_send_timestamp(ev.context, 1_500, 1_600)
    assert isinstance(fu_act, SendGeneral)
    fu = parse(fu_act.data)
    assert isinstance(fu, PdelayRespFollowUp)
    assert fu.response_origin_timestamp == PtpTimestamp.from_ns(1_500)
    assert fu.header.correction.to_ns() == 77 and fu.requesting_port_identity == PEER


def test_one_step_responder_puts_turnaround_in_correction() -> None:
    port = _responder(False)
    req = PdelayReq(Header(source_port_identity=PEER, sequence_id=4))
    (ev,) = port.handle_event_receive(req.pack(), 1_000, 1_250)
    assert isinstance(ev, SendEvent) and ev.context.used
    resp = parse(ev.data)
    assert isinstance(resp, PdelayResp) and Flags.TWO_STEP not in resp.header.flags
    assert resp.header.correction.to_ns() == 250
    assert resp.request_receipt_timestamp == PtpTimestamp(0, 0)


def _request(port: PtpPort, t: int) -> tuple[SendEvent, int]:
    acts = port.handle_timer(PortTimer.PDELAY_REQ, t)
    ev = next(a for a in acts if isinstance(a, SendEvent))
    seq = parse(ev.data).header.sequence_id  # type: ignore[attr-defined]
    port.handle_send_timestamp(ev.context, t, t)
    return ev, seq


def _resp(seq: int, t2: int, two_step: bool = True, src: PortIdentity = PEER,
          corr: int = 0) -> bytes:
    h = Header(source_port_identity=src, sequence_id=seq, correction=TimeInterval.from_ns(corr),
               flags=Flags.TWO_STEP if two_step else Flags.NONE)
    return PdelayResp(h, PtpTimestamp.from_ns(t2), ME).pack()


def _resp_fu(seq: int, t3: int, src: PortIdentity = PEER) -> bytes:
    return PdelayRespFollowUp(Header(source_port_identity=src, sequence_id=seq),
                              PtpTimestamp.from_ns(t3), ME).pack()


def test_requester_measures_rate_ratio_from_successive_exchanges() -> None:
    port = _responder(True)
    ratio = Fraction(1_000_050, 1_000_000)  # neighbor runs 50 ppm fast
    d = 30_000
    for k in range(12):
        t1 = NS + k * NS
        _, seq = _request(port, t1)
        t2 = int(EPOCH + (t1 + d) * ratio)
        t3 = t2 + 200_000
        t4 = t1 + 2 * d + int(200_000 / ratio)
        port.handle_event_receive(_resp(seq, t2), t4, t4)
        if k % 2:  # the Follow_Up may overtake the Pdelay_Resp
            port.handle_general_receive(_resp_fu(seq, t3), t4)
        else:
            port.handle_general_receive(_resp_fu(seq, t3), t4)
    num, den = port.neighbor_rate_ratio
    assert abs(Fraction(num, den) - ratio) < Fraction(1, 10**8)
    assert port.neighbor_prop_delay is not None
    assert abs(port.neighbor_prop_delay - d * ratio) <= 2
    assert port.counters["pdelay_exchanges"] == 12


def test_follow_up_before_resp_is_kept() -> None:
    port = _responder(True)
    for k in range(4):
        t1 = NS * (k + 1)
        _, seq = _request(port, t1)
        port.handle_general_receive(_resp_fu(seq, t1 + 20_000 + 5_000), t1 + 40_000)
        port.handle_event_receive(_resp(seq, t1 + 20_000), t1 + 45_000, t1 + 45_000)
    assert port.neighbor_prop_delay == 20_000


def test_one_step_resp_completes_without_follow_up() -> None:
    port = _responder(True)
    for k in range(3):
        t1 = NS * (k + 1)
        _, seq = _request(port, t1)
        port.handle_event_receive(_resp(seq, 0, two_step=False, corr=7_000), t1 + 27_000,
                                  t1 + 27_000)
    assert port.neighbor_prop_delay == 10_000


def test_second_responder_voids_the_exchange_and_lost_responses_count() -> None:
    port = _responder(True)
    _, seq = _request(port, NS)
    port.handle_event_receive(_resp(seq, 5), NS + 10, NS + 10)
    other = PortIdentity(ClockIdentity(b"\x70" * 8), 1)
    port.handle_event_receive(_resp(seq, 5, src=other), NS + 11, NS + 11)
    assert port.counters["pdelay_multiple_responders"] == 1
    _request(port, 2 * NS)  # no answer to this one
    _request(port, 3 * NS)
    assert port.counters["pdelay_lost"] == 1
    assert port.neighbor_prop_delay is None


def test_gptp_master_follow_up_carries_info_tlv() -> None:
    port = PtpPort(PortConfig(delay_mechanism=P2P, master_only=True, follow_up_info_tlv=True,
                              major_sdo_id=1), ME, random.Random(1))
    acts = port.start(0)
    sync_ev = None
    for a in acts:
        if getattr(a, "timer", None) is PortTimer.SYNC:
            sync_ev = next(x for x in port.handle_timer(PortTimer.SYNC, 0)
                           if isinstance(x, SendEvent))
    assert sync_ev is not None
    (fu_act,) = port.handle_send_timestamp(sync_ev.context, 10, 10)
    assert isinstance(fu_act, SendGeneral)
    fu = parse(fu_act.data)
    assert isinstance(fu, FollowUp) and fu.header.major_sdo_id == 1
    info = FollowUpInfo.from_tlvs(fu.tlvs)
    assert info is not None and info.rate_ratio == 1
    assert len(fu_act.data) == 44 + 32  # 802.1AS §11.4.4.3: a 32-octet TLV after the body
    assert fu_act.data[0] & 0x0F == MessageType.FOLLOW_UP


@given(st.integers(-(2**40), 2**40), st.integers(1, 2**40))
def test_follow_up_info_rate_ratio_round_trip(num_off: int, den: int) -> None:
    num = den + num_off // 1000
    if num <= 0:
        return
    info = FollowUpInfo.from_rate_ratio(num, den)
    back = FollowUpInfo.from_tlvs((info.tlv(),))
    assert back == info
    if abs(Fraction(num, den) - 1) < Fraction(1, 2000):  # inside the Int32 range
        assert abs(info.rate_ratio - Fraction(num, den)) <= Fraction(1, 2**41)
