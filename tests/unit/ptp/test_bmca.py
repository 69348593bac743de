"""BMCA: data set comparison (§9.3.4), foreign-master qualification (§9.3.2.4), state decision."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from netclock.ptp.bmca import (
    FOREIGN_MASTER_THRESHOLD,
    ComparisonDataset,
    Decision,
    ForeignMasterList,
    Ordering,
    compare,
    state_decision,
)
from netclock.ptp.datasets import DefaultDS, PortState
from netclock.ptp.wire import Announce, ClockIdentity, ClockQuality, Header, PortIdentity

NS = 1_000_000_000


def cid(b: int) -> ClockIdentity:
    return ClockIdentity(bytes([b]) * 8)


def ds(
    p1: int = 128, cls: int = 248, acc: int = 0xFE, var: int = 0xFFFF, p2: int = 128,
    gm: int = 1, steps: int = 0, sender: PortIdentity | None = None,
    receiver: PortIdentity | None = None,
) -> ComparisonDataset:
    return ComparisonDataset(
        p1, cid(gm), ClockQuality(cls, acc, var), p2, steps,
        sender or PortIdentity(cid(gm), 1), receiver or PortIdentity(cid(0x50), 1),
    )


def test_each_attribute_decides_in_order() -> None:
    base = ds(gm=2)
    for better in (ds(p1=127, gm=3, cls=255), ds(cls=247, gm=3, acc=0xFF),
                   ds(acc=0xFD, gm=3, var=0xFFFF), ds(var=0xFFFE, gm=3, p2=255),
                   ds(p2=127, gm=3), ds(gm=1)):
        assert compare(better, base) == Ordering.A_BETTER
        assert compare(base, better) == Ordering.B_BETTER


def test_priority1_beats_clock_class() -> None:
    assert compare(ds(p1=127, cls=248, gm=9), ds(p1=128, cls=6, gm=1)) == Ordering.A_BETTER


def test_topology_steps_removed() -> None:
    a, b = ds(steps=1), ds(steps=3)
    assert compare(a, b) == Ordering.A_BETTER
    assert compare(b, a) == Ordering.B_BETTER


def test_topology_one_step_apart_uses_receiver_vs_sender() -> None:
    lo, hi = PortIdentity(cid(0x10), 1), PortIdentity(cid(0x90), 1)
    b = ds(steps=1)
    assert compare(ds(steps=2, receiver=lo, sender=hi), b) == Ordering.B_BETTER
    assert compare(ds(steps=2, receiver=hi, sender=lo), b) == Ordering.B_BETTER_BY_TOPOLOGY
    assert compare(ds(steps=2, receiver=lo, sender=lo), b) == Ordering.SAME
    assert compare(b, ds(steps=2, receiver=lo, sender=hi)) == Ordering.A_BETTER
    assert compare(b, ds(steps=2, receiver=hi, sender=lo)) == Ordering.A_BETTER_BY_TOPOLOGY


def test_topology_equal_steps_uses_sender_then_receiver_port() -> None:
    s1, s2 = PortIdentity(cid(0x10), 1), PortIdentity(cid(0x10), 2)
    assert compare(ds(sender=s1), ds(sender=s2)) == Ordering.A_BETTER_BY_TOPOLOGY
    assert compare(ds(sender=s2), ds(sender=s1)) == Ordering.B_BETTER_BY_TOPOLOGY
    r1, r2 = PortIdentity(cid(0x50), 1), PortIdentity(cid(0x50), 2)
    assert compare(ds(sender=s1, receiver=r1), ds(sender=s1, receiver=r2)) == \
        Ordering.A_BETTER_BY_TOPOLOGY
    assert compare(ds(sender=s1, receiver=r1), ds(sender=s1, receiver=r1)) == Ordering.SAME


datasets = st.builds(
    ds,
    p1=st.integers(0, 255), cls=st.sampled_from([6, 7, 52, 127, 135, 187, 248, 255]),
    acc=st.integers(0x20, 0xFE), var=st.integers(0, 0xFFFF), p2=st.integers(0, 255),
    gm=st.integers(1, 4), steps=st.integers(0, 4),
    sender=st.builds(PortIdentity, st.integers(1, 4).map(cid), st.integers(1, 2)),
    receiver=st.builds(PortIdentity, st.integers(1, 4).map(cid), st.integers(1, 2)),
)


@given(datasets, datasets)
def test_compare_is_antisymmetric(a: ComparisonDataset, b: ComparisonDataset) -> None:
    assert compare(a, b) == -compare(b, a)


@given(datasets, datasets, datasets)
def test_better_is_transitive_across_grandmasters(
    a: ComparisonDataset, b: ComparisonDataset, c: ComparisonDataset
) -> None:
    gms = {a.grandmaster_identity, b.grandmaster_identity, c.grandmaster_identity}
    if len(gms) == 3 and compare(a, b) > 0 and compare(b, c) > 0:
        assert compare(a, c) > 0


def announce(sender: int, *, p1: int = 128, cls: int = 248, seq: int = 0, steps: int = 0,
             log_interval: int = 1) -> Announce:
    return Announce(
        header=Header(PortIdentity(cid(sender), 1), seq, log_message_interval=log_interval),
        grandmaster_priority1=p1,
        grandmaster_clock_quality=ClockQuality(cls),
        grandmaster_identity=cid(sender),
        steps_removed=steps,
    )


def test_foreign_master_needs_threshold_within_window() -> None:
    fm = ForeignMasterList(PortIdentity(cid(0x50), 1), log_announce_interval=1)
    assert fm.window_ns == 4 * 2 * NS
    assert FOREIGN_MASTER_THRESHOLD == 2
    assert fm.add(announce(1), 0) is False
    assert fm.best(0) is None
    assert fm.add(announce(1, seq=1), 2 * NS) is True
    best = fm.best(2 * NS)
    assert best is not None and best[0].grandmaster_identity == cid(1)
    # two announces too far apart never qualify
    fm2 = ForeignMasterList(PortIdentity(cid(0x50), 1), log_announce_interval=1)
    fm2.add(announce(2), 0)
    assert fm2.add(announce(2, seq=1), 8 * NS) is False


def test_foreign_masters_age_out_with_injected_time() -> None:
    fm = ForeignMasterList(PortIdentity(cid(0x50), 1), log_announce_interval=0)
    fm.add(announce(1), 0)
    fm.add(announce(1), NS)
    assert len(fm) == 1 and fm.best(NS) is not None
    assert fm.best(4 * NS) is None  # first arrival left the 4 s window
    fm.age(5 * NS + 1)
    assert len(fm) == 0


def test_best_of_several() -> None:
    fm = ForeignMasterList(PortIdentity(cid(0x50), 1))
    for t in (0, NS):
        fm.add(announce(3, p1=120), t)
        fm.add(announce(2, p1=110), t)
        fm.add(announce(1, p1=130), t)
    best = fm.best(NS)
    assert best is not None and best[0].grandmaster_identity == cid(2)


def d0(p1: int = 128, cls: int = 248) -> ComparisonDataset:
    return ComparisonDataset.from_default_ds(
        DefaultDS(cid(0x50), priority1=p1, clock_quality=ClockQuality(cls)),
        PortIdentity(cid(0x50), 1),
    )


def test_state_decision_codes() -> None:
    better, worse = ds(p1=100, gm=1), ds(p1=200, gm=2)
    L = PortState.LISTENING
    assert state_decision(d0(), None, None, L) is Decision.LISTENING
    assert state_decision(d0(), None, None, PortState.MASTER) is Decision.M2
    assert state_decision(d0(cls=6), worse, worse, L) is Decision.M1
    assert state_decision(d0(cls=6), better, better, L) is Decision.P1
    assert state_decision(d0(cls=6, p1=50), better, better, L) is Decision.M1
    assert state_decision(d0(), worse, worse, L) is Decision.M2
    assert state_decision(d0(), better, better, L) is Decision.S1
    # a boundary clock's other port has the best (Ebest != Erbest)
    best_elsewhere = ds(p1=50, gm=3)
    same_gm_topo = ds(p1=50, gm=3, steps=1, sender=PortIdentity(cid(9), 1))
    assert state_decision(d0(), better, best_elsewhere, L) is Decision.M3
    assert compare(best_elsewhere, same_gm_topo) == Ordering.A_BETTER_BY_TOPOLOGY
    assert state_decision(d0(), same_gm_topo, best_elsewhere, L) is Decision.P2
    assert state_decision(d0(), None, best_elsewhere, PortState.MASTER) is Decision.M3


def test_state_decision_slave_and_master_only() -> None:
    better, worse = ds(p1=100, gm=1), ds(p1=200, gm=2)
    L = PortState.LISTENING
    assert state_decision(d0(), worse, worse, L, slave_only=True) is Decision.S1
    assert state_decision(d0(), better, better, L, slave_only=True) is Decision.S1
    assert state_decision(d0(), None, None, PortState.SLAVE, slave_only=True) is Decision.LISTENING
    assert state_decision(d0(), better, better, L, master_only=True) is Decision.M2
    assert state_decision(d0(), None, None, L, master_only=True) is Decision.M2


def test_decision_recommended_states() -> None:
    assert {d.recommended_state for d in Decision} == {
        PortState.MASTER, PortState.PASSIVE, PortState.SLAVE, PortState.LISTENING
    }
