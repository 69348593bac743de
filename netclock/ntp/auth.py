"""NTP symmetric-key authentication: keys files, MAC computation and verification.

Pure: text and bytes in, keys and verdicts out. Two MAC families share the legacy NTP trailer
(32-bit key id, then the digest; see :class:`netclock.ntp.wire.Mac`):

* **AES-128-CMAC** (RFC 8573): ``CMAC-AES128(key, packet)``, 16-byte digest. Needs the
  ``cryptography`` package (``pip install netclock[auth]``); a keys file naming an AES key
  without it is a :class:`KeyFileError`.
* **SHA-1 / MD5** (RFC 5905 legacy): ``H(key || packet)``, 20 / 16 bytes. Kept for peers that
  know nothing else; RFC 8573 deprecates MD5.

``packet`` is every byte before the MAC: the 48-byte header and any extension fields.

Keys files use chrony's ``keyfile`` syntax, so one file can serve both chronyd and netclock::

    # id  type    key
    1     AES128  HEX:2B7E151628AED2A6ABF7158809CF4F3C
    2     SHA1    HEX:0123456789ABCDEF0123456789ABCDEF01234567
    3     MD5     ASCII:plain-secret
    4             bare-secret            # no type: MD5; no prefix: ASCII

Verification never raises: :func:`verify` returns an :class:`AuthResult`, and compares digests
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from netclock.ntp.wire import HEADER_SIZE, NtpPacket

__all__ = [
    "AuthResult",
    "KeyFileError",
    "KeyType",
    "Keyring",
    "SymmetricKey",
    "compute_digest",
    "crypto_nak",
    "parse_keys",
    "sign",
    "verify",
]


class KeyFileError(ValueError):
    """A keys file line that cannot be used; the message names the line."""


class KeyType(Enum):
    """MAC algorithms, by the names chrony's keys file uses."""

    MD5 = "MD5"
    SHA1 = "SHA1"
    AES128 = "AES128"

    @property
    def digest_size(self) -> int:
        return 20 if self is KeyType.SHA1 else 16


@dataclass(frozen=True, slots=True)
class SymmetricKey:
    key_id: int
    key_type: KeyType
    secret: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.key_id <= 0xFFFFFFFF:
            raise ValueError(f"key id {self.key_id} outside 1..2^32-1")
        if not self.secret:
            raise ValueError("empty key")
        if self.key_type is KeyType.AES128 and len(self.secret) != 16:
            raise ValueError(f"an AES128 key needs 16 bytes, got {len(self.secret)}")

    def __repr__(self) -> str:  # never print the secret
        return f"SymmetricKey({self.key_id}, {self.key_type.value})"


#: key id → key
Keyring = Mapping[int, SymmetricKey]


class AuthResult(Enum):
    """Outcome of checking a packet's MAC."""

    NONE = "none"  # no MAC at all
    OK = "ok"
    CRYPTO_NAK = "crypto-nak"  # a MAC holding only a key id (RFC 5905 §7.4)
    UNKNOWN_KEY = "unknown-key"
    BAD_MAC = "bad-mac"  # wrong digest, or the wrong length for the key's algorithm

    @property
    def authentic(self) -> bool:
        return self is AuthResult.OK


# -- keys files ------------------------------------------------------------------------------

_TYPE_ALIASES = {"MD5": KeyType.MD5, "SHA1": KeyType.SHA1, "AES128": KeyType.AES128,
                 "AES-128": KeyType.AES128, "AES": KeyType.AES128}


def _decode_secret(text: str, where: str) -> bytes:
    if text.upper().startswith("HEX:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise KeyFileError(f"{where}: key is not valid hex") from None
    if text.upper().startswith("ASCII:"):
        text = text[6:]
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise KeyFileError(f"{where}: ASCII key holds non-ASCII characters") from None


def parse_keys(text: str, source: str = "keys") -> dict[int, SymmetricKey]:
    """Parse a chrony-format keys file. Raises :class:`KeyFileError` naming the bad line.

    Each line is ``ID [TYPE] KEY``; ``#`` starts a comment. Types: MD5 (default), SHA1,
    AES128. A key is ``HEX:...``, ``ASCII:...`` or bare ASCII. Duplicate ids are errors.
    """
    keys: dict[int, SymmetricKey] = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{n}"
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) not in (2, 3):
            raise KeyFileError(f"{where}: expected 'ID [TYPE] KEY', got {len(words)} fields")
        try:
            key_id = int(words[0])
        except ValueError:
            raise KeyFileError(f"{where}: key id {words[0]!r} is not a number") from None
        type_name = words[1].upper() if len(words) == 3 else "MD5"
        key_type = _TYPE_ALIASES.get(type_name)
        if key_type is None:
            raise KeyFileError(
                f"{where}: unsupported key type {words[1]!r} (use AES128, SHA1 or MD5)"
            )
        secret = _decode_secret(words[-1], where)
        if key_type is KeyType.AES128 and not _cmac_available():
            raise KeyFileError(
                f"{where}: AES128 keys need the 'cryptography' package (pip install "
                "netclock[auth])"
            )
        if key_id in keys:
            raise KeyFileError(f"{where}: key id {key_id} defined twice")
        try:
            keys[key_id] = SymmetricKey(key_id, key_type, secret)
        except ValueError as e:
            raise KeyFileError(f"{where}: {e}") from None
    return keys


# -- MACs ------------------------------------------------------------------------------------


def _cmac_available() -> bool:
    try:
        import cryptography.hazmat.primitives.cmac  # noqa: F401
    except ImportError:
        return False
    return True


def _aes_cmac(secret: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.cmac import CMAC

    c = CMAC(algorithms.AES(secret))
    c.update(data)
    return c.finalize()


def compute_digest(key: SymmetricKey, data: bytes) -> bytes:
    """The MAC digest of ``data`` (the packet bytes before the MAC) under ``key``."""
    if key.key_type is KeyType.AES128:
        return _aes_cmac(key.secret, data)
    name = "md5" if key.key_type is KeyType.MD5 else "sha1"
    return hashlib.new(name, key.secret + data, usedforsecurity=False).digest()


def sign(unsigned: bytes, key: SymmetricKey) -> bytes:
    """``unsigned`` (header + extension fields, no MAC) with a MAC under ``key`` appended."""
    return unsigned + struct.pack("!I", key.key_id) + compute_digest(key, unsigned)


def crypto_nak(unsigned: bytes) -> bytes:
    """``unsigned`` with a crypto-NAK (key id 0, no digest; RFC 5905 §7.4) appended."""
    return unsigned + bytes(4)


def verify(data: bytes, keys: Keyring, packet: NtpPacket | None = None) -> AuthResult:
    """Check the MAC of the raw packet ``data`` against ``keys``. Never raises.

    ``packet`` is ``NtpPacket.unpack(data)`` if the caller already has it. Bytes that do not
    parse are :attr:`AuthResult.BAD_MAC` (they carry no verifiable MAC).
    """
    if packet is None:
        try:
            packet = NtpPacket.unpack(data)
        except ValueError:
            return AuthResult.BAD_MAC
    mac = packet.mac
    if mac is None:
        return AuthResult.NONE
    if mac.is_crypto_nak:
        return AuthResult.CRYPTO_NAK
    key = keys.get(mac.key_id)
    if key is None:
        return AuthResult.UNKNOWN_KEY
    if len(mac.digest) != key.key_type.digest_size:
        return AuthResult.BAD_MAC
    signed_part = bytes(data[: len(data) - mac.size])
    if len(signed_part) < HEADER_SIZE:
        return AuthResult.BAD_MAC
    good = hmac.compare_digest(compute_digest(key, signed_part), mac.digest)
    return AuthResult.OK if good else AuthResult.BAD_MAC

