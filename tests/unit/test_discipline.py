"""Discipline: source selection, failover, lock states, holdover bound, steps, restore."""

import pytest

from netclock.discipline import CLOCK_CLASS, Discipline, DisciplineConfig, SourceConfig
from netclock.observe import LockState, Quality
from netclock.time import NS_PER_S

MS = 1_000_000
RATE_PPB = 25_000  # the network runs 25 ppm fast against local monotonic


def net(x: int, offset: int = 0) -> int:
    return x + x * RATE_PPB // 10**9 + 1_000 * NS_PER_S + offset


def feed(
    d: Discipline,
    src: str,
    start_s: float,
    n: int,
    step_ms: int = 250,
    offset: int = 0,
    err: int = 2_000,
) -> list:
    events = []
    x = int(start_s * NS_PER_S)
    for _ in range(n):
        events += d.observe(src, x, net(x, offset), err, x)
        x += step_ms * MS
    return events


def two_sources() -> Discipline:
    return Discipline(
        DisciplineConfig(),
        (
            SourceConfig("ptp", priority=10, timeout_ns=2 * NS_PER_S),
            SourceConfig("ntp", priority=20, timeout_ns=2 * NS_PER_S),
        ),
    )


def test_freerun_then_locking_then_locked() -> None:
    d = two_sources()
    assert d.state is LockState.FREERUN
    assert d.snapshot(0).quality is Quality.OUT_OF_SPEC
    assert CLOCK_CLASS[Quality.LOCKED] == 6
    ev = feed(d, "ptp", 1, 3)
    assert d.state is LockState.FREERUN and not ev  # below the window threshold
    ev = feed(d, "ptp", 1.75, 1)
    assert d.state is LockState.LOCKING
    feed(d, "ptp", 2, 10)
    assert d.state is LockState.LOCKED
    snap = d.snapshot(int(4.5 * NS_PER_S))
    assert snap.quality is Quality.LOCKED and snap.source == "ptp"
    assert snap.error_bound_ns >= 2_000
    assert snap.calibration is not None
    assert abs(snap.calibration.rate_ppb() - RATE_PPB) < 1


def test_priority_wins_and_failover_on_loss() -> None:
    d = two_sources()
    feed(d, "ntp", 1, 8)
    assert d.snapshot(3 * NS_PER_S).source == "ntp"
    feed(d, "ptp", 3, 8)
    assert d.snapshot(5 * NS_PER_S).source == "ptp"
    # ptp stops at 4.75 s; ntp keeps going: after the timeout, ntp is selected again.
    feed(d, "ntp", 5, 8)
    ev = d.tick(7 * NS_PER_S)
    assert [e.detail for e in ev if e.kind == "source"] == ["ptp -> ntp"]
    snap = d.snapshot(7 * NS_PER_S)
    assert snap.source == "ntp"
    assert d.state in (LockState.LOCKED, LockState.LOCKING)


def test_switch_step_is_the_disagreement_and_is_counted() -> None:
    d = two_sources()
    feed(d, "ntp", 1, 8, offset=0)
    ev = feed(d, "ptp", 3, 4, offset=40_000)  # ptp disagrees by 40 us
    steps = [e for e in ev if e.kind == "step"]
    assert len(steps) == 1
    assert steps[0].value_ns == pytest.approx(40_000, abs=2)
    assert d.steps == 1
    assert d.published is not None and d.published.epoch == 1


def test_holdover_bound_grows_then_leaves_spec() -> None:
    cfg = DisciplineConfig(holdover_spec_ns=50_000)
    d = Discipline(cfg, (SourceConfig("ntp", timeout_ns=NS_PER_S),))
    feed(d, "ntp", 1, 20)
    last = 1 * NS_PER_S + 19 * 250 * MS
    d.tick(last + 2 * NS_PER_S)
    assert d.state is LockState.HOLDOVER
    b1 = d.error_bound(last + 2 * NS_PER_S)
    b2 = d.error_bound(last + 100 * NS_PER_S)
    b3 = d.error_bound(last + 10_000 * NS_PER_S)
    assert b1 <= b2 < b3
    assert d.quality(last + 2 * NS_PER_S) is Quality.HOLDOVER_IN_SPEC
    assert d.quality(last + 10_000 * NS_PER_S) is Quality.OUT_OF_SPEC
    # The last rate continues in holdover.
    cal = d.published
    assert cal is not None
    x = last + 100 * NS_PER_S
    assert abs(cal.to_external(x) - net(x)) < 10


def test_source_returns_from_holdover() -> None:
    d = Discipline(DisciplineConfig(), (SourceConfig("ntp", timeout_ns=NS_PER_S),))
    feed(d, "ntp", 1, 12)
    d.tick(10 * NS_PER_S)
    assert d.state is LockState.HOLDOVER
    feed(d, "ntp", 10, 1)
    assert d.state in (LockState.LOCKING, LockState.LOCKED)
    assert d.snapshot(10 * NS_PER_S).holdover_ns == 0


def test_restore_gives_fast_relock() -> None:
    d = Discipline(DisciplineConfig(), (SourceConfig("ptp"),))
    feed(d, "ptp", 1, 32, err=300)
    saved = d.save_state()
    assert saved["version"] == 1
    # A new agent (same boot): one observation and it is already right to within 1 us.
    fresh = Discipline(DisciplineConfig(), (SourceConfig("ptp"),))
    assert [e.kind for e in fresh.restore_state(saved)] == ["restore"]
    x0 = 100 * NS_PER_S
    fresh.observe("ptp", x0, net(x0), 300, x0)
    cal = fresh.published
    assert cal is not None
    for dt in (0, NS_PER_S // 2, NS_PER_S):
        assert abs(cal.to_external(x0 + dt) - net(x0 + dt)) < 1_000


def test_restore_rejects_bad_files() -> None:
    d = Discipline()
    with pytest.raises(ValueError, match="version"):
        d.restore_state({"version": 9})
    with pytest.raises(ValueError, match="rate"):
        d.restore_state({"version": 1, "rate_num": "x", "rate_denom": 1})


def test_unknown_source() -> None:
    d = Discipline()
    with pytest.raises(KeyError, match="nope"):
        d.observe("nope", 1, 1, 0, 1)
    d.add_source(SourceConfig("a"))
    with pytest.raises(ValueError, match="already"):
        d.add_source(SourceConfig("a"))


def test_failover_waits_in_holdover_when_configured() -> None:
    d = Discipline(
        DisciplineConfig(failover_after_ns=3 * NS_PER_S),
        (
            SourceConfig("ptp", priority=10, timeout_ns=NS_PER_S),
            SourceConfig("ntp", priority=20, timeout_ns=NS_PER_S),
        ),
    )
    feed(d, "ptp", 1, 8)  # last ptp observation at 2.75 s
    feed(d, "ntp", 1.1, 8)
    assert d.snapshot(3 * NS_PER_S).source == "ptp"
    feed(d, "ntp", 3.1, 8)  # ntp keeps going until 4.85 s; ptp lost at 3.75 s
    d.tick(5 * NS_PER_S)
    assert d.state is LockState.HOLDOVER  # within failover-after
    feed(d, "ntp", 5.1, 12)  # until 7.85 s: past 3.75 + 3 s
    assert d.snapshot(8 * NS_PER_S).source == "ntp"
    assert d.state is not LockState.HOLDOVER


def test_source_windows_get_the_benchmarked_fit() -> None:
    # Every source's WindowedCalibration is configured from DisciplineConfig: window sized by
    # time (64 s at 4 Hz = 257 observations > 128), adaptive floor, spike rejection.
    d = Discipline(DisciplineConfig(), (SourceConfig("ptp", timeout_ns=2 * NS_PER_S),))
    feed(d, "ptp", 1, 300)
    w = d._sources["ptp"].window
    assert len(w.observations) == 257
    assert (w.floor_k, w.reject_k, w.reject_hold_ns) == (0.25, 8.0, 60 * NS_PER_S)
    # A 2 ms delay spike (error bound = half the round trip) is withheld, not fitted.
    cal = d.published
    x = 76 * NS_PER_S
    d.observe("ptp", x, net(x, 1 * MS), 1 * MS + 2_000, x)
    assert w.rejected == 1 and d.published == cal


def test_wild_first_fit_recovers_through_the_discipline() -> None:
    d = Discipline(DisciplineConfig(), (SourceConfig("ptp", timeout_ns=2 * NS_PER_S),))
    # A bad burst (ms of scatter) makes a wildly wrong first fit ...
    for i, off in enumerate((0, 3 * MS, -2 * MS, 6 * MS)):
        x = (1 + i) * NS_PER_S
        d.observe("ptp", x, net(x, off), 2_000, x)
    cal = d.published
    assert cal is not None and abs(cal.rate_ppb() - RATE_PPB) > 100_000
    # ... which good data replaces within a bounded number of observations.
    feed(d, "ptp", 5, 12, step_ms=1000)
    cal = d.published
    assert d._sources["ptp"].window.fit_resets == 1
    assert cal is not None and abs(cal.rate_ppb() - RATE_PPB) < 1
    x = 20 * NS_PER_S
    assert abs(cal.to_external(x) - net(x)) <= 2
    assert d.steps >= 1  # the recovery is a published discontinuity, counted


def test_refit_noise_is_not_a_step_but_a_source_step_is() -> None:
    d = Discipline(DisciplineConfig(), (SourceConfig("ntp", timeout_ns=10 * NS_PER_S),))
    x = NS_PER_S
    for i in range(40):  # +-3 us of alternating noise: refits move the time by a few us
        d.observe("ntp", x, net(x, 3_000 if i % 2 else -3_000), 2_000, x)
        x += 250 * MS
    assert d.steps == 0
    for _ in range(6):  # the source itself steps by 1 ms: the window detects it
        d.observe("ntp", x, net(x, 1_000_000), 2_000, x)
        x += 250 * MS
    assert d.steps == 1 and d.published is not None and d.published.epoch == 1


def test_lock_state_has_hysteresis() -> None:
    """A bound wandering just above the lock threshold does not flap LOCKED/LOCKING."""
    d = Discipline(
        DisciplineConfig(
            lock_threshold_ns=10_000,
            lock_count=3,
            window_size=4,
            window_threshold=3,
            window_span_ns=0,
        ),
        (SourceConfig("ptp", timeout_ns=10 * NS_PER_S),),
    )
    x = NS_PER_S
    for _ in range(10):
        d.observe("ptp", x, net(x), 5_000, x)
        x += 250 * MS
    assert d.state is LockState.LOCKED
    states = set()
    for i in range(20):  # bound between 1x and 2x the threshold: stays LOCKED
        d.observe("ptp", x, net(x), 12_000 + 3_000 * (i % 3), x)
        states.add(d.state)
        x += 250 * MS
    assert states == {LockState.LOCKED}
    for _ in range(8):  # well beyond 2x, again and again: lock lost
        d.observe("ptp", x, net(x), 50_000, x)
        x += 250 * MS
    assert d.state is LockState.LOCKING


def test_discard_before_drops_a_sources_early_observations() -> None:
    d = two_sources()
    feed(d, "ptp", 1, 8, offset=40_000)  # biased early observations (1 to 2.75 s)
    feed(d, "ptp", 3, 3)  # unbiased ones (3 to 3.5 s): one short of a fit on their own
    epoch = d.window_epoch("ptp")
    before = d.snapshot(int(3.5 * NS_PER_S)).calibration
    assert before is not None
    assert d.discard_before("ptp", 3 * NS_PER_S) == 8
    assert d.window_epoch("ptp") == epoch  # the window goes on: no restart
    assert d.snapshot(int(3.5 * NS_PER_S)).calibration == before  # stands until the next fit
    feed(d, "ptp", 3.75, 1)  # the next fit has only unbiased observations
    cal = d.snapshot(4 * NS_PER_S).calibration
    assert cal is not None
    assert abs(cal.to_external(4 * NS_PER_S) - net(4 * NS_PER_S)) < 2
    with pytest.raises(KeyError):
        d.discard_before("nope", 0)


def test_heard_keeps_a_calibrated_source_alive_between_samples() -> None:
    """An answer its own filter held back (NTP's clock filter passes one sample in up to 8)
    keeps a source alive past its timeout; it changes nothing else, and it cannot bring to
    life a source that never had a calibration."""
    d = two_sources()
    feed(d, "ptp", 1, 12)  # LOCKED on ptp; its last observation at 3.75 s
    cal = d.published
    assert d.state is LockState.LOCKED and cal is not None
    last = int(3.75 * NS_PER_S)
    # held-back answers every 250 ms for 4 s: never lost (the timeout is 2 s)
    for i in range(1, 17):
        assert d.heard("ptp", last + i * 250 * MS) == []
        assert d.state is LockState.LOCKED
    assert d.published == cal  # nothing published moved
    # silence after the last one: lost 2 s later, as ever
    now = last + 16 * 250 * MS
    assert d.tick(now + 2 * NS_PER_S - MS) == []
    ev = d.tick(now + 2 * NS_PER_S + MS)
    assert d.state is LockState.HOLDOVER and any(e.kind == "state" for e in ev)
    # a source without a calibration is not made alive
    assert d.heard("ntp", now + 3 * NS_PER_S) == []
    assert d.state is LockState.HOLDOVER
    with pytest.raises(KeyError):
        d.heard("nope", now)
