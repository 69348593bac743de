"""NTP over UDP (IPv4/IPv6) on asyncio, with kernel RX/TX timestamps: drives the sans-IO cores.

* :class:`SourceDriver` runs one :class:`~netclock.ntp.source.NtpSource` on a
  :class:`~netclock.platform.timestamping.StampedSocket`: requests go out with a TX-stamp
  request (the kernel stamp, from the error queue, replaces the userspace t1), responses are
  handed over with their kernel RX stamp, timers become ``loop.call_later``. Each request may
  be preceded by empty, TX-stamped datagrams to the server's discard port
  (:data:`WARM_UP_PORT`).
* :class:`ServerDriver` answers requests with :class:`~netclock.ntp.server.NtpServer`. Basic
  responses get their transmit timestamp refreshed right before ``sendmsg``; every response asks
  for a kernel TX stamp so that the next interleaved request can be answered with it.
* :func:`query` is the one-shot measurement behind ``netclock ntp query``.

All stamps are CLOCK_MONOTONIC ns. Kernel software stamps are CLOCK_REALTIME and are mapped by
the socket's :class:`~netclock.platform.clockmap.ClockMap` (a bracketed MONOTONIC/REALTIME read;
half the bracket width is recorded as the stamp's uncertainty). When the kernel gives no stamp
the socket falls back to userspace stamps, and results say so (``timestamping="user"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netclock.ntp.auth import KeyFileError, SymmetricKey, parse_keys
from netclock.ntp.server import NtpServer
from netclock.ntp.source import (
    Action,
    Demobilize,
    Measured,
    NtpSample,
    NtpSource,
    Send,
    SetTimer,
    SourceConfig,
)
from netclock.platform.clockmap import ClockMap
from netclock.platform.timestamping import Received, StampedSocket
from netclock.platform.udp import NTP_PORT, open_udp

Address = tuple[Any, ...]


def parse_hostport(text: str, default_port: int = NTP_PORT) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address → (host, port)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, Address]:
    """One address for ``host`` (numeric addresses are not looked up)."""
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        if ip.version == 6:
            return socket.AF_INET6, (host, port, 0, 0)
        return socket.AF_INET, (host, port)
    fam, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    return socket.AddressFamily(fam), tuple(addr)


def _check_key_file(path: str, st: os.stat_result) -> None:
    mode = stat.S_IMODE(st.st_mode)
    euid = os.geteuid()
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{path}: keys file is not a regular file")
    if st.st_uid not in (euid, 0):
        raise KeyFileError(
            f"{path}: keys file is owned by uid {st.st_uid}, not by the running user "
            f"(uid {euid}) or root; chown it"
        )
    group_read_ok = st.st_uid == 0 and st.st_gid == os.getegid()
    loose = mode & (0o037 if group_read_ok else 0o077)
    if loose:
        who = " and ".join(w for w, bits in (("group", 0o070), ("others", 0o007)) if loose & bits)
        raise KeyFileError(
            f"{path}: keys file mode {mode:04o} gives {who} access to the keys; chmod 600 "
            "it (or 640 with owner root and the daemon's group)"
        )


def load_key_file(path: str) -> dict[int, SymmetricKey]:
    """Read a chrony-format keys file after checking who else can read or change it.

    Like ssh with private keys, the file is refused (:class:`KeyFileError`, naming the file
    and its mode or owner) when it is not a regular file, when it is owned by neither the
    running user nor root, or when other users can read or write it: any permission bit for
    "other", group write, or group read, except the layout chrony documents (0640, owned by
    root, group = the daemon's own group). The checks use the opened file (fstat), so a
    swapped path cannot slip through between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot open keys file: {e.strerror}") from None
    try:
        _check_key_file(path, os.fstat(fd))
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(1 << 20)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: keys file is not UTF-8 text") from None
    return parse_keys(text, path)


# ---------------------------------------------------------------------------------------------
# client
# ---------------------------------------------------------------------------------------------


@dataclass
class DriverStats:
    rx_kernel: int = 0
    rx_user: int = 0
    tx_kernel: int = 0
    tx_user: int = 0
    foreign: int = 0


#: Where a client's warm-up datagrams go: the server's discard port (RFC 863), which nothing
#: answers but, at most, a rate-limited ICMP port unreachable. Between polls the path goes
#: idle, and a request then crosses it colder than the reply that follows at once. With kernel
#: stamps on a veth link the request took longer one way, an offset bias of +1.0-1.3 us
#: (``bench/ntp_vs_chrony.py``). Empty datagrams from the same socket just before the request
#: run the same path first. Plain ones cut the bias to +0.3 us; what was still cold is the
#: kernel's TX-stamp work (queueing the stamp, waking the socket's pollers), which runs after
#: the stamp is taken and before the datagram leaves, so each warm-up asks for a TX stamp too
#: (and drops it). Two such warm-ups left +0.01-0.10 us.
WARM_UP_PORT = 9
#: How many warm-up datagrams precede each request.
WARM_UPS = 2


def _drop_stamp(stamp: Any) -> None:
    """TX-stamp callback of a warm-up datagram: its stamp serves no measurement."""


class SourceDriver:
    """Runs one NtpSource against ``server`` on ``sock`` (which it does not own)."""

    def __init__(
        self,
        source: NtpSource,
        sock: StampedSocket,
        server: Address,
        on_sample: Callable[[NtpSample, str], None],
        *,
        on_demobilize: Callable[[str], None] | None = None,
        on_request: Callable[[], None] | None = None,
        warm_up_port: int = 0,
        on_timer: Callable[[], None] | None = None,
        timer: bool = True,
    ) -> None:
        """``warm_up_port``: before each request, send :data:`WARM_UPS` empty datagrams from
        the same socket to this port of the server, each with a TX-stamp request (0: none);
        see :data:`WARM_UP_PORT`. ``on_request`` runs once per request sent (for counters);
        ``on_timer`` after each of the source's timers was handled (the daemon's tick rides on
        that wake-up when due). ``timer=False``: no timer of its own, the owner calls
        :meth:`tick` from a periodic wake-up it has anyway, and a request goes out at the
        first call at or after its time (for polls of a second or more)."""
        self.source = source
        self.on_request = on_request
        self.on_timer = on_timer
        self.sock = sock
        self.server = server
        self.on_sample = on_sample
        self.on_demobilize = on_demobilize
        self.stats = DriverStats()
        self._timer: asyncio.TimerHandle | None = None
        self.timer = timer
        #: MONOTONIC ns the source's timer is due at (``timer=False``)
        self._due: int | None = None
        self._last_rx_source = "user"
        self._rx_sources: dict[int, str] = {}
        self.stopped = False
        self._server_endpoint = _endpoint(server)
        self._warm_up: Address | None = (
            (server[0], warm_up_port, *server[2:]) if warm_up_port else None
        )

    def start(self) -> None:
        self._run(self.source.handle_timer(time.monotonic_ns()))

    def stop(self) -> None:
        self.stopped = True
        self._due = None
        if self._timer is not None:
            self._timer.cancel()

    def tick(self, _now_s: float = 0.0) -> None:
        """The owner's periodic wake-up (``timer=False``): run the source's timer if due."""
        due = self._due
        if due is not None and not self.stopped and time.monotonic_ns() >= due:
            self._due = None
            self._on_timer()

    def handle_received(self, r: Received) -> None:
        """A datagram on the source's socket: only one from the server's address and port
        goes to the source (the rest, e.g. off-path spoofs from elsewhere, is counted)."""
        if _endpoint(r.addr) != self._server_endpoint:
            self.stats.foreign += 1
            return
        src = r.stamp.source
        if src == "user":
            self.stats.rx_user += 1
        else:
            self.stats.rx_kernel += 1
        self._rx_sources[r.rx_ns] = src
        if len(self._rx_sources) > 64:
            self._rx_sources.pop(next(iter(self._rx_sources)))
        self._run(self.source.handle_incoming(r.data, r.rx_ns, time.monotonic_ns()))

    def _on_timer(self) -> None:
        self._timer = None
        if not self.stopped:
            self._run(self.source.handle_timer(time.monotonic_ns()))
            if self.on_timer is not None:
                self.on_timer()

    def _run(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Send):
                self._send(a)
            elif isinstance(a, SetTimer):
                if not self.timer:
                    self._due = a.at_ns
                    continue
                if self._timer is not None:
                    self._timer.cancel()
                delay = max(a.at_ns - time.monotonic_ns(), 0) / 1e9
                self._timer = self.sock.loop.call_later(delay, self._on_timer)
            elif isinstance(a, Measured):
                rx_src = self._rx_sources.get(a.sample.t4, "user")
                kernel = a.sample.t1_source == "kernel" and rx_src != "user"
                self.on_sample(a.sample, "kernel" if kernel else "user")
            elif isinstance(a, Demobilize):
                self.stop()
                if self.on_demobilize is not None:
                    self.on_demobilize(a.reason)

    def _send(self, a: Send) -> None:
        rid = a.request_id

        def tx_done(stamp: Any) -> None:
            if stamp is None:
                return
            if stamp.source == "user":
                self.stats.tx_user += 1
                return  # the userspace t1 taken at handle_timer stays (it is the same kind)
            self.stats.tx_kernel += 1
            self._run(self.source.handle_tx_timestamp(rid, stamp.ns))

        if self._warm_up is not None:
            # (a forerunner that cannot go, e.g. refused by a local firewall, costs the request
            # nothing but its warm path)
            with contextlib.suppress(OSError):
                for _ in range(WARM_UPS):
                    self.sock.send_event_cb(b"", self._warm_up, _drop_stamp)
        if self.on_request is not None:
            self.on_request()
        # OSError: unreachable now; the reach register will show it
        with contextlib.suppress(OSError):
            self.sock.send_event_cb(a.data, self.server, tx_done)


def _endpoint(addr: Address) -> tuple[object, int]:
    """(IP address, port) of a socket address, compared by value: ``fd00::1`` equals
    ``FD00:0::1`` and an IPv4-mapped address equals its IPv4 address."""
    try:
        ip = ipaddress.ip_address(str(addr[0]).partition("%")[0])
    except ValueError:
        return addr[0], int(addr[1])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, int(addr[1])
    return ip, int(addr[1])


def open_client_socket(
    family: socket.AddressFamily, *, timestamping: bool = True, clock_map: ClockMap | None = None,
    on_receive: Callable[[Received], None] | None = None,
) -> StampedSocket:
    raw = open_udp("::" if family == socket.AF_INET6 else "0.0.0.0", 0, family=family)
    return StampedSocket(raw, on_receive=on_receive, timestamping=timestamping,
                         clock_map=clock_map)


@dataclass
class QueryResult:
    server: str
    offset_ns: int
    delay_ns: int
    stratum: int
    leap: int
    reference_id: str
    timestamping: str
    mode: str
    samples: int
    mapping_uncertainty_ns: int
    all_offsets_ns: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server, "offset_ns": self.offset_ns, "delay_ns": self.delay_ns,
            "stratum": self.stratum, "leap": self.leap, "reference_id": self.reference_id,
            "timestamping": self.timestamping, "mode": self.mode, "samples": self.samples,
            "mapping_uncertainty_ns": self.mapping_uncertainty_ns,
            "all_offsets_ns": self.all_offsets_ns,
        }


async def query(
    host: str,
    port: int = NTP_PORT,
    *,
    count: int = 4,
    poll: int = -3,
    timeout_s: float = 5.0,
    xleave: bool = False,
    timestamping: bool = True,
    warm_up_port: int = WARM_UP_PORT,
) -> QueryResult:
    """Measure the offset of ``host`` against local CLOCK_REALTIME, like ``chronyd -Q``.

    Sends up to ``count`` requests 2^poll s apart (more if some are lost, within
    ``timeout_s``) and reports the lowest-delay sample. ``offset_ns`` = server time − local
    REALTIME (positive: the server is ahead)."""
    from netclock.ntp.wire import refid_str

    family, addr = resolve(host, port)
    clock_map = ClockMap()
    samples: list[tuple[NtpSample, str]] = []
    done = asyncio.get_running_loop().create_future()
    driver: SourceDriver | None = None

    def on_sample(s: NtpSample, kind: str) -> None:
        samples.append((s, kind))
        if len(samples) >= count and not done.done():
            done.set_result(None)

    def on_demob(reason: str) -> None:
        if not done.done():
            done.set_exception(ConnectionRefusedError(f"server sent KoD {reason}"))

    def on_rx(r: Received) -> None:
        assert driver is not None
        driver.handle_received(r)

    sock = open_client_socket(family, timestamping=timestamping, clock_map=clock_map,
                              on_receive=on_rx)
    cfg = SourceConfig(minpoll=poll, maxpoll=poll, iburst=False, filter_length=1,
                       xleave=xleave)
    source = NtpSource(cfg, random.Random(), pivot_unix_ns=time.time_ns())
    driver = SourceDriver(source, sock, addr, on_sample, on_demobilize=on_demob,
                          warm_up_port=warm_up_port)
    try:
        driver.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        if done.done() and done.exception() is not None:
            raise done.exception()  # type: ignore[misc]
    finally:
        driver.stop()
        sock.close()
    if not samples:
        raise TimeoutError(f"no valid response from {host}:{port} in {timeout_s} s")
    est = clock_map.estimate
    best, kind = min(samples, key=lambda sk: sk[0].delay_ns)

    def to_offset(s: NtpSample) -> int:
        return s.raw_offset_ns - est.offset_ns

    return QueryResult(
        server=f"{host}:{port}",
        offset_ns=to_offset(best),
        delay_ns=best.delay_ns,
        stratum=best.stratum,
        leap=int(best.leap),
        reference_id=refid_str(best.reference_id, best.stratum),
        timestamping=kind,
        mode=best.mode.value,
        samples=len(samples),
        mapping_uncertainty_ns=est.uncertainty_ns,
        all_offsets_ns=[to_offset(s) for s, _ in samples],
    )


# ---------------------------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------------------------


class ServerDriver:
    """Answers NTP requests arriving on ``sock`` with ``server`` (neither is owned)."""

    def __init__(self, server: NtpServer, sock: StampedSocket) -> None:
        self.server = server
        self.sock = sock
        self.stats = DriverStats()
        sock.on_receive = self.handle_received

    def handle_received(self, r: Received) -> None:
        if r.stamp.source == "user":
            self.stats.rx_user += 1
        else:
            self.stats.rx_kernel += 1
        resp = self.server.respond(r.data, r.rx_ns, time.monotonic_ns(), r.addr[0])
        if resp is None:
            return
        data = self.server.restamp(resp, time.monotonic_ns())
        token = resp.tx_token
        try:
            if token is None:
                self.sock.send_general(data, r.addr)
                return

            def tx_done(stamp: Any) -> None:
                if stamp is not None:
                    if stamp.source == "user":
                        self.stats.tx_user += 1
                    else:
                        self.stats.tx_kernel += 1
                    self.server.handle_tx_timestamp(token, stamp.ns)

            self.sock.send_event_cb(data, r.addr, tx_done)
        except OSError:
            pass


def system_served_time(clock_map: ClockMap, shift_ns: int = 0) -> Callable[[int], int]:
    """MONOTONIC ns → CLOCK_REALTIME ns (+ ``shift_ns``): serve the system clock's domain."""

    def served(mono: int) -> int:
        return clock_map.to_realtime(mono) + shift_ns

    return served


def open_server_socket(host: str, port: int, *, timestamping: bool = True,
                       clock_map: ClockMap | None = None) -> StampedSocket:
    family, _ = resolve(host or "0.0.0.0", port)
    raw = open_udp(host, port, family=family)
    return StampedSocket(raw, timestamping=timestamping, clock_map=clock_map,
                         on_receive=lambda r: None)
