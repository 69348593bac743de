"""Hypothesis: a PtpPort accepts any bytes on either port, in any state, without raising."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.ptp.actions import PortTimer, SendEvent, StateChanged
from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import (
    Announce,
    ClockIdentity,
    DelayResp,
    Flags,
    FollowUp,
    Header,
    PortIdentity,
    Sync,
)
from netclock.time import PtpTimestamp

NS = 1_000_000_000
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)
GM = PortIdentity(ClockIdentity(b"\x01" * 8), 1)

VALID = [
    Announce(header=Header(GM, 1, log_message_interval=1), grandmaster_priority1=1,
             grandmaster_identity=GM.clock_identity).pack(),
    Sync(Header(GM, 5, flags=Flags.TWO_STEP), PtpTimestamp(0, 0)).pack(),
    Sync(Header(GM, 6), PtpTimestamp(1_700_000_000, 5)).pack(),
    FollowUp(Header(GM, 5), PtpTimestamp(1_700_000_000, 7)).pack(),
    DelayResp(Header(GM, 0), PtpTimestamp(1_700_000_000, 9), ME).pack(),
]

payloads = st.one_of(
    st.binary(max_size=120),
    st.tuples(st.sampled_from(VALID), st.integers(0, 63), st.integers(0, 255),
              st.integers(0, 80)).map(
        lambda t: (t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1:])[: max(t[3], 1) + 43]),
    st.sampled_from(VALID),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["event", "general", "timer"]), payloads,
                       st.sampled_from(list(PortTimer))), min_size=1, max_size=25),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_port_never_raises_on_any_input(
    steps: list[tuple[str, bytes, PortTimer]], slave_only: bool, seed: int
) -> None:
    port = PtpPort(PortConfig(slave_only=slave_only, calibration_measurements=1), ME,
                   random.Random(seed))
    port.start(0)
    now = 0
    for kind, data, timer in steps:
        now += NS // 4
        if kind == "event":
            acts = port.handle_event_receive(data, now, now)
        elif kind == "general":
            acts = port.handle_general_receive(data, now)
        else:
            acts = port.handle_timer(timer, now)
        for a in acts:
            if isinstance(a, SendEvent):
                port.handle_send_timestamp(a.context, now + 10, now + 10)
            if isinstance(a, StateChanged):
                assert a.new is port.state or a.new in PortState
        assert port.state in PortState
