"""What a :class:`~netclock.ptp.port.PtpPort` asks its driver to do (frozen dataclasses).

The driver executes them in order: send bytes, arm or cancel timers, and pass measurements to
the servo path. :class:`TxContext` links an event send to its TX timestamp and may be used once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from netclock.ptp.datasets import PortState


class PortTimer(enum.Enum):
    """Timers a port asks for. Deadlines are absolute ``now``-domain ns."""

    ANNOUNCE_RECEIPT = "announce_receipt"
    ANNOUNCE = "announce"
    SYNC = "sync"
    DELAY_REQ = "delay_req"
    QUALIFICATION = "qualification"
    PDELAY_REQ = "pdelay_req"
    UNICAST_REQUEST = "unicast_request"


class TxKind(enum.Enum):
    SYNC = "sync"
    DELAY_REQ = "delay_req"
    PDELAY_REQ = "pdelay_req"
    PDELAY_RESP = "pdelay_resp"


class TxContextReusedError(RuntimeError):
    """A TX timestamp was delivered twice for the same send."""


class TxContext:
    """Single-use link between a :class:`SendEvent` and its TX timestamp (statime's
    ``TimestampContext``). :meth:`consume` succeeds once; a second call raises."""

    __slots__ = ("_used", "kind", "owner", "sequence_id")

    def __init__(self, kind: TxKind, sequence_id: int, owner: int) -> None:
        self.kind = kind
        self.sequence_id = sequence_id
        self.owner = owner
        self._used = False

    @property
    def used(self) -> bool:
        return self._used

    def consume(self) -> None:
        if self._used:
            raise TxContextReusedError(f"TX context {self.kind.value}#{self.sequence_id} reused")
        self._used = True

    def __repr__(self) -> str:
        return f"TxContext({self.kind.value}, seq={self.sequence_id}, used={self._used})"


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Send an event message (UDP 319) and report its TX timestamp with ``context``.

    A one-step Sync carries its own origin timestamp; its context comes already used, and the
    driver skips ``handle_send_timestamp`` for contexts whose ``used`` is True.
    """

    data: bytes
    context: TxContext
    #: unicast destination (an address the driver gave with a received message); None = the
    #: transport's multicast address for this message type
    dest: str | None = None


@dataclass(frozen=True, slots=True)
class SendGeneral:
    """Send a general message (UDP 320); no timestamp needed. ``dest`` as for SendEvent."""

    data: bytes
    dest: str | None = None


@dataclass(frozen=True, slots=True)
class SetTimer:
    timer: PortTimer
    at: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: PortTimer


@dataclass(frozen=True, slots=True)
class Measurement:
    """One completed Sync (+ latest delay exchange), all in integer ns.

    ``t1`` master send (PTP ns), ``t2`` local receive, ``t3`` local Delay_Req send, ``t4`` master
    receive (PTP ns); ``t3``/``t4`` are from the latest delay exchange (0 when none yet).
    ``offset`` = t2 − t1 − c_sync − delay: local time minus master time (local domain minus PTP
    domain, so large when the local clock is CLOCK_MONOTONIC). ``delay`` is the filtered mean path
    delay used; ``raw_delay`` the latest unfiltered one. ``correction`` is the Sync + Follow_Up
    correctionField applied, ``resp_correction`` the Delay_Resp's of the t3/t4 exchange.
    """

    offset: int
    delay: int
    t1: int
    t2: int
    t3: int
    t4: int
    raw_delay: int
    correction: int
    sequence_id: int
    resp_correction: int = 0


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: PortState
    new: PortState
    reason: str


Action = SendEvent | SendGeneral | SetTimer | CancelTimer | Measurement | StateChanged
