"""THE metric catalogue: every netclock Prometheus metric is declared here, once.

One custom collector (:class:`NetclockCollector`) turns the latest
:class:`~netclock.observe.Snapshot` into metric families on each scrape; nothing is kept
between scrapes (prometheus client_python's custom-collector pattern, ntpd-rs's one metrics
file). Names follow Prometheus conventions: ``netclock_*``, base units (``_seconds``,
``_total``); rates are in ppb, as people read them. Exposition for one domain and one
source looks like::

    # HELP netclock_lock_state Lock state of the published time of a domain.
    # TYPE netclock_lock_state gauge
    netclock_lock_state{domain="0",netclock_lock_state="freerun"} 0.0
    netclock_lock_state{domain="0",netclock_lock_state="locked"} 1.0
    ...
    # HELP netclock_source_offset_seconds Latest measured offset of a source ...
    # TYPE netclock_source_offset_seconds gauge
    netclock_source_offset_seconds{kind="ptp",source="ptp:eth0:0"} 1.25e-07
    # HELP netclock_packets_received_total Packets received from a source, by message type.
    # TYPE netclock_packets_received_total counter
    netclock_packets_received_total{message_type="sync",source="ptp:eth0:0"} 640.0

:func:`start_metrics_server` serves a registry holding this collector (and the process
collector: CPU, RSS) over HTTP, on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from netclock import __version__
from netclock.observe import LockState, Quality, Snapshot, Timescale

__all__ = [
    "CAPTURE_CATALOGUE",
    "CAPTURE_LATENCY_BUCKETS_NS",
    "CATALOGUE",
    "CaptureCollector",
    "CaptureStats",
    "MetricSpec",
    "MetricsServer",
    "NetclockCollector",
    "make_capture_registry",
    "make_registry",
    "start_capture_metrics_server",
    "start_metrics_server",
]

NS_PER_S = 1e9


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    """Full exposition name (``_total`` included for counters, ``_info`` for info)."""
    type: str
    """``gauge``, ``counter``, ``info``, ``stateset`` or ``histogram``."""
    help: str
    labels: tuple[str, ...] = ()


_D = ("domain",)
_S = ("source", "kind")
_P = ("source", "message_type")

#: Every metric netclock exports.
CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("netclock_up", "gauge", "1 when the daemon has produced a snapshot."),
    MetricSpec("netclock_build_info", "info", "netclock version.", ("version",)),
    MetricSpec("netclock_uptime_seconds", "gauge", "Time since the daemon started."),
    # -- per domain: the published time --------------------------------------------------------
    MetricSpec(
        "netclock_lock_state", "stateset", "Lock state of the published time of a domain.", _D
    ),
    MetricSpec(
        "netclock_quality", "stateset", "Quality class (locked, holdover in/out of spec).", _D
    ),
    MetricSpec("netclock_timescale", "stateset", "Timescale of the published time.", _D),
    MetricSpec(
        "netclock_error_bound_seconds",
        "gauge",
        "Error bound of the published time now (bound + growth x age).",
        _D,
    ),
    MetricSpec(
        "netclock_error_bound_growth_ratio",
        "gauge",
        "How fast the error bound grows with age (seconds per second).",
        _D,
    ),
    MetricSpec("netclock_holdover_seconds", "gauge", "Time spent in holdover so far.", _D),
    MetricSpec("netclock_steps_total", "counter", "Steps of the published time.", _D),
    MetricSpec("netclock_calibration_epoch", "gauge", "Calibration epoch (bumped per step).", _D),
    MetricSpec(
        "netclock_calibration_age_seconds", "gauge", "Time since the calibration was updated.", _D
    ),
    MetricSpec("netclock_rate_ppb", "gauge", "Fitted rate of network time vs local, minus 1.", _D),
    MetricSpec("netclock_r_squared", "gauge", "r^2 of the calibration fit.", _D),
    MetricSpec("netclock_utc_offset_seconds", "gauge", "TAI - UTC announced by the source.", _D),
    MetricSpec(
        "netclock_leap_indicator", "gauge", "Pending leap second: +1 insert, -1 delete, 0.", _D
    ),
    MetricSpec(
        "netclock_grandmaster_info",
        "info",
        "Grandmaster or server the domain follows.",
        (*_D, "identity"),
    ),
    # -- per source ----------------------------------------------------------------------------
    MetricSpec(
        "netclock_source_offset_seconds",
        "gauge",
        "Latest measured offset of a source (source - published time).",
        _S,
    ),
    MetricSpec("netclock_source_path_delay_seconds", "gauge", "Latest path delay to a source.", _S),
    MetricSpec("netclock_source_rate_ppb", "gauge", "Rate of a source vs local, minus 1.", _S),
    MetricSpec("netclock_source_r_squared", "gauge", "r^2 of a source's fit.", _S),
    MetricSpec("netclock_source_selected", "gauge", "1 for the source the time follows.", _S),
    MetricSpec("netclock_source_reachable", "gauge", "1 when a source answers.", _S),
    MetricSpec("netclock_source_priority", "gauge", "Failover priority (lower first).", _S),
    MetricSpec(
        "netclock_source_stamp", "stateset", "Where receive timestamps come from.", ("source",)
    ),
    MetricSpec(
        "netclock_source_info",
        "info",
        "Source identity and protocol state.",
        (*_S, "identity", "state"),
    ),
    MetricSpec(
        "netclock_packets_received_total",
        "counter",
        "Packets received from a source, by message type.",
        _P,
    ),
    MetricSpec(
        "netclock_packets_sent_total", "counter", "Packets sent to a source, by message type.", _P
    ),
    MetricSpec(
        "netclock_packets_malformed_total",
        "counter",
        "Packets from a source that failed to parse, by message type.",
        _P,
    ),
)

_C = ("source", "kind")

#: Every metric ``netclock capture --metrics-port`` exports (one series per capture source,
#: ``source`` = the ``--source`` argument, ``kind`` = pipewire, alsa or v4l2).
CAPTURE_CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("netclock_capture_frames_total", "counter", "Frame records written.", _C),
    MetricSpec(
        "netclock_capture_gaps_total",
        "counter",
        "Sequence gaps reported by the subsystem (each may span several frames).",
        _C,
    ),
    MetricSpec(
        "netclock_capture_lost_frames_total",
        "counter",
        "Frames missing from the subsystem's sequence numbers (lost before the agent).",
        _C,
    ),
    MetricSpec(
        "netclock_capture_dropped_frames_total",
        "counter",
        "Frames lost inside the agent (queue overflow, ALSA overrun).",
        _C,
    ),
    MetricSpec(
        "netclock_capture_unsynced_frames_total",
        "counter",
        "Frames stamped while the time domain was not locked (flagged, bound grown).",
        _C,
    ),
    MetricSpec(
        "netclock_capture_unmapped_frames_total",
        "counter",
        "Frames whose subsystem clock could not be mapped to CLOCK_MONOTONIC.",
        _C,
    ),
    MetricSpec(
        "netclock_capture_latency_seconds",
        "histogram",
        "Stamp-to-arrival latency: when the agent saw a frame minus its capture instant.",
        _C,
    ),
    MetricSpec(
        "netclock_capture_uncertainty_seconds",
        "gauge",
        "Uncertainty bound (sync error + stamp uncertainty) of the latest frame.",
        _C,
    ),
    MetricSpec(
        "netclock_capture_synced", "gauge", "1 when the latest frame was stamped in sync.", _C
    ),
)

#: Upper bounds (ns) of the latency histogram buckets (+Inf is implicit).
CAPTURE_LATENCY_BUCKETS_NS: tuple[int, ...] = (
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """One capture source's counters at one moment (what :class:`CaptureCollector` exports)."""

    source: str
    kind: str
    frames: int = 0
    gaps: int = 0
    lost: int = 0
    dropped: int = 0
    unsynced: int = 0
    unmapped: int = 0
    latency_buckets: tuple[int, ...] = ()
    """Observations per bucket of :data:`CAPTURE_LATENCY_BUCKETS_NS` (not cumulative), then
    one more for +Inf; empty when nothing was observed."""
    latency_sum_ns: int = 0
    uncertainty_ns: int | None = None
    synced: bool | None = None


_BY_NAME = {m.name: m for m in (*CATALOGUE, *CAPTURE_CATALOGUE)}
_STAMPS = ("hardware", "kernel", "user")


def _family(name: str) -> Metric:
    spec = _BY_NAME[name]
    labels = list(spec.labels)
    if spec.type == "gauge":
        return GaugeMetricFamily(name, spec.help, labels=labels)
    if spec.type == "counter":
        return CounterMetricFamily(name, spec.help, labels=labels)
    if spec.type == "histogram":
        return HistogramMetricFamily(name, spec.help, labels=labels)
    if spec.type == "info":
        return InfoMetricFamily(name.removesuffix("_info"), spec.help, labels=labels[:1])
    return StateSetMetricFamily(name, spec.help, labels=labels)


class NetclockCollector(Collector):
    """Turns ``snapshot()`` into metric families at each scrape.

    ``snapshot`` returns the latest :class:`Snapshot` (or ``None`` before the first);
    ``now_ns`` reads CLOCK_MONOTONIC (injectable for tests) to age the error bound.
    """

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        *,
        now_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._snapshot = snapshot
        self._now_ns = now_ns

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the snapshot; nothing to pre-declare

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        now = self._now_ns()
        up = _family("netclock_up")
        assert isinstance(up, GaugeMetricFamily)
        up.add_metric([], 1.0 if snap is not None else 0.0)
        yield up
        info = InfoMetricFamily("netclock_build", _BY_NAME["netclock_build_info"].help)
        info.add_metric([], {"version": snap.version if snap and snap.version else __version__})
        yield info
        if snap is None:
            return
        yield from self._program(snap)
        yield from self._domains(snap, now)
        yield from self._sources(snap)

    # -- parts --------------------------------------------------------------------------------
    def _program(self, snap: Snapshot) -> Iterator[Metric]:
        f = _family("netclock_uptime_seconds")
        assert isinstance(f, GaugeMetricFamily)
        f.add_metric([], max(0, snap.taken_mono_ns - snap.started_mono_ns) / NS_PER_S)
        yield f

    def _domains(self, snap: Snapshot, now: int) -> Iterator[Metric]:
        fams: dict[str, Any] = {m.name: _family(m.name) for m in CATALOGUE if m.labels[:1] == _D}
        for d in snap.domains:
            lab = [str(d.domain)]

            def put(name: str, value: float | None, lab: list[str] = lab) -> None:
                if value is not None:
                    fams[name].add_metric(lab, value)

            fams["netclock_lock_state"].add_metric(
                lab, {s.name.lower(): s == d.lock_state for s in LockState}
            )
            fams["netclock_quality"].add_metric(
                lab, {q.name.lower(): q == d.quality for q in Quality}
            )
            fams["netclock_timescale"].add_metric(
                lab, {t.name.lower(): t == d.timescale for t in Timescale}
            )
            age = max(0, now - d.update_mono_ns) if d.update_mono_ns else 0
            growth_ns = -(-(d.error_growth_ps_per_s * age) // 10**12)
            put("netclock_error_bound_seconds", (d.error_bound_ns + growth_ns) / NS_PER_S)
            put("netclock_error_bound_growth_ratio", d.error_growth_ps_per_s / 1e12)
            put("netclock_holdover_seconds", d.holdover_ns / NS_PER_S)
            put("netclock_steps_total", float(d.steps_total))
            put("netclock_calibration_epoch", float(d.epoch))
            if d.update_mono_ns:
                put("netclock_calibration_age_seconds", age / NS_PER_S)
            put("netclock_rate_ppb", d.rate_ppb)
            put("netclock_r_squared", d.r_squared)
            if d.utc_offset_valid:
                put("netclock_utc_offset_seconds", float(d.utc_offset_s))
            put("netclock_leap_indicator", 1.0 if d.leap61 else -1.0 if d.leap59 else 0.0)
            if d.grandmaster:
                fams["netclock_grandmaster_info"].add_metric(lab, {"identity": d.grandmaster})
        yield from fams.values()

    def _sources(self, snap: Snapshot) -> Iterator[Metric]:
        names = [m.name for m in CATALOGUE if m.labels[:1] == ("source",)]
        fams: dict[str, Any] = {n: _family(n) for n in names}
        for s in snap.sources:
            lab = [s.name, s.kind]

            def put(name: str, value: float | None, lab: list[str] = lab) -> None:
                if value is not None:
                    fams[name].add_metric(lab, value)

            put("netclock_source_offset_seconds", _sec(s.offset_ns))
            put("netclock_source_path_delay_seconds", _sec(s.path_delay_ns))
            put("netclock_source_rate_ppb", s.rate_ppb)
            put("netclock_source_r_squared", s.r_squared)
            put("netclock_source_selected", 1.0 if s.selected else 0.0)
            put("netclock_source_reachable", 1.0 if s.reachable else 0.0)
            put("netclock_source_priority", float(s.priority))
            fams["netclock_source_stamp"].add_metric(
                [s.name], {st: st == s.stamp_source for st in _STAMPS}
            )
            fams["netclock_source_info"].add_metric(
                [s.name], {"kind": s.kind, "identity": s.identity, "state": s.state}
            )
            for p in s.packets:
                plab = [s.name, p.message_type]
                fams["netclock_packets_received_total"].add_metric(plab, float(p.received))
                fams["netclock_packets_sent_total"].add_metric(plab, float(p.sent))
                fams["netclock_packets_malformed_total"].add_metric(plab, float(p.malformed))
        yield from fams.values()


def _sec(ns: int | None) -> float | None:
    return None if ns is None else ns / NS_PER_S


def make_registry(
    snapshot: Callable[[], Snapshot | None],
    *,
    process: bool = True,
    now_ns: Callable[[], int] = time.monotonic_ns,
) -> CollectorRegistry:
    """A fresh registry with the netclock collector (and the process collector)."""
    reg = CollectorRegistry()
    reg.register(NetclockCollector(snapshot, now_ns=now_ns))
    if process:
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=reg)
    return reg


class CaptureCollector(Collector):
    """Turns ``stats()`` (one :class:`CaptureStats` per source) into families at each scrape."""

    def __init__(self, stats: Callable[[], Sequence[CaptureStats]]) -> None:
        self._stats = stats

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        fams: dict[str, Any] = {m.name: _family(m.name) for m in CAPTURE_CATALOGUE}
        counters = (
            ("netclock_capture_frames_total", "frames"),
            ("netclock_capture_gaps_total", "gaps"),
            ("netclock_capture_lost_frames_total", "lost"),
            ("netclock_capture_dropped_frames_total", "dropped"),
            ("netclock_capture_unsynced_frames_total", "unsynced"),
            ("netclock_capture_unmapped_frames_total", "unmapped"),
        )
        for st in self._stats():
            lab = [st.source, st.kind]
            for name, attr in counters:
                fams[name].add_metric(lab, float(getattr(st, attr)))
            counts = list(st.latency_buckets) or [0] * (len(CAPTURE_LATENCY_BUCKETS_NS) + 1)
            buckets: list[tuple[str, float]] = []
            acc = 0
            for le, n in zip((*CAPTURE_LATENCY_BUCKETS_NS, None), counts, strict=True):
                acc += n
                buckets.append(("+Inf" if le is None else repr(le / NS_PER_S), float(acc)))
            fams["netclock_capture_latency_seconds"].add_metric(
                lab, buckets, sum_value=st.latency_sum_ns / NS_PER_S
            )
            if st.uncertainty_ns is not None:
                fams["netclock_capture_uncertainty_seconds"].add_metric(
                    lab, st.uncertainty_ns / NS_PER_S
                )
            if st.synced is not None:
                fams["netclock_capture_synced"].add_metric(lab, 1.0 if st.synced else 0.0)
        yield from fams.values()


def make_capture_registry(
    stats: Callable[[], Sequence[CaptureStats]], *, process: bool = True
) -> CollectorRegistry:
    """A fresh registry with the capture collector (and the process collector)."""
    reg = CollectorRegistry()
    reg.register(CaptureCollector(stats))
    if process:
        from prometheus_client import ProcessCollector

        ProcessCollector(registry=reg)
    return reg


class MetricsServer:
    """A running metrics HTTP endpoint; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        try:
            self._httpd, self._thread = start_http_server(port, addr=address, registry=registry)
        except OSError as e:
            hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)" if 0 < port < 1024 else ""
            raise OSError(
                e.errno, f"cannot serve metrics on {address}:{port}: {e.strerror}{hint}"
            ) from e
        self.address = address
        self.port: int = self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    snapshot: Callable[[], Snapshot | None],
    address: str = "127.0.0.1",
    port: int = 9468,
    *,
    process: bool = True,
) -> MetricsServer:
    """Serve ``/metrics`` for ``snapshot()`` on ``address:port`` (127.0.0.1 by default)."""
    return MetricsServer(make_registry(snapshot, process=process), address, port)


def start_capture_metrics_server(
    stats: Callable[[], Sequence[CaptureStats]],
    address: str = "127.0.0.1",
    port: int = 9469,
    *,
    process: bool = True,
) -> MetricsServer:
    """Serve a capture agent's ``/metrics`` on ``address:port`` (127.0.0.1 by default)."""
    return MetricsServer(make_capture_registry(stats, process=process), address, port)
