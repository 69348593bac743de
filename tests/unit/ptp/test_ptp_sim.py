"""PTP cores in the deterministic simulator (netclock.sim) under its impairments.

Master and slave PtpPorts exchange real PTP bytes over simulated links; each node stamps with
its own SimClock. The slave is a PtpInstance, so its measurements go through the servo path
into the windowed calibration. "Error" is published PTP time minus the master's PTP time at
the same true instant (the linuxptp-testsuite / clknetsim model; limits are requirements).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from netclock.calibration import Calibration
from netclock.ptp.datasets import DelayMechanism, PortState
from netclock.ptp.instance import PtpInstance
from netclock.ptp.port import PortConfig
from netclock.ptp.wire import ClockIdentity, PortIdentity
from netclock.sim.clock import ClockStep, SimClock
from netclock.sim.link import LinkSpec, Spike, link_pair
from netclock.sim.network import SimNetwork
from netclock.sim.nodes import PtpNode
from netclock.sim.scheduler import Scheduler

NS = 1_000_000_000
EPOCH = 1_700_000_000 * NS


@dataclass
class Run:
    errors: list[int]
    slave: PtpInstance
    net: SimNetwork
    sched: Scheduler

    def rms(self) -> float:
        return math.sqrt(sum(e * e for e in self.errors) / len(self.errors))

    def mean(self) -> float:
        return sum(self.errors) / len(self.errors)


def simulate(
    *,
    seconds: int = 60,
    link: LinkSpec | None = None,
    asymmetry_ns: int = 0,
    slave_clock: dict[str, object] | None = None,
    log_sync: int = -3,
    seed: int = 1,
    mech: DelayMechanism = DelayMechanism.E2E,
    two_step: bool = True,
) -> Run:
    sched = Scheduler()
    net = SimNetwork(sched)
    rng = random.Random(seed)
    mclock = SimClock(rng=random.Random(seed + 1))
    sclock = SimClock(offset_ns=3_000_000, rng=random.Random(seed + 2),
                      **(slave_clock or {}))  # type: ignore[arg-type]
    master = PtpInstance(PortConfig(priority1=100, log_sync_interval=log_sync,
                                    delay_mechanism=mech, two_step=two_step,
                                    log_min_pdelay_req_interval=log_sync),
                         PortIdentity(ClockIdentity(b"\x0a" * 8), 1), random.Random(seed))
    master.port.set_time_source(Calibration(0, EPOCH))
    slave = PtpInstance(PortConfig(slave_only=True, log_min_delay_req_interval=log_sync,
                                   delay_mechanism=mech, two_step=two_step,
                                   log_min_pdelay_req_interval=log_sync),
                        PortIdentity(ClockIdentity(b"\x0b" * 8), 1), random.Random(seed + 3))
    net.add_node("m", mclock, PtpNode("m", ["s"], master))
    net.add_node("s", sclock, PtpNode("s", ["m"], slave))
    spec = link or LinkSpec(base_ns=50_000)
    fwd, rev = link_pair(spec, spec, asymmetry_ns, random.Random(rng.random()),
                         random.Random(rng.random()))
    net.connect("m", "s", fwd)
    net.connect("s", "m", rev)
    net.start()
    errors: list[int] = []
    for t in range(1, seconds * 4 + 1):
        sched.run_until(t * NS // 4)
        if t < seconds * 2:  # score the second half only
            continue
        pub = slave.published(sclock.read(sched.now))
        assert pub is not None
        errors.append(pub.ptp_ns - (mclock.read(sched.now) + EPOCH))
    return Run(errors, slave, net, sched)


def test_ideal_link_is_exact_to_tens_of_ns() -> None:
    run = simulate(link=LinkSpec(base_ns=50_000))
    assert run.slave.state is PortState.SLAVE
    assert max(abs(e) for e in run.errors) < 50


@pytest.mark.parametrize(
    ("name", "link", "clock", "limit_ns"),
    [
        ("freq_offset_100ppm", LinkSpec(base_ns=50_000, jitter_ns=1_000),
         {"freq_ppm": 100.0}, 1_000),
        ("wander", LinkSpec(base_ns=50_000, jitter_ns=1_000),
         {"freq_ppm": -20.0, "wander_ppb": 2.0, "wander_step_ns": NS // 4}, 1_000),
        ("temperature", LinkSpec(base_ns=50_000, jitter_ns=1_000),
         {"temp_ppb": 200.0, "temp_period_ns": 600 * NS}, 1_000),
        ("exponential_jitter_10us", LinkSpec(base_ns=50_000, jitter_ns=10_000), {}, 5_000),
        ("pareto_jitter", LinkSpec(base_ns=50_000, jitter_ns=5_000, jitter_dist="pareto"),
         {}, 5_000),
        ("loss_20pct", LinkSpec(base_ns=50_000, jitter_ns=1_000, loss=0.2), {}, 1_000),
        ("reorder", LinkSpec(base_ns=50_000, jitter_ns=1_000, reorder=0.1,
                             reorder_hold_ns=30_000_000), {}, 1_000),
        ("one_2ms_spike", LinkSpec(base_ns=50_000, jitter_ns=1_000,
                                   spikes=(Spike(40 * NS, 2 * NS, 2_000_000),)), {}, 5_000),
    ],
)
def test_impairments(name: str, link: LinkSpec, clock: dict[str, object], limit_ns: int) -> None:
    run = simulate(link=link, slave_clock=clock)
    assert run.slave.state is PortState.SLAVE, name
    assert run.rms() < limit_ns, (name, run.rms())


def test_random_one_way_spikes_bounded_by_half_the_spike() -> None:
    # A one-way delay change is an asymmetry while it lasts: no two-way protocol can see it,
    # so the error may reach half the spike, but no more, and returns to ~0 afterwards.
    run = simulate(link=LinkSpec(base_ns=50_000, jitter_ns=1_000, spike_rate_per_s=1 / 60,
                                 spike_mean_s=2.0, spike_ns=200_000))
    assert max(abs(e) for e in run.errors) < 100_000 + 10_000
    assert abs(run.errors[-1]) < 5_000


def test_asymmetry_biases_by_half() -> None:
    run = simulate(link=LinkSpec(base_ns=100_000), asymmetry_ns=20_000)
    # master→slave is 20 µs longer: the slave believes the master is 10 µs earlier
    assert abs(run.mean() - (-10_000)) < 100


def test_slave_clock_step_recovers_with_new_epoch() -> None:
    run = simulate(link=LinkSpec(base_ns=50_000, jitter_ns=500),
                   slave_clock={"steps": [ClockStep(20 * NS, 5_000_000)]})
    assert run.rms() < 1_000
    pub = run.slave.published(run.net.now_of("s"))
    assert pub is not None and pub.epoch >= 1


def test_failover_to_backup_master() -> None:
    sched = Scheduler()
    net = SimNetwork(sched)
    insts, adapters = {}, {}
    names = ["gm", "backup", "s"]
    cfgs = {
        "gm": PortConfig(priority1=100, log_sync_interval=-3),
        "backup": PortConfig(priority1=110, log_sync_interval=-3),
        "s": PortConfig(slave_only=True, log_min_delay_req_interval=-3),
    }
    for i, n in enumerate(names):
        inst = PtpInstance(cfgs[n], PortIdentity(ClockIdentity(bytes([i + 1]) * 8), 1),
                           random.Random(i))
        inst.port.set_time_source(Calibration(0, EPOCH))
        insts[n] = inst
        adapters[n] = PtpNode(n, [p for p in names if p != n], inst)
        net.add_node(n, SimClock(offset_ns=i * 1000, rng=random.Random(i)), adapters[n])
    for a in names:
        for b in names:
            if a != b:
                fwd, _ = link_pair(LinkSpec(base_ns=30_000), LinkSpec(base_ns=30_000), 0,
                                   random.Random(hash((a, b)) & 0xFFFF), random.Random(0))
                net.connect(a, b, fwd)
    net.start()
    sched.run_until(20 * NS)
    assert insts["gm"].state is PortState.MASTER
    assert insts["backup"].state is PortState.UNCALIBRATED or insts["backup"].state in (
        PortState.SLAVE,)
    assert insts["s"].port.parent == insts["gm"].port.identity
    adapters["gm"].up = False
    sched.run_until(40 * NS)
    assert insts["backup"].state is PortState.MASTER
    assert insts["s"].state is PortState.SLAVE
    assert insts["s"].port.parent == insts["backup"].port.identity


@pytest.mark.parametrize("seed", [4, 5])
def test_watchdog_recovers_from_a_first_fit_on_reordered_syncs(seed: int) -> None:
    # With these seeds the first window holds Syncs held back 30 ms; the first fit is wild and
    # no later sample agrees with it, so no step can confirm: the servo must start over.
    run = simulate(link=LinkSpec(base_ns=50_000, jitter_ns=1_000, reorder=0.1,
                                 reorder_hold_ns=30_000_000), seed=seed)
    assert run.slave.servo.resets >= 1
    assert run.rms() < 1_000


@pytest.mark.parametrize("two_step", [True, False])
def test_peer_delay_locks_and_measures_neighbor_rate_ratio(two_step: bool) -> None:
    run = simulate(link=LinkSpec(base_ns=50_000, jitter_ns=1_000), mech=DelayMechanism.P2P,
                   two_step=two_step, slave_clock={"freq_ppm": 100.0})
    port = run.slave.port
    assert run.slave.state is PortState.SLAVE
    assert run.rms() < 1_000
    assert port.neighbor_prop_delay is not None
    assert abs(port.neighbor_prop_delay - 50_000) < 2_000
    # the neighbor (master) runs 100 ppm slow against the slave's clock
    if two_step:  # 1 µs jitter over the 8-exchange (1 s) span: ~1 ppm of noise
        assert abs(port.neighbor_rate_ratio_float - 1 / 1.0001) < 3e-6
    else:  # a one-step responder sends no t2/t3, so no rate can be measured
        assert port.neighbor_rate_ratio == (1, 1)
    assert port.counters["pdelay_lost"] == 0


def test_peer_delay_rate_ratio_on_a_clean_link_is_exact() -> None:
    run = simulate(seconds=30, link=LinkSpec(base_ns=50_000), mech=DelayMechanism.P2P,
                   slave_clock={"freq_ppm": -37.0})
    assert abs(run.slave.port.neighbor_rate_ratio_float - 1 / (1 - 37e-6)) < 1e-9
    assert run.slave.port.neighbor_prop_delay is not None
    assert abs(run.slave.port.neighbor_prop_delay - 50_000) <= 2


def test_peer_delay_asymmetry_biases_by_half() -> None:
    run = simulate(link=LinkSpec(base_ns=100_000), asymmetry_ns=20_000,
                   mech=DelayMechanism.P2P)
    assert abs(run.mean() - (-10_000)) < 100
