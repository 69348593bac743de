"""NTP symmetric-key authentication: keys files, MACs (RFC 8573 AES-CMAC, SHA-1, MD5), and the
server/client hooks on fake time."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.ntp import auth
from netclock.ntp.auth import AuthResult, KeyFileError, KeyType, SymmetricKey, parse_keys
from netclock.ntp.server import DisciplineState, NtpServer, RateLimit
from netclock.ntp.source import Measured, NtpSource, Send, SourceConfig
from netclock.ntp.wire import Leap, Mode, NtpPacket
from netclock.time import NS_PER_S, NtpTimestamp

KEYS_TEXT = """\
# chrony keyfile syntax
1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C
2 SHA1   HEX:0123456789abcdef0123456789abcdef01234567   # trailing comment
3 MD5    ASCII:plain-secret
4        bare-secret
"""
KEYS = parse_keys(KEYS_TEXT)
UNIX_BASE = 1_790_000_000 * NS_PER_S
STATE = DisciplineState(stratum=2, reference_id=b"\x0a\x00\x00\x01", leap=Leap.NO_WARNING)


def served(mono: int) -> int:
    return mono + UNIX_BASE


def request(xmt: int = 0x1234_5678_9ABC_DEF0) -> bytes:
    return NtpPacket(mode=Mode.CLIENT, transmit_ts=NtpTimestamp.from_u64(xmt)).pack()


# -- MAC algorithms ------------------------------------------------------------------------


def test_aes_cmac_matches_rfc4493_vectors() -> None:
    key = SymmetricKey(1, KeyType.AES128, bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c"))
    assert auth.compute_digest(key, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert auth.compute_digest(key, msg).hex() == "070a16b46b4d4144f79bdd9dd04a287c"


def test_legacy_digests_are_hash_of_key_then_packet() -> None:
    data = request()
    assert auth.compute_digest(KEYS[2], data) == hashlib.sha1(KEYS[2].secret + data).digest()
    assert auth.compute_digest(KEYS[3], data) == hashlib.md5(b"plain-secret" + data).digest()


# -- keys files ----------------------------------------------------------------------------


def test_keys_file_formats() -> None:
    assert {k: (v.key_type, len(v.secret)) for k, v in KEYS.items()} == {
        1: (KeyType.AES128, 16), 2: (KeyType.SHA1, 20), 3: (KeyType.MD5, 12),
        4: (KeyType.MD5, 11),
    }
    assert KEYS[4].secret == b"bare-secret"
    assert "0123" not in repr(KEYS[2])  # secrets are never printed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1 SHA256 HEX:00", "keys:1: unsupported key type"),
        ("x MD5 abc", "not a number"),
        ("1 DES HEX:00", "unsupported key type"),
        ("1 SHA1 HEX:zz", "not valid hex"),
        ("1 AES128 HEX:00112233", "needs 16 bytes"),
        ("1 MD5 a\n1 MD5 b", "keys:2: key id 1 defined twice"),
        ("0 MD5 a", "outside 1..2^32-1"),
        ("1 MD5 a b c", "expected 'ID [TYPE] KEY'"),
        ("1 MD5 ASCII:", "empty key"),
    ],
)
def test_keys_file_errors_name_the_line(text: str, fragment: str) -> None:
    with pytest.raises(KeyFileError, match=fragment.replace("[", r"\[").replace("^", r"\^")):
        parse_keys(text)


# -- sign / verify -------------------------------------------------------------------------


@pytest.mark.parametrize("key_id", [1, 2, 3, 4])
def test_sign_verify_roundtrip_and_any_flip_fails(key_id: int) -> None:
    signed = auth.sign(request(), KEYS[key_id])
    assert len(signed) == 48 + 4 + KEYS[key_id].key_type.digest_size
    assert NtpPacket.unpack(signed).mac is not None
    assert auth.verify(signed, KEYS) is AuthResult.OK
    rng = random.Random(key_id)
    for _ in range(50):
        i = rng.randrange(len(signed))
        bad = bytearray(signed)
        bad[i] ^= 1 << rng.randrange(8)
        assert auth.verify(bytes(bad), KEYS) is not AuthResult.OK


def test_verify_verdicts() -> None:
    raw = request()
    assert auth.verify(raw, KEYS) is AuthResult.NONE
    assert auth.verify(auth.crypto_nak(raw), KEYS) is AuthResult.CRYPTO_NAK
    assert auth.verify(auth.sign(raw, KEYS[1]), {2: KEYS[2]}) is AuthResult.UNKNOWN_KEY
    # a SHA-1 key id with a 16-byte digest: wrong length for the algorithm
    short = raw + (2).to_bytes(4, "big") + bytes(16)
    assert auth.verify(short, KEYS) is AuthResult.BAD_MAC
    assert auth.verify(b"\x00" * 10, KEYS) is AuthResult.BAD_MAC


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_verify_never_raises(data: bytes) -> None:
    assert isinstance(auth.verify(data, KEYS), AuthResult)
    assert isinstance(auth.verify(auth.sign(data, KEYS[2]), KEYS), AuthResult)


# -- server ---------------------------------------------------------------------------------


def _server(**kw: object) -> NtpServer:
    return NtpServer(served, STATE, rate_limit=None, keys=KEYS, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_id", [1, 2, 3])
def test_server_answers_signed_request_signed_and_restamp_keeps_mac(key_id: int) -> None:
    srv = _server()
    resp = srv.respond(auth.sign(request(), KEYS[key_id]), NS_PER_S, NS_PER_S + 1000)
    assert resp is not None and resp.key is KEYS[key_id]
    pkt = NtpPacket.unpack(resp.data)
    assert pkt.mac is not None and pkt.mac.key_id == key_id
    assert auth.verify(resp.data, KEYS) is AuthResult.OK
    again = srv.restamp(resp, 2 * NS_PER_S)
    assert again[40:48] != resp.data[40:48]
    assert auth.verify(again, KEYS) is AuthResult.OK
    assert srv.counters.auth_ok == 1


def test_server_unknown_key_gets_crypto_nak_bad_mac_gets_nothing() -> None:
    srv = _server()
    other = SymmetricKey(99, KeyType.SHA1, b"x" * 20)
    resp = srv.respond(auth.sign(request(), other), NS_PER_S, NS_PER_S)
    assert resp is not None
    nak = NtpPacket.unpack(resp.data)
    assert nak.mac is not None and nak.mac.is_crypto_nak and nak.stratum == 0
    assert nak.origin_ts == NtpTimestamp.from_u64(0x1234_5678_9ABC_DEF0)
    assert nak.receive_ts.is_zero and nak.transmit_ts.is_zero  # carries no time
    forged = bytearray(auth.sign(request(), KEYS[2]))
    forged[-1] ^= 0xFF
    assert srv.respond(bytes(forged), NS_PER_S, NS_PER_S) is None
    assert (srv.counters.auth_failed, srv.counters.crypto_nak_sent) == (2, 1)


def test_server_require_auth_drops_unsigned_and_serves_signed() -> None:
    srv = _server(require_auth=True)
    assert srv.respond(request(), NS_PER_S, NS_PER_S) is None
    assert srv.respond(auth.crypto_nak(request()), NS_PER_S, NS_PER_S) is None
    assert srv.respond(auth.sign(request(), KEYS[1]), NS_PER_S, NS_PER_S) is not None
    open_srv = _server()
    resp = open_srv.respond(request(), NS_PER_S, NS_PER_S)
    assert resp is not None and len(resp.data) == 48  # unsigned in, unsigned out


def test_rate_limit_kod_to_signed_client_is_signed() -> None:
    srv = NtpServer(served, STATE, rate_limit=RateLimit(burst=1), keys=KEYS)
    req = auth.sign(request(), KEYS[1])
    assert srv.respond(req, NS_PER_S, NS_PER_S, "c") is not None
    kod = srv.respond(req, NS_PER_S + 1, NS_PER_S + 1, "c")
    assert kod is not None and kod.kod
    assert auth.verify(kod.data, KEYS) is AuthResult.OK


# -- client ↔ server on fake time -------------------------------------------------------------


def _exchange(client_key: SymmetricKey | None, srv: NtpServer, rounds: int = 6) -> NtpSource:
    src = NtpSource(SourceConfig(minpoll=-4, maxpoll=-4, filter_length=1), random.Random(5),
                    pivot_unix_ns=UNIX_BASE, key=client_key)
    t = NS_PER_S
    for _ in range(rounds):
        for a in src.handle_timer(t):
            if isinstance(a, Send):
                resp = srv.respond(a.data, t + 1000, t + 2000)
                if resp is not None:
                    data = srv.restamp(resp, t + 2000)
                    src.handle_incoming(data, t + 3000, t + 3000)
        t += NS_PER_S
    return src


def test_client_and_server_with_shared_key_measure() -> None:
    for key_id in (1, 2, 3):
        src = _exchange(KEYS[key_id], _server())
        snap = src.observe()
        assert snap.last_sample is not None and snap.responses == 6 and snap.bogus == 0
        assert abs(snap.last_sample.raw_offset_ns - UNIX_BASE) < 10_000


def test_client_drops_unsigned_wrong_key_and_crypto_nak() -> None:
    # the server has no keys: it answers unsigned; a keyed client must not use that
    src = _exchange(KEYS[1], NtpServer(served, STATE, rate_limit=None))
    assert src.observe().last_sample is None and src.observe().bogus == 6
    # the server knows the id under another secret: bad MAC, no answer, nothing measured
    wrong = {1: SymmetricKey(1, KeyType.AES128, bytes(16))}
    src = _exchange(KEYS[1], NtpServer(served, STATE, rate_limit=None, keys=wrong))
    assert src.observe().last_sample is None and src.observe().responses == 0
    # unknown key id: crypto-NAKs come back and are ignored
    src = _exchange(SymmetricKey(77, KeyType.MD5, b"k"), _server())
    assert src.observe().last_sample is None and src.observe().bogus == 6


def test_client_ignores_forged_unsigned_kod() -> None:
    src = NtpSource(SourceConfig(minpoll=-4, maxpoll=-4), random.Random(1), key=KEYS[2])
    send = next(a for a in src.handle_timer(NS_PER_S) if isinstance(a, Send))
    cookie = NtpPacket.unpack(send.data).transmit_ts
    kod = NtpPacket(mode=Mode.SERVER, stratum=0, reference_id=b"DENY", origin_ts=cookie,
                    transmit_ts=cookie)
    assert src.handle_incoming(kod.pack(), NS_PER_S, NS_PER_S) == []
    assert not src.demobilized and src.observe().kod == 0
    measured = [a for a in src.handle_incoming(kod.pack(), NS_PER_S, NS_PER_S)
                if isinstance(a, Measured)]
    assert measured == []
