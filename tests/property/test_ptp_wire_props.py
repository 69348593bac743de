"""Hypothesis: every PTP message round-trips, and any bytes parse or raise ParseError only."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.ptp.wire import (
    Announce,
    CancelUnicastTransmissionTlv,
    ClockIdentity,
    ClockQuality,
    DelayReq,
    DelayResp,
    Flags,
    FollowUp,
    GrantUnicastTransmissionTlv,
    Header,
    Management,
    ManagementErrorStatusTlv,
    ManagementTlv,
    Message,
    OrganizationExtensionTlv,
    ParseError,
    PathTraceTlv,
    PdelayReq,
    PdelayResp,
    PdelayRespFollowUp,
    PortIdentity,
    RequestUnicastTransmissionTlv,
    Signaling,
    Sync,
    Tlv,
    UnknownTlv,
    parse,
    unpack_tlvs,
)
from netclock.ptp.wire.mgmt_data import DATA_SETS
from netclock.time import PtpTimestamp, TimeInterval

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
clock_ids = st.binary(min_size=8, max_size=8).map(ClockIdentity)
port_ids = st.builds(PortIdentity, clock_ids, u16)
timestamps = st.builds(PtpTimestamp, st.integers(0, (1 << 48) - 1), st.integers(0, 10**9 - 1))
headers = st.builds(
    Header,
    source_port_identity=port_ids,
    sequence_id=u16,
    domain_number=u8,
    flags=u16.map(Flags),
    correction=st.integers(-(1 << 63), (1 << 63) - 1).map(TimeInterval),
    log_message_interval=st.integers(-128, 127),
    major_sdo_id=st.integers(0, 15),
    minor_sdo_id=u8,
    minor_version=st.integers(0, 15),
    message_type_specific=st.integers(0, 0xFFFFFFFF),
    control_field=st.none() | st.integers(6, 0xFF),  # 0..5 are the per-type defaults
)
tlvs: st.SearchStrategy[Tlv] = st.one_of(
    st.builds(ManagementTlv, u16, st.binary(max_size=40)),
    st.builds(ManagementErrorStatusTlv, u16, u16, st.binary(min_size=4, max_size=4),
              st.binary(max_size=20)),
    st.builds(OrganizationExtensionTlv, st.binary(min_size=3, max_size=3),
              st.binary(min_size=3, max_size=3), st.binary(max_size=30),
              st.sampled_from([0x0003, 0x4000, 0x8000])),
    st.builds(PathTraceTlv, st.lists(clock_ids, max_size=4).map(tuple)),
    st.builds(RequestUnicastTransmissionTlv, st.integers(0, 15), st.integers(-128, 127),
              st.integers(0, 0xFFFFFFFF)),
    st.builds(GrantUnicastTransmissionTlv, st.integers(0, 15), st.integers(-128, 127),
              st.integers(0, 0xFFFFFFFF), st.booleans()),
    st.builds(CancelUnicastTransmissionTlv, st.integers(0, 15), st.booleans()),
    st.builds(UnknownTlv, u16.filter(lambda t: t not in range(1, 9) and t not in
                                     (0x4000, 0x8000)), st.binary(max_size=40)),
)
tlv_lists = st.lists(tlvs, max_size=3).map(tuple)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Sync, headers, timestamps, tlv_lists),
    st.builds(DelayReq, headers, timestamps, tlv_lists),
    st.builds(FollowUp, headers, timestamps, tlv_lists),
    st.builds(DelayResp, headers, timestamps, port_ids, tlv_lists),
    st.builds(PdelayReq, headers, timestamps, st.binary(min_size=10, max_size=10), tlv_lists),
    st.builds(PdelayResp, headers, timestamps, port_ids, tlv_lists),
    st.builds(PdelayRespFollowUp, headers, timestamps, port_ids, tlv_lists),
    st.builds(
        Announce,
        header=headers,
        origin_timestamp=timestamps,
        current_utc_offset=st.integers(-32768, 32767),
        grandmaster_priority1=u8,
        grandmaster_clock_quality=st.builds(ClockQuality, u8, u8, u16),
        grandmaster_priority2=u8,
        grandmaster_identity=clock_ids,
        steps_removed=u16,
        time_source=u8,
        reserved=u8,
        tlvs=tlv_lists,
    ),
    st.builds(Signaling, headers, port_ids, tlv_lists),
    st.builds(Management, headers, port_ids, u8, u8, st.integers(0, 15), st.integers(0, 15),
              u8, tlv_lists),
)


@given(messages)
def test_round_trip(msg: Message) -> None:
    data = msg.pack()
    assert parse(data) == msg
    assert type(msg).unpack(data) == msg
    assert parse(data).pack() == data


@given(messages, st.binary(max_size=8))
def test_trailing_padding_ignored(msg: Message, pad: bytes) -> None:
    assert parse(msg.pack() + pad) == msg


@settings(max_examples=400)
@given(st.binary(max_size=120))
def test_any_bytes_parse_or_parse_error(data: bytes) -> None:
    try:
        msg = parse(data)
    except ParseError:
        return
    # whatever parses re-encodes to the first messageLength bytes exactly
    length = int.from_bytes(data[2:4], "big")
    assert msg.pack() == data[:length]


@given(messages, st.data())
def test_mutated_messages_parse_or_parse_error(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(msg.pack())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(u8)
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(ParseError):
        parse(bytes(raw[:cut]))


@given(st.binary(max_size=60))
def test_tlv_sequences_parse_or_parse_error(data: bytes) -> None:
    try:
        out = unpack_tlvs(data)
    except ParseError:
        return
    assert b"".join(t.pack() for t in out) == data


@given(st.binary(max_size=40), st.sampled_from(sorted(DATA_SETS)))
def test_management_data_sets_parse_or_parse_error(data: bytes, mid: int) -> None:
    cls = DATA_SETS[mid]
    try:
        ds = cls.unpack(data)
    except ParseError:
        return
    assert ds.pack() == data[: len(ds.pack())]
