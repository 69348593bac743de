"""Unit tests of the integer-ns time types (netclock.time): edges and clear range errors."""

from fractions import Fraction

import pytest

from netclock.time import (
    NS_PER_S,
    NTP_UNIX_OFFSET_S,
    NtpShort,
    NtpTimestamp,
    PtpTimestamp,
    TimeInterval,
    TimeRangeError,
    Timespec,
    format_ns,
)


class TestPtpTimestamp:
    def test_zero_and_max(self) -> None:
        assert PtpTimestamp.from_ns(0).pack() == bytes(10)
        top = PtpTimestamp.from_ns(PtpTimestamp.MAX_NS)
        assert top.pack() == b"\xff" * 6 + (999_999_999).to_bytes(4, "big")
        assert PtpTimestamp.unpack(top.pack()).to_ns() == PtpTimestamp.MAX_NS

    def test_golden_bytes(self) -> None:
        # 2^32 + 5 seconds, 123456789 ns: the high 16 bits of secondsField come first.
        ts = PtpTimestamp((1 << 32) + 5, 123_456_789)
        assert ts.pack().hex() == "0001" "00000005" "075bcd15"
        assert PtpTimestamp.unpack(bytes.fromhex("000100000005075bcd15")) == ts

    @pytest.mark.parametrize("ns", [-1, PtpTimestamp.MAX_NS + 1])
    def test_out_of_range(self, ns: int) -> None:
        with pytest.raises(TimeRangeError, match="PtpTimestamp"):
            PtpTimestamp.from_ns(ns)

    def test_bad_nanoseconds_field_on_the_wire(self) -> None:
        with pytest.raises(TimeRangeError, match="nanoseconds"):
            PtpTimestamp.unpack(bytes(6) + (NS_PER_S).to_bytes(4, "big"))

    def test_short_buffer(self) -> None:
        with pytest.raises(TimeRangeError, match="10 bytes"):
            PtpTimestamp.unpack(bytes(9))

    def test_rejects_float(self) -> None:
        with pytest.raises(TypeError):
            PtpTimestamp.from_ns(1.0)  # type: ignore[arg-type]


class TestTimeInterval:
    def test_scaling(self) -> None:
        ti = TimeInterval.from_ns(1)
        assert ti.scaled_ns == 65536
        assert ti.pack().hex() == "0000000000010000"
        assert TimeInterval.from_ns(-1).pack().hex() == "ffffffffffff0000"
        assert TimeInterval.from_ns(0, Fraction(1, 2)).scaled_ns == 32768

    def test_rounding_to_ns(self) -> None:
        assert TimeInterval(32768).to_ns() == 1  # 0.5 ns rounds away from zero
        assert TimeInterval(-32768).to_ns() == -1
        assert TimeInterval(32767).to_ns() == 0
        assert TimeInterval(98304).to_fraction() == Fraction(3, 2)

    def test_limits(self) -> None:
        assert TimeInterval.from_ns(TimeInterval.MAX_NS).to_ns() == TimeInterval.MAX_NS
        assert TimeInterval.from_ns(TimeInterval.MIN_NS).to_ns() == TimeInterval.MIN_NS
        with pytest.raises(TimeRangeError, match="TimeInterval"):
            TimeInterval.from_ns(TimeInterval.MAX_NS + 1)
        with pytest.raises(TimeRangeError, match="TimeInterval"):
            TimeInterval.from_ns(TimeInterval.MIN_NS - 1)

    def test_unpack_extremes(self) -> None:
        assert TimeInterval.unpack(b"\x7f" + b"\xff" * 7).scaled_ns == (1 << 63) - 1
        assert TimeInterval.unpack(b"\x80" + bytes(7)).scaled_ns == -(1 << 63)


class TestNtpTimestamp:
    def test_unix_epoch(self) -> None:
        ts = NtpTimestamp.from_unix_ns(0)
        assert ts == NtpTimestamp(NTP_UNIX_OFFSET_S, 0)
        assert ts.pack().hex() == "83aa7e8000000000"

    def test_half_second_fraction(self) -> None:
        assert NtpTimestamp.from_unix_ns(NS_PER_S // 2).fraction == 1 << 31

    def test_era_rollover_2036(self) -> None:
        # Era 0 ends at 2036-02-07T06:28:16Z = Unix 2085978496 s.
        rollover_ns = (2**32 - NTP_UNIX_OFFSET_S) * NS_PER_S
        before = NtpTimestamp.from_unix_ns(rollover_ns - 1)
        after = NtpTimestamp.from_unix_ns(rollover_ns + 1)
        assert before.seconds == 2**32 - 1
        assert after.seconds == 0
        # A pivot on either side decodes both correctly.
        for pivot in (rollover_ns - 10 * NS_PER_S, rollover_ns + 10 * NS_PER_S):
            assert before.to_unix_ns(pivot) == rollover_ns - 1
            assert after.to_unix_ns(pivot) == rollover_ns + 1
        assert after.to_unix_ns(era=1) == rollover_ns + 1
        assert NtpTimestamp.era_of_unix_ns(rollover_ns + 1) == 1
        assert NtpTimestamp.era_of_unix_ns(rollover_ns - 1) == 0

    def test_before_1900_rejected(self) -> None:
        with pytest.raises(TimeRangeError, match="1900"):
            NtpTimestamp.from_unix_ns(-NTP_UNIX_OFFSET_S * NS_PER_S - 1)

    def test_pivot_or_era_required(self) -> None:
        ts = NtpTimestamp.from_unix_ns(0)
        with pytest.raises(TypeError):
            ts.to_unix_ns()
        with pytest.raises(TypeError):
            ts.to_unix_ns(0, era=0)

    def test_zero_means_unknown(self) -> None:
        assert NtpTimestamp(0, 0).is_zero
        assert not NtpTimestamp.from_unix_ns(0).is_zero

    def test_u64(self) -> None:
        ts = NtpTimestamp(0xDEADBEEF, 0x01234567)
        assert NtpTimestamp.from_u64(ts.to_u64()) == ts
        with pytest.raises(TimeRangeError):
            NtpTimestamp.from_u64(1 << 64)

    def test_field_ranges(self) -> None:
        with pytest.raises(TimeRangeError, match="seconds"):
            NtpTimestamp(1 << 32, 0)
        with pytest.raises(TimeRangeError, match="fraction"):
            NtpTimestamp(0, -1)


class TestNtpShort:
    def test_values(self) -> None:
        assert NtpShort.from_ns(NS_PER_S).raw == 1 << 16
        assert NtpShort.from_ns(NS_PER_S).pack().hex() == "00010000"
        assert NtpShort(1).to_ns() == 15259  # 2^-16 s
        with pytest.raises(TimeRangeError, match="NtpShort"):
            NtpShort.from_ns(-1)
        with pytest.raises(TimeRangeError, match="NtpShort"):
            NtpShort.from_ns(70_000 * NS_PER_S)

    def test_clamped(self) -> None:
        assert NtpShort.from_ns_clamped(-5).raw == 0
        assert NtpShort.from_ns_clamped(10**15).raw == 2**32 - 1


class TestTimespec:
    def test_negative_normalised(self) -> None:
        assert Timespec.from_ns(-1) == Timespec(-1, 999_999_999)
        assert Timespec.from_ns(-1).to_ns() == -1

    def test_pack_native(self) -> None:
        t = Timespec(5, 7)
        assert Timespec.unpack(t.pack()) == t
        assert len(t.pack()) == 16

    def test_range(self) -> None:
        with pytest.raises(TimeRangeError, match="tv_nsec"):
            Timespec(0, NS_PER_S)
        with pytest.raises(TimeRangeError, match="tv_sec"):
            Timespec.from_ns(((1 << 63)) * NS_PER_S)


def test_format_ns() -> None:
    assert format_ns(-12) == "-12 ns"
    assert format_ns(1500) == "+1.500 us"
    assert format_ns(2_500_000) == "+2.500000 ms"
    assert format_ns(3 * NS_PER_S) == "+3.000000000 s"
