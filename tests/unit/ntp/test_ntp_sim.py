"""The NTP client and server cores in the simulator (netclock.sim), under each impairment it has.

Server nodes serve their own SimClock reading + UNIX_BASE; the client's calibration maps its
drifting local clock to that. The error is known exactly: the calibration's external time for
the client's reading minus the reference server's served time, at the same true instant.
Bounds are generous multiples of what the path allows; they check behaviour, not speed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from netclock.calibration import WindowedCalibration
from netclock.ntp.select import NtpClient
from netclock.ntp.source import NtpSource, SourceConfig
from netclock.sim.clock import ClockStep, SimClock
from netclock.sim.link import LinkSpec, Spike, link_pair
from netclock.sim.network import SimNetwork
from netclock.sim.nodes import UNIX_BASE, NtpClientNode, NtpServerNode
from netclock.sim.scheduler import Scheduler

NS_PER_S = 1_000_000_000
@dataclass(frozen=True)
class Case:
    link: LinkSpec = field(default_factory=lambda: LinkSpec(base_ns=100_000, jitter_ns=5_000))
    asymmetry_ns: int = 0
    drift_ppm: float = 10.0
    wander_ppb: float = 0.0
    temp_ppb: float = 0.0
    server_steps: tuple[ClockStep, ...] = ()
    server_offsets: tuple[int, ...] = (0,)  # extra servers' served-time errors
    xleave: bool = False
    minpoll: int = -2
    duration_s: int = 60


@dataclass
class Outcome:
    errors: list[int]
    fed: dict[str, int]
    interleaved: int
    epoch: int


def run(case: Case, seed: int = 1) -> Outcome:
    sched = Scheduler()
    net = SimNetwork(sched)
    client_clock = SimClock(offset_ns=12_345 * NS_PER_S, freq_ppm=case.drift_ppm,
                            wander_ppb=case.wander_ppb, temp_ppb=case.temp_ppb,
                            temp_period_ns=20 * NS_PER_S, rng=random.Random(seed))
    names = [f"s{i}" for i in range(len(case.server_offsets))]
    sources = {
        n: NtpSource(SourceConfig(minpoll=case.minpoll, maxpoll=case.minpoll, xleave=case.xleave),
                     random.Random(seed + i), pivot_unix_ns=UNIX_BASE)
        for i, n in enumerate(names)
    }
    cal = WindowedCalibration(window_size=16, window_threshold=4, step_threshold_ns=200_000)
    # with several servers, wait for two before feeding (a lone falseticker cannot start it)
    core = NtpClientNode(sources, NtpClient(cal, min_sources=min(len(names), 2)))
    net.add_node("client", client_clock, core)
    for i, (n, off) in enumerate(zip(names, case.server_offsets, strict=True)):
        steps = case.server_steps if i == 0 else ()
        net.add_node(n, SimClock(steps=steps), NtpServerNode(off))
        fwd, rev = link_pair(case.link, case.link, case.asymmetry_ns,
                             random.Random(seed * 100 + i), random.Random(seed * 100 + 50 + i))
        net.connect("client", n, fwd)
        net.connect(n, "client", rev)
    net.start()
    errors: list[int] = []
    ref = net.clock("s0")
    for k in range(case.duration_s * 10):
        sched.run_until((k + 1) * NS_PER_S // 10)
        c = cal.calibration
        if c is not None and k >= case.duration_s * 5:  # second half: settled
            t = sched.now
            errors.append(c.to_external(client_clock.read(t)) - (ref.read(t) + UNIX_BASE))
    return Outcome(errors, core.fed, core.interleaved, cal.epoch)


def rms(v: list[int]) -> float:
    return math.sqrt(sum(x * x for x in v) / len(v))


EXP = LinkSpec(base_ns=100_000, jitter_ns=5_000)


@pytest.mark.parametrize(
    ("name", "case", "limit_ns"),
    [
        ("clean", Case(link=LinkSpec(base_ns=100_000)), 100),
        ("exponential-jitter", Case(), 3_000),
        # symmetric normal jitter: the min-delay filter cannot pick out clean samples
        ("normal-jitter", Case(link=LinkSpec(jitter_ns=5_000, jitter_dist="normal")), 8_000),
        ("pareto-jitter", Case(link=LinkSpec(jitter_ns=5_000, jitter_dist="pareto")), 4_000),
        ("lognormal-jitter", Case(link=LinkSpec(jitter_ns=5_000, jitter_dist="lognormal")),
         4_000),
        ("loss-30%", Case(link=LinkSpec(jitter_ns=5_000, loss=0.3)), 4_000),
        ("reorder", Case(link=LinkSpec(jitter_ns=5_000, reorder=0.2,
                                       reorder_hold_ns=300_000_000)), 4_000),
        ("spikes", Case(link=LinkSpec(jitter_ns=5_000, spike_rate_per_s=0.2, spike_ns=2_000_000,
                                      spike_mean_s=0.5)), 4_000),
        ("scheduled-spike", Case(link=LinkSpec(jitter_ns=5_000, spikes=(
            Spike(35 * NS_PER_S, 5 * NS_PER_S, 5_000_000),))), 4_000),
        ("wander", Case(wander_ppb=50.0), 4_000),
        ("temperature", Case(temp_ppb=500.0), 6_000),
        ("large-drift", Case(drift_ppm=500.0), 3_000),
        ("xleave", Case(xleave=True), 3_000),
    ],
)
def test_error_bounded_under_impairment(name: str, case: Case, limit_ns: int) -> None:
    out = run(case)
    # the clock filter passes roughly one poll in four to eight
    assert out.errors and out.fed["s0"] > 20
    assert rms(out.errors) < limit_ns, (name, rms(out.errors))
    if case.xleave:
        assert out.interleaved > 30


def test_asymmetry_shows_as_half_its_size() -> None:
    out = run(Case(link=LinkSpec(base_ns=100_000), asymmetry_ns=40_000))
    mean = sum(out.errors) / len(out.errors)
    assert abs(mean - 20_000) < 200  # the invisible NTP bias: asymmetry / 2


def test_server_step_is_followed_with_an_epoch_bump() -> None:
    out = run(Case(server_steps=(ClockStep(20 * NS_PER_S, 5_000_000),)))
    assert out.epoch >= 1
    assert rms(out.errors) < 3_000


def test_falseticker_among_three_servers_is_ignored() -> None:
    out = run(Case(server_offsets=(0, 3_000, 40_000_000)))
    assert out.fed["s2"] == 0 and out.fed["s0"] > 20 and out.fed["s1"] > 20
    assert rms(out.errors) < 5_000


def test_same_seed_same_run() -> None:
    a = run(Case(duration_s=10))
    b = run(Case(duration_s=10))
    assert a.errors == b.errors
