"""The parent's Sync and Follow_Up skip the parser (``PtpPort._parent_timing``).

Hypothesis drives two copies of a running slave with the same message stream, one of them
made to parse everything: after every message both must have returned the same actions and
hold the same counters and pending Sync. The stream is the parent's own TLV-less Sync and
Follow_Up, mutated: any byte changed (type, version, length, domain, sdoId, identity,
nanoseconds), cut short, lengthened (a TLV, trailing bytes), or from another clock.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from ptp_pair import Net

from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import ClockIdentity, Flags, FollowUp, Header, PortIdentity, Sync
from netclock.time import PtpTimestamp, TimeInterval

NS = 1_000_000_000
OTHER = PortIdentity(ClockIdentity(b"\x02" * 8), 1)


def _running_slave() -> tuple[PtpPort, PortIdentity]:
    net = Net(delay_ns=30_000)
    gm = net.add(PortConfig(priority1=100, log_sync_interval=-4), 0x0A, ptp_epoch=37 * NS)
    sl = net.add(PortConfig(priority1=200, log_min_delay_req_interval=-2, slave_only=True),
                 0x0B, offset=777_777)
    net.start()
    net.run_until(20 * NS)
    assert sl.port.state is PortState.SLAVE
    return sl.port, gm.port.identity


SLAVE, GM = _running_slave()


def _message(t: tuple[bool, int, int, int, int, int, bool, int, int]) -> bytes:
    follow_up, seq, flags, correction, seconds, ns, other, domain, sdo = t
    hdr = Header(OTHER if other else GM, seq, domain_number=domain, flags=Flags(flags),
                 correction=TimeInterval(correction), major_sdo_id=sdo)
    ts = PtpTimestamp(seconds, ns)
    return (FollowUp(hdr, ts) if follow_up else Sync(hdr, ts)).pack()


def _rarely(common: int, *others: int) -> st.SearchStrategy[int]:
    return st.integers(0, 7).flatmap(
        lambda v: st.just(common) if v else st.sampled_from(others))


messages = st.tuples(
    st.booleans(), st.integers(0, 5), st.sampled_from([0, 0x0200, 0x0208, 0x0400, 0xFFFF]),
    st.integers(-(2**40), 2**40), st.integers(0, 2**48 - 1), st.integers(0, NS - 1),
    st.integers(0, 9).map(lambda v: v == 0), _rarely(0, 1, 255), _rarely(0, 1, 15),
).map(_message)
#: the octets the fast path reads or checks, drawn more often than the rest
_FIELDS = [0, 1, 2, 3, 4, 6, 7, 8, 15, 20, 27, 29, 30, 31, 34, 39, 40, 43]
mutated = st.one_of(
    messages,
    st.tuples(messages, st.one_of(st.sampled_from(_FIELDS), st.integers(0, 43)),
              st.integers(0, 255)).map(lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1:]),
    st.tuples(messages, st.integers(1, 43)).map(lambda t: t[0][: t[1]]),
    st.tuples(messages, st.binary(min_size=1, max_size=12), st.booleans()).map(
        lambda t: (t[0][:2] + (44 + len(t[1])).to_bytes(2, "big") + t[0][4:] if t[2] else t[0])
        + t[1]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(mutated, min_size=1, max_size=16),
    st.booleans(),
    st.sampled_from([PortState.SLAVE, PortState.UNCALIBRATED]),
    st.sampled_from([None, "10.0.0.1", "10.0.0.2"]),
)
def test_the_fast_path_does_what_the_full_parse_does(
    stream: list[bytes], follow_up_info_tlv: bool, state: PortState, src: str | None
) -> None:
    fast = copy.deepcopy(SLAVE)
    fast.config = replace(fast.config, follow_up_info_tlv=follow_up_info_tlv)
    fast.counters = dict(fast.counters)
    fast.state = state
    fast._addresses[GM] = "10.0.0.1"  # where the parent's Announces came from
    full = copy.deepcopy(fast)
    full._parent_timing = lambda data: None  # type: ignore[method-assign]  # parse all
    now = 30 * NS
    for data in stream:
        now += NS // 16
        event = bool(data[:1]) and data[0] & 0x0F == 0
        out = []
        for port in (fast, full):
            if event:
                out.append(port.handle_event_receive(data, now, now, src))
            else:
                out.append(port.handle_general_receive(data, now, src))
        assert out[0] == out[1]
        assert fast.counters == full.counters
        assert fast._sync == full._sync and fast._last_sync == full._last_sync
        assert fast._early_follow_up == full._early_follow_up


def test_the_parents_messages_do_take_the_fast_path() -> None:
    port = copy.deepcopy(SLAVE)
    seq = 40_000
    sync = Sync(Header(GM, seq, flags=Flags.TWO_STEP), PtpTimestamp(0, 0)).pack()
    fu = FollowUp(Header(GM, seq, correction=TimeInterval(3 << 16)),
                  PtpTimestamp(1_000, 250)).pack()
    assert port._parent_timing(sync) == (seq, 0x0200, 0, 0)
    assert port._parent_timing(fu) == (seq, 0, 3, 1_000 * NS + 250)
    assert port._parent_timing(_message((False, 1, 0, 0, 0, 0, True, 0, 0))) is None  # other
    port.handle_event_receive(sync, 30 * NS, 30 * NS)
    acts = port.handle_general_receive(fu, 30 * NS)
    assert any(type(a).__name__ == "Measurement" and a.t1 == 1_000 * NS + 250 and
               a.t2 == 30 * NS and a.correction == 3 for a in acts), acts
