"""Read netclock's published time from shared memory: ``SharedClock().now_ns()``.

This is the library local processes (capture agents, applications) use. It maps the file the
daemon writes (:mod:`netclock.platform.shm_writer`, layout :mod:`netclock.shm`) read-only and
converts CLOCK_MONOTONIC readings with the published calibration::

    network = (mono - internal) * rate_num / rate_denom + external   (rounded to nearest)

Reads are lock-free (a seqlock per record) and never delay the daemon. The record is copied
only when its ``seq`` word changed; otherwise a call costs one 8-byte read of ``seq``, one
``clock_gettime`` and integer arithmetic (see ``bench/reader_cost.py``).

Errors are all :class:`ClockUnavailable` subclasses with a message that says what to do:
:class:`DaemonNotRunning`, :class:`UnsupportedLayout`, :class:`DomainNotFound`,
:class:`NotSynchronized`.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import time
from dataclasses import dataclass
from types import TracebackType

from netclock.calibration import Calibration
from netclock.observe import LockState, Quality, Timescale
from netclock.shm import (
    HEADER_SIZE,
    HEADER_STATE_OFFSET,
    RECORD_SIZE,
    SEQ_STRUCT,
    SHM_FILENAME,
    DomainRecord,
    ShmLayoutError,
    WriterState,
    default_runtime_dir,
    record_offset,
    unpack_header,
    unpack_record,
)

__all__ = [
    "ClockStatus",
    "ClockUnavailable",
    "DaemonNotRunning",
    "DomainNotFound",
    "NotSynchronized",
    "SharedClock",
    "UnsupportedLayout",
    "candidate_paths",
]

_seq_at = SEQ_STRUCT.unpack_from
_u32_at = struct.Struct("<I").unpack_from
#: Stands in for the map once closed: reads find seq 0 and go to the slow path, which raises.
_CLOSED = bytes(RECORD_SIZE)


def _native_seq(seq: int) -> int:
    """A seq value as the host reads the 8 little-endian bytes as a native word."""
    if sys.byteorder == "little":
        return seq
    return int.from_bytes(seq.to_bytes(8, "little"), sys.byteorder)


_mono = time.monotonic_ns  # CLOCK_MONOTONIC on Linux


class ClockUnavailable(RuntimeError):
    """The published time cannot be read; the message says why and what to do."""


class DaemonNotRunning(ClockUnavailable):
    """No shared-memory file, or the daemon stopped (the file says so)."""


class UnsupportedLayout(ClockUnavailable):
    """The file is not a netclock file, or its layout version is unknown to this reader."""


class DomainNotFound(ClockUnavailable):
    """The requested domain is not published."""


class NotSynchronized(ClockUnavailable):
    """The domain is published but has no calibration yet (the daemon is still starting)."""


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """What :meth:`SharedClock.status` reports."""

    domain: int
    lock_state: LockState
    quality: Quality
    timescale: Timescale
    error_bound_ns: int
    """Error bound now: published bound + growth × age."""
    age_ns: int
    """CLOCK_MONOTONIC now minus the record's update time."""
    epoch: int
    identity: str
    utc_offset_s: int
    utc_offset_valid: bool
    leap61: bool
    leap59: bool
    hops: int
    calibration: Calibration | None
    writer_pid: int
    path: str
    mono_ns: int
    """The CLOCK_MONOTONIC reading this status was computed at."""

    @property
    def synchronized(self) -> bool:
        return self.calibration is not None

    @property
    def rate_ppb(self) -> float | None:
        return None if self.calibration is None else self.calibration.rate_ppb()


def candidate_paths(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Where a reader looks: ``path``, else ``$NETCLOCK_SHM``, else the runtime dirs."""
    if path is not None:
        return [os.fspath(path)]
    env = os.environ.get("NETCLOCK_SHM")
    if env:
        return [env]
    paths = [os.path.join(default_runtime_dir(os.environ), SHM_FILENAME)]
    system = os.path.join(default_runtime_dir({}), SHM_FILENAME)
    if system not in paths:
        paths.append(system)
    return paths


class SharedClock:
    """The daemon's published time for one domain.

    ``SharedClock()`` reads slot 0 (the daemon's primary time); ``domain=N`` looks the domain
    number up (0..255 PTP domainNumber, 256 NTP). Opening fails with a
    :class:`ClockUnavailable` subclass; so do reads once the daemon stops.
    """

    __slots__ = (
        "_cal",
        "_mm",
        "_off",
        "_rec_seq",
        "_record",
        "_seq",
        "_size",
        "_slot",
        "_spin_limit",
        "_view",
        "_widx",
        "_words",
        "domain",
        "path",
        "requested_domain",
        "writer_pid",
    )

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        domain: int | None = None,
        *,
        spin_limit: int = 100_000,
    ) -> None:
        self.requested_domain = domain
        self._spin_limit = spin_limit
        self._mm: mmap.mmap | bytes = _CLOSED
        self._off = 0
        # The fast path compares the record's seq, read as a native 8-byte word through a
        # memoryview of the map, with ``_seq`` (stored in the same native form; -1 = reread).
        self._view = memoryview(_CLOSED)
        self._words = self._view.cast("Q")
        self._widx = 0
        self._seq = -1
        self._rec_seq = -1
        self._record: DomainRecord | None = None
        #: (internal, external, rate_num, rate_denom, 2 * rate_denom) of the cached calibration
        self._cal = (0, 0, 1, 1, 2)
        self._open(candidate_paths(path))

    # -- opening ------------------------------------------------------------------------------
    def _open(self, paths: list[str]) -> None:
        self._close_map()
        chosen = next((p for p in paths if os.path.exists(p)), None)
        if chosen is None:
            raise DaemonNotRunning(
                "netclock daemon is not running: no shared-memory file at "
                + " or ".join(paths)
                + " (start `netclock run`, or pass the path the daemon publishes to)"
            )
        self.path = chosen
        try:
            fd = os.open(chosen, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError as e:
            raise ClockUnavailable(
                f"cannot read {chosen}: {e.strerror} (the reader must be in the file's group, "
                "set by publish.shm-group)"
            ) from e
        except FileNotFoundError as e:
            raise DaemonNotRunning(f"netclock daemon is not running: {chosen} vanished") from e
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_SIZE:
                raise UnsupportedLayout(f"{chosen} is not a netclock shared-memory file")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)  # the mapping keeps the file
        self._mm, self._size = mm, size
        self._view = memoryview(mm)
        self._words = self._view[: size - size % 8].cast("Q")
        try:
            header = unpack_header(mm[:HEADER_SIZE])
        except ShmLayoutError as e:
            self._close_map()
            raise UnsupportedLayout(f"{chosen}: {e}") from None
        if header.file_size > size:
            self._close_map()
            raise UnsupportedLayout(f"{chosen}: file shorter than its header says")
        if header.state == WriterState.STOPPED:
            self._close_map()
            raise DaemonNotRunning(f"netclock daemon stopped (it left {chosen} marked stopped)")
        self.writer_pid = header.writer_pid
        self._slot = self._find_slot(header.record_count, header.header_size, header.record_size)
        self._set_slot(self._slot, header.header_size, header.record_size)
        self._refresh()

    def _set_slot(self, slot: int, hsize: int, rsize: int) -> None:
        self._slot = slot
        self._off = record_offset(slot, hsize, rsize)
        self._widx = self._off // 8

    def _find_slot(self, count: int, hsize: int, rsize: int) -> int:
        want = self.requested_domain
        seen = []
        for i in range(count if want is not None else 1):
            _, rec = self._read(record_offset(i, hsize, rsize))
            if rec is None:
                continue
            if want is None or rec.domain == want:
                return i
            seen.append(rec.domain)
        if want is None:
            return 0  # _refresh reports the empty slot
        raise DomainNotFound(
            f"domain {want} is not published in {self.path} (published: "
            + (", ".join(map(str, seen)) or "none")
            + ")"
        )

    def _close_map(self) -> None:
        self._words.release()
        self._view.release()
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._mm = _CLOSED
        self._off = self._widx = 0
        self._view = memoryview(_CLOSED)
        self._words = self._view.cast("Q")

    def close(self) -> None:
        self._close_map()
        self._seq = self._rec_seq = -1

    def __enter__(self) -> SharedClock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the seqlock read ---------------------------------------------------------------------
    def _read(self, off: int) -> tuple[int, DomainRecord | None]:
        """One consistent copy of the record at ``off``: (seq, record or None)."""
        mm = self._mm
        if mm is _CLOSED:
            raise ClockUnavailable("SharedClock is closed")
        for n in range(self._spin_limit):
            (s1,) = _seq_at(mm, off)
            if s1 & 1:
                if n & 63 == 63:
                    os.sched_yield()
                continue
            raw = mm[off : off + RECORD_SIZE]
            (s2,) = _seq_at(mm, off)
            if s1 == s2:
                break
        else:
            raise ClockUnavailable(
                f"record in {self.path} stayed mid-update for {self._spin_limit} reads "
                "(did the daemon die while writing?)"
            )
        try:
            return s1, unpack_record(raw, verify=True)[1]
        except ShmLayoutError as e:
            raise ClockUnavailable(f"{self.path}: corrupt record: {e}") from None

    def _refresh(self) -> DomainRecord:
        """Re-read our record (and the header state); cache the calibration."""
        seq, rec = self._read(self._off)
        mm = self._mm
        (state,) = _u32_at(mm, HEADER_STATE_OFFSET)
        if state == WriterState.REPLACED:
            self._open([self.path])
            assert self._record is not None
            return self._record
        if state == WriterState.STOPPED:
            self._seq = self._rec_seq = -1
            raise DaemonNotRunning(f"netclock daemon stopped (it marked {self.path} stopped)")
        want = self.requested_domain
        if rec is None or (want is not None and rec.domain != want):
            self._seq = self._rec_seq = -1
            if want is not None and rec is not None:
                # Slots were reassigned: look the domain up again.
                header = unpack_header(mm[:HEADER_SIZE])
                slot = self._find_slot(header.record_count, header.header_size, header.record_size)
                self._set_slot(slot, header.header_size, header.record_size)
                return self._refresh()
            raise DomainNotFound(
                f"no time is published in {self.path} "
                + ("yet" if want is None else f"for domain {want}")
                + " (the daemon is starting or has no source)"
            )
        self._record = rec
        self._rec_seq = _native_seq(seq)
        self.domain = rec.domain
        cal = rec.calibration
        if cal is None:
            self._seq = -1  # every conversion comes back here and raises
        else:
            den = cal.rate_denom
            self._cal = (cal.internal, cal.external, cal.rate_num, den, 2 * den)
            self._seq = _native_seq(seq)
        return rec

    def _current(self) -> DomainRecord:
        """The cached record when its seq is unchanged, else a fresh read."""
        if self._words[self._widx] != self._rec_seq or self._record is None:
            return self._refresh()
        return self._record

    def _calibrated(self) -> None:
        """Refresh, and raise NotSynchronized when there is no calibration."""
        rec = self._refresh()
        if rec.calibration is None:
            raise NotSynchronized(
                f"domain {rec.domain} has no calibration yet (lock state "
                f"{rec.lock_state.name}); retry once the daemon has measurements"
            )

    # -- the fast calls -----------------------------------------------------------------------
    def now_ns(self) -> int:
        """Network time now (ns in the domain's timescale), from CLOCK_MONOTONIC."""
        if self._words[self._widx] != self._seq:
            self._calibrated()
        i, e, n, d, d2 = self._cal
        x = (_mono() - i) * n
        if x >= 0:
            return (2 * x + d) // d2 + e
        return e - (d - 2 * x) // d2

    def to_network(self, mono_ns: int) -> int:
        """Convert a CLOCK_MONOTONIC reading (ns) to network time (ns)."""
        if self._words[self._widx] != self._seq:
            self._calibrated()
        i, e, n, d, d2 = self._cal
        x = (mono_ns - i) * n
        if x >= 0:
            return (2 * x + d) // d2 + e
        return e - (d - 2 * x) // d2

    def to_monotonic(self, net_ns: int) -> int:
        """Convert network time (ns) to the CLOCK_MONOTONIC reading (ns) it corresponds to."""
        if self._words[self._widx] != self._seq:
            self._calibrated()
        i, e, n, d, _ = self._cal
        x = (net_ns - e) * d
        if x >= 0:
            return (2 * x + n) // (2 * n) + i
        return i - (n - 2 * x) // (2 * n)

    def calibration(self) -> Calibration:
        """The current calibration (raises NotSynchronized when there is none)."""
        self._calibrated()
        assert self._record is not None and self._record.calibration is not None
        return self._record.calibration

    def record(self) -> DomainRecord:
        """A consistent copy of the whole record (re-read only when its seq changed)."""
        return self._current()

    def status(self) -> ClockStatus:
        """Lock state, error bound now, epoch, identity, timescale (works unsynchronized)."""
        rec = self._current()
        mono = _mono()
        cal = rec.calibration
        return ClockStatus(
            domain=rec.domain,
            lock_state=rec.lock_state,
            quality=rec.quality,
            timescale=rec.timescale,
            error_bound_ns=rec.error_bound_at(mono),
            age_ns=mono - rec.update_mono_ns,
            epoch=cal.epoch if cal is not None else 0,
            identity=rec.identity_text(),
            utc_offset_s=rec.utc_offset_s,
            utc_offset_valid=rec.utc_offset_valid,
            leap61=rec.leap61,
            leap59=rec.leap59,
            hops=rec.hops,
            calibration=cal,
            writer_pid=self.writer_pid,
            path=self.path,
            mono_ns=mono,
        )
