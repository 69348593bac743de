"""Replay recorded DQBUF results through :class:`capture.v4l2.V4l2Capture` (a VideoIO).

There is no V4L2 in this machine kind's kernel, so the capture loop's timestamp handling is
exercised by replaying what a real device returned: one dict per DQBUF, ``{"seq", "sec",
"usec", "flags"}`` (optionally ``"bytesused"``), recorded once on a machine with a camera
(``V4l2Frame`` fields map one to one). The replay answers QUERYCAP, G_FMT/S_FMT, G_PARM,
REQBUFS, QUERYBUF, QBUF, DQBUF, STREAMON/OFF with the semantics the loop relies on (a buffer must
be queued to be dequeued; DQBUF before STREAMON is EINVAL); when the recording is exhausted
DQBUF fails with ENODEV, as a device unplugged mid-stream does.
"""

from __future__ import annotations

import ctypes
import errno
import json
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path

from capture.v4l2 import (
    CONSTANTS,
    IOCTLS,
    V4l2Buffer,
    V4l2Capability,
    V4l2Format,
    V4l2RequestBuffers,
    V4l2StreamParm,
)

__all__ = ["ReplayIO"]

_K = CONSTANTS


class ReplayIO:
    def __init__(
        self,
        records: Iterable[Mapping[str, int]],
        *,
        width: int = 320,
        height: int = 240,
        timeperframe: tuple[int, int] | None = (1, 30),
        driver: str = "replay",
    ) -> None:
        self.records = deque(dict(r) for r in records)
        self.width, self.height = width, height
        self.timeperframe = timeperframe
        self.driver = driver
        self.n_buffers = 0
        self.queued: deque[int] = deque()
        self.streaming = False
        self.closed = False
        self.calls: list[str] = []
        self._names = {v: k for k, v in IOCTLS.items()}

    @classmethod
    def from_jsonl(cls, path: str | Path, **kw: object) -> ReplayIO:
        with open(path) as fh:
            recs = [json.loads(line) for line in fh if line.strip()]
        return cls(recs, **kw)  # type: ignore[arg-type]

    @classmethod
    def from_capture_file(cls, path: str | Path, **kw: object) -> ReplayIO:
        """Replay the DQBUF results of a ``netclock capture --source v4l2:...`` output file:
        a capture on a machine with a camera is its own fixture (raw stamp, sequence and
        ``extra.v4l2_flags`` are all a record keeps of the buffer)."""
        from capture.frame import SourceKind, loads

        recs = []
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                r = loads(line)
                if r.source is not SourceKind.V4L2 or "v4l2_flags" not in r.extra:
                    continue
                flags = r.extra["v4l2_flags"]
                sec, ns = divmod(r.raw_ns, 1_000_000_000)
                recs.append(
                    {
                        "seq": r.seq,
                        "sec": sec,
                        "usec": ns // 1000,
                        "flags": int(flags),
                        "bytesused": int(r.extra.get("bytesused", 0)) or 0,
                    }
                )
        for rec in recs:
            if not rec["bytesused"]:
                del rec["bytesused"]
        return cls(recs, **kw)  # type: ignore[arg-type]

    @property
    def sizeimage(self) -> int:
        return self.width * self.height * 3

    def ioctl(self, request: int, arg: ctypes.Structure | ctypes.c_int) -> None:
        name = self._names.get(request)
        if name is None:
            raise OSError(errno.ENOTTY, "unknown ioctl")
        self.calls.append(name)
        getattr(self, "_" + name.lower())(arg)

    def _vidioc_querycap(self, c: V4l2Capability) -> None:
        c.driver = self.driver.encode()
        c.card = b"recorded DQBUF replay"
        c.capabilities = c.device_caps = _K["V4L2_CAP_VIDEO_CAPTURE"] | _K["V4L2_CAP_STREAMING"]

    def _fill_fmt(self, f: V4l2Format) -> None:
        p = f.fmt.pix
        p.width, p.height = self.width, self.height
        p.pixelformat = _K["V4L2_PIX_FMT_RGB24"]
        p.field = _K["V4L2_FIELD_NONE"]
        p.bytesperline, p.sizeimage = self.width * 3, self.sizeimage

    def _vidioc_g_fmt(self, f: V4l2Format) -> None:
        self._fill_fmt(f)

    def _vidioc_s_fmt(self, f: V4l2Format) -> None:
        self.width, self.height = f.fmt.pix.width, f.fmt.pix.height
        self._fill_fmt(f)

    def _vidioc_g_parm(self, p: V4l2StreamParm) -> None:
        if self.timeperframe is None:
            raise OSError(errno.ENOTTY, "G_PARM unsupported")
        p.parm.capture.timeperframe.numerator, p.parm.capture.timeperframe.denominator = (
            self.timeperframe
        )

    def _vidioc_reqbufs(self, r: V4l2RequestBuffers) -> None:
        if r.memory != _K["V4L2_MEMORY_MMAP"]:
            raise OSError(errno.EINVAL, "only MMAP")
        self.n_buffers = r.count = min(r.count, 8)

    def _check_index(self, b: V4l2Buffer) -> None:
        if not 0 <= b.index < self.n_buffers:
            raise OSError(errno.EINVAL, "bad buffer index")

    def _vidioc_querybuf(self, b: V4l2Buffer) -> None:
        self._check_index(b)
        b.length = self.sizeimage
        b.m.offset = b.index * 4096 * ((self.sizeimage + 4095) // 4096)

    def _vidioc_qbuf(self, b: V4l2Buffer) -> None:
        self._check_index(b)
        if b.index in self.queued:
            raise OSError(errno.EINVAL, "buffer already queued")
        self.queued.append(b.index)

    def _vidioc_dqbuf(self, b: V4l2Buffer) -> None:
        if not self.streaming or not self.queued:
            raise OSError(errno.EINVAL, "not streaming or nothing queued")
        if not self.records:
            raise OSError(errno.ENODEV, "recording exhausted")
        r = self.records.popleft()
        b.index = self.queued.popleft()
        b.sequence = r["seq"] & 0xFFFFFFFF
        b.timestamp.tv_sec, b.timestamp.tv_usec = r["sec"], r["usec"]
        b.flags = r["flags"] | _K["V4L2_BUF_FLAG_MAPPED"] | _K["V4L2_BUF_FLAG_DONE"]
        b.bytesused = r.get("bytesused", self.sizeimage)
        b.field = _K["V4L2_FIELD_NONE"]

    def _vidioc_streamon(self, _t: ctypes.c_int) -> None:
        self.streaming = True

    def _vidioc_streamoff(self, _t: ctypes.c_int) -> None:
        self.streaming = False
        self.queued.clear()

    def mmap(self, offset: int, length: int) -> bytearray:
        return bytearray(length)

    def close(self) -> None:
        self.closed = True
