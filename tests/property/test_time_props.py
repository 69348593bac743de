"""Property tests: every time type round-trips exactly over its whole range."""

from hypothesis import given
from hypothesis import strategies as st

from netclock.time import (
    NS_PER_S,
    NTP_UNIX_OFFSET_S,
    NtpShort,
    NtpTimestamp,
    PtpTimestamp,
    TimeInterval,
    TimeRangeError,
    Timespec,
)

HUNDRED_YEARS_NS = 100 * 366 * 86400 * NS_PER_S


@given(st.integers(0, PtpTimestamp.MAX_NS))
def test_ptp_timestamp_round_trip(ns: int) -> None:
    ts = PtpTimestamp.from_ns(ns)
    assert ts.to_ns() == ns
    assert PtpTimestamp.unpack(ts.pack()) == ts


@given(st.binary(min_size=10, max_size=10))
def test_ptp_timestamp_any_bytes(data: bytes) -> None:
    try:
        ts = PtpTimestamp.unpack(data)
    except TimeRangeError:
        assert int.from_bytes(data[6:], "big") >= NS_PER_S
    else:
        assert ts.pack() == data


@given(st.integers(TimeInterval.MIN_NS, TimeInterval.MAX_NS))
def test_time_interval_round_trip(ns: int) -> None:
    ti = TimeInterval.from_ns(ns)
    assert ti.to_ns() == ns
    assert TimeInterval.unpack(ti.pack()) == ti


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_time_interval_raw_round_trip(raw: int) -> None:
    ti = TimeInterval(raw)
    assert TimeInterval.unpack(ti.pack()) == ti
    assert abs(ti.to_fraction() - ti.to_ns()) <= 0.5


# Eras 0 and 1 (1900..2172), pivot anywhere within 60 years of the value.
@given(
    st.integers(-NTP_UNIX_OFFSET_S * NS_PER_S, (2 * 2**32 - NTP_UNIX_OFFSET_S) * NS_PER_S - 1),
    st.integers(-60 * 365 * 86400 * NS_PER_S, 60 * 365 * 86400 * NS_PER_S),
)
def test_ntp_timestamp_round_trip_with_pivot(ns: int, pivot_delta: int) -> None:
    ts = NtpTimestamp.from_unix_ns(ns)
    assert ts.to_unix_ns(ns + pivot_delta) == ns
    assert ts.to_unix_ns(era=NtpTimestamp.era_of_unix_ns(ns)) == ns
    assert NtpTimestamp.unpack(ts.pack()) == ts


@given(st.integers(0, (1 << 64) - 1))
def test_ntp_wire_round_trip(raw: int) -> None:
    ts = NtpTimestamp.from_u64(raw)
    assert NtpTimestamp.unpack(ts.pack()).to_u64() == raw


@given(st.integers(0, (1 << 32) - 1))
def test_ntp_short_raw_round_trip(raw: int) -> None:
    s = NtpShort(raw)
    assert NtpShort.from_ns(s.to_ns()) == s
    assert NtpShort.unpack(s.pack()) == s


@given(st.integers(-HUNDRED_YEARS_NS * 3, HUNDRED_YEARS_NS * 3))
def test_timespec_round_trip(ns: int) -> None:
    t = Timespec.from_ns(ns)
    assert t.to_ns() == ns
    assert 0 <= t.tv_nsec < NS_PER_S
    assert Timespec.unpack(t.pack()) == t
