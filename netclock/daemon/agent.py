"""The per-machine agent: sources → discipline → shared memory, status socket, metrics, NTP.

A thin asyncio loop around the sans-IO pieces (statime's ``port_task`` shape):

* **Sources.** Each NTP server runs an :class:`~netclock.ntp.source.NtpSource` through a
  :class:`~netclock.platform.ntp_transport.SourceDriver` on a kernel-timestamping socket; a
  PTP port runs through :mod:`netclock.daemon.ptp_source`; the local reference reads
  CLOCK_REALTIME / CLOCK_TAI through the bracketed :class:`ClockMap`. Every measurement becomes
  one :meth:`Discipline.observe` call with local CLOCK_MONOTONIC ``internal`` and network
  ``external`` times.
* **Discipline.** Source selection by priority, failover, lock state, holdover, steps.
* **Publication.** After each change and on every tick: the shared-memory record (seqlock), the
  snapshot behind the Unix status socket and the Prometheus collector, the state file, the
  run record (``--record``), and the NTP server's served time.

The kernel clocks are never adjusted; nothing here needs root. Binding a port below 1024 needs
CAP_NET_BIND_SERVICE, and the error says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from netclock import __version__
from netclock.config import Config, NtpServer
from netclock.discipline import Discipline, DisciplineConfig, DisciplineEvent, SourceConfig
from netclock.ntp.server import UNSYNCHRONIZED, AccessControl, DisciplineState, RateLimit
from netclock.ntp.server import NtpServer as NtpServerCore
from netclock.ntp.source import NtpSample, NtpSource
from netclock.ntp.source import SourceConfig as NtpSourceConfig
from netclock.ntp.wire import Leap
from netclock.observe import (
    DomainSnapshot,
    LockState,
    PacketCounters,
    Quality,
    Snapshot,
    SourceSnapshot,
    Timescale,
)
from netclock.platform.clockmap import ClockMap
from netclock.platform.ntp_transport import (
    ServerDriver,
    SourceDriver,
    load_key_file,
    open_client_socket,
    open_server_socket,
    resolve,
)
from netclock.platform.timestamping import Received, RxPoller, StampedSocket, shared_clock_map
from netclock.shm import DomainRecord, IdentityKind
from netclock.time import NS_PER_S

log = logging.getLogger("netclock")

#: Shared-memory / snapshot domain number of NTP-derived time (0..255 are PTP domains).
NTP_DOMAIN = 256
TICK_S = 0.25
#: a source's timer wake-up runs the tick once this much has passed since the last tick
TICK_SLACK_S = TICK_S / 2
#: the tick's own timer: the longest the tick waits for a source's wake-up to run in
TICK_MAX_S = 2 * TICK_S
TICK_NS = round(TICK_S * NS_PER_S)


class CapabilityError(PermissionError):
    """A feature needs a capability the process does not have; the message names it."""


def bind_error(what: str, port: int, err: OSError) -> OSError:
    if isinstance(err, PermissionError) and port < 1024:
        return CapabilityError(
            f"{what}: binding port {port} needs CAP_NET_BIND_SERVICE "
            "(grant it to the service, or configure a port >= 1024)"
        )
    return err


@dataclass
class _SourceInfo:
    name: str
    kind: str
    priority: int
    identity: str = ""
    identity_kind: IdentityKind = IdentityKind.NONE
    identity_bytes: bytes = b""
    timescale: Timescale = Timescale.UTC
    hops: int = 0
    offset_ns: int | None = None
    delay_ns: int | None = None
    stamp_source: str = "user"
    rx_poll_ms: int = 0
    state: str = ""
    packets: dict[str, list[int]] = field(default_factory=dict)
    leap: Leap = Leap.NO_WARNING
    utc_offset_s: int = 0
    utc_offset_valid: bool = False


class Agent:
    """One netclock daemon. ``await Agent(cfg).run(stop_event)``."""

    def __init__(
        self,
        cfg: Config,
        *,
        record_path: str | None = None,
        clock_map: ClockMap | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        c, h = cfg.clock, cfg.holdover
        self.discipline = Discipline(
            DisciplineConfig(
                window_size=c.window_size,
                window_threshold=c.window_threshold,
                outlier_k=c.outlier_k,
                error_floor_ns=c.error_floor_ns,
                fit_step_threshold_ns=c.step_threshold_ns,
                step_confirm=c.step_confirm,
                window_span_ns=c.window_span_ns,
                window_max=c.window_max,
                floor_k=c.floor_k,
                floor_scale=c.floor_scale,
                spike_reject_k=c.spike_reject_k,
                spike_min_ns=c.spike_min_ns,
                spike_hold_ns=c.spike_hold_ns,
                lost_after=c.lost_after,
                lock_threshold_ns=c.lock_threshold_ns,
                lock_count=c.lock_samples,
                holdover_spec_ns=h.spec_ns,
                holdover_min_rate_sigma_ppb=h.wander_ppb,
                failover_after_ns=round(h.failover_after_s * NS_PER_S),
            )
        )
        # (the process-wide map the PTP sockets use too: one REALTIME→MONOTONIC mapping, one
        # periodic re-measurement)
        self.clock_map = clock_map or shared_clock_map()
        self.rng = rng or random.Random()
        self.started_mono_ns = time.monotonic_ns()
        self.sources: dict[str, _SourceInfo] = {}
        self._sockets: list[StampedSocket] = []
        self._drivers: list[SourceDriver] = []
        self._closers: list[Callable[[], Any]] = []
        self._record: TextIO | None = None
        self._record_path = record_path
        self._snapshot: Snapshot | None = None
        self._shm: Any = None
        self._ntp_server: NtpServerCore | None = None
        #: [ntp] keys-file, its permissions checked (KeyFileError, a ValueError: exit 2)
        self.ntp_keys = load_key_file(cfg.ntp.keys_file) if cfg.ntp.keys_file else {}
        self._changed = asyncio.Event()
        self._last_state_save = 0
        self.ptp: Any = None  # netclock.daemon.ptp_source.PtpSource when PTP runs
        self._chrony: Any = None  # netclock.platform.chrony.ChronySockFeeder when configured
        self._chrony_warned = False
        self.main_domain = cfg.ptp.domain if cfg.ptp.enabled else NTP_DOMAIN
        self.stopped = False
        #: loop time of the last tick (None while the tick loop is not running)
        self._last_tick: float | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_fire: Callable[[], None] | None = None
        self._tick_hooks: list[Callable[[float], None]] = []
        self._in_tick = False
        self._published_mono_ns = -TICK_NS  # when the shared-memory record was last written
        self._identity_cache: tuple[tuple[str, str, bytes], tuple[IdentityKind, bytes]] | None = (
            None
        )

    # -- sources ---------------------------------------------------------------------------------
    def _add_source(self, info: _SourceInfo, min_timeout_ns: int = 0) -> None:
        timeout = max(round(self.cfg.holdover.source_timeout_s * NS_PER_S), min_timeout_ns)
        self.discipline.add_source(SourceConfig(info.name, info.priority, timeout))
        self.sources[info.name] = info

    def observe(
        self, name: str, internal: int, external: int, error_ns: int, *, delay_ns: int | None
    ) -> None:
        """One measurement from a source (called by the source drivers)."""
        now = time.monotonic_ns()
        info = self.sources[name]
        pub = self.discipline.published
        info.offset_ns = external - pub.to_external(internal) if pub is not None else None
        info.delay_ns = delay_ns
        events = self.discipline.observe(name, internal, external, error_ns, now)
        self._after_update(now, events, source=name)

    def heard(self, name: str) -> None:
        """A source answered validly but its filter held the sample back: it is alive."""
        now = time.monotonic_ns()
        self._after_update(now, self.discipline.heard(name, now))

    def _start_ntp_sources(self) -> None:
        for i, srv in enumerate(self.cfg.ntp.servers):
            self._start_ntp_source(i, srv)

    def _start_ntp_source(self, index: int, srv: NtpServer) -> None:
        family, addr = resolve(srv.address, srv.port)
        name = f"ntp:{srv.address}:{srv.port}"
        info = _SourceInfo(name, "ntp", srv.priority, identity=srv.address)
        # A source is lost only after 10 polls at the longest interval without a valid
        # answer. The clock filter passes one sample in up to 8 polls, so the answers it holds
        # back keep the source alive too (Discipline.heard): late timers on a loaded machine
        # would otherwise stretch a held-back run past the timeout.
        poll_ns = NS_PER_S << srv.maxpoll if srv.maxpoll >= 0 else NS_PER_S >> -srv.maxpoll
        self._add_source(info, min_timeout_ns=10 * poll_ns)
        driver: SourceDriver | None = None
        emitted = [0]

        def on_rx(r: Received) -> None:
            assert driver is not None
            _count(info, "response", rx=1)
            filtered, samples = source.filtered, emitted[0]
            driver.handle_received(r)
            if source.filtered > filtered and emitted[0] == samples:
                self.heard(name)

        sock = open_client_socket(family, clock_map=self.clock_map, on_receive=on_rx)
        self._sockets.append(sock)
        # Requests at least ~0.94 s apart (iburst's too): the tick sends them, at its first run
        # at or after their time (a few hundred ms late at most), and the answer waits in the
        # socket for the next tick, instead of a wake-up each. It was stamped on arrival; only
        # the calibration hears of it later.
        slow = srv.minpoll >= 0
        cfg = NtpSourceConfig(
            minpoll=srv.minpoll, maxpoll=srv.maxpoll, iburst=srv.iburst, xleave=srv.xleave
        )
        key = self.ntp_keys.get(srv.key) if srv.key else None
        if srv.key and key is None:
            raise ValueError(f"ntp.server {srv.address}: key {srv.key} is not in "
                             f"ntp.keys-file {self.cfg.ntp.keys_file}")
        source = NtpSource(cfg, self.rng, pivot_unix_ns=time.time_ns(), key=key)
        if slow and sock.mode in ("kernel", "hardware"):
            # Read only between a request and its answer: the other ticks would find the
            # socket empty, at the cost of a cold read each (~50 us on this VM).
            poller = RxPoller([sock], TICK_S, timer=False, slack_s=TICK_SLACK_S,
                              wanted=lambda: source.awaiting_answer)
            poller.start()
            self.add_tick_hook(poller.tick)

        def on_sample(s: NtpSample, kind: str) -> None:
            emitted[0] += 1
            info.stamp_source = kind
            info.hops = s.stratum
            info.leap = s.leap
            info.state = f"reach {source.reach:03o}"
            info.identity_bytes = s.reference_id
            self.observe(name, s.internal, s.external, s.error_ns, delay_ns=s.delay_ns)

        def on_demob(reason: str) -> None:
            log.warning("%s: server refused service (KoD %s); source stopped", name, reason)
            info.state = f"demobilized ({reason})"

        driver = SourceDriver(source, sock, addr, on_sample, on_demobilize=on_demob,
                              on_request=lambda: _count(info, "request", tx=1),
                              warm_up_port=srv.warm_up_port, on_timer=self.wake,
                              timer=not slow)
        self._drivers.append(driver)
        if slow:
            self.add_tick_hook(driver.tick)
        driver.start()
        log.info("NTP source %s (priority %d, minpoll %d)", name, srv.priority, srv.minpoll)

    async def _reference_task(self) -> None:
        ref = self.cfg.reference
        name = f"ref:{ref.clock}"
        ts = {"utc": Timescale.UTC, "tai": Timescale.TAI, "arb": Timescale.ARB}[ref.timescale]
        info = _SourceInfo(name, "local", ref.priority, identity="LOCL", timescale=ts)
        info.identity_bytes = b"LOCL"
        info.stamp_source = "kernel"
        info.state = "reference"
        self._add_source(info)
        tai_extra = 0
        if ref.clock == "tai":
            tai_extra = (
                round((time.clock_gettime_ns(time.CLOCK_TAI) - time.time_ns()) / NS_PER_S)
                * NS_PER_S
            )
        while not self.stopped:
            self.clock_map.recheck()
            est = self.clock_map.estimate
            mono = time.monotonic_ns()
            ext = mono + est.offset_ns + tai_extra + ref.shift_ns
            self.observe(name, mono, ext, est.uncertainty_ns, delay_ns=0)
            await asyncio.sleep(ref.interval_s)

    # -- NTP server ------------------------------------------------------------------------------
    def served_utc(self, mono: int) -> int:
        pub = self.discipline.published
        if pub is None:
            return self.clock_map.to_realtime(mono)
        t = pub.to_external(mono)
        info = self._selected_info()
        if info is not None and info.timescale == Timescale.TAI:
            t -= info.utc_offset_s * NS_PER_S
        return t

    def _ntp_state(self) -> DisciplineState:
        info = self._selected_info()
        if info is None or self.discipline.state not in (LockState.LOCKED, LockState.HOLDOVER):
            return UNSYNCHRONIZED
        if info.kind == "local":
            stratum, refid = 1, b"LOCL"
        elif info.kind == "ptp":
            stratum, refid = 1, b"PTP\0"
        else:
            stratum = min(info.hops + 1, 16)
            refid = _refid_of(info.identity)
        bound = max(self.discipline.error_bound(time.monotonic_ns()), 0)
        return DisciplineState(
            stratum=stratum,
            reference_id=refid,
            leap=info.leap,
            root_dispersion_ns=min(bound, 2**32),
            reference_mono_ns=self._last_update_mono(),
        )

    def _start_ntp_server(self) -> None:
        n = self.cfg.ntp
        lg = n.rate_limit_interval_log2
        limit = RateLimit(
            interval_ns=NS_PER_S << lg if lg >= 0 else NS_PER_S >> -lg, burst=n.rate_limit_burst
        )
        self._ntp_server = NtpServerCore(
            self.served_utc, self._ntp_state, rate_limit=limit, keys=self.ntp_keys,
            require_auth=n.require_auth,
            access=AccessControl.parse(n.allow, n.deny, kod=n.deny_kod),
        )
        try:
            sock = open_server_socket(n.listen_address, n.listen_port, clock_map=self.clock_map)
        except OSError as e:
            raise bind_error("NTP server", n.listen_port, e) from e
        self._sockets.append(sock)
        ServerDriver(self._ntp_server, sock)
        log.info("serving NTP on %s:%d", n.listen_address, n.listen_port)

    # -- publication --------------------------------------------------------------------------
    def _selected_info(self) -> _SourceInfo | None:
        snap_src = self.discipline._selected
        return self.sources.get(snap_src) if snap_src is not None else None

    def _last_update_mono(self) -> int | None:
        pub = self.discipline.published
        return pub.internal if pub is not None else None

    def _after_update(
        self, now: int, events: list[DisciplineEvent], source: str | None = None
    ) -> None:
        for e in events:
            if e.kind == "step":
                log.warning(
                    "step: %s (epoch %d)",
                    e.detail,
                    self.discipline.published.epoch if self.discipline.published else 0,
                )
            else:
                log.info("%s: %s", e.kind, e.detail)
                if e.kind == "source" and self.ptp is not None:
                    self.ptp.update_main_domain()  # publish the new source's domain with it
        self._publish(now, tick=source is None and not events)
        if self._record is not None and (source is not None or events):
            # tick-detected changes (holdover, failover) are recorded too
            self._write_record(now, source or self.discipline._selected or "")

    def domain_snapshot(self, now: int) -> DomainSnapshot:
        d = self.discipline.snapshot(now, with_sources=False)
        cal = d.calibration
        info = self._selected_info()
        growth_ps = round(d.rate_sigma_ppb * 1000) if d.state != LockState.FREERUN else 0
        fit = self.discipline.selected_fit()
        fit_r2 = fit.r_squared if fit is not None else None
        return DomainSnapshot(
            domain=self.main_domain,
            lock_state=d.state,
            quality=d.quality,
            timescale=info.timescale if info else Timescale.ARB,
            error_bound_ns=max(d.error_bound_ns, 0),
            error_growth_ps_per_s=growth_ps,
            holdover_ns=d.holdover_ns,
            steps_total=d.steps,
            epoch=cal.epoch if cal else 0,
            internal=cal.internal if cal else None,
            external=cal.external if cal else None,
            rate_num=cal.rate_num if cal else None,
            rate_denom=cal.rate_denom if cal else None,
            rate_ppb=cal.rate_ppb() if cal else None,
            r_squared=fit_r2,
            grandmaster=info.identity if info else "",
            utc_offset_s=info.utc_offset_s if info else 0,
            utc_offset_valid=info.utc_offset_valid if info else False,
            leap61=bool(info and info.leap == Leap.INSERT_SECOND),
            leap59=bool(info and info.leap == Leap.DELETE_SECOND),
            update_mono_ns=now,
        )

    def snapshot(self) -> Snapshot:
        now = time.monotonic_ns()
        dsnap = self.discipline.snapshot(now)
        alive = {s.name: s for s in dsnap.sources}
        sources = []
        for name, info in self.sources.items():
            st = alive.get(name)
            sources.append(
                SourceSnapshot(
                    name=name,
                    kind=info.kind,
                    priority=info.priority,
                    selected=bool(st and st.selected),
                    reachable=bool(st and st.alive),
                    state=info.state,
                    identity=info.identity,
                    offset_ns=info.offset_ns,
                    path_delay_ns=info.delay_ns,
                    rate_ppb=st.rate_ppb if st else None,
                    r_squared=st.r_squared if st else None,
                    stamp_source=info.stamp_source,
                    rx_poll_ms=info.rx_poll_ms,
                    packets=tuple(
                        PacketCounters(t, rx, tx, bad) for t, (rx, tx, bad) in info.packets.items()
                    ),
                )
            )
        srv = self._ntp_server
        if srv is not None:
            # Not a source, but its requests (and the malformed ones dropped) are counted here
            # too, so hostile traffic shows in the status socket and the metrics (issue 9).
            # reachable: the server is up (an alert fires on unreachable sources).
            c, n = srv.counters, self.cfg.ntp
            sources.append(
                SourceSnapshot(
                    name=f"ntp-server:{n.listen_address}:{n.listen_port}",
                    kind="ntp-server",
                    reachable=True,
                    state="serving",
                    packets=(PacketCounters("request", c.received, c.responded, c.dropped_bad),),
                )
            )
        return Snapshot(
            taken_mono_ns=now,
            version=__version__,
            pid=os.getpid(),
            started_mono_ns=self.started_mono_ns,
            domains=(self.domain_snapshot(now),),
            sources=tuple(sources),
        )

    def _publish(self, now: int, *, tick: bool = False) -> None:
        """Write the shared-memory record (what :meth:`domain_snapshot` says, built directly).

        A tick (``tick=True``) that changed nothing (no discipline event) does not rewrite a
        record published less than a tick ago: between observations arriving at the tick
        rate or faster it would only refresh ``update_mono_ns``. In holdover, or with no
        source, every tick still refreshes it (at most TICK_MAX_S apart).
        """
        if self._shm is None:
            return
        if tick and now - self._published_mono_ns < TICK_NS:
            return
        self._published_mono_ns = now
        disc = self.discipline
        d = disc.snapshot(now, with_sources=False)
        info = self._selected_info()
        kind, ident, hops = IdentityKind.NONE, b"", 0
        timescale, utc_offset_s, utc_offset_valid = Timescale.ARB, 0, False
        leap = Leap.NO_WARNING
        if info is not None:
            key = (info.kind, info.identity, info.identity_bytes)
            cached = self._identity_cache
            if cached is None or cached[0] != key:
                cached = self._identity_cache = (key, _identity(info))
            kind, ident = cached[1]
            hops = info.hops
            timescale, utc_offset_s, utc_offset_valid = (
                info.timescale, info.utc_offset_s, info.utc_offset_valid
            )
            leap = info.leap
        rec = DomainRecord(
            domain=self.main_domain,
            calibration=disc.published,
            lock_state=d.state,
            quality=d.quality,
            timescale=timescale,
            error_bound_ns=max(d.error_bound_ns, 0),
            error_growth_ps_per_s=(
                round(d.rate_sigma_ppb * 1000) if d.state != LockState.FREERUN else 0
            ),
            update_mono_ns=now,
            utc_offset_s=utc_offset_s,
            utc_offset_valid=utc_offset_valid,
            leap61=leap == Leap.INSERT_SECOND,
            leap59=leap == Leap.DELETE_SECOND,
            identity_kind=kind,
            identity=ident,
            hops=hops,
        )
        self._shm.publish([rec])

    def _write_record(self, now: int, source: str) -> None:
        assert self._record is not None
        d = self.discipline.snapshot(now)
        info = self.sources.get(source)
        cal = d.calibration
        line = {
            "t_mono_ns": now,
            "source": source,
            "state": d.state.name.lower(),
            "offset_ns": info.offset_ns if info else None,
            "delay_ns": info.delay_ns if info else None,
            "rate_ppb": cal.rate_ppb() if cal else None,
            "error_bound_ns": d.error_bound_ns if d.error_bound_ns >= 0 else None,
            "domain": self.main_domain,
            "t_net_ns": cal.to_external(now) if cal else None,
            "epoch": cal.epoch if cal else 0,
        }
        self._record.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._record.flush()

    def _feed_chrony(self, now: int) -> None:
        """One SOCK refclock sample for chronyd: network UTC minus REALTIME, now.

        Only while the time is good (LOCKED, or HOLDOVER within spec) and is UTC or TAI with a
        known offset: chronyd would otherwise steer REALTIME to a bad or arbitrary time.
        """
        from netclock.platform.chrony import SockSample

        if self.discipline.published is None or self.discipline.quality(now) not in (
            Quality.LOCKED,
            Quality.HOLDOVER_IN_SPEC,
        ):
            return
        info = self._selected_info()
        if info is None:
            return
        if info.timescale == Timescale.ARB or (
            info.timescale == Timescale.TAI and not info.utc_offset_valid
        ):
            if not self._chrony_warned:
                self._chrony_warned = True
                log.warning(
                    "chrony hand-off paused: %s gives %s time without a UTC offset",
                    info.name,
                    info.timescale.name,
                )
            return
        mono = time.monotonic_ns()
        system = self.clock_map.to_realtime(mono)
        leap = {Leap.INSERT_SECOND: 1, Leap.DELETE_SECOND: 2}.get(info.leap, 0)
        self._chrony.send(SockSample(system, self.served_utc(mono) - system, leap))

    # -- state file ----------------------------------------------------------------------------
    def _load_state(self) -> None:
        path = self.cfg.holdover.state_file
        if not path:
            return
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.warning("state file %s unreadable (%s); starting without it", path, e)
            return
        try:
            for ev in self.discipline.restore_state(data):
                log.info("%s: %s", ev.kind, ev.detail)
        except ValueError as err:
            log.warning("state file %s rejected: %s", path, err)

    def save_state(self) -> None:
        path = self.cfg.holdover.state_file
        if not path or self.discipline.published is None:
            return
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.discipline.save_state(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # -- main loop --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        from netclock.platform.shm_writer import ShmWriter, resolve_shm_path
        from netclock.platform.status_socket import StatusServer, resolve_socket_path

        cfg = self.cfg
        self._load_state()
        if self._record_path:
            self._record = open(self._record_path, "a", encoding="utf-8")  # noqa: SIM115
            head = {
                "netclock_run_record": 1,
                "program": "netclock",
                "version": __version__,
                "started_mono_ns": self.started_mono_ns,
            }
            self._record.write(json.dumps(head) + "\n")
        shm_path = resolve_shm_path(cfg.publish.shm_path)
        tasks: list[asyncio.Task[None]] = []
        status: StatusServer | None = None
        metrics = None
        try:
            if cfg.publish.shm:
                self._shm = ShmWriter(
                    shm_path, group=cfg.publish.shm_group or None, slots=cfg.publish.shm_slots
                )
                log.info("publishing shared memory at %s", shm_path)
            if cfg.publish.socket:
                sock_path = resolve_socket_path(cfg.publish.socket_path, shm_path)
                status = StatusServer(
                    sock_path, self.snapshot, group=cfg.publish.socket_group or None
                )
                await status.start()
                log.info("status socket at %s", sock_path)
            if cfg.metrics.enabled:
                from netclock.metrics import start_metrics_server  # needs prometheus_client

                metrics = start_metrics_server(
                    self.snapshot, cfg.metrics.listen_address, cfg.metrics.port
                )
                log.info("metrics at %s", metrics.url)
            if cfg.publish.chrony_sock:
                from netclock.platform.chrony import ChronySockFeeder

                self._chrony = ChronySockFeeder(cfg.publish.chrony_sock)
                log.info("feeding chronyd's SOCK refclock at %s", cfg.publish.chrony_sock)
            if cfg.reference.enabled:
                tasks.append(asyncio.create_task(self._reference_task()))
            self._start_ntp_sources()
            if cfg.ptp.enabled:
                from netclock.daemon.ptp_source import PtpSource

                self.ptp = PtpSource(self)
                await self.ptp.start()
            if cfg.ntp.serve:
                self._start_ntp_server()
            _settle_heap()
            await self._tick_loop(stop)
        finally:
            self.stopped = True
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            for drv in self._drivers:
                drv.stop()
            if self.ptp is not None:
                self.ptp.stop()
            for s in self._sockets:
                s.close()
            if status is not None:
                await status.close()
            if metrics is not None:
                metrics.close()
            with contextlib.suppress(OSError):
                self.save_state()
            if self._shm is not None:
                self._shm.close()
            if self._chrony is not None:
                self._chrony.close()
            if self._record is not None:
                self._record.close()

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set (and once more then): TICK_SLACK_S to TICK_MAX_S apart.

        The tick runs in the wake-up of a source's own timer (:meth:`wake`: a Delay_Req, an
        NTP request, a master's Sync) once TICK_SLACK_S has passed since the last one, so an
        agent whose sources wake it anyway (a PTP slave's Delay_Reqs, 0 to 2 intervals apart)
        never wakes just to tick. Its own timer, a plain ``call_at`` (no task, future or
        ``asyncio.wait`` per tick), fires only when no such wake-up came for TICK_MAX_S.
        Periodic work of the sources (reading polled sockets, a master's once-a-second
        refresh) runs in the tick, through :meth:`add_tick_hook`.
        """
        interval_ns = round(self.cfg.holdover.state_interval_s * NS_PER_S)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def fire() -> None:
            if done.done():
                return
            self._tick_handle = None
            try:
                self._run_tick(loop, interval_ns)
            except Exception as exc:  # the daemon stops on it, as it would on a failed await
                done.set_exception(exc)
                return
            self._tick_handle = loop.call_at(loop.time() + TICK_MAX_S, fire)

        def stopped(_: object) -> None:
            if not done.done():
                done.set_result(None)

        # One waiter for the whole run (wait_for would make and cancel a task every tick).
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(stopped)
        self._last_tick = loop.time()
        self._tick_fire = fire
        self._tick_handle = loop.call_at(loop.time() + TICK_MAX_S, fire)
        try:
            await done
            self._run_tick(loop, interval_ns)
        finally:
            stopping.cancel()
            if self._tick_handle is not None:
                self._tick_handle.cancel()
                self._tick_handle = None
            self._tick_fire = None
            self._last_tick = None

    def _run_tick(self, loop: asyncio.AbstractEventLoop, interval_ns: int) -> None:
        now_s = loop.time()
        self._last_tick = now_s
        self._in_tick = True
        try:
            for hook in list(self._tick_hooks):
                hook(now_s)  # first: what the polled sockets hold is heard before the tick
            self._tick(interval_ns)
        finally:
            self._in_tick = False

    def wake(self) -> None:
        """A source's timer woke the loop: tick here if the last tick is TICK_SLACK_S old.

        The tick then needs no wake-up of its own: its timer is re-armed TICK_MAX_S from now.
        """
        last, fire, handle = self._last_tick, self._tick_fire, self._tick_handle
        if last is None or fire is None or handle is None or self._in_tick:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - last < TICK_SLACK_S:
            return
        handle.cancel()
        fire()

    def add_tick_hook(self, hook: Callable[[float], None]) -> None:
        """Call ``hook(loop_time)`` in every tick (before the discipline's own tick work)."""
        self._tick_hooks.append(hook)

    def remove_tick_hook(self, hook: Callable[[float], None]) -> None:
        with contextlib.suppress(ValueError):
            self._tick_hooks.remove(hook)

    def _tick(self, interval_ns: int) -> None:
        now = time.monotonic_ns()
        events = self.discipline.tick(now)
        self._after_update(now, events)
        if self._chrony is not None:
            self._feed_chrony(now)
        if now - self._last_state_save >= interval_ns:
            self._last_state_save = now
            try:
                self.save_state()
            except OSError as e:
                log.warning("cannot write state file: %s", e)


def _settle_heap() -> None:
    """Move everything allocated at start (modules, config, sockets) out of the collector's way.

    The cyclic garbage collector's full passes otherwise re-traverse every object the imports
    made (hundreds of thousands) several times a minute, for nothing: they live for the whole
    run. After ``gc.freeze()`` a pass visits only what the running daemon allocated.
    """
    gc.collect()
    gc.freeze()


def _count(info: _SourceInfo, msg: str, rx: int = 0, tx: int = 0, bad: int = 0) -> None:
    c = info.packets.setdefault(msg, [0, 0, 0])
    c[0] += rx
    c[1] += tx
    c[2] += bad


def _refid_of(address: str) -> bytes:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address.encode()[:4].ljust(4, b"\0")
    if ip.version == 4:
        return ip.packed
    import hashlib

    return hashlib.md5(ip.packed, usedforsecurity=False).digest()[:4]


def _identity(info: _SourceInfo) -> tuple[IdentityKind, bytes]:
    import ipaddress

    if info.kind == "ptp" and info.identity_bytes:
        return IdentityKind.PTP_CLOCK, info.identity_bytes[:8]
    if info.kind == "ntp":
        try:
            ip = ipaddress.ip_address(info.identity)
        except ValueError:
            return IdentityKind.REFID, info.identity_bytes[:4]
        kind = IdentityKind.IPV4 if ip.version == 4 else IdentityKind.IPV6
        return kind, ip.packed
    return IdentityKind.REFID, info.identity_bytes[:4] or b"LOCL"
