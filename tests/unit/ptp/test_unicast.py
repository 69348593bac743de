"""Unicast operation of PtpPort (§16.1): negotiation requests from the master table, unicast
Delay_Req to the parent's address, unicast Delay_Resp from a master."""

from __future__ import annotations

import random

from netclock.calibration import Calibration
from netclock.ptp.actions import PortTimer, SendEvent, SendGeneral
from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import (
    Announce,
    ClockIdentity,
    ClockQuality,
    DelayReq,
    DelayResp,
    Flags,
    GrantUnicastTransmissionTlv,
    Header,
    MessageType,
    PortIdentity,
    RequestUnicastTransmissionTlv,
    Signaling,
    parse,
)

NS = 1_000_000_000
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)
GM = PortIdentity(ClockIdentity(b"\x01" * 8), 1)
GM_ADDR, OTHER_ADDR = "192.0.2.1", "192.0.2.2"


def _requests(actions: list[object]) -> dict[str | None, set[int]]:
    out: dict[str | None, set[int]] = {}
    for a in actions:
        if isinstance(a, SendGeneral):
            msg = parse(a.data)
            if isinstance(msg, Signaling):
                assert Flags.UNICAST in msg.header.flags
                out[a.dest] = {t.message_type for t in msg.tlvs
                               if isinstance(t, RequestUnicastTransmissionTlv)}
    return out


def _announce(seq: int) -> bytes:
    return Announce(Header(source_port_identity=GM, sequence_id=seq),
                    grandmaster_priority1=100, grandmaster_identity=GM.clock_identity,
                    grandmaster_clock_quality=ClockQuality(6)).pack()


def test_slave_negotiates_then_sends_unicast_delay_req() -> None:
    cfg = PortConfig(slave_only=True, unicast_masters=(GM_ADDR, OTHER_ADDR),
                     unicast_duration_s=60, log_min_delay_req_interval=-3)
    port = PtpPort(cfg, ME, random.Random(1))
    acts = port.start(0)
    assert any(getattr(a, "timer", None) is PortTimer.UNICAST_REQUEST for a in acts)
    first = port.handle_timer(PortTimer.UNICAST_REQUEST, 0)
    assert _requests(first) == {GM_ADDR: {MessageType.ANNOUNCE},
                                OTHER_ADDR: {MessageType.ANNOUNCE}}
    renew = [a for a in first if getattr(a, "timer", None) is PortTimer.UNICAST_REQUEST]
    assert renew and renew[0].at == 30 * NS  # type: ignore[attr-defined]
    # the grandmaster answers with grants and unicast Announce; it becomes the parent
    grant = Signaling(Header(source_port_identity=GM), ME,
                      (GrantUnicastTransmissionTlv(MessageType.ANNOUNCE, 0, 60, True),))
    port.handle_general_receive(grant.pack(), 1, src=GM_ADDR)
    assert port.unicast_grants == {(GM_ADDR, MessageType.ANNOUNCE): 60}
    acts = []
    for k in range(3):
        acts += port.handle_general_receive(_announce(k), NS * (k + 1), src=GM_ADDR)
    assert port.state is PortState.UNCALIBRATED and port.parent == GM
    # the new parent is asked for Sync and Delay_Resp as well, at once
    now = 3 * NS
    reqs = _requests(port.handle_timer(PortTimer.UNICAST_REQUEST, now))
    assert reqs[GM_ADDR] == {MessageType.ANNOUNCE, MessageType.SYNC, MessageType.DELAY_RESP}
    assert reqs[OTHER_ADDR] == {MessageType.ANNOUNCE}
    (ev,) = [a for a in port.handle_timer(PortTimer.DELAY_REQ, now) if isinstance(a, SendEvent)]
    assert ev.dest == GM_ADDR
    req = parse(ev.data)
    assert isinstance(req, DelayReq) and Flags.UNICAST in req.header.flags


def test_multicast_port_sends_no_requests_and_no_dest() -> None:
    port = PtpPort(PortConfig(slave_only=True), ME, random.Random(1))
    acts = port.start(0)
    assert not any(getattr(a, "timer", None) is PortTimer.UNICAST_REQUEST for a in acts)
    assert port.handle_timer(PortTimer.UNICAST_REQUEST, 0) == []


def test_master_answers_unicast_delay_req_to_its_sender() -> None:
    port = PtpPort(PortConfig(master_only=True), ME, random.Random(1))
    port.set_time_source(Calibration(0, 1_700_000_000 * NS))
    port.start(0)
    assert port.state is PortState.MASTER
    src = PortIdentity(ClockIdentity(b"\x07" * 8), 1)
    uni = DelayReq(Header(source_port_identity=src, sequence_id=4, flags=Flags.UNICAST))
    (resp,) = port.handle_event_receive(uni.pack(), 5 * NS, 5 * NS, src="192.0.2.7")
    assert isinstance(resp, SendGeneral) and resp.dest == "192.0.2.7"
    msg = parse(resp.data)
    assert isinstance(msg, DelayResp) and Flags.UNICAST in msg.header.flags
    multi = DelayReq(Header(source_port_identity=src, sequence_id=5))
    (resp,) = port.handle_event_receive(multi.pack(), 6 * NS, 6 * NS, src="192.0.2.7")
    assert isinstance(resp, SendGeneral) and resp.dest is None
