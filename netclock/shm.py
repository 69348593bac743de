"""The shared-memory publication layout (version 1): pack and unpack, nothing else.

Pure module: no mmap, no files. :mod:`netclock.platform.shm_writer` maps the file and writes;
:mod:`netclock.client` maps it and reads. The layout is documented byte by byte in
``docs/shm-layout.md``; the constants below are the single source of those numbers.

File = one 64-byte header + ``record_count`` records of ``record_size`` (128) bytes, all
little-endian. Each record is one time domain, guarded by its own seqlock word (``seq``, odd
while the writer is inside the record). Readers copy the record, re-read ``seq`` and retry when
it was odd or changed; they never write and never block the writer.

Within a version, fields are only ever appended (``header_size`` / ``record_size`` grow and
readers use them as strides); any change of meaning bumps :data:`LAYOUT_VERSION`.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from netclock.calibration import MAX_RATE_TERM, Calibration
from netclock.observe import LockState, Quality, Timescale

__all__ = [
    "DOMAIN_NTP",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "LAYOUT_VERSION",
    "MAGIC",
    "RECORD_SIZE",
    "RECORD_STRUCT",
    "SEQ_STRUCT",
    "DomainRecord",
    "Header",
    "IdentityKind",
    "ShmLayoutError",
    "WriterState",
    "default_runtime_dir",
    "format_identity",
    "pack_header",
    "pack_record",
    "record_crc",
    "record_offset",
    "unpack_header",
    "unpack_record",
]

MAGIC = b"NETCLKSM"
LAYOUT_VERSION = 1

#: magic, layout_version, header_size, record_size, record_count, writer_pid, state,
#: created_mono_ns, 32 reserved bytes.
HEADER_STRUCT = struct.Struct("<8sHHHHIIq32x")
HEADER_SIZE = HEADER_STRUCT.size  # 64

#: seq, internal, external, rate_num, rate_denom, epoch, update_mono_ns, error_bound_ns,
#: error_growth_ps_per_s, domain, flags, utc_offset_s, timescale, lock_state, quality,
#: identity_kind, hops, (4 reserved), identity[16], (20 reserved), crc32.
RECORD_STRUCT = struct.Struct("<QqqQQQqQQHHhBBBBH4x16s20xI")
RECORD_SIZE = RECORD_STRUCT.size  # 128
SEQ_STRUCT = struct.Struct("<Q")
#: The CRC-32 covers the record bytes [CRC_START, CRC_END): everything but seq and the CRC.
CRC_START = 8
CRC_END = RECORD_SIZE - 4

# Byte offsets of header fields the writer updates in place.
HEADER_WRITER_PID_OFFSET = 16
HEADER_STATE_OFFSET = 20

# Record flag bits.
FLAG_VALID = 1 << 0
FLAG_CALIBRATED = 1 << 1
FLAG_UTC_OFFSET_VALID = 1 << 2
FLAG_LEAP61 = 1 << 3
FLAG_LEAP59 = 1 << 4
FLAG_TIME_TRACEABLE = 1 << 5
FLAG_FREQUENCY_TRACEABLE = 1 << 6
_KNOWN_FLAGS = (1 << 7) - 1

#: Domain number convention: 0..255 are PTP domainNumbers; NTP time is published as 256.
DOMAIN_NTP = 0x100

SHM_FILENAME = "clock.shm"
STATUS_SOCKET_FILENAME = "status.sock"

_U64 = (1 << 64) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class ShmLayoutError(ValueError):
    """Bytes that are not a valid netclock shared-memory header or record."""


class WriterState(enum.IntEnum):
    """Header ``state``: what the writer of this file is doing."""

    INIT = 0
    RUNNING = 1
    STOPPED = 2
    """The daemon closed the file cleanly; every record is invalid."""
    REPLACED = 3
    """A newer daemon published a new file at the same path: readers reopen the path."""


class IdentityKind(enum.IntEnum):
    """What the 16 identity bytes of a record hold."""

    NONE = 0
    PTP_CLOCK = 1
    """PTP grandmasterIdentity (8 bytes), then zeros."""
    IPV4 = 2
    """NTP server IPv4 address (4 bytes, network order), then zeros."""
    IPV6 = 3
    """NTP server IPv6 address (16 bytes, network order)."""
    REFID = 4
    """NTP reference ID (4 bytes, e.g. ``GPS``), then zeros."""


#: Identity byte length per kind (records store them zero-padded to 16 bytes).
IDENTITY_LENGTH = {
    IdentityKind.NONE: 0,
    IdentityKind.PTP_CLOCK: 8,
    IdentityKind.IPV4: 4,
    IdentityKind.IPV6: 16,
    IdentityKind.REFID: 4,
}


def default_runtime_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_RUNTIME_DIR/netclock`` when set (a user session), else ``/run/netclock``."""
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    return f"{xdg.rstrip('/')}/netclock" if xdg else "/run/netclock"


def record_offset(
    index: int, header_size: int = HEADER_SIZE, record_size: int = RECORD_SIZE
) -> int:
    return header_size + index * record_size


# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    record_count: int
    writer_pid: int = 0
    state: WriterState = WriterState.INIT
    created_mono_ns: int = 0
    layout_version: int = LAYOUT_VERSION
    header_size: int = HEADER_SIZE
    record_size: int = RECORD_SIZE

    @property
    def file_size(self) -> int:
        return self.header_size + self.record_count * self.record_size


def pack_header(h: Header) -> bytes:
    if not 1 <= h.record_count <= 4096:
        raise ShmLayoutError(f"record_count {h.record_count} outside 1..4096")
    if not 0 <= h.writer_pid <= 0xFFFFFFFF:
        raise ShmLayoutError(f"writer_pid {h.writer_pid} outside uint32")
    return HEADER_STRUCT.pack(
        MAGIC,
        h.layout_version,
        h.header_size,
        h.record_size,
        h.record_count,
        h.writer_pid,
        int(h.state),
        h.created_mono_ns,
    )


def unpack_header(buf: bytes | bytearray | memoryview) -> Header:
    """Decode and check a header: magic, known version, sizes no smaller than version 1's."""
    if len(buf) < HEADER_SIZE:
        raise ShmLayoutError(f"file too short for a header ({len(buf)} < {HEADER_SIZE} bytes)")
    magic, ver, hsize, rsize, count, pid, state, created = HEADER_STRUCT.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ShmLayoutError(f"bad magic {magic!r} (expected {MAGIC!r}): not a netclock file")
    if ver != LAYOUT_VERSION:
        raise ShmLayoutError(
            f"layout version {ver} is not supported (this reader knows version "
            f"{LAYOUT_VERSION}); upgrade netclock on the reader side"
        )
    if hsize < HEADER_SIZE or rsize < RECORD_SIZE or hsize % 8 or rsize % 8:
        raise ShmLayoutError(f"bad sizes: header {hsize}, record {rsize}")
    try:
        st = WriterState(state)
    except ValueError:
        raise ShmLayoutError(f"unknown writer state {state}") from None
    return Header(count, pid, st, created, ver, hsize, rsize)


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """One published time domain (the content of one shared-memory record)."""

    domain: int
    calibration: Calibration | None = None
    """``None`` until the daemon has a fit (readers then get ``NotSynchronized``)."""
    lock_state: LockState = LockState.FREERUN
    quality: Quality = Quality.UNKNOWN
    timescale: Timescale = Timescale.ARB
    error_bound_ns: int = 0
    """Error bound at ``update_mono_ns``."""
    error_growth_ps_per_s: int = 0
    """How fast the bound grows with age: picoseconds per second (0.001 ppb)."""
    update_mono_ns: int = 0
    """CLOCK_MONOTONIC of the writer when the record was last updated."""
    utc_offset_s: int = 0
    """TAI - UTC in seconds (PTP currentUtcOffset)."""
    utc_offset_valid: bool = False
    leap61: bool = False
    leap59: bool = False
    time_traceable: bool = False
    frequency_traceable: bool = False
    identity_kind: IdentityKind = IdentityKind.NONE
    identity: bytes = b""
    hops: int = 0
    """PTP stepsRemoved or NTP stratum."""

    def error_bound_at(self, mono_ns: int) -> int:
        """The error bound at ``mono_ns``: bound + growth × age (never less than the bound)."""
        age = mono_ns - self.update_mono_ns
        if age <= 0 or self.error_growth_ps_per_s == 0:
            return self.error_bound_ns
        return self.error_bound_ns + -(-(self.error_growth_ps_per_s * age) // 10**12)

    def identity_text(self) -> str:
        return format_identity(self.identity_kind, self.identity)


def format_identity(kind: IdentityKind, data: bytes) -> str:
    """Human form: PTP ``aabbcc.fffe.ddeeff``, IP addresses, refid text, or ``""``."""
    if kind == IdentityKind.PTP_CLOCK:
        h = data[:8].ljust(8, b"\0").hex()
        return f"{h[:6]}.{h[6:10]}.{h[10:]}"
    if kind == IdentityKind.IPV4:
        return str(ipaddress.IPv4Address(data[:4].ljust(4, b"\0")))
    if kind == IdentityKind.IPV6:
        return str(ipaddress.IPv6Address(data[:16].ljust(16, b"\0")))
    if kind == IdentityKind.REFID:
        return data[:4].rstrip(b"\0").decode("ascii", "replace")
    return ""


def _check(name: str, v: int, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ShmLayoutError(f"{name} must be int, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ShmLayoutError(f"{name} {v} outside {lo}..{hi}")
    return v


def record_crc(raw: bytes | bytearray | memoryview) -> int:
    """CRC-32 (zlib) over a packed record's bytes [8, 124)."""
    return zlib.crc32(raw[CRC_START:CRC_END]) & 0xFFFFFFFF


def pack_record(rec: DomainRecord | None, seq: int = 0) -> bytes:
    """128 bytes for one record (``None``: an invalid, empty record), with its CRC."""
    _check("seq", seq, 0, _U64)
    if rec is None:
        body = RECORD_STRUCT.pack(seq, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b"", 0)
    else:
        cal = rec.calibration
        flags = FLAG_VALID
        if cal is not None:
            flags |= FLAG_CALIBRATED
            internal, external = cal.internal, cal.external
            num, den, epoch = cal.rate_num, cal.rate_denom, cal.epoch
        else:
            internal = external = num = den = epoch = 0
        if rec.utc_offset_valid:
            flags |= FLAG_UTC_OFFSET_VALID
        if rec.leap61:
            flags |= FLAG_LEAP61
        if rec.leap59:
            flags |= FLAG_LEAP59
        if rec.time_traceable:
            flags |= FLAG_TIME_TRACEABLE
        if rec.frequency_traceable:
            flags |= FLAG_FREQUENCY_TRACEABLE
        want = IDENTITY_LENGTH.get(rec.identity_kind)
        if want is None or len(rec.identity) != want:
            kind = IdentityKind(rec.identity_kind)  # (raises for an unknown kind)
            raise ShmLayoutError(
                f"identity of kind {kind.name} must be {IDENTITY_LENGTH[kind]} bytes, "
                f"got {len(rec.identity)}"
            )
        upd, bound, growth = rec.update_mono_ns, rec.error_bound_ns, rec.error_growth_ps_per_s
        domain, utc, hops = rec.domain, rec.utc_offset_s, rec.hops
        if not (  # every field in range, in one expression (a record is written per update)
            type(internal) is int and _I64_MIN <= internal <= _I64_MAX
            and type(external) is int and _I64_MIN <= external <= _I64_MAX
            and type(epoch) is int and 0 <= epoch <= _U64
            and type(upd) is int and _I64_MIN <= upd <= _I64_MAX
            and type(bound) is int and 0 <= bound <= _U64
            and type(growth) is int and 0 <= growth <= _U64
            and type(domain) is int and 0 <= domain <= 0xFFFF
            and type(utc) is int and -(1 << 15) <= utc < 1 << 15
            and type(hops) is int and 0 <= hops <= 0xFFFF
        ):
            # the same checks one by one, for the error that names the field
            _check("internal", internal, _I64_MIN, _I64_MAX)
            _check("external", external, _I64_MIN, _I64_MAX)
            _check("epoch", epoch, 0, _U64)
            _check("update_mono_ns", upd, _I64_MIN, _I64_MAX)
            _check("error_bound_ns", bound, 0, _U64)
            _check("error_growth_ps_per_s", growth, 0, _U64)
            _check("domain", domain, 0, 0xFFFF)
            _check("utc_offset_s", utc, -(1 << 15), (1 << 15) - 1)
            _check("hops", hops, 0, 0xFFFF)
        body = RECORD_STRUCT.pack(
            seq, internal, external, num, den, epoch, upd, bound, growth, domain, flags, utc,
            int(rec.timescale), int(rec.lock_state), int(rec.quality), int(rec.identity_kind),
            hops, rec.identity, 0,
        )
    crc = record_crc(body)
    return body[:CRC_END] + crc.to_bytes(4, "little")


def unpack_record(
    buf: bytes | bytearray | memoryview, offset: int = 0, *, verify: bool = True
) -> tuple[int, DomainRecord | None]:
    """Decode the record at ``offset``: ``(seq, record)``, record ``None`` when not valid.

    ``verify`` checks the CRC. Raises :class:`ShmLayoutError` for a bad CRC, unknown codes or
    rate terms outside 1..2^41.
    """
    if len(buf) - offset < RECORD_SIZE:
        raise ShmLayoutError(f"record at {offset} runs past the end ({len(buf)} bytes)")
    (
        seq,
        internal,
        external,
        num,
        den,
        epoch,
        update,
        bound,
        growth,
        domain,
        flags,
        utc_off,
        tscale,
        lock,
        quality,
        id_kind,
        hops,
        identity,
        crc,
    ) = RECORD_STRUCT.unpack_from(buf, offset)
    if verify:
        got = record_crc(bytes(buf[offset : offset + RECORD_SIZE]))
        if got != crc:
            raise ShmLayoutError(f"record CRC mismatch (stored {crc:08x}, computed {got:08x})")
    if not flags & FLAG_VALID:
        return seq, None
    if flags & ~_KNOWN_FLAGS:
        raise ShmLayoutError(f"unknown record flags {flags:#x}")
    cal = None
    if flags & FLAG_CALIBRATED:
        if not (0 < num <= MAX_RATE_TERM and 0 < den <= MAX_RATE_TERM):
            raise ShmLayoutError(f"rate {num}/{den} outside 1..2^41")
        cal = Calibration(internal, external, num, den, epoch)
    try:
        kind = IdentityKind(id_kind)
        rec = DomainRecord(
            domain=domain,
            calibration=cal,
            lock_state=LockState(lock),
            quality=Quality(quality),
            timescale=Timescale(tscale),
            error_bound_ns=bound,
            error_growth_ps_per_s=growth,
            update_mono_ns=update,
            utc_offset_s=utc_off,
            utc_offset_valid=bool(flags & FLAG_UTC_OFFSET_VALID),
            leap61=bool(flags & FLAG_LEAP61),
            leap59=bool(flags & FLAG_LEAP59),
            time_traceable=bool(flags & FLAG_TIME_TRACEABLE),
            frequency_traceable=bool(flags & FLAG_FREQUENCY_TRACEABLE),
            identity_kind=kind,
            identity=identity[: IDENTITY_LENGTH[kind]],
            hops=hops,
        )
    except ValueError as e:
        raise ShmLayoutError(f"bad record code: {e}") from None
    return seq, rec
