"""Port state machine table (§9.2.5 Figure 30): every (state, event) pair, all three variants.

The oracle below restates Figure 30 rule by rule, independently of the table in fsm.py.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.ptp.datasets import PortState as S
from netclock.ptp.fsm import TRANSITIONS, ptp_fsm
from netclock.ptp.fsm import FsmEvent as E

OPERATIONAL = {S.LISTENING, S.PRE_MASTER, S.MASTER, S.PASSIVE, S.UNCALIBRATED, S.SLAVE}


def oracle(state: S, event: E, new_master: bool, variant: str) -> S:
    if event in (E.POWERUP, E.INITIALIZE):
        return S.INITIALIZING
    if event is E.DESIGNATED_DISABLED:
        return S.DISABLED
    if event is E.FAULT_DETECTED:
        return S.FAULTY if state in OPERATIONAL | {S.INITIALIZING} else state
    if state is S.FAULTY:
        return S.INITIALIZING if event is E.FAULT_CLEARED else state
    if state is S.DISABLED:
        return S.INITIALIZING if event is E.DESIGNATED_ENABLED else state
    if state is S.INITIALIZING:
        return S.LISTENING if event is E.INIT_COMPLETE else state
    # operational states
    nxt = state
    if event is E.RS_SLAVE:
        nxt = S.SLAVE if state is S.SLAVE and not new_master else S.UNCALIBRATED
    elif event is E.RS_GRAND_MASTER:
        nxt = S.MASTER
    elif event is E.RS_MASTER:
        nxt = state if state in (S.MASTER, S.PRE_MASTER) else S.PRE_MASTER
    elif event is E.RS_PASSIVE:
        nxt = S.PASSIVE
    elif event is E.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES:
        nxt = S.MASTER if state in (S.LISTENING, S.UNCALIBRATED, S.SLAVE, S.PASSIVE) else state
    elif event is E.QUALIFICATION_TIMEOUT_EXPIRES:
        nxt = S.MASTER if state is S.PRE_MASTER else state
    elif event is E.MASTER_CLOCK_SELECTED:
        nxt = S.SLAVE if state is S.UNCALIBRATED else state
    elif event is E.SYNCHRONIZATION_FAULT:
        nxt = S.UNCALIBRATED if state is S.SLAVE else state
    if variant == "slave_only" and nxt in (S.MASTER, S.PRE_MASTER, S.PASSIVE):
        return S.LISTENING
    if variant == "master_only" and nxt in (S.SLAVE, S.UNCALIBRATED, S.PASSIVE, S.PRE_MASTER):
        return S.MASTER
    return nxt


VARIANTS = ("ordinary", "slave_only", "master_only")


def run(state: S, event: E, new_master: bool, variant: str) -> S:
    return ptp_fsm(
        state, event, new_master=new_master,
        slave_only=variant == "slave_only", master_only=variant == "master_only",
    )


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(S, E)), ids=lambda x: getattr(x, "name", x)
)
def test_every_state_event_pair(state: S, event: E) -> None:
    for new_master, variant in itertools.product((False, True), VARIANTS):
        assert run(state, event, new_master, variant) == oracle(state, event, new_master, variant)


@given(st.sampled_from(S), st.sampled_from(E), st.booleans(), st.sampled_from(VARIANTS))
def test_fsm_total_and_matches_figure_30(
    state: S, event: E, new_master: bool, variant: str
) -> None:
    nxt = run(state, event, new_master, variant)
    assert isinstance(nxt, S)
    assert nxt == oracle(state, event, new_master, variant)
    if variant == "slave_only":
        assert nxt not in (S.MASTER, S.PRE_MASTER, S.PASSIVE)
    if variant == "master_only":
        assert nxt not in (S.SLAVE, S.UNCALIBRATED, S.PASSIVE)


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(S)
