"""Named fault scenarios with pass limits (chrony-test / linuxptp-testsuite style).

Pure module. Each :class:`LibraryScenario` runs one deterministic simulation and returns the
error series ``published time - true master time`` sampled every 100 ms (plus named extra
checks). :func:`evaluate` scores it with :func:`~netclock.sim.metrics.compute_metrics` and
compares against the scenario's :class:`Limits`:

* ``lock_s``: the run must lock (every sample from then on below ``lock_threshold_ns``) no
  later than this many seconds after the start;
* ``rms_ns`` / ``max_ns``: RMS and maximum of ``|error|`` over the samples after lock.

Four harnesses, all on the simulator's clocks and links:

* ``twoway``: :func:`~netclock.sim.twoway.run_twoway` (the generic two-way exchange into the
  windowed estimator), with optional per-direction link specs and outage windows;
* ``discipline``: the same, but the slave is the daemon's :class:`~netclock.discipline.
  Discipline` (lock state machine, holdover, state file), restarted mid-run if asked;
* ``ntp``: real :class:`~netclock.ntp.source.NtpSource` / :class:`~netclock.ntp.server.
  NtpServer` bytes between one client and several servers, through
  :class:`~netclock.ntp.select.NtpClient` selection (falsetickers);
* ``ptp``: real :class:`~netclock.ptp.instance.PtpInstance` ports (BMCA, failover, time
  properties: leap second and UTC-offset changes).

``netclock sim --scenario NAME`` runs one; ``tests/scenarios`` runs them all.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from netclock.calibration import Calibration, WindowedCalibration
from netclock.discipline import Discipline, DisciplineConfig, SourceConfig
from netclock.estimators import create_estimator
from netclock.estimators.base import TwoWaySample
from netclock.ntp.select import NtpClient
from netclock.ntp.source import NtpSource
from netclock.ntp.source import SourceConfig as NtpSourceConfig
from netclock.ptp.datasets import PortState, TimePropertiesDS
from netclock.ptp.instance import PtpInstance
from netclock.ptp.port import PortConfig
from netclock.ptp.wire import ClockIdentity, PortIdentity
from netclock.sim.clock import ClockStep, SimClock
from netclock.sim.link import Link, LinkSpec
from netclock.sim.metrics import Metrics, compute_metrics
from netclock.sim.network import SimNetwork
from netclock.sim.nodes import UNIX_BASE, NtpClientNode, NtpServerNode, PtpNode
from netclock.sim.scenario import START_NS, Scenario, SpikeSpec, StepSpec, interval_ns
from netclock.sim.scheduler import Scheduler
from netclock.sim.twoway import run_twoway

__all__ = [
    "SCENARIOS",
    "LibraryScenario",
    "Limits",
    "Series",
    "Verdict",
    "evaluate",
    "verdict_dict",
]

NS = 1_000_000_000
US = 1_000
MS = 1_000_000
SAMPLE_NS = 100 * MS


@dataclass(frozen=True, slots=True)
class Limits:
    rms_ns: float
    max_ns: float
    lock_s: float
    lock_threshold_ns: int = 10 * US


@dataclass
class Series:
    """What a harness produced: true sample times, errors (None: nothing published yet),
    named pass/fail checks beyond the limits, and figures worth printing."""

    times_ns: list[int] = field(default_factory=list)
    errors_ns: list[int | None] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    info: dict[str, float | int | str | None] = field(default_factory=dict)
    #: lock states the Discipline went through, in order (discipline harness only)
    states: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LibraryScenario:
    name: str
    description: str
    limits: Limits
    run: Callable[[int], Series]
    harness: str


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    passed: bool
    metrics: Metrics
    failures: tuple[str, ...]
    info: dict[str, float | int | str | None]


def evaluate(sc: LibraryScenario, seed: int = 1) -> Verdict:
    """Run ``sc`` and compare it with its limits."""
    s = sc.run(seed)
    lim = sc.limits
    m = compute_metrics(s.times_ns, s.errors_ns, start_ns=s.times_ns[0] - SAMPLE_NS,
                        lock_threshold_ns=lim.lock_threshold_ns)
    fails: list[str] = []
    if not m.locked or m.lock_time_s is None:
        fails.append(f"never locked within {lim.lock_threshold_ns} ns")
    elif m.lock_time_s > lim.lock_s:
        fails.append(f"lock time {m.lock_time_s:.1f} s > {lim.lock_s} s")
    if not m.rms_error_ns <= lim.rms_ns:
        fails.append(f"rms error {m.rms_error_ns:.0f} ns > {lim.rms_ns:.0f} ns")
    if not m.max_error_ns <= lim.max_ns:
        fails.append(f"max error {m.max_error_ns:.0f} ns > {lim.max_ns:.0f} ns")
    fails += [f"check failed: {name}" for name, ok in s.checks if not ok]
    info = dict(s.info)
    info.update({f"check:{name}": "ok" if ok else "FAILED" for name, ok in s.checks})
    return Verdict(sc.name, not fails, m, tuple(fails), info)


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(v, 3)


def verdict_dict(v: Verdict, sc: LibraryScenario) -> dict[str, object]:
    """The JSON object ``netclock sim --scenario NAME --json`` prints."""
    m, lim = v.metrics, sc.limits
    return {
        "scenario": v.name,
        "description": sc.description,
        "harness": sc.harness,
        "passed": v.passed,
        "failures": list(v.failures),
        "rms_error_ns": _num(m.rms_error_ns),
        "max_error_ns": _num(m.max_error_ns),
        "lock_time_s": _num(m.lock_time_s),
        "limits": {"rms_ns": lim.rms_ns, "max_ns": lim.max_ns, "lock_s": lim.lock_s,
                   "lock_threshold_ns": lim.lock_threshold_ns},
        "samples": m.samples,
        "info": v.info,
    }


# =============================================================================================
# twoway harness (+ outages), and the Discipline adapter (holdover, state file restart)
# =============================================================================================


class _GatedLink(Link):
    """A link that drops every packet sent inside one of its outage windows (true ns)."""

    def __init__(self, spec: LinkSpec, rng: random.Random,
                 down: tuple[tuple[int, int], ...]) -> None:
        super().__init__(spec, rng)
        self._down = down

    def transit(self, send_ns: int) -> int | None:
        t = super().transit(send_ns)
        if t is not None and any(a <= send_ns < b for a, b in self._down):
            self.lost += 1
            return None
        return t


class _DisciplineEstimator:
    """The daemon's Discipline behind the simulator's Estimator interface; it can be
    restarted (optionally from a saved state file) once local time passes ``restart_local``."""

    name = "discipline"

    def __init__(self, restart_local: int | None, with_state: bool) -> None:
        self._cfg = DisciplineConfig(window_size=16, window_span_ns=16 * NS)
        self.d = self._new()
        self._restart_local = restart_local
        self._with_state = with_state
        self.restarted = False
        self.restored = ""
        #: (local ns, lock state name) at every published-time read
        self.states: list[tuple[int, str]] = []

    def _new(self) -> Discipline:
        return Discipline(self._cfg, (SourceConfig("net", timeout_ns=4 * NS),))

    def _maybe_restart(self, now: int) -> None:
        if self._restart_local is None or self.restarted or now < self._restart_local:
            return
        saved = json.loads(json.dumps(self.d.save_state()))  # through a "file"
        self.d = self._new()
        if self._with_state:
            self.restored = "; ".join(e.detail for e in self.d.restore_state(saved))
        self.restarted = True

    def update(self, sample: TwoWaySample, now: int) -> None:
        self._maybe_restart(now)
        self.d.observe("net", sample.local_mid, sample.master_mid,
                       max(sample.rtt_ns // 2, 1), now)

    def to_master(self, local_ns: int) -> int | None:
        self._maybe_restart(local_ns)
        self.d.tick(local_ns)
        self.states.append((local_ns, self.d.state.name))
        cal = self.d.published
        return None if cal is None else cal.to_external(local_ns)

    def rate_ppb(self) -> float | None:
        cal = self.d.published
        return None if cal is None else cal.rate_ppb()

    @property
    def epoch(self) -> int:
        cal = self.d.published
        return 0 if cal is None else cal.epoch


def _twoway(
    sc: Scenario,
    *,
    ms: LinkSpec | None = None,
    sm: LinkSpec | None = None,
    outages_s: tuple[tuple[float, float], ...] = (),
    discipline: tuple[float | None, bool] | None = None,
    score_from_s: float = 0.0,
) -> Callable[[int], Series]:
    """A runner for ``sc`` (seeded per run) with optional per-direction links, outage windows
    ``(start_s, end_s)`` on both directions, and the Discipline as the slave
    (``(restart_at_s or None, with_state_file)``). Samples before ``score_from_s`` are dropped
    (a restarted agent is scored from its restart)."""

    def run(seed: int) -> Series:
        s = replace(sc, seed=seed)

        def rng(part: str) -> random.Random:
            return random.Random(f"netclock-library:{seed}:{part}")

        master = SimClock(start_ns=START_NS, freq_ppm=s.master_drift_ppm,
                          wander_ppb=s.master_wander_ppb,
                          steps=[ClockStep(START_NS + round(x.at_s * NS), x.step_ns)
                                 for x in s.steps], rng=rng("master"))
        slave = SimClock(start_ns=START_NS, offset_ns=round(s.slave_uptime_s * NS) - START_NS,
                         freq_ppm=s.drift_ppm, wander_ppb=s.wander_ppb, temp_ppb=s.temp_ppb,
                         temp_period_ns=round(s.temp_period_s * NS), rng=rng("slave"))
        base = LinkSpec(base_ns=round(s.delay_us * US), jitter_ns=s.jitter_us * US,
                        jitter_dist=s.jitter_dist if s.jitter_us > 0 else "none",
                        loss=s.loss, reorder=s.reorder,
                        spikes=tuple(x.to_spike() for x in s.spikes),
                        spike_rate_per_s=s.spike_rate_per_min / 60.0,
                        spike_ns=round(s.spike_us * US), spike_mean_s=s.spike_mean_s)
        fspec, rspec = ms or base, sm or base
        rev_extra = -(round(s.asymmetry_us * US) // 2)
        fwd_extra = round(s.asymmetry_us * US) + rev_extra
        down = tuple((START_NS + round(a * NS), START_NS + round(b * NS)) for a, b in outages_s)
        fwd = _GatedLink(replace(fspec, extra_ns=fspec.extra_ns + fwd_extra), rng("ms"), down)
        rev = _GatedLink(replace(rspec, extra_ns=rspec.extra_ns + rev_extra), rng("sm"), down)
        ivl = interval_ns(s.interval_log2)
        if discipline is None:
            est = create_estimator(s.estimator, ivl / NS)
        else:
            at_s, with_state = discipline
            at_local = None if at_s is None else slave.read(START_NS + round(at_s * NS))
            est = _DisciplineEstimator(at_local, with_state)
        r = run_twoway(master_clock=master, slave_clock=slave, forward=fwd, reverse=rev,
                       estimator=est, start_ns=START_NS, duration_ns=round(s.duration_s * NS),
                       interval_ns=ivl, sample_interval_ns=SAMPLE_NS,
                       turnaround_ns=round(s.turnaround_us * US), hold=s.hold)
        cut = START_NS + round(score_from_s * NS)
        keep = [i for i, t in enumerate(r.times_ns) if t > cut]
        out = Series([r.times_ns[i] - cut + START_NS for i in keep],
                     [r.errors_ns[i] for i in keep])
        out.info.update(exchanges=r.exchanges, lost_ms=fwd.lost, lost_sm=rev.lost)
        if isinstance(est, _DisciplineEstimator):
            out.info["state_end"] = est.d.state.name
            out.info["restored"] = est.restored or None
            for _, st in est.states:
                if not out.states or out.states[-1] != st:
                    out.states.append(st)
            out.info["states"] = " > ".join(out.states)
        return out

    return run


def _holdover_check(
    sc: Scenario, outage: tuple[float, float], max_holdover_error_ns: int
) -> Callable[[int], Series]:
    """A Discipline run with one outage: also checks the error stays under the bound during
    the outage (HOLDOVER) and that the Discipline says HOLDOVER at the end of it."""
    inner = _twoway(sc, outages_s=(outage,), discipline=(None, False))

    def run(seed: int) -> Series:
        s = inner(seed)
        a, b = (START_NS + round(x * NS) for x in outage)
        during = [abs(e) for t, e in zip(s.times_ns, s.errors_ns, strict=True)
                  if e is not None and a <= t < b]
        worst = max(during, default=0)
        s.info["holdover_max_error_ns"] = worst
        s.checks.append((f"holdover error < {max_holdover_error_ns} ns",
                         len(during) > 0 and worst < max_holdover_error_ns))
        s.checks.append(("LOCKED > HOLDOVER > relocked",
                         "LOCKED" in s.states
                         and "HOLDOVER" in s.states[s.states.index("LOCKED"):]
                         and s.states[-1] in ("LOCKED", "LOCKING")))
        return s

    return run


# =============================================================================================
# NTP harness: real client/server bytes, several servers, selection
# =============================================================================================

def _ntp(
    *,
    offsets_ns: tuple[int, ...] = (0,),
    link: LinkSpec | None = None,
    drift_ppm: float = 10.0,
    minpoll: int = -2,
    duration_s: int = 60,
    truth: int = 0,
) -> Callable[[int], Series]:
    """Servers serve their own clock + ``offsets_ns[i]``; true time is server ``truth``'s
    clock without its offset (falsetickers are the servers whose offset is far from 0)."""

    def run(seed: int) -> Series:
        sched = Scheduler()
        net = SimNetwork(sched)
        cclock = SimClock(offset_ns=12_345 * NS, freq_ppm=drift_ppm, rng=random.Random(seed))
        names = [f"s{i}" for i in range(len(offsets_ns))]
        srcs = {n: NtpSource(NtpSourceConfig(minpoll=minpoll, maxpoll=minpoll),
                             random.Random(seed * 10 + i), pivot_unix_ns=UNIX_BASE)
                for i, n in enumerate(names)}
        cal = WindowedCalibration(window_size=16, window_threshold=4, step_threshold_ns=200_000)
        client = NtpClient(cal, min_sources=min(len(names), 2))
        net.add_node("client", cclock, NtpClientNode(srcs, client))
        spec = link or LinkSpec(base_ns=100 * US, jitter_ns=5 * US)
        for i, (n, off) in enumerate(zip(names, offsets_ns, strict=True)):
            net.add_node(n, SimClock(), NtpServerNode(off))
            net.connect("client", n, Link(spec, random.Random(seed * 100 + i)))
            net.connect(n, "client", Link(spec, random.Random(seed * 100 + 50 + i)))
        net.start()
        ref = net.clock(names[truth])
        out = Series()
        for k in range(duration_s * 10):
            sched.run_until((k + 1) * SAMPLE_NS)
            t = sched.now
            c = cal.calibration
            out.times_ns.append(START_NS + t)
            out.errors_ns.append(None if c is None else
                                 c.to_external(cclock.read(t)) - (ref.read(t) + UNIX_BASE))
        out.info["epoch"] = cal.epoch
        return out

    return run


# =============================================================================================
# PTP harness: real ports, BMCA, failover, time properties
# =============================================================================================

PTP_EPOCH = 1_700_000_000 * NS
#: a UTC midnight (unix s) 60 s after the simulation starts, and TAI - UTC before it
LEAP_UTC_S = 1_700_006_400
TAI_UTC = 37


def _ptp_failover(kill_at_s: int = 20, duration_s: int = 45,
                  disagreement_ns: int = 1_000) -> Callable[[int], Series]:
    """A grandmaster, a backup (disagreeing by ``disagreement_ns``) and a slave; the GM goes
    silent at ``kill_at_s``. Error is against the slave's current parent; the largest jump of
    the published time beyond the masters' disagreement is checked (≤ 10 µs)."""

    def run(seed: int) -> Series:
        sched = Scheduler()
        net = SimNetwork(sched)
        names = ["gm", "backup", "s"]
        cfgs = {"gm": PortConfig(priority1=100, log_sync_interval=-3),
                "backup": PortConfig(priority1=110, log_sync_interval=-3),
                "s": PortConfig(slave_only=True, log_min_delay_req_interval=-3)}
        insts: dict[str, PtpInstance] = {}
        adapters: dict[str, PtpNode] = {}
        clocks: dict[str, SimClock] = {}
        for i, n in enumerate(names):
            inst = PtpInstance(cfgs[n], PortIdentity(ClockIdentity(bytes([i + 1]) * 8), 1),
                               random.Random(seed * 7 + i))
            inst.port.set_time_source(Calibration(0, PTP_EPOCH))
            insts[n], adapters[n] = inst, PtpNode(n, [p for p in names if p != n], inst)
            clocks[n] = SimClock(offset_ns=disagreement_ns if n == "backup" else 0,
                                 freq_ppm=7.0 if n == "s" else 0.0,
                                 rng=random.Random(seed * 7 + i))
            net.add_node(n, clocks[n], adapters[n])
        k = 0
        for a in names:
            for b in names:
                if a != b:
                    net.connect(a, b, Link(LinkSpec(base_ns=30 * US, jitter_ns=200),
                                           random.Random(seed * 1000 + k)))
                    k += 1
        net.start()
        ident = {insts[n].port.identity: n for n in ("gm", "backup")}
        out = Series()
        prev: int | None = None
        jump = 0
        switched_at: float | None = None
        for j in range(duration_s * 10):
            sched.run_until((j + 1) * SAMPLE_NS)
            t = sched.now
            if t >= kill_at_s * NS:
                adapters["gm"].up = False
            pub = insts["s"].published(clocks["s"].read(t))
            parent = ident.get(insts["s"].port.parent) if insts["s"].port.parent else None
            if switched_at is None and parent == "backup" and t >= kill_at_s * NS:
                switched_at = t / NS
            ref = clocks[parent or "gm"].read(t) + PTP_EPOCH
            out.times_ns.append(START_NS + t)
            out.errors_ns.append(None if pub is None else pub.ptp_ns - ref)
            if pub is not None:
                expect = clocks["gm"].read(t) + PTP_EPOCH
                if prev is not None and j > 50:
                    jump = max(jump, abs((pub.ptp_ns - expect) - prev) - disagreement_ns)
                prev = pub.ptp_ns - expect
        out.info.update(failover_after_s=None if switched_at is None else switched_at - kill_at_s,
                        max_jump_beyond_disagreement_ns=jump,
                        backup_state=insts["backup"].state.name)
        out.checks.append(("slave follows the backup", switched_at is not None))
        out.checks.append(("backup became master", insts["backup"].state is PortState.MASTER))
        out.checks.append(("no published step > 10 µs beyond the masters' disagreement",
                           jump <= 10 * US))
        return out

    return run


def _ptp_time_properties(*, leap: bool, duration_s: int = 90) -> Callable[[int], Series]:
    """One GM and a slave. ``leap``: the GM announces leap61 from 30 s before a UTC midnight,
    then at it currentUtcOffset 37 → 38 and leap61 off (PTP time runs on). Otherwise the GM
    changes currentUtcOffset 37 → 36 at the same time without any warning (a UTC-offset
    correction). The PTP-time error must not move; the slave must follow the new offset
    within two announce intervals and publish UTC = PTP - offset."""

    def run(seed: int) -> Series:
        sched = Scheduler()
        net = SimNetwork(sched)
        tai_at_leap = (LEAP_UTC_S + TAI_UTC) * NS
        start_tai = tai_at_leap - 60 * NS  # the GM's PTP time at simulated t = 0
        mclock = SimClock(rng=random.Random(seed))
        sclock = SimClock(offset_ns=3 * MS, freq_ppm=-15.0, rng=random.Random(seed + 1))
        before = TimePropertiesDS(current_utc_offset=TAI_UTC, current_utc_offset_valid=True)
        master = PtpInstance(PortConfig(priority1=100, log_sync_interval=-3,
                                        time_properties=before),
                             PortIdentity(ClockIdentity(b"\x0a" * 8), 1), random.Random(seed))
        master.port.set_time_source(Calibration(0, start_tai))
        slave = PtpInstance(PortConfig(slave_only=True, log_min_delay_req_interval=-3),
                            PortIdentity(ClockIdentity(b"\x0b" * 8), 1),
                            random.Random(seed + 3))
        mad = PtpNode("m", ["s"], master)
        new_off = TAI_UTC + 1 if leap else TAI_UTC - 1
        if leap:
            mad.tp_changes.append((30 * NS, replace(before, leap61=True)))
        mad.tp_changes.append((60 * NS, replace(before, current_utc_offset=new_off)))
        net.add_node("m", mclock, mad)
        net.add_node("s", sclock, PtpNode("s", ["m"], slave))
        spec = LinkSpec(base_ns=50 * US, jitter_ns=500)
        net.connect("m", "s", Link(spec, random.Random(seed + 5)))
        net.connect("s", "m", Link(spec, random.Random(seed + 6)))
        net.start()
        out = Series()
        saw_leap61 = False
        followed_at: float | None = None
        utc_bad = 0
        for j in range(duration_s * 10):
            sched.run_until((j + 1) * SAMPLE_NS)
            t = sched.now
            true_tai = mclock.read(t) + start_tai
            pub = slave.published(sclock.read(t))
            out.times_ns.append(START_NS + t)
            out.errors_ns.append(None if pub is None else pub.ptp_ns - true_tai)
            if pub is None:
                continue
            saw_leap61 |= pub.leap61
            true_off = TAI_UTC if true_tai < tai_at_leap else new_off
            if abs(pub.utc_ns - (true_tai - true_off * NS)) > 100 * US:
                utc_bad += 1
            if followed_at is None and t >= 60 * NS and pub.current_utc_offset == new_off:
                followed_at = t / NS - 60
        announce_s = 2.0  # default logAnnounceInterval 1
        out.info.update(offset_followed_after_s=followed_at, utc_wrong_s=utc_bad / 10)
        if leap:
            out.checks.append(("slave saw leap61 before the leap", saw_leap61))
        out.checks.append(("slave follows the new UTC offset within 2 announce intervals",
                           followed_at is not None and followed_at <= 2 * announce_s))
        out.checks.append(("UTC wrong no longer than 2 announce intervals",
                           utc_bad / 10 <= 2 * announce_s))
        return out

    return run


# =============================================================================================
# The library
# =============================================================================================

_BASE = Scenario(duration_s=120.0, interval_log2=-1, jitter_us=2.0, delay_us=100.0)
_FAST_LOCK = Limits(rms_ns=1_500, max_ns=6_000, lock_s=10)


def _sc(**kw: object) -> Scenario:
    return replace(_BASE, **kw)  # type: ignore[arg-type]


def _mk() -> dict[str, LibraryScenario]:
    L = Limits
    items = [
        LibraryScenario("clean", "2 µs exponential jitter, 10 ppm drift: the baseline",
                        _FAST_LOCK, _twoway(_sc()), "twoway"),
        LibraryScenario("large-jitter", "200 µs mean exponential jitter both ways",
                        L(rms_ns=40_000, max_ns=400_000, lock_s=60,
                          lock_threshold_ns=500 * US),
                        _twoway(_sc(jitter_us=200.0)), "twoway"),
        LibraryScenario("heavy-tail-jitter", "Pareto (α 1.5) jitter, 20 µs mean",
                        L(rms_ns=4_000, max_ns=30_000, lock_s=30, lock_threshold_ns=50 * US),
                        _twoway(_sc(jitter_us=20.0, jitter_dist="pareto", pareto_alpha=1.5)),
                        "twoway"),
        LibraryScenario("normal-jitter", "symmetric normal jitter, σ 20 µs",
                        L(rms_ns=10_000, max_ns=60_000, lock_s=30, lock_threshold_ns=80 * US),
                        _twoway(_sc(jitter_us=20.0, jitter_dist="normal")), "twoway"),
        LibraryScenario("asymmetric-jitter",
                        "50 µs mean jitter master→slave, 1 µs slave→master (queueing one way)",
                        L(rms_ns=12_000, max_ns=60_000, lock_s=30, lock_threshold_ns=60 * US),
                        _twoway(_sc(), ms=LinkSpec(base_ns=100 * US, jitter_ns=50_000),
                                sm=LinkSpec(base_ns=100 * US, jitter_ns=1_000)), "twoway"),
        LibraryScenario("fixed-asymmetry", "40 µs path asymmetry: invisible, biases by 20 µs",
                        L(rms_ns=21_000, max_ns=24_000, lock_s=10, lock_threshold_ns=25 * US),
                        _twoway(_sc(asymmetry_us=40.0)), "twoway"),
        LibraryScenario("loss-30pct", "30 % of packets lost each way", _FAST_LOCK,
                        _twoway(_sc(loss=0.3)), "twoway"),
        LibraryScenario("loss-70pct", "70 % of packets lost each way",
                        L(rms_ns=2_000, max_ns=8_000, lock_s=30),
                        _twoway(_sc(loss=0.7)), "twoway"),
        LibraryScenario("intermittent", "link down 10 s out of every 30 s",
                        L(rms_ns=2_000, max_ns=8_000, lock_s=10),
                        _twoway(_sc(), outages_s=tuple((a, a + 10.0)
                                                       for a in range(20, 120, 30))), "twoway"),
        LibraryScenario("reordering", "20 % of packets held back 300 ms (overtaken)",
                        _FAST_LOCK,
                        _twoway(_sc(reorder=0.2)), "twoway"),
        LibraryScenario("delay-spikes", "random 2 ms delay spikes (1/min, 2 s long)",
                        L(rms_ns=3_000, max_ns=20_000, lock_s=10),
                        _twoway(_sc(spike_rate_per_min=1.0, spike_us=2_000.0)), "twoway"),
        LibraryScenario("one-way-spike", "one 5 ms master→slave spike for 5 s at 60 s",
                        L(rms_ns=2_000, max_ns=20_000, lock_s=10),
                        _twoway(_sc(spikes=(SpikeSpec(60.0, 5.0, 5_000.0),))), "twoway"),
        LibraryScenario("frequency-wander", "slave oscillator random walk, 20 ppb/√s",
                        L(rms_ns=3_000, max_ns=12_000, lock_s=10),
                        _twoway(_sc(wander_ppb=20.0)), "twoway"),
        LibraryScenario("large-drift", "slave oscillator 500 ppm fast",
                        _FAST_LOCK, _twoway(_sc(drift_ppm=500.0)), "twoway"),
        LibraryScenario("temperature-cycle", "±1 ppm sinusoid, 600 s period (day/room cycle)",
                        L(rms_ns=12_000, max_ns=25_000, lock_s=10, lock_threshold_ns=30 * US),
                        _twoway(_sc(duration_s=600.0, interval_log2=0, temp_ppb=1_000.0,
                                    temp_period_s=600.0)), "twoway"),
        LibraryScenario("temperature-fast", "±0.5 ppm sinusoid, 100 s period (fan cycling)",
                        L(rms_ns=8_000, max_ns=16_000, lock_s=10, lock_threshold_ns=20 * US),
                        _twoway(_sc(temp_ppb=500.0, temp_period_s=100.0)), "twoway"),
        LibraryScenario("master-step-plus-1s", "the master's clock jumps +1 s at 60 s",
                        L(rms_ns=1_500, max_ns=6_000, lock_s=75),
                        _twoway(_sc(steps=(StepSpec(60.0, NS),))), "twoway"),
        LibraryScenario("master-step-minus-1s", "the master's clock jumps −1 s at 60 s",
                        L(rms_ns=1_500, max_ns=6_000, lock_s=75),
                        _twoway(_sc(steps=(StepSpec(60.0, -NS),))), "twoway"),
        LibraryScenario("master-wander", "the master's own oscillator wanders 20 ppb/√s",
                        L(rms_ns=3_000, max_ns=12_000, lock_s=10),
                        _twoway(_sc(master_wander_ppb=20.0)), "twoway"),
        LibraryScenario("holdover-30s", "Discipline: link down 30 s at 60 s (HOLDOVER)",
                        L(rms_ns=2_000, max_ns=10_000, lock_s=15),
                        _holdover_check(_sc(duration_s=120.0, delay_us=2.0, jitter_us=0.5),
                                        (60.0, 90.0), 10 * US),
                        "discipline"),
        LibraryScenario("long-holdover",
                        "Discipline: link down 240 s at 60 s with 1 ppb/√s wander",
                        L(rms_ns=10_000, max_ns=50_000, lock_s=15, lock_threshold_ns=50 * US),
                        _holdover_check(_sc(duration_s=330.0, interval_log2=0, wander_ppb=1.0,
                                            delay_us=2.0, jitter_us=0.5),
                                        (60.0, 300.0), 50 * US), "discipline"),
        LibraryScenario("restart-with-state",
                        "Discipline restarted at 60 s from its state file (rate restored)",
                        L(rms_ns=2_000, max_ns=10_000, lock_s=3),
                        _twoway(_sc(drift_ppm=80.0), discipline=(60.0, True), score_from_s=60.0),
                        "discipline"),
        LibraryScenario("restart-cold",
                        "Discipline restarted at 60 s without state (needs a window first)",
                        L(rms_ns=2_000, max_ns=10_000, lock_s=15),
                        _twoway(_sc(drift_ppm=80.0), discipline=(60.0, False),
                                score_from_s=60.0), "discipline"),
        LibraryScenario("ntp-falseticker", "NTP, 3 servers, one serving time 5 ms off",
                        L(rms_ns=4_000, max_ns=15_000, lock_s=40, lock_threshold_ns=20 * US),
                        _ntp(offsets_ns=(0, 5 * MS, 0)), "ntp"),
        LibraryScenario("ntp-two-falsetickers-disagree",
                        "NTP, 5 servers, two falsetickers at +3 ms and −4 ms",
                        L(rms_ns=4_000, max_ns=15_000, lock_s=40, lock_threshold_ns=20 * US),
                        _ntp(offsets_ns=(0, 3 * MS, 0, -4 * MS, 0)), "ntp"),
        LibraryScenario("ntp-loss-30pct", "NTP, 30 % loss each way, 20 µs jitter",
                        L(rms_ns=6_000, max_ns=25_000, lock_s=40, lock_threshold_ns=30 * US),
                        _ntp(link=LinkSpec(base_ns=100 * US, jitter_ns=20 * US, loss=0.3)),
                        "ntp"),
        LibraryScenario("ptp-grandmaster-failover",
                        "PTP GM silent at 20 s; the backup (1 µs apart) takes over",
                        L(rms_ns=1_000, max_ns=5_000, lock_s=15),
                        _ptp_failover(), "ptp"),
        LibraryScenario("ptp-leap-second",
                        "PTP GM: leap61 30 s ahead, then TAI−UTC 37 → 38 at midnight",
                        L(rms_ns=1_000, max_ns=5_000, lock_s=20),
                        _ptp_time_properties(leap=True), "ptp"),
        LibraryScenario("ptp-utc-offset-change",
                        "PTP GM corrects TAI−UTC 37 → 36 without warning",
                        L(rms_ns=1_000, max_ns=5_000, lock_s=20),
                        _ptp_time_properties(leap=False), "ptp"),
    ]
    return {s.name: s for s in items}


SCENARIOS: dict[str, LibraryScenario] = _mk()
