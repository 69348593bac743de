"""ALSA capture with the subsystem's own timestamps: a focused ctypes binding to libasound.so.2.

Why not pyalsaaudio: it exposes ``PCM.htimestamp()`` (``snd_pcm_htimestamp``, return code
ignored) and the tstamp mode/type setters, but not ``snd_pcm_status`` – so no
``trigger_tstamp``, ``audio_tstamp``, ``driver_tstamp``, audio-tstamp config/report or ``delay``
at the stamp's instant – and not the ``snd_pcm_t*`` handle to call them ourselves (reading it
from the object's private layout works but is fragile). Its ``set_tstamp_type()`` also defaults
to GETTIMEOFDAY. Binding the ~25 libasound calls needed takes no compiler and no C extension.

The trap: ALSA stamps with ``gettimeofday`` (CLOCK_REALTIME, steppable) unless sw_params select
``SND_PCM_TSTAMP_TYPE_MONOTONIC``. :class:`AlsaCapture` always does, and verifies it took.

Per block read (``snd_pcm_readi`` of one period) a :class:`AlsaPeriod` holds the status snapshot:
``tstamp`` (when hw_ptr/delay/avail were sampled), ``trigger_tstamp`` (stream start),
``audio_tstamp`` + its report (requested type DEFAULT/LINK..., the driver may downgrade),
``driver_tstamp``, ``delay`` and ``avail``. The first frame of the block was captured at
``tstamp - (delay + frames)/rate`` (:func:`capture.stamping.alsa_first_frame_ns`), and
``(tstamp - trigger)`` against the device position gives the device rate
(:func:`capture.stamping.estimate_device_rate`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import threading
import time
from dataclasses import dataclass

from capture.frame import StampClock, StampMeaning
from capture.stamping import RateSample, RawStamp, alsa_first_frame_ns, frames_to_ns

__all__ = ["CONSTANTS", "AlsaCapture", "AlsaError", "AlsaPeriod", "period_to_raw"]

NS_PER_S = 1_000_000_000

CONSTANTS: dict[str, int] = {
    "SND_PCM_STREAM_CAPTURE": 1,
    "SND_PCM_FORMAT_S16_LE": 2,
    "SND_PCM_ACCESS_RW_INTERLEAVED": 3,
    "SND_PCM_TSTAMP_NONE": 0,
    "SND_PCM_TSTAMP_ENABLE": 1,
    "SND_PCM_TSTAMP_TYPE_GETTIMEOFDAY": 0,
    "SND_PCM_TSTAMP_TYPE_MONOTONIC": 1,
    "SND_PCM_TSTAMP_TYPE_MONOTONIC_RAW": 2,
    "SND_PCM_AUDIO_TSTAMP_TYPE_COMPAT": 0,
    "SND_PCM_AUDIO_TSTAMP_TYPE_DEFAULT": 1,
    "SND_PCM_AUDIO_TSTAMP_TYPE_LINK": 2,
    "SND_PCM_AUDIO_TSTAMP_TYPE_LINK_ABSOLUTE": 3,
    "SND_PCM_AUDIO_TSTAMP_TYPE_LINK_ESTIMATED": 4,
    "SND_PCM_AUDIO_TSTAMP_TYPE_LINK_SYNCHRONIZED": 5,
    "SND_PCM_STATE_PREPARED": 2,
    "SND_PCM_STATE_RUNNING": 3,
    "SND_PCM_STATE_XRUN": 4,
}
_K = CONSTANTS


class Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))

    def ns(self) -> int:
        return int(self.tv_sec) * NS_PER_S + int(self.tv_nsec)


class AudioTstampConfig(ctypes.Structure):
    """``snd_pcm_audio_tstamp_config_t``: bitfields type_requested:4, report_delay:1."""

    _fields_ = (
        ("type_requested", ctypes.c_uint, 4),
        ("report_delay", ctypes.c_uint, 1),
    )


class AudioTstampReport(ctypes.Structure):
    """``snd_pcm_audio_tstamp_report_t``: valid:1, actual_type:4, accuracy_report:1, accuracy."""

    _fields_ = (
        ("valid", ctypes.c_uint, 1),
        ("actual_type", ctypes.c_uint, 4),
        ("accuracy_report", ctypes.c_uint, 1),
        ("accuracy", ctypes.c_uint),
    )


STRUCTS: dict[str, type[ctypes.Structure]] = {
    "snd_htimestamp_t": Timespec,
    "snd_pcm_audio_tstamp_config_t": AudioTstampConfig,
    "snd_pcm_audio_tstamp_report_t": AudioTstampReport,
}


class AlsaError(OSError):
    pass


_P = ctypes.c_void_p
_TS = ctypes.POINTER(Timespec)
_ULONG = ctypes.c_ulong
_SIGS: dict[str, tuple[object, list[object]]] = {
    "snd_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "snd_pcm_open": (
        ctypes.c_int,
        [ctypes.POINTER(_P), ctypes.c_char_p, ctypes.c_int, ctypes.c_int],
    ),
    "snd_pcm_close": (ctypes.c_int, [_P]),
    "snd_pcm_drop": (ctypes.c_int, [_P]),
    "snd_pcm_prepare": (ctypes.c_int, [_P]),
    "snd_pcm_name": (ctypes.c_char_p, [_P]),
    "snd_pcm_set_params": (
        ctypes.c_int,
        [_P, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_int, ctypes.c_uint],
    ),
    "snd_pcm_get_params": (ctypes.c_int, [_P, ctypes.POINTER(_ULONG), ctypes.POINTER(_ULONG)]),
    "snd_pcm_sw_params_malloc": (ctypes.c_int, [ctypes.POINTER(_P)]),
    "snd_pcm_sw_params_free": (None, [_P]),
    "snd_pcm_sw_params_current": (ctypes.c_int, [_P, _P]),
    "snd_pcm_sw_params_set_tstamp_mode": (ctypes.c_int, [_P, _P, ctypes.c_int]),
    "snd_pcm_sw_params_set_tstamp_type": (ctypes.c_int, [_P, _P, ctypes.c_int]),
    "snd_pcm_sw_params_get_tstamp_type": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_int)]),
    "snd_pcm_sw_params": (ctypes.c_int, [_P, _P]),
    "snd_pcm_start": (ctypes.c_int, [_P]),
    "snd_pcm_readi": (ctypes.c_long, [_P, _P, _ULONG]),
    "snd_pcm_wait": (ctypes.c_int, [_P, ctypes.c_int]),
    "snd_pcm_state": (ctypes.c_int, [_P]),
    "snd_pcm_recover": (ctypes.c_int, [_P, ctypes.c_int, ctypes.c_int]),
    "snd_pcm_htimestamp": (ctypes.c_int, [_P, ctypes.POINTER(_ULONG), _TS]),
    "snd_pcm_status_malloc": (ctypes.c_int, [ctypes.POINTER(_P)]),
    "snd_pcm_status_free": (None, [_P]),
    "snd_pcm_status": (ctypes.c_int, [_P, _P]),
    "snd_pcm_status_set_audio_htstamp_config": (None, [_P, ctypes.POINTER(AudioTstampConfig)]),
    "snd_pcm_status_get_audio_htstamp_report": (None, [_P, ctypes.POINTER(AudioTstampReport)]),
    "snd_pcm_status_get_trigger_htstamp": (None, [_P, _TS]),
    "snd_pcm_status_get_htstamp": (None, [_P, _TS]),
    "snd_pcm_status_get_audio_htstamp": (None, [_P, _TS]),
    "snd_pcm_status_get_driver_htstamp": (None, [_P, _TS]),
    "snd_pcm_status_get_delay": (ctypes.c_long, [_P]),
    "snd_pcm_status_get_avail": (_ULONG, [_P]),
    "snd_pcm_status_get_state": (ctypes.c_int, [_P]),
}

_lib_lock = threading.Lock()
_libasound: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    global _libasound
    with _lib_lock:
        if _libasound is None:
            name = ctypes.util.find_library("asound") or "libasound.so.2"
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                raise AlsaError(f"libasound not available: {e}") from None
            for fn, (res, args) in _SIGS.items():
                f = getattr(lib, fn)
                f.restype, f.argtypes = res, args
            _libasound = lib
        return _libasound


def _check(rc: int, what: str) -> int:
    if rc < 0:
        msg = library().snd_strerror(rc)
        raise AlsaError(-rc, f"{what}: {msg.decode() if msg else rc}")
    return rc


@dataclass(frozen=True, slots=True)
class AlsaPeriod:
    """One block read and the ``snd_pcm_status`` snapshot taken right after it."""

    index: int
    frames: int
    frames_total: int
    """Frames read since the trigger, including this block."""
    rate: int
    trigger_ns: int
    tstamp_ns: int
    audio_ns: int
    driver_ns: int
    delay: int
    avail: int
    state: int
    audio_type_requested: int
    audio_report_valid: bool
    audio_actual_type: int
    audio_accuracy_ns: int | None
    arrival_ns: int
    data: bytes | None = None
    restarts: int = 0
    """Stream restarts before this period (:meth:`AlsaCapture.restart`): each starts a new
    trigger stamp and position count."""

    @property
    def first_frame_ns(self) -> int:
        return alsa_first_frame_ns(self.tstamp_ns, self.delay, self.frames, self.rate)

    def rate_sample(self) -> RateSample:
        """(tstamp - trigger, device position) for :func:`estimate_device_rate`."""
        return RateSample(self.tstamp_ns - self.trigger_ns, self.frames_total + self.delay)


class AlsaCapture:
    """S16_LE interleaved capture from ``device`` with CLOCK_MONOTONIC status timestamps."""

    def __init__(
        self,
        device: str = "default",
        *,
        rate: int = 48000,
        channels: int = 2,
        latency_us: int = 50_000,
        audio_tstamp_type: int = CONSTANTS["SND_PCM_AUDIO_TSTAMP_TYPE_LINK"],
        report_delay: bool = True,
        keep_data: bool = False,
    ) -> None:
        lib = self._lib = library()
        self.device, self.rate, self.channels = device, rate, channels
        self.keep_data = keep_data
        h = _P()
        _check(
            lib.snd_pcm_open(ctypes.byref(h), device.encode(), _K["SND_PCM_STREAM_CAPTURE"], 0),
            f"snd_pcm_open({device})",
        )
        self._h = h
        try:
            _check(
                lib.snd_pcm_set_params(
                    h,
                    _K["SND_PCM_FORMAT_S16_LE"],
                    _K["SND_PCM_ACCESS_RW_INTERLEAVED"],
                    channels,
                    rate,
                    1,
                    latency_us,
                ),
                "snd_pcm_set_params",
            )
            buf, per = _ULONG(), _ULONG()
            _check(
                lib.snd_pcm_get_params(h, ctypes.byref(buf), ctypes.byref(per)),
                "snd_pcm_get_params",
            )
            self.buffer_size, self.period_size = int(buf.value), int(per.value)
            self.tstamp_type = self._set_monotonic_tstamps()
            st = _P()
            _check(lib.snd_pcm_status_malloc(ctypes.byref(st)), "snd_pcm_status_malloc")
            self._status = st
        except BaseException:
            lib.snd_pcm_close(h)
            raise
        self._cfg = AudioTstampConfig(type_requested=audio_tstamp_type, report_delay=report_delay)
        self._buf = ctypes.create_string_buffer(self.period_size * channels * 2)
        self._index = 0
        self._frames_total = 0
        self.xruns = 0
        self.restarts = 0
        self._closed = False

    @property
    def name(self) -> str:
        n = self._lib.snd_pcm_name(self._h)
        return n.decode() if n else self.device

    def _set_monotonic_tstamps(self) -> int:
        lib, h = self._lib, self._h
        sw = _P()
        _check(lib.snd_pcm_sw_params_malloc(ctypes.byref(sw)), "snd_pcm_sw_params_malloc")
        try:
            _check(lib.snd_pcm_sw_params_current(h, sw), "snd_pcm_sw_params_current")
            _check(
                lib.snd_pcm_sw_params_set_tstamp_mode(h, sw, _K["SND_PCM_TSTAMP_ENABLE"]),
                "set_tstamp_mode",
            )
            _check(
                lib.snd_pcm_sw_params_set_tstamp_type(h, sw, _K["SND_PCM_TSTAMP_TYPE_MONOTONIC"]),
                "set_tstamp_type",
            )
            _check(lib.snd_pcm_sw_params(h, sw), "snd_pcm_sw_params")
            _check(lib.snd_pcm_sw_params_current(h, sw), "snd_pcm_sw_params_current")
            got = ctypes.c_int(-1)
            _check(lib.snd_pcm_sw_params_get_tstamp_type(sw, ctypes.byref(got)), "get_tstamp_type")
        finally:
            lib.snd_pcm_sw_params_free(sw)
        if got.value != _K["SND_PCM_TSTAMP_TYPE_MONOTONIC"]:
            raise AlsaError(f"{self.device}: tstamp type stayed {got.value}, not MONOTONIC")
        return got.value

    def wait(self, timeout_ms: int) -> bool:
        """Up to ``timeout_ms`` for a period to be readable (starting a prepared stream).

        True when one is, or when the stream is in a state the next read handles (an xrun: the
        read recovers it). Lets a caller stay responsive, e.g. to SIGTERM, while a stalled
        stream delivers nothing: ``snd_pcm_readi`` then blocks for ever, deaf to signals."""
        state = self._lib.snd_pcm_state(self._h)
        if state == _K["SND_PCM_STATE_PREPARED"]:
            _check(self._lib.snd_pcm_start(self._h), "snd_pcm_start")  # sets trigger_tstamp
        elif state != _K["SND_PCM_STATE_RUNNING"]:
            return True
        rc = self._lib.snd_pcm_wait(self._h, int(timeout_ms))
        return bool(rc != 0)

    def restart(self) -> None:
        """Stop and re-prepare the stream (the next :meth:`wait` starts it again): the way
        out of a stream that is RUNNING but delivers nothing. pipewire-alsa 0.3.65 does that
        now and then right after the start (seen here ~1 start in 6 under load; a known
        class of pipewire-alsa hangs); a restart got data flowing every time."""
        _check(self._lib.snd_pcm_drop(self._h), "snd_pcm_drop")
        _check(self._lib.snd_pcm_prepare(self._h), "snd_pcm_prepare")
        self._frames_total = 0
        self.restarts += 1

    def read_period(self) -> AlsaPeriod:
        """Block until one period is read; recovers (and counts) xruns."""
        lib, h = self._lib, self._h
        while True:
            n = lib.snd_pcm_readi(h, self._buf, self.period_size)
            if n >= 0:
                break
            if n == -errno.EPIPE:
                self.xruns += 1
            _check(lib.snd_pcm_recover(h, int(n), 1), "snd_pcm_recover")  # EPIPE/EINTR/ESTRPIPE
        arrival = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        st = self._status
        lib.snd_pcm_status_set_audio_htstamp_config(st, ctypes.byref(self._cfg))
        _check(lib.snd_pcm_status(h, st), "snd_pcm_status")
        trig, ts, au, dr = Timespec(), Timespec(), Timespec(), Timespec()
        lib.snd_pcm_status_get_trigger_htstamp(st, ctypes.byref(trig))
        lib.snd_pcm_status_get_htstamp(st, ctypes.byref(ts))
        lib.snd_pcm_status_get_audio_htstamp(st, ctypes.byref(au))
        lib.snd_pcm_status_get_driver_htstamp(st, ctypes.byref(dr))
        rep = AudioTstampReport()
        lib.snd_pcm_status_get_audio_htstamp_report(st, ctypes.byref(rep))
        self._frames_total += n
        p = AlsaPeriod(
            index=self._index,
            frames=int(n),
            frames_total=self._frames_total,
            rate=self.rate,
            trigger_ns=trig.ns(),
            tstamp_ns=ts.ns(),
            audio_ns=au.ns(),
            driver_ns=dr.ns(),
            delay=int(lib.snd_pcm_status_get_delay(st)),
            avail=int(lib.snd_pcm_status_get_avail(st)),
            state=int(lib.snd_pcm_status_get_state(st)),
            audio_type_requested=int(self._cfg.type_requested),
            audio_report_valid=bool(rep.valid),
            audio_actual_type=int(rep.actual_type),
            audio_accuracy_ns=int(rep.accuracy) if rep.accuracy_report else None,
            arrival_ns=arrival,
            data=self._buf.raw[: n * self.channels * 2] if self.keep_data else None,
            restarts=self.restarts,
        )
        self._index += 1
        return p

    def htimestamp(self) -> tuple[int, int]:
        """``snd_pcm_htimestamp``: (tstamp ns, avail) – what pyalsaaudio offers, for comparison."""
        avail, ts = _ULONG(), Timespec()
        _check(
            self._lib.snd_pcm_htimestamp(self._h, ctypes.byref(avail), ctypes.byref(ts)),
            "snd_pcm_htimestamp",
        )
        return ts.ns(), int(avail.value)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._lib.snd_pcm_status_free(self._status)
        self._lib.snd_pcm_close(self._h)

    def __enter__(self) -> AlsaCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def period_to_raw(p: AlsaPeriod, stamp_uncertainty_ns: int | None = None) -> RawStamp:
    """The :class:`RawStamp` of one period: raw = status tstamp (PERIOD, MONOTONIC), record
    instant = first frame of the block. Default stamp uncertainty: one period, because the
    tstamp is taken when hw_ptr was last updated (an interrupt on hardware, the status call in
    ioplug plugins) and the DMA position is only known to that granularity."""
    unc = frames_to_ns(p.frames, p.rate) if stamp_uncertainty_ns is None else stamp_uncertainty_ns
    extra: dict[str, int | str] = {
        "trigger_ns": p.trigger_ns,
        "delay": p.delay,
        "avail": p.avail,
        "frames": p.frames,
        "frames_total": p.frames_total,
        "rate": p.rate,
    }
    if p.audio_report_valid:
        extra.update(audio_ns=p.audio_ns, audio_type=p.audio_actual_type)
        if p.audio_accuracy_ns is not None:
            extra["audio_accuracy_ns"] = p.audio_accuracy_ns
    if p.driver_ns:
        extra["driver_ns"] = p.driver_ns
    if p.restarts:
        extra["restarts"] = p.restarts
    flags = ("no_trigger",) if p.trigger_ns == 0 else ()
    return RawStamp(
        seq=p.index,
        raw_ns=p.tstamp_ns,
        raw_clock=StampClock.MONOTONIC,
        meaning=StampMeaning.PERIOD,
        arrival_mono_ns=p.arrival_ns,
        stamp_uncertainty_ns=unc,
        capture_offset_ns=p.first_frame_ns - p.tstamp_ns,
        flags=flags,
        extra=extra,
    )
