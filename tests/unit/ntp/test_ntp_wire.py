"""NTP codec against golden packets captured from chronyd, ntpdig and ntplib on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netclock.ntp.wire import (
    KISS_RATE,
    ExtensionField,
    Leap,
    Mac,
    Mode,
    NtpPacket,
    ParseError,
    refid_ascii,
    refid_str,
)
from netclock.time import NtpShort, NtpTimestamp

VECTORS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "ntp" / "packets.json").read_text()
)["packets"]
BY_NAME = {v["name"]: bytes.fromhex(v["hex"]) for v in VECTORS}


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_round_trip(vec: dict[str, str]) -> None:
    raw = bytes.fromhex(vec["hex"])
    pkt = NtpPacket.unpack(raw)
    assert pkt.pack() == raw
    assert pkt.mode == (Mode.CLIENT if vec["direction"] == "req" else Mode.SERVER)


def test_ntpdig_request_fields() -> None:
    pkt = NtpPacket.unpack(BY_NAME["ntpdig_0_req"])
    assert (pkt.leap, pkt.version, pkt.mode) == (Leap.UNSYNCHRONIZED, 4, Mode.CLIENT)
    assert pkt.stratum == 0
    assert pkt.origin_ts.is_zero and pkt.receive_ts.is_zero
    assert pkt.transmit_ts == NtpTimestamp.from_u64(0xEEB182B29BA01800)
    assert pkt.extensions == () and pkt.mac is None


def test_chrony_server_response_fields() -> None:
    req = NtpPacket.unpack(BY_NAME["ntpdig_0_req"])
    resp = NtpPacket.unpack(BY_NAME["ntpdig_0_resp"])
    assert (resp.leap, resp.version, resp.mode) == (Leap.NO_WARNING, 4, Mode.SERVER)
    assert resp.stratum == 1
    assert resp.precision == -25 and resp.poll == 0
    assert resp.reference_id == bytes.fromhex("7f7f0101")
    assert resp.root_delay == NtpShort(0) and resp.root_dispersion == NtpShort(0)
    assert resp.origin_ts == req.transmit_ts
    # about 2026-11-25 15:52 UTC, era 0
    unix = resp.receive_ts.to_unix_ns(era=0)
    assert 1_795_000_000 * 10**9 < unix < 1_796_000_000 * 10**9
    assert resp.transmit_ts >= resp.receive_ts
    assert not resp.is_kod and resp.kiss_code is None


def test_ntplib_is_version_2() -> None:
    req = NtpPacket.unpack(BY_NAME["ntplib_0_req"])
    resp = NtpPacket.unpack(BY_NAME["ntplib_0_resp"])
    assert req.version == 2 and resp.version == 2
    assert resp.origin_ts == req.transmit_ts


def test_chrony_interleaved_exchange() -> None:
    reqs = [NtpPacket.unpack(BY_NAME[f"chrony_xleave_{i}_req"]) for i in range(4)]
    resps = [NtpPacket.unpack(BY_NAME[f"chrony_xleave_{i}_resp"]) for i in range(4)]
    # first exchange basic: origin echoes transmit
    assert resps[0].origin_ts == reqs[0].transmit_ts
    interleaved = 0
    for i in range(1, 4):
        # interleaved request: origin = server receive of the previous response
        assert reqs[i].origin_ts == resps[i - 1].receive_ts
        assert reqs[i].poll == -4
        # response: origin echoes the request's receive field (interleaved) or transmit (basic)
        assert resps[i].origin_ts in (reqs[i].receive_ts, reqs[i].transmit_ts)
        if resps[i].origin_ts == reqs[i].receive_ts:
            interleaved += 1
            # its transmit is the previous response's TX time: after that one's RX, before ours
            assert resps[i - 1].receive_ts < resps[i].transmit_ts < resps[i].receive_ts
    assert interleaved >= 2


@pytest.mark.parametrize(
    ("name", "key_id", "digest_len"),
    [("chrony_md5_0_req", 1, 16), ("chrony_md5_0_resp", 1, 16), ("chrony_sha1_0_req", 2, 20)],
)
def test_mac(name: str, key_id: int, digest_len: int) -> None:
    pkt = NtpPacket.unpack(BY_NAME[name])
    assert pkt.mac is not None and pkt.mac.key_id == key_id and len(pkt.mac.digest) == digest_len
    assert pkt.extensions == ()


def test_extension_field_28_bytes_without_mac() -> None:
    pkt = NtpPacket.unpack(BY_NAME["chrony_ef_0_req"])
    assert pkt.mac is None
    assert [(ef.field_type, ef.size) for ef in pkt.extensions] == [(0xF323, 28)]


def test_extension_field_then_mac() -> None:
    pkt = NtpPacket.unpack(BY_NAME["chrony_ef_md5_0_resp"])
    assert [(ef.field_type, ef.size) for ef in pkt.extensions] == [(0xF323, 28)]
    assert pkt.mac is not None and pkt.mac.key_id == 1 and len(pkt.mac.digest) == 16


def test_28_byte_trailer_that_is_not_a_field_is_a_24_byte_digest_mac() -> None:
    raw = NtpPacket(mode=Mode.CLIENT).pack() + b"\x00\x00\x00\x07" + bytes(range(24))
    pkt = NtpPacket.unpack(raw)
    assert pkt.mac == Mac(7, bytes(range(24))) and pkt.pack() == raw


def test_crypto_nak() -> None:
    raw = NtpPacket(mode=Mode.SERVER, stratum=2).pack() + bytes(4)
    pkt = NtpPacket.unpack(raw)
    assert pkt.mac is not None and pkt.mac.is_crypto_nak


def test_unknown_fields_preserved_and_skipped() -> None:
    efs = (ExtensionField.padded(0x7777, b"hello"), ExtensionField.padded(0x0104, b"x" * 30, 28))
    pkt = NtpPacket(mode=Mode.CLIENT, extensions=efs, mac=Mac(3, bytes(20)))
    back = NtpPacket.unpack(pkt.pack())
    assert back == pkt
    assert back.extensions[0].value.startswith(b"hello")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(47),
        bytes(48) + bytes(3),  # junk that is neither a field nor a MAC
        bytes(48) + bytes(17),
        bytes([0x23]) + bytes(47) + b"\x00\x01\x00\x0c" + bytes(32),  # field length < 16
        bytes([0x23]) + bytes(47) + b"\x00\x01\x00\x22" + bytes(32),  # not a multiple of 4
        bytes([0x23]) + bytes(47) + b"\x00\x01\x01\x00" + bytes(32),  # longer than the packet
        bytes([0x1B]) + bytes(47) + bytes(32),  # NTPv3 with a non-MAC trailer
    ],
)
def test_malformed(raw: bytes) -> None:
    with pytest.raises(ParseError):
        NtpPacket.unpack(raw)


def test_kod() -> None:
    kod = NtpPacket(mode=Mode.SERVER, stratum=0, reference_id=refid_ascii("RATE"))
    assert NtpPacket.unpack(kod.pack()).kiss_code == KISS_RATE
    assert refid_str(kod.reference_id, 0) == "RATE"
    assert refid_str(bytes([10, 0, 0, 1]), 2) == "10.0.0.1"
    assert refid_str(bytes([127, 127, 1, 1]), 1) == "127.127.1.1"  # chrony's local reference


def test_invalid_construction() -> None:
    with pytest.raises(ValueError):
        NtpPacket(version=3, extensions=(ExtensionField.padded(1, b""),))
    with pytest.raises(ValueError):
        ExtensionField(1, b"abc")
    with pytest.raises(ValueError):
        Mac(1, b"short")
