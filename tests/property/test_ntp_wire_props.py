"""Hypothesis: NTP codec round trips, and arbitrary bytes give a packet or ParseError only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netclock.ntp.wire import ExtensionField, Leap, Mac, Mode, NtpPacket, ParseError
from netclock.time import NtpShort, NtpTimestamp

u32 = st.integers(0, 2**32 - 1)
ts = st.builds(NtpTimestamp, u32, u32)
efs = st.builds(
    lambda t, body, extra: ExtensionField.padded(t, body, 16 + 4 * extra),
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
    st.integers(0, 6),
)
macs = st.one_of(
    st.none(),
    st.builds(Mac, u32, st.sampled_from([b""]) | st.binary(min_size=16, max_size=16)
              | st.binary(min_size=20, max_size=20) | st.binary(min_size=24, max_size=24)),
)


@st.composite
def packets(draw: st.DrawFn) -> NtpPacket:
    version = draw(st.integers(0, 7))
    exts: tuple[ExtensionField, ...] = ()
    mac = draw(macs)
    if version >= 4:
        exts = tuple(draw(st.lists(efs, max_size=3)))
        if exts and mac is not None and mac.is_crypto_nak:
            mac = None  # a field followed by a bare key id reads as a 20/24-byte MAC
            exts = exts[:-1]
        if exts and mac is None:
            # RFC 7822: without a MAC the last field is at least 28 bytes, else it reads as a MAC
            last = exts[-1]
            if last.size < 28:
                grown = ExtensionField(last.field_type, last.value + bytes(28 - last.size))
                exts = (*exts[:-1], grown)
    return NtpPacket(
        leap=draw(st.sampled_from(Leap)),
        version=version,
        mode=draw(st.sampled_from(Mode)),
        stratum=draw(st.integers(0, 255)),
        poll=draw(st.integers(-128, 127)),
        precision=draw(st.integers(-128, 127)),
        root_delay=NtpShort(draw(u32)),
        root_dispersion=NtpShort(draw(u32)),
        reference_id=draw(st.binary(min_size=4, max_size=4)),
        reference_ts=draw(ts),
        origin_ts=draw(ts),
        receive_ts=draw(ts),
        transmit_ts=draw(ts),
        extensions=exts,
        mac=mac,
    )


@given(packets())
def test_round_trip(pkt: NtpPacket) -> None:
    raw = pkt.pack()
    back = NtpPacket.unpack(raw)
    # a 28-byte MAC after fields is unambiguous only if it does not look like a 28-byte field
    if pkt.mac is not None and pkt.mac.size == 28 and raw[-28 + 2 : -28 + 4] == b"\x00\x1c":
        return
    assert back == pkt
    assert back.pack() == raw


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_parse_error(raw: bytes) -> None:
    try:
        pkt = NtpPacket.unpack(raw)
    except ParseError:
        return
    assert pkt.pack() == raw


@given(packets(), st.binary(max_size=64))
def test_valid_header_with_garbage_trailer(pkt: NtpPacket, tail: bytes) -> None:
    raw = pkt.pack()[:48] + tail
    try:
        back = NtpPacket.unpack(raw)
    except ParseError:
        return
    assert back.pack() == raw
