"""The shared-memory layout (netclock.shm): byte positions, round trips, checks."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.calibration import MAX_RATE_TERM, Calibration
from netclock.observe import LockState, Quality, Timescale
from netclock.shm import (
    HEADER_SIZE,
    LAYOUT_VERSION,
    MAGIC,
    RECORD_SIZE,
    DomainRecord,
    Header,
    IdentityKind,
    ShmLayoutError,
    WriterState,
    default_runtime_dir,
    format_identity,
    pack_header,
    pack_record,
    record_crc,
    unpack_header,
    unpack_record,
)

I64 = st.integers(-(1 << 63), (1 << 63) - 1)


def test_sizes_are_the_documented_ones() -> None:
    assert HEADER_SIZE == 64
    assert RECORD_SIZE == 128


def test_header_bytes_at_documented_offsets() -> None:
    raw = pack_header(
        Header(record_count=8, writer_pid=1234, state=WriterState.RUNNING, created_mono_ns=-5)
    )
    assert len(raw) == 64
    assert raw[0:8] == MAGIC
    assert struct.unpack_from("<HHHH", raw, 8) == (LAYOUT_VERSION, 64, 128, 8)
    assert struct.unpack_from("<IIq", raw, 16) == (1234, 1, -5)
    assert raw[32:] == bytes(32)
    h = unpack_header(raw)
    assert h == Header(8, 1234, WriterState.RUNNING, -5)
    assert h.file_size == 64 + 8 * 128


def test_record_bytes_at_documented_offsets() -> None:
    cal = Calibration(internal=-7, external=1 << 62, rate_num=3, rate_denom=1 << 41, epoch=9)
    rec = DomainRecord(
        domain=300,
        calibration=cal,
        lock_state=LockState.HOLDOVER,
        quality=Quality.HOLDOVER_IN_SPEC,
        timescale=Timescale.UTC,
        error_bound_ns=1500,
        error_growth_ps_per_s=25_000,
        update_mono_ns=42,
        utc_offset_s=-37,
        utc_offset_valid=True,
        leap61=True,
        identity_kind=IdentityKind.IPV4,
        identity=bytes([192, 0, 2, 1]),
        hops=2,
    )
    raw = pack_record(rec, seq=10)
    assert len(raw) == 128
    assert struct.unpack_from("<QqqQQQqQQ", raw, 0) == (
        10,
        -7,
        1 << 62,
        3,
        1 << 41,
        9,
        42,
        1500,
        25_000,
    )
    domain, flags, utc = struct.unpack_from("<HHh", raw, 72)
    assert (domain, utc) == (300, -37)
    assert flags == 0b1111  # valid, calibrated, utc offset valid, leap61
    assert tuple(raw[78:82]) == (2, 3, 2, 2)  # timescale, lock, quality, identity kind
    assert struct.unpack_from("<H", raw, 82) == (2,)
    assert raw[84:88] == bytes(4)
    assert raw[88:104] == bytes([192, 0, 2, 1]) + bytes(12)
    assert raw[104:124] == bytes(20)
    assert struct.unpack_from("<I", raw, 124) == (record_crc(raw),)
    assert unpack_record(raw) == (10, rec)


def test_empty_record_is_invalid_and_checksummed() -> None:
    raw = pack_record(None, seq=4)
    assert unpack_record(raw) == (4, None)


def test_crc_detects_a_changed_byte() -> None:
    raw = bytearray(pack_record(DomainRecord(domain=1, calibration=Calibration(1, 2, 3, 4))))
    raw[20] ^= 0x01
    with pytest.raises(ShmLayoutError, match="CRC"):
        unpack_record(raw)
    # The seq word is outside the CRC: the writer changes it around a consistent body.
    raw[20] ^= 0x01
    raw[0] = 99
    assert unpack_record(raw)[0] == 99


def test_bad_header_messages() -> None:
    good = pack_header(Header(record_count=1))
    with pytest.raises(ShmLayoutError, match="bad magic"):
        unpack_header(b"X" * 8 + good[8:])
    with pytest.raises(ShmLayoutError, match="layout version 2 is not supported"):
        unpack_header(good[:8] + struct.pack("<H", 2) + good[10:])
    with pytest.raises(ShmLayoutError, match="too short"):
        unpack_header(good[:10])


def test_identity_length_is_checked() -> None:
    with pytest.raises(ShmLayoutError, match="PTP_CLOCK must be 8 bytes"):
        pack_record(DomainRecord(0, identity_kind=IdentityKind.PTP_CLOCK, identity=b"12"))


def test_field_ranges_are_checked() -> None:
    with pytest.raises(ShmLayoutError, match="domain 65536"):
        pack_record(DomainRecord(65536))
    with pytest.raises(ShmLayoutError, match="utc_offset_s"):
        pack_record(DomainRecord(0, utc_offset_s=40000))
    with pytest.raises(ShmLayoutError, match="error_bound_ns"):
        pack_record(DomainRecord(0, error_bound_ns=-1))


def test_rate_terms_checked_on_read() -> None:
    raw = bytearray(pack_record(DomainRecord(0, Calibration(0, 0, 1, 1))))
    struct.pack_into("<Q", raw, 24, 0)
    struct.pack_into("<I", raw, 124, record_crc(raw))
    with pytest.raises(ShmLayoutError, match="rate 0/1"):
        unpack_record(raw)


def test_error_bound_grows_with_age() -> None:
    rec = DomainRecord(0, error_bound_ns=100, error_growth_ps_per_s=1_000_000, update_mono_ns=0)
    # 1e6 ps/s = 1 µs/s: after 2.5 s the bound grew by 2.5 µs.
    assert rec.error_bound_at(2_500_000_000) == 100 + 2_500
    assert rec.error_bound_at(-5) == 100
    assert rec.error_bound_at(1) == 101  # rounded up: a bound never understates


def test_format_identity() -> None:
    assert format_identity(IdentityKind.PTP_CLOCK, bytes.fromhex("001122fffe334455")) == (
        "001122.fffe.334455"
    )
    assert format_identity(IdentityKind.IPV6, bytes(15) + b"\1") == "::1"
    assert format_identity(IdentityKind.REFID, b"GPS\0") == "GPS"
    assert format_identity(IdentityKind.NONE, b"") == ""


def test_default_runtime_dir() -> None:
    assert default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000/"}) == "/run/user/1000/netclock"
    assert default_runtime_dir({}) == "/run/netclock"


_ident = st.sampled_from(list(IdentityKind)).flatmap(
    lambda k: st.tuples(
        st.just(k),
        st.binary(
            min_size={0: 0, 1: 8, 2: 4, 3: 16, 4: 4}[k], max_size={0: 0, 1: 8, 2: 4, 3: 16, 4: 4}[k]
        ),
    )
)


@given(
    cal=st.none()
    | st.builds(
        Calibration,
        I64,
        I64,
        st.integers(1, MAX_RATE_TERM),
        st.integers(1, MAX_RATE_TERM),
        st.integers(0, (1 << 64) - 1),
    ),
    domain=st.integers(0, 0xFFFF),
    lock=st.sampled_from(list(LockState)),
    quality=st.sampled_from(list(Quality)),
    ts=st.sampled_from(list(Timescale)),
    bound=st.integers(0, (1 << 64) - 1),
    growth=st.integers(0, (1 << 64) - 1),
    update=I64,
    utc=st.integers(-(1 << 15), (1 << 15) - 1),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    ident=_ident,
    hops=st.integers(0, 0xFFFF),
    seq=st.integers(0, (1 << 64) - 1),
)
def test_round_trip(
    cal: Calibration | None,
    domain: int,
    lock: LockState,
    quality: Quality,
    ts: Timescale,
    bound: int,
    growth: int,
    update: int,
    utc: int,
    flags: tuple[bool, bool, bool, bool, bool],
    ident: tuple[IdentityKind, bytes],
    hops: int,
    seq: int,
) -> None:
    rec = DomainRecord(
        domain, cal, lock, quality, ts, bound, growth, update, utc, *flags, ident[0], ident[1], hops
    )
    raw = pack_record(rec, seq)
    assert len(raw) == RECORD_SIZE
    assert unpack_record(raw) == (seq, rec)


@given(st.binary(min_size=RECORD_SIZE, max_size=RECORD_SIZE))
def test_any_bytes_decode_or_layout_error(raw: bytes) -> None:
    with contextlib.suppress(ShmLayoutError):
        unpack_record(raw, verify=False)
