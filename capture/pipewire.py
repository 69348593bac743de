"""Focused ctypes binding to libpipewire-0.3: pw_stream consumer (audio, video) and producer.

No PyPI binding reaches ``spa_meta_header.pts``/``seq``, ``pw_time`` and the graph clock
(``spa_io_clock``) (see shared/research/capture.md §3.2), so this module binds the few calls
needed with ctypes; nothing is compiled. Struct layouts and constants are hard-coded here and
checked against the installed C headers by ``tests/capture/test_pipewire_layout.py`` (a compiled
probe), because ``pw_time``/``pw_buffer`` grew after 0.3.65 (hence ``pw_stream_get_time_n``).

What a consumer records per buffer (:class:`PwFrame`), all in CLOCK_MONOTONIC ns:

* ``pts``/``seq`` from ``spa_meta_header`` when the producer attached one (video sources and
  our :class:`Producer`; audio through audioconvert carries none). For PipeWire's V4L2 SPA
  source ``pts`` is the kernel's ``v4l2_buffer.timestamp`` and ``seq`` its ``sequence``;
* ``pw_time`` (``now``, ``rate``, ``ticks``, ``delay``) from ``pw_stream_get_time_n``;
* the driver's ``spa_io_clock`` (``nsec``, ``position``, ``duration``, ``rate_diff``...) read
  from the ``SPA_IO_Position`` area handed over in ``io_changed``;
* ``arrival_ns``: when Python's callback ran (diagnosis only: consumers get a video frame one
  graph cycle after it was produced).

Rules kept: callbacks run on the thread loop's thread with the loop lock held; every other
``pw_stream_*`` call takes the lock; CFUNCTYPE objects, the events struct and POD buffers are
referenced from ``self`` for the stream's lifetime. A stream needs ``media.type`` (WirePlumber
0.4 refuses to link one without it) and a session manager to get ports at all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import queue
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Self

from capture.frame import StampClock, StampMeaning
from capture.stamping import RawStamp

__all__ = [
    "CONSTANTS",
    "STRUCTS",
    "Consumer",
    "PipeWireError",
    "Producer",
    "PwClock",
    "PwFrame",
    "PwTime",
]

# ---------------------------------------------------------------------------------------------
# constants (checked against the headers by the layout test)
# ---------------------------------------------------------------------------------------------
CONSTANTS: dict[str, int] = {
    "PW_VERSION_STREAM_EVENTS": 2,
    "SPA_TYPE_Id": 3,
    "SPA_TYPE_Int": 4,
    "SPA_TYPE_Rectangle": 10,
    "SPA_TYPE_Fraction": 11,
    "SPA_TYPE_Choice": 19,
    "SPA_TYPE_Object": 15,
    "SPA_TYPE_OBJECT_Format": 0x40003,
    "SPA_TYPE_OBJECT_ParamMeta": 0x40005,
    "SPA_PARAM_EnumFormat": 3,
    "SPA_PARAM_Format": 4,
    "SPA_PARAM_Meta": 6,
    "SPA_FORMAT_mediaType": 1,
    "SPA_FORMAT_mediaSubtype": 2,
    "SPA_FORMAT_VIDEO_format": 0x20001,
    "SPA_FORMAT_VIDEO_size": 0x20003,
    "SPA_FORMAT_VIDEO_framerate": 0x20004,
    "SPA_FORMAT_AUDIO_format": 0x10001,
    "SPA_FORMAT_AUDIO_rate": 0x10003,
    "SPA_FORMAT_AUDIO_channels": 0x10004,
    "SPA_MEDIA_TYPE_audio": 1,
    "SPA_MEDIA_TYPE_video": 2,
    "SPA_MEDIA_SUBTYPE_raw": 1,
    "SPA_VIDEO_FORMAT_RGB": 15,
    "SPA_AUDIO_FORMAT_F32": 283,
    "SPA_AUDIO_FORMAT_S16": 259,
    "SPA_PARAM_META_type": 1,
    "SPA_PARAM_META_size": 2,
    "SPA_META_Header": 1,
    "SPA_CHOICE_None": 0,
    "SPA_CHOICE_Range": 1,
    "SPA_CHOICE_Enum": 3,
    "PW_DIRECTION_INPUT": 0,
    "PW_DIRECTION_OUTPUT": 1,
    "PW_ID_ANY": 0xFFFFFFFF,
    "SPA_IO_Position": 7,
    "PW_STREAM_FLAG_AUTOCONNECT": 1,
    "PW_STREAM_FLAG_MAP_BUFFERS": 4,
    "PW_STREAM_FLAG_DRIVER": 8,
    "PW_STREAM_STATE_ERROR": -1,
    "PW_STREAM_STATE_UNCONNECTED": 0,
    "PW_STREAM_STATE_CONNECTING": 1,
    "PW_STREAM_STATE_PAUSED": 2,
    "PW_STREAM_STATE_STREAMING": 3,
}
_K = CONSTANTS


# ---------------------------------------------------------------------------------------------
# structs
# ---------------------------------------------------------------------------------------------
class SpaFraction(ctypes.Structure):
    _fields_ = (("num", ctypes.c_uint32), ("denom", ctypes.c_uint32))


class SpaMeta(ctypes.Structure):
    _fields_ = (("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("data", ctypes.c_void_p))


class SpaChunk(ctypes.Structure):
    _fields_ = (
        ("offset", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("stride", ctypes.c_int32),
        ("flags", ctypes.c_int32),
    )


class SpaData(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("fd", ctypes.c_int64),
        ("mapoffset", ctypes.c_uint32),
        ("maxsize", ctypes.c_uint32),
        ("data", ctypes.c_void_p),
        ("chunk", ctypes.POINTER(SpaChunk)),
    )


class SpaBuffer(ctypes.Structure):
    _fields_ = (
        ("n_metas", ctypes.c_uint32),
        ("n_datas", ctypes.c_uint32),
        ("metas", ctypes.POINTER(SpaMeta)),
        ("datas", ctypes.POINTER(SpaData)),
    )


class SpaMetaHeader(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
        ("pts", ctypes.c_int64),
        ("dts_offset", ctypes.c_int64),
        ("seq", ctypes.c_uint64),
    )


class PwBufferS(ctypes.Structure):
    _fields_ = (
        ("buffer", ctypes.POINTER(SpaBuffer)),
        ("user_data", ctypes.c_void_p),
        ("size", ctypes.c_uint64),
        ("requested", ctypes.c_uint64),
    )


class PwTimeS(ctypes.Structure):
    _fields_ = (
        ("now", ctypes.c_int64),
        ("rate", SpaFraction),
        ("ticks", ctypes.c_uint64),
        ("delay", ctypes.c_int64),
        ("queued", ctypes.c_uint64),
        ("buffered", ctypes.c_uint64),
        ("queued_buffers", ctypes.c_uint32),
        ("avail_buffers", ctypes.c_uint32),
    )


class SpaIoClock(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("name", ctypes.c_char * 64),
        ("nsec", ctypes.c_uint64),
        ("rate", SpaFraction),
        ("position", ctypes.c_uint64),
        ("duration", ctypes.c_uint64),
        ("delay", ctypes.c_int64),
        ("rate_diff", ctypes.c_double),
        ("next_nsec", ctypes.c_uint64),
        ("padding", ctypes.c_uint32 * 8),
    )


_STATE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_char_p)
_IO_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32)
_PARAM_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_VOID_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class PwStreamEvents(ctypes.Structure):
    _fields_ = (
        ("version", ctypes.c_uint32),
        ("destroy", ctypes.c_void_p),
        ("state_changed", _STATE_CB),
        ("control_info", ctypes.c_void_p),
        ("io_changed", _IO_CB),
        ("param_changed", _PARAM_CB),
        ("add_buffer", ctypes.c_void_p),
        ("remove_buffer", ctypes.c_void_p),
        ("process", _VOID_CB),
        ("drained", ctypes.c_void_p),
        ("command", ctypes.c_void_p),
        ("trigger_done", ctypes.c_void_p),
    )


class _SpaIoPosition(ctypes.Structure):
    _fields_ = (("clock", SpaIoClock),)  # only the leading member is read


#: C struct name -> ctypes type (the layout test walks this).
STRUCTS: dict[str, type[ctypes.Structure]] = {
    "spa_meta": SpaMeta,
    "spa_chunk": SpaChunk,
    "spa_data": SpaData,
    "spa_buffer": SpaBuffer,
    "spa_meta_header": SpaMetaHeader,
    "pw_buffer": PwBufferS,
    "pw_time": PwTimeS,
    "spa_io_clock": SpaIoClock,
    "spa_io_position": _SpaIoPosition,
    "pw_stream_events": PwStreamEvents,
}


class PipeWireError(OSError):
    pass


# ---------------------------------------------------------------------------------------------
# library
# ---------------------------------------------------------------------------------------------
_lib_lock = threading.Lock()
_libpw: ctypes.CDLL | None = None

_P = ctypes.c_void_p
_SIGS: dict[str, tuple[object, list[object]]] = {
    "pw_init": (None, [_P, _P]),
    "pw_thread_loop_new": (_P, [ctypes.c_char_p, _P]),
    "pw_thread_loop_get_loop": (_P, [_P]),
    "pw_thread_loop_start": (ctypes.c_int, [_P]),
    "pw_thread_loop_stop": (None, [_P]),
    "pw_thread_loop_destroy": (None, [_P]),
    "pw_thread_loop_lock": (None, [_P]),
    "pw_thread_loop_unlock": (None, [_P]),
    "pw_properties_new": (_P, [_P]),
    "pw_properties_set": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p]),
    "pw_stream_new_simple": (_P, [_P, ctypes.c_char_p, _P, _P, _P]),
    "pw_stream_connect": (
        ctypes.c_int,
        [_P, ctypes.c_int, ctypes.c_uint32, ctypes.c_int, _P, ctypes.c_uint32],
    ),
    "pw_stream_disconnect": (ctypes.c_int, [_P]),
    "pw_stream_destroy": (None, [_P]),
    "pw_stream_update_params": (ctypes.c_int, [_P, _P, ctypes.c_uint32]),
    "pw_stream_dequeue_buffer": (ctypes.POINTER(PwBufferS), [_P]),
    "pw_stream_queue_buffer": (ctypes.c_int, [_P, ctypes.POINTER(PwBufferS)]),
    "pw_stream_get_time_n": (ctypes.c_int, [_P, ctypes.POINTER(PwTimeS), ctypes.c_size_t]),
    "pw_stream_trigger_process": (ctypes.c_int, [_P]),
    "pw_stream_get_node_id": (ctypes.c_uint32, [_P]),
    "pw_get_library_version": (ctypes.c_char_p, []),
}


def library() -> ctypes.CDLL:
    """libpipewire-0.3, loaded and initialised once; PipeWireError when absent."""
    global _libpw
    with _lib_lock:
        if _libpw is None:
            name = ctypes.util.find_library("pipewire-0.3") or "libpipewire-0.3.so.0"
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                raise PipeWireError(f"libpipewire-0.3 not available: {e}") from None
            for fn, (res, args) in _SIGS.items():
                f = getattr(lib, fn)
                f.restype = res
                f.argtypes = args
            lib.pw_init(None, None)
            _libpw = lib
        return _libpw


def library_version() -> str:
    v = library().pw_get_library_version()
    return v.decode() if v else "?"


# ---------------------------------------------------------------------------------------------
# SPA POD builders (8-byte aligned: size, type, body, padding)
# ---------------------------------------------------------------------------------------------
def _pod(typ: int, body: bytes) -> bytes:
    return struct.pack("<II", len(body), typ) + body + b"\0" * (-len(body) % 8)


def pod_id(v: int) -> bytes:
    return _pod(_K["SPA_TYPE_Id"], struct.pack("<I", v))


def pod_int(v: int) -> bytes:
    return _pod(_K["SPA_TYPE_Int"], struct.pack("<i", v))


def pod_rect(w: int, h: int) -> bytes:
    return _pod(_K["SPA_TYPE_Rectangle"], struct.pack("<II", w, h))


def pod_fraction(num: int, denom: int) -> bytes:
    return _pod(_K["SPA_TYPE_Fraction"], struct.pack("<II", num, denom))


def pod_choice(kind: int, child_type: int, child_size: int, values: Sequence[bytes]) -> bytes:
    body = struct.pack("<IIII", kind, 0, child_size, child_type) + b"".join(values)
    return _pod(_K["SPA_TYPE_Choice"], body)


def pod_object(otype: int, oid: int, props: Sequence[tuple[int, bytes]]) -> bytes:
    body = struct.pack("<II", otype, oid)
    for key, value in props:
        body += struct.pack("<II", key, 0) + value
    return _pod(_K["SPA_TYPE_Object"], body)


def video_format(
    oid: int, width: int = 320, height: int = 240, fps: int = 25, fixed: bool = True
) -> bytes:
    """An RGB raw video format object; ``fixed=False`` leaves size and rate open."""
    props = [
        (_K["SPA_FORMAT_mediaType"], pod_id(_K["SPA_MEDIA_TYPE_video"])),
        (_K["SPA_FORMAT_mediaSubtype"], pod_id(_K["SPA_MEDIA_SUBTYPE_raw"])),
        (_K["SPA_FORMAT_VIDEO_format"], pod_id(_K["SPA_VIDEO_FORMAT_RGB"])),
    ]
    if fixed:
        props += [
            (_K["SPA_FORMAT_VIDEO_size"], pod_rect(width, height)),
            (_K["SPA_FORMAT_VIDEO_framerate"], pod_fraction(fps, 1)),
        ]
    else:
        rng = [struct.pack("<II", *v) for v in ((width, height), (1, 1), (8192, 8192))]
        props.append(
            (
                _K["SPA_FORMAT_VIDEO_size"],
                pod_choice(_K["SPA_CHOICE_Range"], _K["SPA_TYPE_Rectangle"], 8, rng),
            )
        )
        fr = [struct.pack("<II", *v) for v in ((fps, 1), (0, 1), (1000, 1))]
        props.append(
            (
                _K["SPA_FORMAT_VIDEO_framerate"],
                pod_choice(_K["SPA_CHOICE_Range"], _K["SPA_TYPE_Fraction"], 8, fr),
            )
        )
    return pod_object(_K["SPA_TYPE_OBJECT_Format"], oid, props)


def audio_format(oid: int, rate: int = 48000, channels: int = 2) -> bytes:
    """F32 interleaved raw audio."""
    return pod_object(
        _K["SPA_TYPE_OBJECT_Format"],
        oid,
        [
            (_K["SPA_FORMAT_mediaType"], pod_id(_K["SPA_MEDIA_TYPE_audio"])),
            (_K["SPA_FORMAT_mediaSubtype"], pod_id(_K["SPA_MEDIA_SUBTYPE_raw"])),
            (_K["SPA_FORMAT_AUDIO_format"], pod_id(_K["SPA_AUDIO_FORMAT_F32"])),
            (_K["SPA_FORMAT_AUDIO_rate"], pod_int(rate)),
            (_K["SPA_FORMAT_AUDIO_channels"], pod_int(channels)),
        ],
    )


def meta_header_param() -> bytes:
    """``SPA_PARAM_Meta {type: Header, size: 32}``: without it buffers carry no header meta."""
    return pod_object(
        _K["SPA_TYPE_OBJECT_ParamMeta"],
        _K["SPA_PARAM_Meta"],
        [
            (_K["SPA_PARAM_META_type"], pod_id(_K["SPA_META_Header"])),
            (_K["SPA_PARAM_META_size"], pod_int(ctypes.sizeof(SpaMetaHeader))),
        ],
    )


def find_meta(sb: SpaBuffer, mtype: int, size: int) -> int | None:
    """``spa_buffer_find_meta_data`` (an inline function in C): address of the meta or None."""
    for i in range(sb.n_metas):
        m = sb.metas[i]
        if m.type == mtype and m.size >= size and m.data:
            return int(m.data)
    return None


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PwTime:
    now: int
    rate_num: int
    rate_denom: int
    ticks: int
    delay: int
    queued: int
    buffered: int
    avail_buffers: int = 0
    """Buffers still waiting to be dequeued after this one (read right after dequeue)."""


@dataclass(frozen=True, slots=True)
class PwClock:
    """The driver's ``spa_io_clock`` at this cycle."""

    name: str
    id: int
    flags: int
    nsec: int
    rate_num: int
    rate_denom: int
    position: int
    duration: int
    delay: int
    rate_diff: float
    next_nsec: int


@dataclass(frozen=True, slots=True)
class PwFrame:
    """One dequeued buffer."""

    index: int
    """Our own count of buffers dequeued by this consumer."""
    arrival_ns: int
    pts: int | None
    seq: int | None
    header_flags: int
    time: PwTime
    clock: PwClock | None
    size: int
    stride: int
    data: bytes | None = None


def _mono_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class _Stream:
    """Thread loop + pw_stream with the events every stream here needs."""

    def __init__(
        self,
        name: str,
        props: Mapping[str, str],
        direction: int,
        flags: int,
        params: Sequence[bytes],
        target_id: int = 0xFFFFFFFF,
    ) -> None:
        lib = self._lib = library()
        self.state = _K["PW_STREAM_STATE_UNCONNECTED"]
        self.error: str | None = None
        self.state_event = threading.Condition()
        self._io_pos: int | None = None
        self.format_param: bytes | None = None
        self._tl = lib.pw_thread_loop_new(name.encode(), None)
        if not self._tl:
            raise PipeWireError("pw_thread_loop_new failed")
        p = lib.pw_properties_new(None)
        for k, v in props.items():
            lib.pw_properties_set(p, k.encode(), v.encode())
        self._cbs = (
            _STATE_CB(self._on_state),
            _IO_CB(self._on_io),
            _PARAM_CB(self._on_param),
            _VOID_CB(self._on_process_safe),
        )
        ev = PwStreamEvents()
        ev.version = _K["PW_VERSION_STREAM_EVENTS"]
        ev.state_changed, ev.io_changed, ev.param_changed, ev.process = self._cbs
        self._events = ev
        self._lock()
        try:
            self._stream = lib.pw_stream_new_simple(
                lib.pw_thread_loop_get_loop(self._tl),
                name.encode(),
                p,
                ctypes.byref(self._events),
                None,
            )
            if not self._stream:
                raise PipeWireError("pw_stream_new_simple failed")
            self._params = [ctypes.create_string_buffer(b, len(b)) for b in params]
            arr = (ctypes.c_void_p * len(self._params))(
                *[ctypes.addressof(b) for b in self._params]
            )
            self._param_arr = arr
            rc = lib.pw_stream_connect(
                self._stream, direction, target_id, flags, arr, len(self._params)
            )
            if rc < 0:
                raise PipeWireError(-rc, f"pw_stream_connect failed: {rc}")
        finally:
            self._unlock()
        if lib.pw_thread_loop_start(self._tl) < 0:
            raise PipeWireError("pw_thread_loop_start failed")
        self._closed = False

    def _lock(self) -> None:
        self._lib.pw_thread_loop_lock(self._tl)

    def _unlock(self) -> None:
        self._lib.pw_thread_loop_unlock(self._tl)

    # -- callbacks (loop thread, lock held) ---------------------------------------------------
    def _on_state(self, _d: object, old: int, state: int, error: bytes | None) -> None:
        with self.state_event:
            self.state = state
            if error:
                self.error = error.decode(errors="replace")
            self.state_event.notify_all()

    def _on_io(self, _d: object, io_id: int, area: int | None, size: int) -> None:
        if io_id == _K["SPA_IO_Position"]:
            self._io_pos = area if area and size >= ctypes.sizeof(SpaIoClock) else None

    def _on_param(self, _d: object, pid: int, param: int | None) -> None:
        if pid != _K["SPA_PARAM_Format"] or not param:
            return
        size = struct.unpack("<I", ctypes.string_at(param, 4))[0]
        self.format_param = ctypes.string_at(param, 8 + size)
        meta = ctypes.create_string_buffer(meta_header_param())
        arr = (ctypes.c_void_p * 1)(ctypes.addressof(meta))
        self._meta_keep = (meta, arr)
        self._lib.pw_stream_update_params(self._stream, arr, 1)

    def _on_process_safe(self, _d: object) -> None:
        try:
            self._on_process()
        except Exception as e:  # never let an exception unwind into C
            self.error = f"process: {e!r}"

    def _on_process(self) -> None:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def _read_clock(self) -> PwClock | None:
        if not self._io_pos:
            return None
        c = SpaIoClock.from_address(self._io_pos)
        return PwClock(
            name=c.name.decode(errors="replace"),
            id=c.id,
            flags=c.flags,
            nsec=c.nsec,
            rate_num=c.rate.num,
            rate_denom=c.rate.denom,
            position=c.position,
            duration=c.duration,
            delay=c.delay,
            rate_diff=c.rate_diff,
            next_nsec=c.next_nsec,
        )

    def _read_time(self) -> PwTime:
        t = PwTimeS()
        self._lib.pw_stream_get_time_n(self._stream, ctypes.byref(t), ctypes.sizeof(t))
        return PwTime(
            t.now,
            t.rate.num,
            t.rate.denom,
            t.ticks,
            t.delay,
            t.queued,
            t.buffered,
            t.avail_buffers,
        )

    def wait_state(self, state: int, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self.state_event:
            while self.state != state:
                if self.state == _K["PW_STREAM_STATE_ERROR"]:
                    return False
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.state_event.wait(left)
        return True

    @property
    def node_id(self) -> int:
        self._lock()
        try:
            return int(self._lib.pw_stream_get_node_id(self._stream))
        finally:
            self._unlock()

    def close(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self._lock()
        try:
            self._lib.pw_stream_disconnect(self._stream)
            self._lib.pw_stream_destroy(self._stream)
        finally:
            self._unlock()
        self._lib.pw_thread_loop_stop(self._tl)
        self._lib.pw_thread_loop_destroy(self._tl)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Consumer(_Stream):
    """A capture pw_stream; frames arrive on :attr:`frames` (a bounded queue of PwFrame).

    ``media`` is ``"video"`` or ``"audio"``; ``target`` a node.name (a Video/Source, or an
    Audio/Sink whose monitor is captured, or an Audio/Source). ``keep_data`` copies buffer
    bytes (tests). When the queue is full the oldest frame is NOT dropped silently: the
    ``overflows`` counter is incremented and the new frame is discarded.
    """

    def __init__(
        self,
        target: str | None,
        media: str = "video",
        *,
        name: str = "netclock-capture",
        capture_sink: bool = False,
        keep_data: bool = False,
        queue_size: int = 4096,
        extra_props: Mapping[str, str] | None = None,
    ) -> None:
        if media not in ("video", "audio"):
            raise ValueError("media must be 'video' or 'audio'")
        self.media = media
        self.keep_data = keep_data
        self.frames: queue.Queue[PwFrame] = queue.Queue(queue_size)
        self.overflows = 0
        self._count = 0
        props = {
            "media.type": "Video" if media == "video" else "Audio",
            "media.category": "Capture",
            "media.role": "Camera" if media == "video" else "Production",
            "node.name": name,
        }
        if target:
            props["target.object"] = target
        if capture_sink:
            props["stream.capture.sink"] = "true"
        props.update(extra_props or {})
        fmt = (
            video_format(_K["SPA_PARAM_EnumFormat"], fixed=False)
            if media == "video"
            else audio_format(_K["SPA_PARAM_EnumFormat"])
        )
        super().__init__(
            name,
            props,
            _K["PW_DIRECTION_INPUT"],
            _K["PW_STREAM_FLAG_AUTOCONNECT"] | _K["PW_STREAM_FLAG_MAP_BUFFERS"],
            [fmt],
        )

    def _on_process(self) -> None:
        arrival = _mono_ns()
        b = self._lib.pw_stream_dequeue_buffer(self._stream)
        if not b:
            return
        try:
            sb = b.contents.buffer.contents
            pts: int | None = None
            seq: int | None = None
            hflags = 0
            addr = find_meta(sb, _K["SPA_META_Header"], ctypes.sizeof(SpaMetaHeader))
            if addr is not None:
                h = SpaMetaHeader.from_address(addr)
                pts, seq, hflags = int(h.pts), int(h.seq), int(h.flags)
            size = stride = 0
            data: bytes | None = None
            if sb.n_datas:
                d = sb.datas[0]
                if d.chunk:
                    ch = d.chunk.contents
                    size, stride = min(ch.size, d.maxsize), ch.stride
                    if self.keep_data and d.data and size:
                        off = ch.offset % d.maxsize if d.maxsize else 0
                        data = ctypes.string_at(d.data + off, min(size, d.maxsize - off))
            frame = PwFrame(
                index=self._count,
                arrival_ns=arrival,
                pts=pts,
                seq=seq,
                header_flags=hflags,
                time=self._read_time(),
                clock=self._read_clock(),
                size=size,
                stride=stride,
                data=data,
            )
            self._count += 1
        finally:
            self._lib.pw_stream_queue_buffer(self._stream, b)
        try:
            self.frames.put_nowait(frame)
        except queue.Full:
            self.overflows += 1


class Producer(_Stream):
    """A driving video source (RGB 320x240) that stamps KNOWN pts: ground truth for tests.

    Each buffer gets ``pts = CLOCK_MONOTONIC now`` and ``seq = n``; :attr:`produced` keeps
    ``{seq: pts}``. A Python thread triggers a graph cycle every ``interval_ns``.
    """

    def __init__(
        self,
        name: str = "netclock-test-producer",
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 25,
        pts_source: Callable[[], int] = _mono_ns,
        ready_timeout: float = 10.0,
    ) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.interval_ns = 1_000_000_000 // fps
        self.produced: dict[int, int] = {}
        self._seq = 0
        self._pts_source = pts_source
        self._stop = threading.Event()
        props = {
            "media.type": "Video",
            "media.category": "Source",
            "media.role": "Camera",
            "media.class": "Video/Source",
            "node.name": name,
            "node.description": name,
        }
        super().__init__(
            name,
            props,
            _K["PW_DIRECTION_OUTPUT"],
            _K["PW_STREAM_FLAG_DRIVER"] | _K["PW_STREAM_FLAG_MAP_BUFFERS"],
            [video_format(_K["SPA_PARAM_EnumFormat"], width, height, fps)],
        )
        self._thread = threading.Thread(target=self._run, name=f"{name}-trigger", daemon=True)
        self._thread.start()
        # Return only once the node exists in the graph: a consumer that connects to
        # ``target.object = name`` before WirePlumber has seen the node is linked to the
        # default video source instead (seen under CPU load: frames from ci-video-src).
        ready = (_K["PW_STREAM_STATE_PAUSED"], _K["PW_STREAM_STATE_STREAMING"])
        end = time.monotonic() + ready_timeout
        with self.state_event:
            while self.state not in ready:
                left = end - time.monotonic()
                if self.state == _K["PW_STREAM_STATE_ERROR"] or left <= 0:
                    err = self.error
                    break
                self.state_event.wait(left)
            else:
                err = None
        if err is not None or self.state not in ready:
            self.close()
            raise PipeWireError(5, f"producer {name!r} did not reach the graph: {err or 'timeout'}")

    def _run(self) -> None:
        nxt = time.monotonic_ns()
        while not self._stop.is_set():
            nxt += self.interval_ns
            delay = (nxt - time.monotonic_ns()) / 1e9
            if delay > 0 and self._stop.wait(delay):
                break
            if self.state != _K["PW_STREAM_STATE_STREAMING"]:
                continue
            self._lock()
            try:
                self._lib.pw_stream_trigger_process(self._stream)
            finally:
                self._unlock()

    def _on_process(self) -> None:
        b = self._lib.pw_stream_dequeue_buffer(self._stream)
        if not b:
            return
        sb = b.contents.buffer.contents
        addr = find_meta(sb, _K["SPA_META_Header"], ctypes.sizeof(SpaMetaHeader))
        pts = self._pts_source()
        seq = self._seq
        if addr is not None:
            h = SpaMetaHeader.from_address(addr)
            h.pts, h.seq, h.flags, h.offset, h.dts_offset = pts, seq, 0, 0, 0
        if sb.n_datas:
            d = sb.datas[0]
            stride = self.width * 3
            size = min(stride * self.height, d.maxsize)
            if d.data:
                ctypes.memset(d.data, seq & 0xFF, size)
            if d.chunk:
                ch = d.chunk.contents
                ch.offset, ch.size, ch.stride, ch.flags = 0, size, stride, 0
        if addr is not None:  # recorded before the consumer can possibly see the buffer
            self.produced[seq] = pts
            self._seq += 1
        self._lib.pw_stream_queue_buffer(self._stream, b)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        super().close()


# ---------------------------------------------------------------------------------------------
# frame -> record
# ---------------------------------------------------------------------------------------------
def frame_to_raw(frame: PwFrame) -> RawStamp:
    """The :class:`capture.stamping.RawStamp` of one PwFrame.

    * With a header meta (video, our Producer): the raw stamp is ``pts`` (CLOCK_MONOTONIC for
      PipeWire's own and V4L2 sources), meaning PTS, ``seq`` the header's; stamp uncertainty 0
      (the producer's stamp is taken as is).
    * Without (audio through audioconvert): the raw stamp is ``pw_time.now`` (else the graph
      clock's ``nsec``), and the first sample is placed at
      ``now - (delay + frames + behind) * rate`` (research note §3.3; ``behind`` = frames in
      the buffers still queued after this one, when the consumer fell behind); as that is only
      validated
      on real hardware, the stamp uncertainty is one buffer duration. ``seq`` is
      ``ticks // frames``: a skipped graph cycle is a gap (a quantum change shows as a reset
      or a spurious gap).
    """
    t, c = frame.time, frame.clock
    extra: dict[str, int | str] = {
        "pw_now": t.now,
        "pw_ticks": t.ticks,
        "pw_delay": t.delay,
        "size": frame.size,
    }
    if c is not None:
        extra.update(clock_nsec=c.nsec, clock_position=c.position, clock_duration=c.duration)
        if c.name:
            extra["clock_name"] = c.name
    if frame.pts is not None:
        return RawStamp(
            seq=frame.seq if frame.seq is not None else frame.index,
            raw_ns=frame.pts,
            raw_clock=StampClock.MONOTONIC,
            meaning=StampMeaning.PTS,
            arrival_mono_ns=frame.arrival_ns,
            pts_ns=frame.pts,
            extra=extra,
        )
    raw = t.now or (c.nsec if c is not None else 0)
    rate_num, rate_den = (t.rate_num, t.rate_denom) if t.rate_denom else (1, 48000)
    frames = frame.size // frame.stride if frame.stride > 0 else 0
    # pw_time describes the current cycle; when the consumer fell behind, the buffer just
    # dequeued is older: ``avail_buffers`` more wait behind it, one cycle each.
    behind = t.avail_buffers * frames
    extra.update(frames=frames, avail_buffers=t.avail_buffers)
    span = (t.delay + frames + behind) * rate_num * 1_000_000_000
    offset = -((span + rate_den // 2) // rate_den)
    dur = (frames * rate_num * 1_000_000_000 + rate_den // 2) // rate_den
    # Sequence from the graph position: ticks advance by one buffer per cycle, so a skipped
    # cycle shows as a gap, and two agents on the same graph get the same numbers.
    seq = (t.ticks - behind) // frames if frames > 0 else frame.index
    return RawStamp(
        seq=seq,
        raw_ns=raw,
        raw_clock=StampClock.MONOTONIC if raw else StampClock.OTHER,
        meaning=StampMeaning.PERIOD,
        arrival_mono_ns=frame.arrival_ns,
        capture_offset_ns=offset,
        stamp_uncertainty_ns=dur,
        extra=extra,
    )
