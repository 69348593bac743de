"""V4L2 MMAP streaming capture keeping each buffer's own timestamp, flags and sequence.

The ioctls go through a small :class:`VideoIO` interface: :class:`DeviceIO` is the real device
(``os.open`` + ``fcntl.ioctl`` + ``mmap``); ``tests/capture`` replays recorded DQBUF results
through the same interface, since this machine kind has no V4L2 in its kernel. Layouts and
``VIDIOC_*`` numbers are checked against ``<linux/videodev2.h>`` by a compiled probe.

Why not linuxpy (0.25, the maintained library): it does expose what is needed – ``Frame.buff``
is the raw ``v4l2_buffer`` with ``timestamp``/``flags``/``sequence`` – but its capture loop is
bound to module-level OS entry points (``linuxpy.io.open``, ``fcntl.ioctl``, ``mmap.mmap``,
``select``) so a replay means patching four private attributes; it opens non-blocking and waits
in ``select`` (EAGAIN on the second DQBUF through pw-v4l2 unless ``blocking=True``); it converts
the timestamp to a float ``Frame.timestamp``; and it would be a new dependency for five ioctls.
The layout test cross-checks our structs against linuxpy's when it is installed.

Timestamp semantics per buffer (``v4l2_buffer.flags``):

* ``TIMESTAMP_MONOTONIC`` -> CLOCK_MONOTONIC; ``TIMESTAMP_COPY`` -> copied from the output side
  of a mem2mem device: the clock is whatever the application put there (OTHER unless the caller
  says which); ``TIMESTAMP_UNKNOWN`` -> pre-3.9 drivers, REALTIME or MONOTONIC (OTHER).
* ``TSTAMP_SRC_SOE`` -> start of exposure; ``TSTAMP_SRC_EOF`` -> end of frame (last pixel
  transferred); the stamper can move EOF back one frame interval (from ``VIDIOC_G_PARM``).
* The timestamp is a ``timeval``: microseconds, so the stamp uncertainty is 1 µs.
* ``sequence`` is a u32 counter; gaps are dropped frames.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import time
from dataclasses import dataclass
from typing import Protocol

from capture.frame import StampClock, StampMeaning
from capture.stamping import RawStamp

__all__ = [
    "CONSTANTS",
    "IOCTLS",
    "STRUCTS",
    "DeviceIO",
    "V4l2Capture",
    "V4l2Frame",
    "VideoIO",
    "frame_to_raw",
]

CONSTANTS: dict[str, int] = {
    "V4L2_BUF_TYPE_VIDEO_CAPTURE": 1,
    "V4L2_MEMORY_MMAP": 1,
    "V4L2_FIELD_ANY": 0,
    "V4L2_FIELD_NONE": 1,
    "V4L2_CAP_VIDEO_CAPTURE": 0x00000001,
    "V4L2_CAP_STREAMING": 0x04000000,
    "V4L2_BUF_FLAG_MAPPED": 0x00000001,
    "V4L2_BUF_FLAG_QUEUED": 0x00000002,
    "V4L2_BUF_FLAG_DONE": 0x00000004,
    "V4L2_BUF_FLAG_ERROR": 0x00000040,
    "V4L2_BUF_FLAG_TIMESTAMP_MASK": 0x0000E000,
    "V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN": 0x00000000,
    "V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC": 0x00002000,
    "V4L2_BUF_FLAG_TIMESTAMP_COPY": 0x00004000,
    "V4L2_BUF_FLAG_TSTAMP_SRC_MASK": 0x00070000,
    "V4L2_BUF_FLAG_TSTAMP_SRC_EOF": 0x00000000,
    "V4L2_BUF_FLAG_TSTAMP_SRC_SOE": 0x00010000,
    "V4L2_PIX_FMT_RGB24": 0x33424752,
}
_K = CONSTANTS


class Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class V4l2Timecode(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("frames", ctypes.c_uint8),
        ("seconds", ctypes.c_uint8),
        ("minutes", ctypes.c_uint8),
        ("hours", ctypes.c_uint8),
        ("userbits", ctypes.c_uint8 * 4),
    )


class _BufM(ctypes.Union):
    _fields_ = (
        ("offset", ctypes.c_uint32),
        ("userptr", ctypes.c_ulong),
        ("planes", ctypes.c_void_p),
        ("fd", ctypes.c_int32),
    )


class V4l2Buffer(ctypes.Structure):
    _fields_ = (
        ("index", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("bytesused", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("timestamp", Timeval),
        ("timecode", V4l2Timecode),
        ("sequence", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("m", _BufM),
        ("length", ctypes.c_uint32),
        ("reserved2", ctypes.c_uint32),
        ("request_fd", ctypes.c_int32),
    )


class V4l2RequestBuffers(ctypes.Structure):
    _fields_ = (
        ("count", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
        ("memory", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("flags", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    )


class V4l2PixFormat(ctypes.Structure):
    _fields_ = (
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("pixelformat", ctypes.c_uint32),
        ("field", ctypes.c_uint32),
        ("bytesperline", ctypes.c_uint32),
        ("sizeimage", ctypes.c_uint32),
        ("colorspace", ctypes.c_uint32),
        ("priv", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("ycbcr_enc", ctypes.c_uint32),
        ("quantization", ctypes.c_uint32),
        ("xfer_func", ctypes.c_uint32),
    )


class _FmtUnion(ctypes.Union):
    # raw_data[200]; the real union also holds struct v4l2_window (pointers), hence align 8.
    _fields_ = (
        ("pix", V4l2PixFormat),
        ("raw_data", ctypes.c_uint8 * 200),
        ("_align", ctypes.c_void_p),
    )


class V4l2Format(ctypes.Structure):
    _fields_ = (("type", ctypes.c_uint32), ("fmt", _FmtUnion))


class V4l2Fract(ctypes.Structure):
    _fields_ = (("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32))


class V4l2CaptureParm(ctypes.Structure):
    _fields_ = (
        ("capability", ctypes.c_uint32),
        ("capturemode", ctypes.c_uint32),
        ("timeperframe", V4l2Fract),
        ("extendedmode", ctypes.c_uint32),
        ("readbuffers", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 4),
    )


class _ParmUnion(ctypes.Union):
    _fields_ = (("capture", V4l2CaptureParm), ("raw_data", ctypes.c_uint8 * 200))


class V4l2StreamParm(ctypes.Structure):
    _fields_ = (("type", ctypes.c_uint32), ("parm", _ParmUnion))


class V4l2Capability(ctypes.Structure):
    _fields_ = (
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    )


STRUCTS: dict[str, type[ctypes.Structure]] = {
    "v4l2_buffer": V4l2Buffer,
    "v4l2_requestbuffers": V4l2RequestBuffers,
    "v4l2_format": V4l2Format,
    "v4l2_pix_format": V4l2PixFormat,
    "v4l2_streamparm": V4l2StreamParm,
    "v4l2_captureparm": V4l2CaptureParm,
    "v4l2_capability": V4l2Capability,
    "v4l2_timecode": V4l2Timecode,
}

# _IOC encoding (asm-generic): dir<<30 | size<<16 | type<<8 | nr
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


IOCTLS: dict[str, int] = {
    "VIDIOC_QUERYCAP": _ioc(_IOC_READ, 0, ctypes.sizeof(V4l2Capability)),
    "VIDIOC_G_FMT": _ioc(_IOC_READ | _IOC_WRITE, 4, ctypes.sizeof(V4l2Format)),
    "VIDIOC_S_FMT": _ioc(_IOC_READ | _IOC_WRITE, 5, ctypes.sizeof(V4l2Format)),
    "VIDIOC_REQBUFS": _ioc(_IOC_READ | _IOC_WRITE, 8, ctypes.sizeof(V4l2RequestBuffers)),
    "VIDIOC_QUERYBUF": _ioc(_IOC_READ | _IOC_WRITE, 9, ctypes.sizeof(V4l2Buffer)),
    "VIDIOC_QBUF": _ioc(_IOC_READ | _IOC_WRITE, 15, ctypes.sizeof(V4l2Buffer)),
    "VIDIOC_DQBUF": _ioc(_IOC_READ | _IOC_WRITE, 17, ctypes.sizeof(V4l2Buffer)),
    "VIDIOC_STREAMON": _ioc(_IOC_WRITE, 18, ctypes.sizeof(ctypes.c_int)),
    "VIDIOC_STREAMOFF": _ioc(_IOC_WRITE, 19, ctypes.sizeof(ctypes.c_int)),
    "VIDIOC_G_PARM": _ioc(_IOC_READ | _IOC_WRITE, 21, ctypes.sizeof(V4l2StreamParm)),
}
_I = IOCTLS


class VideoIO(Protocol):
    """The device operations the capture loop uses (real device or a replay)."""

    def ioctl(self, request: int, arg: ctypes.Structure | ctypes.c_int) -> None:
        """Perform ``request`` on ``arg`` in place; raise OSError(errno) on failure."""

    def mmap(self, offset: int, length: int) -> mmap.mmap | bytearray: ...

    def close(self) -> None: ...


class DeviceIO:
    """A real /dev/videoN, opened blocking (DQBUF waits for a frame)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def ioctl(self, request: int, arg: ctypes.Structure | ctypes.c_int) -> None:
        while True:
            try:
                fcntl.ioctl(self.fd, request, arg, True)
                return
            except InterruptedError:
                continue

    def mmap(self, offset: int, length: int) -> mmap.mmap:
        return mmap.mmap(
            self.fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset
        )

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True, slots=True)
class V4l2Frame:
    index: int
    sequence: int
    timestamp_ns: int
    flags: int
    bytesused: int
    field: int
    arrival_ns: int
    data: bytes | None = None

    @property
    def clock(self) -> str:
        t = self.flags & _K["V4L2_BUF_FLAG_TIMESTAMP_MASK"]
        if t == _K["V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC"]:
            return "MONOTONIC"
        if t == _K["V4L2_BUF_FLAG_TIMESTAMP_COPY"]:
            return "COPY"
        return "UNKNOWN"

    @property
    def soe(self) -> bool:
        src = self.flags & _K["V4L2_BUF_FLAG_TSTAMP_SRC_MASK"]
        return src == _K["V4L2_BUF_FLAG_TSTAMP_SRC_SOE"]


def timeval_ns(sec: int, usec: int) -> int:
    return sec * 1_000_000_000 + usec * 1000


class V4l2Capture:
    """REQBUFS, QUERYBUF, mmap, QBUF, STREAMON; then :meth:`read_frame` = DQBUF + QBUF."""

    def __init__(
        self,
        io: VideoIO,
        *,
        n_buffers: int = 4,
        size: tuple[int, int] | None = None,
        pixelformat: int = CONSTANTS["V4L2_PIX_FMT_RGB24"],
        keep_data: bool = False,
    ) -> None:
        self.io = io
        self.keep_data = keep_data
        self._maps: list[mmap.mmap | bytearray] = []
        self._streaming = False
        cap = V4l2Capability()
        io.ioctl(_I["VIDIOC_QUERYCAP"], cap)
        caps = cap.device_caps or cap.capabilities
        need = _K["V4L2_CAP_VIDEO_CAPTURE"] | _K["V4L2_CAP_STREAMING"]
        if caps & need != need:
            raise OSError(errno.ENOTSUP, f"not a streaming capture device (caps {caps:#x})")
        self.driver = cap.driver.decode(errors="replace")
        self.card = cap.card.decode(errors="replace")
        self.format = self._negotiate(size, pixelformat)
        self.frame_interval_ns = self._frame_interval()
        req = V4l2RequestBuffers(
            count=n_buffers, type=_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"], memory=_K["V4L2_MEMORY_MMAP"]
        )
        io.ioctl(_I["VIDIOC_REQBUFS"], req)
        if req.count < 1:
            raise OSError(errno.ENOMEM, "REQBUFS granted no buffers")
        try:
            for i in range(req.count):
                b = self._buf(i)
                io.ioctl(_I["VIDIOC_QUERYBUF"], b)
                self._maps.append(io.mmap(b.m.offset, b.length))
            for i in range(req.count):
                io.ioctl(_I["VIDIOC_QBUF"], self._buf(i))
            io.ioctl(_I["VIDIOC_STREAMON"], ctypes.c_int(_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"]))
            self._streaming = True
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _buf(index: int = 0) -> V4l2Buffer:
        return V4l2Buffer(
            index=index, type=_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"], memory=_K["V4L2_MEMORY_MMAP"]
        )

    def _negotiate(self, size: tuple[int, int] | None, pixelformat: int) -> V4l2PixFormat:
        f = V4l2Format(type=_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"])
        if size is None:
            try:
                self.io.ioctl(_I["VIDIOC_G_FMT"], f)
                got: V4l2PixFormat = f.fmt.pix
                return got
            except OSError as e:  # pw-v4l2 answers EINVAL before the first S_FMT
                if e.errno != errno.EINVAL:
                    raise
            size = (320, 240)
        f.fmt.pix.width, f.fmt.pix.height = size
        f.fmt.pix.pixelformat = pixelformat
        f.fmt.pix.field = _K["V4L2_FIELD_NONE"]
        self.io.ioctl(_I["VIDIOC_S_FMT"], f)
        pix: V4l2PixFormat = f.fmt.pix
        return pix

    def _frame_interval(self) -> int | None:
        p = V4l2StreamParm(type=_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"])
        try:
            self.io.ioctl(_I["VIDIOC_G_PARM"], p)
        except OSError:
            return None
        tpf = p.parm.capture.timeperframe
        if not tpf.numerator or not tpf.denominator:
            return None
        num, den = int(tpf.numerator), int(tpf.denominator)
        return (num * 1_000_000_000 + den // 2) // den

    def read_frame(self) -> V4l2Frame:
        b = self._buf()
        self.io.ioctl(_I["VIDIOC_DQBUF"], b)
        arrival = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            data = bytes(self._maps[b.index][: b.bytesused]) if self.keep_data else None
            return V4l2Frame(
                index=b.index,
                sequence=int(b.sequence),
                timestamp_ns=timeval_ns(int(b.timestamp.tv_sec), int(b.timestamp.tv_usec)),
                flags=int(b.flags),
                bytesused=int(b.bytesused),
                field=int(b.field),
                arrival_ns=arrival,
                data=data,
            )
        finally:
            self.io.ioctl(_I["VIDIOC_QBUF"], self._buf(b.index))

    def close(self) -> None:
        if self._streaming:
            self._streaming = False
            with contextlib.suppress(OSError):
                self.io.ioctl(
                    _I["VIDIOC_STREAMOFF"], ctypes.c_int(_K["V4L2_BUF_TYPE_VIDEO_CAPTURE"])
                )
        for m in self._maps:
            if isinstance(m, mmap.mmap):
                m.close()
        self._maps.clear()
        self.io.close()

    def __enter__(self) -> V4l2Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Stamp uncertainty of a ``timeval``: it is truncated to whole microseconds.
TIMEVAL_UNCERTAINTY_NS = 1000


def frame_to_raw(
    f: V4l2Frame,
    *,
    copy_clock: StampClock = StampClock.OTHER,
    unknown_clock: StampClock = StampClock.OTHER,
) -> RawStamp:
    """The :class:`RawStamp` of one dequeued buffer.

    ``copy_clock`` says which clock TIMESTAMP_COPY stamps are in when the caller knows (e.g. it
    queued MONOTONIC stamps on the output side of a mem2mem device); ``unknown_clock`` the same
    for TIMESTAMP_UNKNOWN (drivers before Linux 3.9: usually REALTIME, gettimeofday).
    """
    clock = {"MONOTONIC": StampClock.MONOTONIC, "COPY": copy_clock}.get(f.clock, unknown_clock)
    flags: list[str] = []
    if f.clock != "MONOTONIC":
        flags.append(f"timestamp_{f.clock.lower()}")
    if f.flags & _K["V4L2_BUF_FLAG_ERROR"]:
        flags.append("corrupted")
    return RawStamp(
        seq=f.sequence,
        raw_ns=f.timestamp_ns,
        raw_clock=clock,
        meaning=StampMeaning.SOE if f.soe else StampMeaning.EOF,
        arrival_mono_ns=f.arrival_ns,
        stamp_uncertainty_ns=TIMEVAL_UNCERTAINTY_NS,
        flags=tuple(flags),
        extra={"v4l2_flags": f.flags, "index": f.index, "bytesused": f.bytesused},
    )
