"""Port state machine of an ordinary clock (IEEE 1588-2019 §9.2.5, Figure 30) as a table.

:func:`ptp_fsm` is total: every (state, event) pair has an answer; a pair missing from the
table leaves the state unchanged. Two variants follow §9.2.2: a slave-only port never becomes
master (timeouts and master recommendations send it back to LISTENING), and a master-only port
never becomes slave or passive.
"""

from __future__ import annotations

import enum

from netclock.ptp.datasets import PortState

S = PortState


class FsmEvent(enum.Enum):
    """Events of Figure 30 (the names linuxptp uses in fsm.h)."""

    POWERUP = "POWERUP"
    INITIALIZE = "INITIALIZE"
    INIT_COMPLETE = "INIT_COMPLETE"
    FAULT_DETECTED = "FAULT_DETECTED"
    FAULT_CLEARED = "FAULT_CLEARED"
    DESIGNATED_ENABLED = "DESIGNATED_ENABLED"
    DESIGNATED_DISABLED = "DESIGNATED_DISABLED"
    ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES = "ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES"
    QUALIFICATION_TIMEOUT_EXPIRES = "QUALIFICATION_TIMEOUT_EXPIRES"
    SYNCHRONIZATION_FAULT = "SYNCHRONIZATION_FAULT"
    MASTER_CLOCK_SELECTED = "MASTER_CLOCK_SELECTED"
    RS_MASTER = "RS_MASTER"
    RS_GRAND_MASTER = "RS_GRAND_MASTER"
    RS_SLAVE = "RS_SLAVE"
    RS_PASSIVE = "RS_PASSIVE"


E = FsmEvent

_OPERATIONAL = (S.LISTENING, S.PRE_MASTER, S.MASTER, S.PASSIVE, S.UNCALIBRATED, S.SLAVE)

#: Figure 30, per state: event → next state. Events not listed keep the state.
TRANSITIONS: dict[PortState, dict[FsmEvent, PortState]] = {
    S.INITIALIZING: {E.INIT_COMPLETE: S.LISTENING},
    S.FAULTY: {E.FAULT_CLEARED: S.INITIALIZING},
    S.DISABLED: {E.DESIGNATED_ENABLED: S.INITIALIZING},
    S.LISTENING: {
        E.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES: S.MASTER,
        E.RS_MASTER: S.PRE_MASTER,
        E.RS_GRAND_MASTER: S.MASTER,
        E.RS_SLAVE: S.UNCALIBRATED,
        E.RS_PASSIVE: S.PASSIVE,
    },
    S.PRE_MASTER: {
        E.QUALIFICATION_TIMEOUT_EXPIRES: S.MASTER,
        E.RS_GRAND_MASTER: S.MASTER,
        E.RS_SLAVE: S.UNCALIBRATED,
        E.RS_PASSIVE: S.PASSIVE,
    },
    S.MASTER: {
        E.RS_SLAVE: S.UNCALIBRATED,
        E.RS_PASSIVE: S.PASSIVE,
    },
    S.PASSIVE: {
        E.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES: S.MASTER,
        E.RS_MASTER: S.PRE_MASTER,
        E.RS_GRAND_MASTER: S.MASTER,
        E.RS_SLAVE: S.UNCALIBRATED,
    },
    S.UNCALIBRATED: {
        E.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES: S.MASTER,
        E.MASTER_CLOCK_SELECTED: S.SLAVE,
        E.RS_MASTER: S.PRE_MASTER,
        E.RS_GRAND_MASTER: S.MASTER,
        E.RS_PASSIVE: S.PASSIVE,
    },
    S.SLAVE: {
        E.ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES: S.MASTER,
        E.SYNCHRONIZATION_FAULT: S.UNCALIBRATED,
        E.RS_MASTER: S.PRE_MASTER,
        E.RS_GRAND_MASTER: S.MASTER,
        E.RS_PASSIVE: S.PASSIVE,
    },
}
# Transitions from every state (Figure 30's "any state" arcs).
for _state, _row in TRANSITIONS.items():
    _row[E.POWERUP] = S.INITIALIZING
    _row[E.INITIALIZE] = S.INITIALIZING
    if _state != S.DISABLED:
        _row[E.DESIGNATED_DISABLED] = S.DISABLED
    if _state in _OPERATIONAL:
        _row[E.FAULT_DETECTED] = S.FAULTY
    if _state == S.INITIALIZING:
        _row[E.FAULT_DETECTED] = S.FAULTY


def _slave_only(state: PortState, event: FsmEvent, nxt: PortState) -> PortState:
    if nxt in (S.MASTER, S.PRE_MASTER, S.PASSIVE):
        return S.LISTENING
    return nxt


def _master_only(state: PortState, event: FsmEvent, nxt: PortState) -> PortState:
    if nxt in (S.SLAVE, S.UNCALIBRATED, S.PASSIVE, S.PRE_MASTER):
        return S.MASTER
    return nxt


def ptp_fsm(
    state: PortState,
    event: FsmEvent,
    *,
    new_master: bool = False,
    slave_only: bool = False,
    master_only: bool = False,
) -> PortState:
    """Next state for ``event`` in ``state``.

    ``new_master``: for RS_SLAVE, whether the recommended parent differs from the current one
    (a SLAVE that keeps its master stays SLAVE; a new master goes through UNCALIBRATED).
    """
    if event == E.RS_SLAVE and state == S.SLAVE:
        nxt = S.UNCALIBRATED if new_master else S.SLAVE
    elif event == E.RS_SLAVE and state == S.UNCALIBRATED:
        nxt = S.UNCALIBRATED
    else:
        nxt = TRANSITIONS[state].get(event, state)
    if slave_only:
        nxt = _slave_only(state, event, nxt)
    elif master_only:
        nxt = _master_only(state, event, nxt)
    return nxt
