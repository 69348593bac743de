"""UDP sockets with kernel (SO_TIMESTAMPING) RX and TX timestamps on the stdlib asyncio loop.

Every stamp is returned in **CLOCK_MONOTONIC integer nanoseconds** (kernel software stamps are
CLOCK_REALTIME and are mapped through :class:`~netclock.platform.clockmap.ClockMap`), and is
labelled with where it came from: ``"kernel"`` (software stamp taken by the kernel),
``"hardware"`` (NIC stamp; needs a PHC mapping, not available on this machine) or ``"user"``
(``clock_gettime`` right before ``sendmsg`` / right after ``recvmsg``: the fallback when the
kernel gave no stamp). The socket counts stamps per source in :attr:`StampedSocket.counters`.

Usage (async style)::

    from netclock.platform.udp import open_udp
    from netclock.platform.timestamping import StampedSocket

    sock = StampedSocket(open_udp("10.201.0.1", 319, interface="eth0",
                                  multicast_groups=["224.0.1.129"]))
    msg = await sock.recv()                  # Received(data, addr, stamp)
    msg.rx_ns, msg.stamp_source              # MONOTONIC ns, "kernel" | "hardware" | "user"
    tx = await sock.send_event(b"...", ("224.0.1.129", 319))   # Stamp | None (timeout)
    sock.send_general(b"...", ("224.0.1.129", 320))            # no TX stamp requested
    sock.close()

Usage (callback style, for a daemon driving several sockets)::

    sock = StampedSocket(raw_sock, on_receive=lambda r: port.handle(r.data, r.rx_ns))
    key = sock.send_event_cb(data, addr, lambda stamp: port.tx_done(ctx, stamp))

``send_event``/``send_event_cb`` send *immediately* (at the call, not at the ``await``). The
stamp callback runs exactly once: with the kernel stamp, or after ``tx_timeout_s`` with the
userspace before-send stamp (``user_fallback=True``, the default) or ``None``.

How it works (see ``shared/research/python-timestamps.md``): a raw non-blocking socket registered
with ``loop.add_reader``; ``EPOLLERR`` (error queue non-empty) is reported as readable, so the
same reader drains the data queue with a **bounded** ``recvmsg`` batch, then the error queue
(``MSG_ERRQUEUE``) until empty, so the level-triggered ``EPOLLERR`` cannot make the loop spin
(skipped when the data queue was read dry with no TX stamp pending: a non-empty error queue
then wakes the reader again at once, with no datagram, and that call drains it).
The error queue is also drained right after each event send (software stamps are already
queued when ``sendmsg`` returns). TX stamps are requested per send (a ``SO_TIMESTAMPING`` cmsg),
so only event messages consume an ``OPT_ID`` key; keys are counted per socket from 0.
Do not hand these sockets to asyncio transports or uvloop (they spin or crash on TX stamps).

:class:`RxPoller` reads a set of these sockets on a timer instead (``pause_reader`` takes them
off the loop): with kernel stamps, taken on arrival, reading later costs no accuracy, and a
slave's few wake-ups a second cost far less CPU than one per datagram.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import errno
import fcntl
import operator
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from netclock.platform.clockmap import WITHIN_SLACK_NS, ClockMap, Mapped, OffsetEstimate
from netclock.platform.cmsg import (
    ETHTOOL_GET_TS_INFO,
    HARDWARE_FLAGS,
    HWTSTAMP_FILTER_ALL,
    HWTSTAMP_TX_ON,
    SCM_TS_OPT_ID,
    SIOCETHTOOL,
    SIOCGHWTSTAMP,
    SIOCSHWTSTAMP,
    SO_TIMESTAMPING,
    SOF_TIMESTAMPING_OPT_ID,
    SOF_TIMESTAMPING_OPT_TSONLY,
    SOF_TIMESTAMPING_RAW_HARDWARE,
    SOF_TIMESTAMPING_RX_SOFTWARE,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_HARDWARE,
    SOF_TIMESTAMPING_TX_SOFTWARE,
    SOL_SOCKET,
    Ancillary,
    CmsgError,
    parse_ancillary,
    software_stamp_only,
    tx_software_stamp,
)

T = TypeVar("T")
StampSource = Literal["kernel", "hardware", "user"]
Address = tuple[Any, ...]
"""``(host, port)`` for IPv4, ``(host, port, flowinfo, scope_id)`` for IPv6."""

#: Socket-level flags: RX software stamps, reporting, OPT_ID keys, no packet copy on the error
#: queue. TX recording is requested per send (see :data:`TX_SOFTWARE_CMSG`).
SOCKET_FLAGS = (
    SOF_TIMESTAMPING_RX_SOFTWARE
    | SOF_TIMESTAMPING_SOFTWARE
    | SOF_TIMESTAMPING_OPT_ID
    | SOF_TIMESTAMPING_OPT_TSONLY
)

#: An RX stamp older than this (vs. the recvmsg return) makes the REALTIME mapping re-measure.
RX_MAX_AGE_NS = 1_000_000_000

_U32 = struct.Struct("=I")
_ANC_BUFSIZE = 512
# Plain ints: ``flags & socket.MSG_TRUNC`` would go through IntFlag's __and__ on every datagram.
_MSG_TRUNC = int(socket.MSG_TRUNC)
_MSG_CTRUNC = int(socket.MSG_CTRUNC)
_MSG_ERRQUEUE = int(socket.MSG_ERRQUEUE)
#: RxPoller's merge key: (RX stamp, socket index); a stable sort keeps each socket's order
_STAMP_AND_SOCKET = operator.itemgetter(0, 1)


@dataclass(frozen=True, slots=True)
class Stamp:
    """One packet timestamp, in CLOCK_MONOTONIC ns, labelled with its source."""

    ns: int
    """CLOCK_MONOTONIC nanoseconds."""
    source: StampSource
    raw_ns: int
    """As delivered: CLOCK_REALTIME (kernel), PHC (hardware) or CLOCK_MONOTONIC (user)."""
    uncertainty_ns: int = 0
    """Half the REALTIME→MONOTONIC bracket width (0 for user stamps, read on MONOTONIC)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One received datagram with its RX stamp."""

    data: bytes
    addr: Address
    stamp: Stamp

    @property
    def rx_ns(self) -> int:
        return self.stamp.ns

    @property
    def stamp_source(self) -> StampSource:
        return self.stamp.source


@dataclass(slots=True)
class StampCounters:
    """Per-socket counters (for metrics); every stamp handed out is counted by source."""

    rx_kernel: int = 0
    rx_hardware: int = 0
    rx_user: int = 0
    tx_kernel: int = 0
    tx_hardware: int = 0
    tx_user: int = 0
    tx_none: int = 0
    """TX stamps that timed out with ``user_fallback=False`` (callback got ``None``)."""
    tx_timeouts: int = 0
    tx_unmatched: int = 0
    """Error-queue stamps whose OPT_ID key matched no pending send (late, or keys out of step)."""
    rx_datagrams: int = 0
    tx_event: int = 0
    tx_general: int = 0
    rx_truncated: int = 0
    rx_dropped: int = 0
    """Datagrams dropped because the ``recv()`` queue was full."""
    rx_errors: int = 0
    cmsg_errors: int = 0
    reader_calls: int = 0
    errqueue_reads: int = 0
    errqueue_other: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class SocketClosedError(ConnectionError):
    """The :class:`StampedSocket` was closed while a ``recv()`` waited."""


class TimestampingUnavailableError(OSError):
    """The kernel refused the requested timestamping mode."""


_SHARED_CLOCK_MAP: ClockMap | None = None


def shared_clock_map() -> ClockMap:
    """The process-wide :class:`ClockMap` every socket uses unless given another."""
    global _SHARED_CLOCK_MAP
    if _SHARED_CLOCK_MAP is None:
        _SHARED_CLOCK_MAP = ClockMap()
    return _SHARED_CLOCK_MAP


# ------------------------------------------------------------------------------------------
# Enabling timestamping, hardware requests
# ------------------------------------------------------------------------------------------


def enable_timestamping(sock: socket.socket, flags: int = SOCKET_FLAGS) -> int:
    """Set ``SO_TIMESTAMPING`` and return the flags the kernel reports back.

    Raises :class:`TimestampingUnavailableError` when the kernel rejects them.
    """
    try:
        sock.setsockopt(SOL_SOCKET, SO_TIMESTAMPING, flags)
        return int(sock.getsockopt(SOL_SOCKET, SO_TIMESTAMPING))
    except OSError as exc:
        raise TimestampingUnavailableError(
            exc.errno, f"SO_TIMESTAMPING flags {flags:#x} refused: {exc.strerror}"
        ) from exc


@dataclass(frozen=True, slots=True)
class TsInfo:
    """``struct ethtool_ts_info``: what an interface can timestamp."""

    so_timestamping: int
    """SOF_TIMESTAMPING_* capabilities."""
    phc_index: int
    """``/dev/ptpN`` index of the NIC's clock, -1 if none."""
    tx_types: int
    rx_filters: int

    @property
    def hardware(self) -> bool:
        need = SOF_TIMESTAMPING_TX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE
        return self.phc_index >= 0 and (self.so_timestamping & need) == need


def _ifreq(interface: str, data_addr: int) -> bytes:
    name = interface.encode()
    if not 0 < len(name) < 16:
        raise ValueError(f"interface name {interface!r} must be 1..15 bytes")
    return struct.pack("16sP16x", name, data_addr)


def query_ts_info(interface: str) -> TsInfo:
    """Ask the driver (``ETHTOOL_GET_TS_INFO``) what it can timestamp. Raises ``OSError``."""
    buf = array.array("I", [ETHTOOL_GET_TS_INFO] + [0] * 10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, _ifreq(interface, buf.buffer_info()[0]))
    phc = struct.unpack("=i", struct.pack("=I", buf[2]))[0]
    return TsInfo(so_timestamping=buf[1], phc_index=phc, tx_types=buf[3], rx_filters=buf[7])


@dataclass(frozen=True, slots=True)
class HwConfig:
    """``struct hwtstamp_config`` as the driver accepted it."""

    flags: int
    tx_type: int
    rx_filter: int


def request_hardware_timestamping(
    sock: socket.socket,
    interface: str,
    tx_type: int = HWTSTAMP_TX_ON,
    rx_filter: int = HWTSTAMP_FILTER_ALL,
) -> HwConfig:
    """``SIOCSHWTSTAMP`` on ``interface`` (needs CAP_NET_ADMIN and a PHC-capable NIC).

    Returns the configuration the driver applied (it may widen ``rx_filter``). Raises
    ``OSError`` (EOPNOTSUPP on veth/lo, EPERM without the capability).
    """
    cfg = array.array("i", [0, tx_type, rx_filter])
    fcntl.ioctl(sock.fileno(), SIOCSHWTSTAMP, _ifreq(interface, cfg.buffer_info()[0]))
    return HwConfig(cfg[0], cfg[1], cfg[2])


def read_hardware_timestamping(sock: socket.socket, interface: str) -> HwConfig:
    """``SIOCGHWTSTAMP``: the interface's current hardware stamping config. Raises ``OSError``."""
    cfg = array.array("i", [0, 0, 0])
    fcntl.ioctl(sock.fileno(), SIOCGHWTSTAMP, _ifreq(interface, cfg.buffer_info()[0]))
    return HwConfig(cfg[0], cfg[1], cfg[2])


# ------------------------------------------------------------------------------------------
# The socket
# ------------------------------------------------------------------------------------------

TxCallback = Callable[[Stamp | None], None]


@dataclass(slots=True)
class _Pending:
    user_ns: int
    callback: TxCallback
    timer: asyncio.TimerHandle | None = None


class StampedSocket:
    """A non-blocking UDP socket with RX/TX stamps, driven by ``loop.add_reader``.

    Parameters:
        sock: a bound UDP socket (see :func:`netclock.platform.udp.open_udp`); it is made
            non-blocking and owned by this object from now on.
        loop: the stdlib asyncio loop (default: the running loop).
        on_receive: callback style; when given, datagrams go to it instead of ``recv()``.
        timestamping: request kernel stamps; ``False`` gives userspace stamps only. If the
            kernel refuses, the socket falls back to userspace stamps (see ``mode``).
        hardware_interface: also request NIC stamps on this interface (SIOCSHWTSTAMP); falls
            back to software stamps when the driver refuses (``hardware_error`` says why).
        phc_to_mono: maps a raw hardware stamp (the NIC's PHC time) to MONOTONIC; hardware
            stamping is only requested when it is given. (Untested here: no PHC on this machine.)
        clock_map: REALTIME→MONOTONIC mapping (default: the process-wide
            :func:`shared_clock_map`, so stamps from different sockets map identically).
        tx_timeout_s: how long a TX stamp may take before the fallback is used.
        user_fallback: on a missing TX stamp, give the userspace stamp (True) or ``None``.
        batch: at most this many datagrams per reader callback before the error queue is drained.
        bufsize: largest datagram accepted (longer ones are counted and dropped).
        queue_size: ``recv()`` queue bound (oldest dropped, counted).
        max_pending: at most this many sends wait for a TX stamp (oldest given up first).
        explicit_keys: pass each send's key in a ``SCM_TS_OPT_ID`` cmsg when the kernel has it
            (6.13+), so a send the kernel counted but never stamped cannot put the keys out of
            step; ``False`` always mirrors the kernel's counter.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_receive: Callable[[Received], None] | None = None,
        timestamping: bool = True,
        hardware_interface: str | None = None,
        phc_to_mono: Callable[[int], Mapped] | None = None,
        clock_map: ClockMap | None = None,
        tx_timeout_s: float = 0.1,
        user_fallback: bool = True,
        batch: int = 64,
        bufsize: int = 2048,
        queue_size: int = 1024,
        max_pending: int = 4096,
        explicit_keys: bool = True,
    ) -> None:
        self.sock = sock
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.clock_map = clock_map if clock_map is not None else shared_clock_map()
        self.counters = StampCounters()
        self.on_receive = on_receive
        self.tx_timeout_s = tx_timeout_s
        self.user_fallback = user_fallback
        self.batch = batch
        self.bufsize = bufsize
        self.max_pending = max_pending
        self.phc_to_mono = phc_to_mono
        #: ``"kernel"``, ``"hardware"`` or ``"user"``: the best stamps this socket asked for.
        self.mode: StampSource = "user"
        #: Why a kernel/hardware request failed (``None`` when it did not).
        self.timestamping_error: str | None = None
        self.hardware_error: str | None = None
        self.hardware_config: HwConfig | None = None
        self._tx_flags = 0
        self._tx_cmsg = b""
        self._next_key = 0
        #: How OPT_ID keys are tied to sends: ``"explicit"`` (SCM_TS_OPT_ID cmsg, Linux 6.13+),
        #: ``"counted"`` (the kernel's per-socket counter, mirrored here), or ``"probing"``
        #: until the first event send has found out.
        self.key_mode: Literal["probing", "explicit", "counted"] = (
            "probing" if explicit_keys else "counted"
        )
        self._pending: dict[int, _Pending] = {}
        self._queue: collections.deque[Received] = collections.deque(maxlen=queue_size)
        self._waiters: collections.deque[asyncio.Future[Received]] = collections.deque()
        self._closed = False
        self._polled = False
        self._collects = 0

        sock.setblocking(False)
        if timestamping:
            self._enable(hardware_interface)
        self.loop.add_reader(sock.fileno(), self.handle_readable)

    # -- setup -------------------------------------------------------------------------------

    def _enable(self, hardware_interface: str | None) -> None:
        flags = SOCKET_FLAGS
        if hardware_interface is not None and self.phc_to_mono is None:
            self.hardware_error = "hardware stamps need phc_to_mono (a PHC→MONOTONIC mapping)"
        elif hardware_interface is not None:
            try:
                self.hardware_config = request_hardware_timestamping(self.sock, hardware_interface)
                flags |= HARDWARE_FLAGS
            except OSError as exc:
                self.hardware_error = f"SIOCSHWTSTAMP on {hardware_interface}: {exc.strerror}"
        try:
            enable_timestamping(self.sock, flags)
        except TimestampingUnavailableError as exc:
            if flags == SOCKET_FLAGS:
                self.timestamping_error = str(exc)
                return
            self.hardware_error = str(exc)
            flags = SOCKET_FLAGS
            try:
                enable_timestamping(self.sock, flags)
            except TimestampingUnavailableError as exc2:
                self.timestamping_error = str(exc2)
                return
        self._tx_flags = SOF_TIMESTAMPING_TX_SOFTWARE
        self.mode = "kernel"
        if flags & SOF_TIMESTAMPING_TX_HARDWARE:
            self._tx_flags |= SOF_TIMESTAMPING_TX_HARDWARE
            self.mode = "hardware"
        self._tx_cmsg = _U32.pack(self._tx_flags)

    # -- properties --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def local_address(self) -> Address:
        return tuple(self.sock.getsockname())

    @property
    def pending_tx(self) -> int:
        """Event sends still waiting for their TX stamp."""
        return len(self._pending)

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- sending -----------------------------------------------------------------------------

    def _sendmsg(
        self, data: bytes, ancdata: list[tuple[int, int, bytes]], addr: Address | None
    ) -> None:
        if addr is None:
            self.sock.sendmsg([data], ancdata)
        else:
            self.sock.sendmsg([data], ancdata, 0, addr)

    def send_general(self, data: bytes, addr: Address | None) -> None:
        """Send without a TX stamp (PTP general messages, NTP basic-mode replies).

        ``addr=None`` sends on a connected socket. Raises ``OSError`` if the send fails.
        """
        if self._closed:
            raise SocketClosedError("send on a closed StampedSocket")
        self._sendmsg(data, [], addr)
        self.counters.tx_general += 1

    def send_event_cb(self, data: bytes, addr: Address | None, callback: TxCallback) -> int:
        """Send now; ``callback(stamp)`` runs once with the TX stamp. Returns the OPT_ID key.

        The callback may run before this method returns (software stamps are usually queued by
        the time ``sendmsg`` returns). Raises ``OSError`` if the send fails (no callback then).
        ``addr=None`` sends on a connected socket. Returns -1 when no kernel stamp is asked for.
        """
        if self._closed:
            raise SocketClosedError("send on a closed StampedSocket")
        if not self._tx_flags:
            user_ns = time.monotonic_ns()
            self._sendmsg(data, [], addr)
            self.counters.tx_event += 1
            self.counters.tx_user += 1
            self._call(callback, Stamp(user_ns, "user", user_ns))
            return -1
        key = self._next_key
        anc = [(SOL_SOCKET, SO_TIMESTAMPING, self._tx_cmsg)]
        if self.key_mode != "counted":
            anc.append((SOL_SOCKET, SCM_TS_OPT_ID, _U32.pack(key)))
        # Off the loop's epoll set for the send. The kernel takes a software TX stamp and then,
        # before the datagram goes on, queues it and reports the error queue to the socket's
        # waiters: with the socket in an epoll set that report runs epoll's callback, inside
        # the stamped interval. On a veth pair it made a Delay_Req's path ~1.7 µs longer than
        # ptp4l's (whose socket is in no wait queue while it sends), a +0.9 µs offset bias at
        # 1 Sync/s (``bench/ptp_vs_ptp4l.py --topology pairs --sync 0``). Nothing is lost: the
        # fd is level-triggered and whatever arrived meanwhile is read once it is back.
        registered = not self._polled
        if registered:
            self.loop.remove_reader(self.sock.fileno())
        try:
            user_ns = time.monotonic_ns()
            try:
                self._sendmsg(data, anc, addr)
            except OSError as exc:
                if exc.errno != errno.EINVAL or self.key_mode != "probing":
                    raise
                # Kernel < 6.13: no SCM_TS_OPT_ID; count keys like the kernel does instead.
                self.key_mode = "counted"
                user_ns = time.monotonic_ns()
                self._sendmsg(data, anc[:1], addr)
        finally:
            if registered:
                self.loop.add_reader(self.sock.fileno(), self.handle_readable)
        if self.key_mode == "probing":
            self.key_mode = "explicit"
        self._next_key = (key + 1) & 0xFFFFFFFF
        self.counters.tx_event += 1
        pending = _Pending(user_ns, callback)
        self._pending[key] = pending
        self._drain_errqueue()
        if key in self._pending:
            pending.timer = self.loop.call_later(self.tx_timeout_s, self._tx_timer, key)
            if len(self._pending) > self.max_pending:
                self._tx_timeout(next(iter(self._pending)))
        return key

    def send_event(self, data: bytes, addr: Address | None) -> asyncio.Future[Stamp | None]:
        """Send now; the returned future resolves to the TX stamp (see ``send_event_cb``)."""
        fut: asyncio.Future[Stamp | None] = self.loop.create_future()

        def done(stamp: Stamp | None) -> None:
            if not fut.done():
                fut.set_result(stamp)

        self.send_event_cb(data, addr, done)
        return fut

    def _tx_timer(self, key: int) -> None:
        """The TX-stamp deadline: read the error queue once more (a polled socket is not woken
        by ``EPOLLERR``), and give up on ``key`` only if its stamp is still not there."""
        if not self._closed:
            self._drain_errqueue()
        self._tx_timeout(key)

    def _tx_timeout(self, key: int) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        self.counters.tx_timeouts += 1
        if self.user_fallback:
            self.counters.tx_user += 1
            self._call(pending.callback, Stamp(pending.user_ns, "user", pending.user_ns))
        else:
            self.counters.tx_none += 1
            self._call(pending.callback, None)

    def _call(self, callback: Callable[[T], None], arg: T) -> None:
        """Run a user callback; its exception goes to the loop's handler, not into our I/O."""
        try:
            callback(arg)
        except Exception as exc:
            self.loop.call_exception_handler(
                {"message": "StampedSocket callback failed", "exception": exc, "socket": self}
            )

    # -- receiving ---------------------------------------------------------------------------

    async def recv(self) -> Received:
        """The next datagram (only when no ``on_receive`` callback was given)."""
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise SocketClosedError("recv on a closed StampedSocket")
        fut: asyncio.Future[Received] = self.loop.create_future()
        self._waiters.append(fut)
        try:
            return await fut
        finally:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _deliver(self, received: Received) -> None:
        if self.on_receive is not None:
            self._call(self.on_receive, received)
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(received)
                return
        if len(self._queue) == self._queue.maxlen:
            self.counters.rx_dropped += 1
        self._queue.append(received)

    def handle_readable(self) -> None:
        """The reader callback: a bounded batch of datagrams, then the error queue.

        The error queue is drained until empty unless the data queue was read dry and no TX
        stamp is pending: then it is almost always empty, and if it is not (a late stamp, an
        ICMP error) the level-triggered ``EPOLLERR`` calls this again at once, that call reads
        no datagram and drains it. That saves a ``recvmsg`` (and its EAGAIN) per datagram.
        """
        self.counters.reader_calls += 1
        if self._closed:
            return
        items, got, dry = self._read_batch(self.batch)
        for received in items:
            if self._closed:
                return
            self._deliver(received)
        if not self._closed and (self._pending or not got or not dry):
            self._drain_errqueue()

    # -- polling instead of per-datagram wake-ups --------------------------------------------

    @property
    def polled(self) -> bool:
        """True while :meth:`pause_reader` has taken the socket off the loop's reader set."""
        return self._polled

    def pause_reader(self) -> None:
        """Stop waking per datagram: the caller reads with :meth:`collect` on its own timer.

        Only worth it with kernel or hardware stamps, taken on arrival: reading a datagram
        later does not change its stamp. Error-queue stamps of sends are still read at once
        after each send, and again at the TX deadline.
        """
        if self._closed or self._polled:
            return
        self._polled = True
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            self.loop.remove_reader(self.sock.fileno())

    def resume_reader(self) -> None:
        """Wake per datagram again (undoes :meth:`pause_reader`). What queued meanwhile is
        read by the reader's next call (the fd is level-triggered), not from inside this one."""
        if self._closed or not self._polled:
            return
        self._polled = False
        self.loop.add_reader(self.sock.fileno(), self.handle_readable)

    def collect(self, limit: int = 1024) -> list[Received]:
        """Read the queued datagrams (at most ``limit``) without delivering them. For
        :class:`RxPoller`, which merges several sockets in arrival order.

        The error queue is drained too when a TX stamp is pending, and on every 16th call
        otherwise (sends drain it themselves; what else lands there, such as an ICMP error, is
        only counted)."""
        if self._closed:
            return []
        self.counters.reader_calls += 1
        self._collects += 1
        out, _, _ = self._read_batch(limit)
        if self._pending or not self._collects & 15:
            self._drain_errqueue()
        return out

    def dispatch(self, received: Received) -> None:
        """Deliver one datagram from :meth:`collect` as the reader callback would."""
        if not self._closed:
            self._deliver(received)

    def _read_batch(self, limit: int) -> tuple[list[Received], int, bool]:
        """Up to ``limit`` datagrams off the data queue, stamped. Returns them, how many were
        read (truncated ones included) and whether the queue was read dry."""
        out: list[Received] = []
        sock = self.sock
        bufsize = self.bufsize
        counters = self.counters
        got = 0
        # The usual datagram carries one software stamp: mapped here as ClockMap.to_mono_within
        # maps it, with the estimate read once per batch; anything else (or a stamp outside
        # its window: REALTIME stepped) goes through _rx_stamp.
        est: OffsetEstimate | None = None
        offset = pad = unc = 0
        for _ in range(limit):
            try:
                data, anc, flags, addr = sock.recvmsg(bufsize, _ANC_BUFSIZE)
            except BlockingIOError:
                return out, got, True
            except OSError:
                # e.g. ECONNREFUSED on a connected socket: pending socket error, consumed here.
                counters.rx_errors += 1
                continue
            user_ns = time.monotonic_ns()
            got += 1
            if flags & _MSG_TRUNC:
                counters.rx_truncated += 1
                continue
            stamp: Stamp | None = None
            if anc and not flags & _MSG_CTRUNC:
                sw = software_stamp_only(anc)
                if sw is not None:
                    if est is None:
                        est = self.clock_map.estimate
                        offset, unc = est.offset_ns, est.uncertainty_ns
                        pad = unc + WITHIN_SLACK_NS
                    mono = sw - offset
                    if user_ns - RX_MAX_AGE_NS - pad <= mono <= user_ns + pad:
                        counters.rx_kernel += 1
                        stamp = Stamp(mono, "kernel", sw, unc)
            if stamp is None:
                stamp = self._rx_stamp(anc, flags, user_ns)
                est = None  # (it may have re-measured the mapping)
            counters.rx_datagrams += 1
            out.append(Received(data, tuple(addr), stamp))
        return out, got, False

    def _rx_stamp(self, anc: list[tuple[int, int, bytes]], flags: int, user_ns: int) -> Stamp:
        if anc and not flags & _MSG_CTRUNC:
            sw = software_stamp_only(anc)
            if sw is not None:  # the usual datagram: one software stamp
                self.counters.rx_kernel += 1
                return self._software_stamp(sw, user_ns - RX_MAX_AGE_NS, user_ns)
        try:
            parsed = parse_ancillary(anc) if anc else Ancillary()
        except CmsgError:
            self.counters.cmsg_errors += 1
            parsed = Ancillary()
        if flags & _MSG_CTRUNC:
            self.counters.cmsg_errors += 1
        stamp = self._kernel_stamp(parsed, user_ns - RX_MAX_AGE_NS, user_ns)
        if stamp is None:
            self.counters.rx_user += 1
            return Stamp(user_ns, "user", user_ns)
        if stamp.source == "hardware":
            self.counters.rx_hardware += 1
        else:
            self.counters.rx_kernel += 1
        return stamp

    def _kernel_stamp(self, parsed: Ancillary, earliest: int, latest: int) -> Stamp | None:
        """The best kernel stamp in ``parsed``, mapped to MONOTONIC; it must lie in
        ``[earliest, latest]`` (else REALTIME stepped: the mapping is re-measured)."""
        ts = parsed.timestamping
        if ts is None:
            return None
        if ts.hardware_ns is not None and self.phc_to_mono is not None:
            m = self.phc_to_mono(ts.hardware_ns)
            return Stamp(m.mono_ns, "hardware", ts.hardware_ns, m.uncertainty_ns)
        if ts.software_ns is not None:
            return self._software_stamp(ts.software_ns, earliest, latest)
        return None

    def _software_stamp(self, realtime_ns: int, earliest: int, latest: int) -> Stamp:
        """A software (REALTIME) stamp mapped to MONOTONIC; it must lie in ``[earliest,
        latest]`` (else REALTIME stepped: the mapping is re-measured)."""
        m = self.clock_map.to_mono_within(realtime_ns, earliest, latest)
        return Stamp(m.mono_ns, "kernel", realtime_ns, m.uncertainty_ns)

    def _drain_errqueue(self) -> None:
        sock = self.sock
        while True:
            try:
                _, anc, _flags, _addr = sock.recvmsg(0, _ANC_BUFSIZE, _MSG_ERRQUEUE)
            except BlockingIOError:
                return
            except OSError:
                self.counters.rx_errors += 1
                return
            self.counters.errqueue_reads += 1
            fast = tx_software_stamp(anc)  # the usual report: a software stamp and its key
            parsed: Ancillary | None = None
            if fast is not None:
                key, sw = fast
            else:
                try:
                    parsed = parse_ancillary(anc)
                except CmsgError:
                    self.counters.cmsg_errors += 1
                    continue
                tx_key = parsed.tx_key
                if tx_key is None:
                    self.counters.errqueue_other += 1
                    continue
                key = tx_key
            pending = self._pending.pop(key, None)
            if pending is None:
                self.counters.tx_unmatched += 1
                continue
            if pending.timer is not None:
                pending.timer.cancel()
            stamp: Stamp | None
            if parsed is None:
                stamp = self._software_stamp(sw, pending.user_ns, time.monotonic_ns())
            else:
                stamp = self._kernel_stamp(parsed, pending.user_ns, time.monotonic_ns())
            if stamp is None:
                self.counters.tx_user += 1
                stamp = Stamp(pending.user_ns, "user", pending.user_ns)
            elif stamp.source == "hardware":
                self.counters.tx_hardware += 1
            else:
                self.counters.tx_kernel += 1
            self._call(pending.callback, stamp)
            if not self._pending:
                # Every send's stamp is in: the queue is almost always empty now, so skip the
                # recvmsg that would say so. Anything else there (an ICMP error) is read by
                # the next drain, or at once through EPOLLERR on a socket the loop watches.
                return

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, give pending TX callbacks their fallback, wake ``recv()`` waiters."""
        if self._closed:
            return
        self._closed = True
        if not self._polled:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                self.loop.remove_reader(self.sock.fileno())
        for key in list(self._pending):
            self._tx_timeout(key)
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(SocketClosedError("StampedSocket closed"))
        self.sock.close()

    def __enter__(self) -> StampedSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RxPoller:
    """Reads a set of stamped sockets on a timer instead of waking per datagram.

    A slave's packets carry kernel (or NIC) stamps taken on arrival, so how soon Python reads
    them changes no stamp: only how late the calibration hears of them. At 16 Sync/s a PTP
    slave gets about 40 datagrams a second on two sockets, and each wake-up of an asyncio loop
    costs far more CPU than the datagram's own handling; reading every ``interval_s`` cuts
    that to a few. With ``timer=False`` the poller has no timer of its own: its owner calls
    :meth:`tick` from a wake-up it has anyway (the daemon's tick), and the poll runs there
    once ``interval_s - slack_s`` has passed since the last one.

    The datagrams of all the sockets are delivered in the order of their RX stamps, so that
    messages split over two sockets (a PTP Sync on the event port, its Follow_Up on the
    general port) arrive in the order they were received. Use only when every socket has
    kernel or hardware stamps: userspace stamps are the read time, and would both lose
    accuracy and scramble that order.

    A burst (a flood, a crowded segment) would overflow the sockets' receive buffers between
    two polls and take the wanted datagrams with it: a poll that reads ``busy`` datagrams or
    more puts the sockets back on per-datagram wake-ups (``busy`` is True, ``bursts`` counts
    it), and polling resumes at the first interval that received fewer than half as many.
    """

    def __init__(
        self,
        sockets: Sequence[StampedSocket],
        interval_s: float,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timer: bool = True,
        slack_s: float = 0.0,
        busy: int = 64,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        if not 0 < interval_s < RX_MAX_AGE_NS / 1e9:
            raise ValueError("the poll interval must be above 0 and below RX_MAX_AGE_NS")
        if not 0 <= slack_s <= interval_s:
            raise ValueError("the slack must lie in [0, interval]")
        if busy < 2:
            raise ValueError("busy must be at least 2 datagrams")
        self.sockets = list(sockets)
        self.interval_s = interval_s
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        #: False: no timer of its own; the owner calls :meth:`tick` from its periodic wake-up
        self.timer = timer
        self.slack_s = slack_s
        self.busy_threshold = busy
        #: with ``timer=False``: :meth:`tick` polls only while this says a datagram is due
        #: (an NTP client between its request and the answer); what else arrives meanwhile
        #: waits in the socket for the next poll
        self.wanted = wanted
        #: reading per datagram until a burst ends
        self.busy = False
        self.bursts = 0
        self.polls = 0
        self.delivered = 0
        self._rx_mark = 0
        self._polling = False
        self._running = False
        self._last_fire = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Take the sockets off the reader set and poll them (no-op if running)."""
        if self._running:
            return
        self._running = True
        self.busy = False
        self._last_fire = self.loop.time()
        for s in self.sockets:
            s.pause_reader()
        self._schedule()

    def stop(self) -> None:
        """Read what is queued now and go back to per-datagram wake-ups (no-op if stopped)."""
        if not self._running:
            return
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.busy = False
        if not self._polling:  # (from a datagram this poll delivers: it delivers the rest)
            self.poll()
        for s in self.sockets:
            s.resume_reader()

    def tick(self, now_s: float) -> None:
        """The owner's periodic wake-up (``timer=False``): poll if an interval, less the
        slack, has passed since the last poll (or burst check)."""
        if (
            self._running
            and not self.timer
            and now_s - self._last_fire >= self.interval_s - self.slack_s
            and (self.wanted is None or self.busy or self.wanted())
        ):
            self._fire(now_s)

    def _received(self) -> int:
        return sum(s.counters.rx_datagrams for s in self.sockets)

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()  # (a stop and start from a datagram of this poll)
        if self.timer:
            self._timer = self.loop.call_at(self.loop.time() + self.interval_s, self._fire)

    def _fire(self, now_s: float | None = None) -> None:
        self._last_fire = self.loop.time() if now_s is None else now_s
        if self.busy:
            received = self._received()
            if received - self._rx_mark < self.busy_threshold // 2:  # the burst is over
                self.busy = False
                for s in self.sockets:
                    s.pause_reader()
                self.poll()
            self._rx_mark = received
        elif self.poll() >= self.busy_threshold:
            self.busy = True
            self.bursts += 1
            for s in self.sockets:
                s.resume_reader()
            self._rx_mark = self._received()
        if self._running:
            self._schedule()

    def poll(self) -> int:
        """Read and deliver everything queued now, in RX-stamp order; returns the count."""
        self.polls += 1
        batches = [(s, s.collect()) for s in self.sockets if not s.closed]
        merged = sorted(
            ((r.stamp.ns, i, r) for i, (_, items) in enumerate(batches) for r in items),
            key=_STAMP_AND_SOCKET,
        )
        self._polling = True
        try:
            for _, i, r in merged:
                batches[i][0].dispatch(r)
        finally:
            self._polling = False
        self.delivered += len(merged)
        return len(merged)
