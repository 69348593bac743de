"""Clock selection (priorities, ties, loss, events) and running time. Pure, no clocks read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.clock import ClockFlags
from netclock.selection import (
    ClockLost,
    ClockProvider,
    ClockSelector,
    LossReason,
    NewClock,
    Priority,
    RunningTime,
)


def prov(name: str, priority: int, **kw: object) -> ClockProvider[str]:
    return ClockProvider(name=name, clock=f"clock:{name}", priority=priority, **kw)  # type: ignore[arg-type]


def test_default_priority_order() -> None:
    assert Priority.NETWORK > Priority.AUDIO_SINK > Priority.HARDWARE_CAPTURE
    assert Priority.HARDWARE_CAPTURE > Priority.SYSTEM_MONOTONIC


def test_picks_highest_priority_and_emits_new_clock() -> None:
    sel: ClockSelector[str] = ClockSelector()
    ev = sel.add(prov("system", Priority.SYSTEM_MONOTONIC))
    assert ev == [NewClock(prov("system", Priority.SYSTEM_MONOTONIC), None)]
    # A lower-priority provider changes nothing.
    assert sel.add(prov("v4l2", Priority.HARDWARE_CAPTURE - 150)) == []
    # A better one takes over: NewClock with the previous one, no ClockLost (not lost).
    ev = sel.add(prov("alsa", Priority.AUDIO_SINK))
    assert len(ev) == 1 and isinstance(ev[0], NewClock)
    assert ev[0].provider.name == "alsa"
    assert ev[0].previous is not None and ev[0].previous.name == "system"
    ev = sel.add(prov("ptp", Priority.NETWORK, flags=ClockFlags.CAN_BE_MASTER | ClockFlags.NETWORK))
    assert [e.provider.name for e in ev] == ["ptp"]
    assert sel.selected is not None and sel.selected.clock == "clock:ptp"
    assert [p.name for p in sel.providers] == ["ptp", "alsa", "system", "v4l2"]


def test_ties_first_registered_wins_and_is_kept() -> None:
    sel: ClockSelector[str] = ClockSelector()
    sel.add(prov("ntp", 400))
    assert sel.add(prov("ptp", 400)) == []  # equal newcomer does not take over
    assert sel.selected is not None and sel.selected.name == "ntp"
    # Losing the first picks the next of equal priority.
    ev = sel.remove("ntp")
    assert ev == [
        ClockLost(prov("ntp", 400), LossReason.REMOVED),
        NewClock(prov("ptp", 400), prov("ntp", 400)),
    ]


def test_reselect_on_unavailable_and_back() -> None:
    sel: ClockSelector[str] = ClockSelector()
    sel.add(prov("system", 100))
    sel.add(prov("ptp", 400))
    ev = sel.set_available("ptp", False)
    assert isinstance(ev[0], ClockLost) and ev[0].reason is LossReason.UNAVAILABLE
    assert ev[0].provider.name == "ptp" and not ev[0].provider.available
    assert isinstance(ev[1], NewClock) and ev[1].provider.name == "system"
    assert len(ev) == 2
    # Back: the better provider is selected again (a NewClock, the system clock is not lost).
    ev = sel.set_available("ptp", True)
    assert len(ev) == 1 and isinstance(ev[0], NewClock) and ev[0].provider.name == "ptp"
    # Unavailability of a provider that is not selected changes nothing.
    assert sel.set_available("system", False) == []
    assert sel.set_available("system", True) == []


def test_loss_of_last_provider_leaves_nothing_selected() -> None:
    sel: ClockSelector[str] = ClockSelector()
    sel.add(prov("only", 100))
    ev = sel.remove("only")
    assert ev == [ClockLost(prov("only", 100), LossReason.REMOVED)]
    assert sel.selected is None
    ev = sel.add(prov("again", 50))
    assert ev == [NewClock(prov("again", 50), None)]


def test_provider_that_cannot_be_master_is_never_selected() -> None:
    sel: ClockSelector[str] = ClockSelector()
    assert sel.add(prov("slave-only", 999, flags=ClockFlags.CAN_SET_MASTER)) == []
    assert sel.selected is None
    sel.add(prov("system", 100))
    ev = sel.set_flags("slave-only", ClockFlags.CAN_BE_MASTER)
    assert [type(e) for e in ev] == [NewClock]
    ev = sel.set_flags("slave-only", ClockFlags.NONE)
    assert isinstance(ev[0], ClockLost) and ev[0].reason is LossReason.INELIGIBLE
    assert sel.selected is not None and sel.selected.name == "system"


def test_priority_change_reselects() -> None:
    sel: ClockSelector[str] = ClockSelector()
    sel.add(prov("a", 100))
    sel.add(prov("b", 50))
    ev = sel.set_priority("b", 200)
    assert [e.provider.name for e in ev] == ["b"]
    assert sel.set_priority("b", 201) == []
    assert sel.selected is not None and sel.selected.priority == 201


def test_errors() -> None:
    sel: ClockSelector[str] = ClockSelector()
    sel.add(prov("a", 1))
    with pytest.raises(ValueError, match="already registered"):
        sel.add(prov("a", 2))
    with pytest.raises(KeyError, match="no clock provider named 'zz'"):
        sel.remove("zz")
    with pytest.raises(KeyError):
        sel.set_available("zz", False)


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "avail", "prio"]),
        st.integers(0, 5),
        st.integers(0, 3),
        st.booleans(),
    ),
    max_size=40,
)


@given(ops)
def test_selection_invariants(script: list[tuple[str, int, int, bool]]) -> None:
    sel: ClockSelector[str] = ClockSelector()
    order: list[str] = []
    selected_by_events: str | None = None
    for op, idx, prio, flag in script:
        name = f"p{idx}"
        exists = name in order
        if op == "add" and not exists:
            ev = sel.add(prov(name, prio, available=flag))
            order.append(name)
        elif op == "remove" and exists:
            ev = sel.remove(name)
            order.remove(name)
        elif op == "avail" and exists:
            ev = sel.set_available(name, flag)
        elif op == "prio" and exists:
            ev = sel.set_priority(name, prio)
        else:
            continue
        for e in ev:
            if isinstance(e, ClockLost):
                assert e.provider.name == selected_by_events
                selected_by_events = None
            else:
                assert e.provider.name != selected_by_events
                selected_by_events = e.provider.name
        # The events replay to the selector's state.
        assert selected_by_events == (sel.selected.name if sel.selected else None)
        # The selection is the best eligible provider, first registered on ties.
        eligible = [sel.get(n) for n in order if sel.get(n).available]
        if not eligible:
            assert sel.selected is None
        else:
            best = max(p.priority for p in eligible)
            assert sel.selected is not None and sel.selected.priority == best
            assert sel.selected.available
            first = next(p for p in eligible if p.priority == best)
            assert sel.selected.name == first.name


def test_running_time_basic_pause_resume() -> None:
    rt = RunningTime()
    assert not rt.started
    with pytest.raises(RuntimeError):
        rt.running(0)
    base = rt.start(1_000)
    assert base == rt.base_time == 1_000
    assert rt.running(1_500) == 500
    assert rt.to_clock_time(500) == 1_500
    assert rt.pause(2_000) == 1_000
    assert rt.paused
    assert rt.running(9_999) == 1_000  # frozen
    assert rt.resume(5_000) == 4_000
    assert rt.running(5_250) == 1_250
    with pytest.raises(RuntimeError):
        rt.resume(6_000)


def test_running_time_continuous_across_clock_change() -> None:
    rt = RunningTime()
    rt.start(10_000)
    # Old clock reads 12_000 when the new clock (different origin) reads 7_000_000.
    new_base = rt.switch_clock(12_000, 7_000_000)
    assert new_base == 7_000_000 - 2_000
    assert rt.running(7_000_500) == 2_500
    # While paused, switching keeps the frozen running time.
    rt.pause(7_001_000)
    rt.switch_clock(7_001_000, 50)
    assert rt.running(60) == 3_000
    assert rt.resume(100) == 100 - 3_000


def test_events_with_running_time_handover() -> None:
    """How a caller combines the two: on NewClock, carry the running time to the new clock."""
    readings = {"system": 1_000_000, "ptp": 1_700_000_000_000_000_000}
    sel: ClockSelector[str] = ClockSelector()
    rt = RunningTime()
    (ev,) = sel.add(prov("system", 100))
    assert isinstance(ev, NewClock)
    rt.start(readings[ev.provider.name])
    readings["system"] += 40_000  # 40 µs pass
    readings["ptp"] += 40_000
    (ev,) = sel.add(prov("ptp", 400))
    assert isinstance(ev, NewClock) and ev.previous is not None
    rt.switch_clock(readings[ev.previous.name], readings[ev.provider.name])
    assert rt.running(readings["ptp"]) == 40_000
    assert rt.running(readings["ptp"] + 10) == 40_010
