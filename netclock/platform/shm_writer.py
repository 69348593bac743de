"""The writer side of the shared-memory publication: create, map, seqlock-write, retire.

One writer (the daemon), many readers (:mod:`netclock.client`). The layout is
:mod:`netclock.shm` (see ``docs/shm-layout.md``).

* **Atomic creation.** The file is built complete under a temporary name in the same
  directory (header, empty records, mode, group) and then ``rename``\\ d over the path, so a
  reader opening the path sees either the old file or a complete new one.
* **Replacement.** When a file already exists at the path (a previous daemon), it is marked
  ``REPLACED`` after the rename and each of its records' ``seq`` is bumped, so readers still
  mapping it notice on their next read and reopen the path.
* **Seqlock.** ``publish`` writes each record as: ``seq`` odd, body, ``seq`` even. Readers
  retry on an odd or changed ``seq``; nothing the readers do can delay the writer.
* **Permissions.** Mode 0640 by default: writable by the daemon user, readable by the group.
  The group is only changed when asked; failure raises :class:`ShmPermissionError` naming the
  group and what is missing.
"""

from __future__ import annotations

import contextlib
import grp
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType

from netclock.shm import (
    CRC_START,
    HEADER_SIZE,
    HEADER_STATE_OFFSET,
    MAGIC,
    RECORD_SIZE,
    SEQ_STRUCT,
    SHM_FILENAME,
    DomainRecord,
    Header,
    ShmLayoutError,
    WriterState,
    default_runtime_dir,
    pack_header,
    pack_record,
    record_offset,
    unpack_header,
)

__all__ = [
    "ShmPermissionError",
    "ShmWriter",
    "default_shm_path",
    "resolve_group",
    "resolve_shm_path",
]

_U32 = struct.Struct("<I")


class ShmPermissionError(PermissionError):
    """The shared-memory file or its directory cannot be created or given to the group."""


def default_shm_path() -> str:
    """``$XDG_RUNTIME_DIR/netclock/clock.shm`` or ``/run/netclock/clock.shm``."""
    return os.path.join(default_runtime_dir(os.environ), SHM_FILENAME)


def resolve_shm_path(configured: str = "") -> str:
    """``publish.shm-path``: the configured path, or the default when empty."""
    return configured or default_shm_path()


def resolve_group(group: str | int) -> int:
    """A group name or number → gid. Raises ``ValueError`` for an unknown name."""
    if isinstance(group, int):
        return group
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"unknown group {group!r} (publish.shm-group)") from None


class ShmWriter:
    """Create the shared-memory file at ``path`` and publish domain records into it.

    ``ShmWriter(path, group=None).publish([record0, record1, ...])``: record *i* goes to slot
    *i*; slot 0 is what a reader gets without asking for a domain. ``None`` or a missing entry
    makes the slot invalid. ``slots`` fixes how many domains the file can hold.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        group: str | int | None = None,
        *,
        slots: int = 8,
        mode: int = 0o640,
    ) -> None:
        self.path = os.fspath(path) if path is not None else default_shm_path()
        self.slots = slots
        self._seq = [0] * slots
        self._valid = [False] * slots
        header = Header(
            record_count=slots,
            writer_pid=os.getpid(),
            state=WriterState.RUNNING,
            created_mono_ns=time.monotonic_ns(),
        )
        image = bytearray(pack_header(header))
        for _ in range(slots):
            image += pack_record(None)
        gid = None if group is None or group == "" else resolve_group(group)
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as e:
            raise ShmPermissionError(
                f"cannot create the runtime directory {directory}: {e.strerror} "
                "(set publish.shm-path, or XDG_RUNTIME_DIR for a user session)"
            ) from e
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".clock.shm.")
        except OSError as e:
            raise ShmPermissionError(
                f"cannot create a file in {directory}: {e.strerror} (set publish.shm-path)"
            ) from e
        try:
            os.fchmod(fd, mode)
            if gid is not None:
                try:
                    os.fchown(fd, -1, gid)
                except OSError as e:
                    raise ShmPermissionError(
                        f"cannot give {self.path} to group {group!r} (gid {gid}): {e.strerror}; "
                        "the daemon user must be a member of that group (or have CAP_CHOWN)"
                    ) from e
            os.write(fd, bytes(image))
            self._mm = mmap.mmap(fd, len(image), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            old_fd = self._open_existing()
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fd = fd
        if old_fd is not None:
            _retire(old_fd)
        self._closed = False

    def _open_existing(self) -> int | None:
        try:
            return os.open(self.path, os.O_RDWR)
        except OSError:
            return None

    # -- publishing ---------------------------------------------------------------------------
    def publish(self, records: Sequence[DomainRecord | None]) -> None:
        """Write every slot: ``records[i]`` into slot *i*, and invalidate the slots beyond."""
        if self._closed:
            raise ValueError("ShmWriter is closed")
        if len(records) > self.slots:
            raise ValueError(f"{len(records)} records for {self.slots} slots")
        for i in range(self.slots):
            rec = records[i] if i < len(records) else None
            if rec is None and not self._valid[i]:
                continue
            self._write(i, rec)

    def publish_one(self, slot: int, record: DomainRecord | None) -> None:
        """Write one slot only."""
        if self._closed:
            raise ValueError("ShmWriter is closed")
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} outside 0..{self.slots - 1}")
        self._write(slot, record)

    def _write(self, i: int, rec: DomainRecord | None) -> None:
        off = record_offset(i)
        seq = self._seq[i] + 1  # odd: readers retry
        body = pack_record(rec, 0)  # validates before the seqlock is entered
        mm = self._mm
        SEQ_STRUCT.pack_into(mm, off, seq)
        mm[off + CRC_START : off + RECORD_SIZE] = body[CRC_START:]
        SEQ_STRUCT.pack_into(mm, off, seq + 1)
        self._seq[i] = seq + 1
        self._valid[i] = rec is not None

    # -- lifetime -----------------------------------------------------------------------------
    def close(self, *, unlink: bool = False) -> None:
        """Invalidate every record and mark the file STOPPED (readers then say so).

        ``unlink`` also removes the file (only when it is still ours).
        """
        if self._closed:
            return
        _U32.pack_into(self._mm, HEADER_STATE_OFFSET, int(WriterState.STOPPED))
        # Invalidating bumps every seq, so a reader holding a cached seq re-reads the header.
        for i in range(self.slots):
            self._write(i, None)
        if unlink:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    os.unlink(self.path)
        self._mm.close()
        os.close(self._fd)
        self._closed = True

    def __enter__(self) -> ShmWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _retire(fd: int) -> None:
    """Mark a previous daemon's file REPLACED and bump its records' seq (readers reopen)."""
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            return
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            if mm[:8] != MAGIC:
                return
            try:
                header = unpack_header(mm[:HEADER_SIZE])
            except ShmLayoutError:
                return
            _U32.pack_into(mm, HEADER_STATE_OFFSET, int(WriterState.REPLACED))
            for i in range(header.record_count):
                off = record_offset(i, header.header_size, header.record_size)
                if off + 8 > size:
                    break
                (seq,) = SEQ_STRUCT.unpack_from(mm, off)
                SEQ_STRUCT.pack_into(mm, off, (seq | 1) + 1)
    except (OSError, ValueError):
        pass
    finally:
        os.close(fd)
