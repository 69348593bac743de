"""Best master clock algorithm (IEEE 1588-2019 §9.3): data set comparison, foreign-master
records with qualification, the acceptable master table (§17.6) and the state decision
algorithm. Pure; time is an argument.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from netclock.ptp.datasets import DefaultDS, PortState
from netclock.ptp.wire.messages import Announce
from netclock.ptp.wire.types import ClockIdentity, ClockQuality, PortIdentity
from netclock.time import NS_PER_S

#: §9.3.2.4.6: an Announce sender is qualified after this many Announces in the window.
FOREIGN_MASTER_THRESHOLD = 2
#: §9.3.2.4.6: the window, in announce intervals.
FOREIGN_MASTER_TIME_WINDOW = 4


class Ordering(enum.IntEnum):
    """Result of :func:`compare` (the linuxptp dscmp convention)."""

    A_BETTER = 2
    A_BETTER_BY_TOPOLOGY = 1
    SAME = 0
    B_BETTER_BY_TOPOLOGY = -1
    B_BETTER = -2


@dataclass(frozen=True, slots=True)
class ComparisonDataset:
    """§9.3.4 the data set compared by the BMCA (Table 30)."""

    grandmaster_priority1: int
    grandmaster_identity: ClockIdentity
    grandmaster_clock_quality: ClockQuality
    grandmaster_priority2: int
    steps_removed: int
    #: identity of the port that sent the Announce (for D0: the local port)
    sender: PortIdentity
    #: identity of the port that received it (for D0: the local port)
    receiver: PortIdentity

    @classmethod
    def from_announce(cls, announce: Announce, receiver: PortIdentity) -> ComparisonDataset:
        return cls(
            announce.grandmaster_priority1,
            announce.grandmaster_identity,
            announce.grandmaster_clock_quality,
            announce.grandmaster_priority2,
            announce.steps_removed,
            announce.header.source_port_identity,
            receiver,
        )

    @classmethod
    def from_default_ds(cls, ds: DefaultDS, port: PortIdentity) -> ComparisonDataset:
        """D0, the local clock as a candidate (§9.3.4: stepsRemoved 0, sender = receiver)."""
        local = PortIdentity(ds.clock_identity, 0)
        return cls(
            ds.priority1, ds.clock_identity, ds.clock_quality, ds.priority2, 0, local, local
        )


def compare(a: ComparisonDataset, b: ComparisonDataset) -> Ordering:
    """§9.3.4 Figures 34/35: which of two data sets is better (lower values win)."""
    if a.grandmaster_identity != b.grandmaster_identity:
        qa, qb = a.grandmaster_clock_quality, b.grandmaster_clock_quality
        key_a = (a.grandmaster_priority1, qa.clock_class, qa.clock_accuracy,
                 qa.offset_scaled_log_variance, a.grandmaster_priority2, a.grandmaster_identity)
        key_b = (b.grandmaster_priority1, qb.clock_class, qb.clock_accuracy,
                 qb.offset_scaled_log_variance, b.grandmaster_priority2, b.grandmaster_identity)
        return Ordering.A_BETTER if key_a < key_b else Ordering.B_BETTER
    # Same grandmaster: topology (Figure 35).
    sa, sb = a.steps_removed, b.steps_removed
    if sa > sb + 1:
        return Ordering.B_BETTER
    if sb > sa + 1:
        return Ordering.A_BETTER
    if sa > sb:
        if a.receiver < a.sender:
            return Ordering.B_BETTER
        if a.receiver > a.sender:
            return Ordering.B_BETTER_BY_TOPOLOGY
        return Ordering.SAME  # error-1: a message we sent ourselves
    if sa < sb:
        if b.receiver < b.sender:
            return Ordering.A_BETTER
        if b.receiver > b.sender:
            return Ordering.A_BETTER_BY_TOPOLOGY
        return Ordering.SAME
    if a.sender < b.sender:
        return Ordering.A_BETTER_BY_TOPOLOGY
    if a.sender > b.sender:
        return Ordering.B_BETTER_BY_TOPOLOGY
    if a.receiver.port_number < b.receiver.port_number:
        return Ordering.A_BETTER_BY_TOPOLOGY
    if a.receiver.port_number > b.receiver.port_number:
        return Ordering.B_BETTER_BY_TOPOLOGY
    return Ordering.SAME  # error-2: the same data set twice


@dataclass(slots=True)
class ForeignMasterRecord:
    """§9.3.2.4 foreignMasterDS entry: the latest Announce and recent arrival times (ns)."""

    announce: Announce
    arrivals: list[int]

    def prune(self, now: int, window_ns: int) -> None:
        self.arrivals = [t for t in self.arrivals if now - t < window_ns]

    def qualified(self, now: int, window_ns: int) -> bool:
        return sum(1 for t in self.arrivals if now - t < window_ns) >= FOREIGN_MASTER_THRESHOLD


@dataclass(frozen=True, slots=True)
class AcceptableMaster:
    """One entry of the acceptable master table (IEEE 1588-2019 §17.6): the clockIdentity of a
    foreign master port allowed as parent, and its portNumber (None: any port of that clock)."""

    clock_identity: ClockIdentity
    port_number: int | None = None

    def matches(self, sender: PortIdentity) -> bool:
        return sender.clock_identity == self.clock_identity and (
            self.port_number is None or self.port_number == sender.port_number
        )

    @classmethod
    def parse(cls, text: str) -> AcceptableMaster:
        """``001122.fffe.334455`` or ``001122.fffe.334455-1`` (the form pmc and ptp4l print);
        the dots are optional. Raises ValueError naming the entry."""
        ident, sep, port = text.strip().partition("-")
        digits = ident.replace(".", "")
        hex_ok = len(digits) == 16 and all(c in "0123456789abcdefABCDEF" for c in digits)
        port_ok = not sep or (port.isascii() and port.isdigit() and int(port) <= 0xFFFF)
        if not hex_ok or not port_ok:
            raise ValueError(
                f"{text!r} is not a clockIdentity (16 hex digits, e.g. 001122.fffe.334455) "
                "optionally followed by -portNumber (0..65535)"
            )
        return cls(ClockIdentity(bytes.fromhex(digits)), int(port) if sep else None)

    def __str__(self) -> str:
        port = "" if self.port_number is None else f"-{self.port_number}"
        return f"{self.clock_identity}{port}"


def parse_acceptable_masters(text: str) -> tuple[AcceptableMaster, ...]:
    """A whitespace- or comma-separated list of :meth:`AcceptableMaster.parse` entries."""
    return tuple(AcceptableMaster.parse(w) for w in text.replace(",", " ").split())


def acceptable(table: tuple[AcceptableMaster, ...], sender: PortIdentity) -> bool:
    """§17.6: with a non-empty table only Announces from a listed sender port are qualified
    for the BMCA; an empty table accepts every foreign master."""
    return not table or any(e.matches(sender) for e in table)


class ForeignMasterList:
    """Foreign-master records of one port, qualified and aged by the ``now`` passed in."""

    def __init__(self, receiver: PortIdentity, log_announce_interval: int = 1) -> None:
        self.receiver = receiver
        self.log_announce_interval = log_announce_interval
        self._records: dict[PortIdentity, ForeignMasterRecord] = {}

    @property
    def window_ns(self) -> int:
        li = self.log_announce_interval
        interval = NS_PER_S << li if li >= 0 else NS_PER_S >> -li
        return FOREIGN_MASTER_TIME_WINDOW * interval

    def add(self, announce: Announce, now: int) -> bool:
        """Record an Announce. Returns True when its sender is (now) qualified."""
        key = announce.header.source_port_identity
        rec = self._records.get(key)
        if rec is None:
            rec = self._records[key] = ForeignMasterRecord(announce, [])
        rec.announce = announce
        rec.prune(now, self.window_ns)
        rec.arrivals.append(now)
        # Qualification needs only the latest THRESHOLD arrivals: keeping every arrival of the
        # window let an Announce flood (thousands per second) grow the list and made each
        # Announce cost O(list) (issue 9, tests/faults/test_fault_flood.py).
        del rec.arrivals[:-FOREIGN_MASTER_THRESHOLD]
        return rec.qualified(now, self.window_ns)

    def age(self, now: int) -> None:
        """Drop arrivals older than the window and records left with none."""
        for key in list(self._records):
            rec = self._records[key]
            rec.prune(now, self.window_ns)
            if not rec.arrivals:
                del self._records[key]

    def clear(self) -> None:
        self._records.clear()

    def remove(self, sender: PortIdentity) -> None:
        self._records.pop(sender, None)

    def retain_acceptable(self, table: tuple[AcceptableMaster, ...]) -> None:
        """Drop the records of senders the acceptable master ``table`` does not list."""
        for key in [k for k in self._records if not acceptable(table, k)]:
            del self._records[key]

    def __len__(self) -> int:
        return len(self._records)

    def qualified(self, now: int) -> list[tuple[ComparisonDataset, Announce]]:
        w = self.window_ns
        return [
            (ComparisonDataset.from_announce(r.announce, self.receiver), r.announce)
            for r in self._records.values()
            if r.qualified(now, w)
        ]

    def best(self, now: int) -> tuple[ComparisonDataset, Announce] | None:
        """Erbest (§9.3.2.2): the best qualified foreign master, or None."""
        best: tuple[ComparisonDataset, Announce] | None = None
        for cand in self.qualified(now):
            if best is None or compare(cand[0], best[0]) > 0:
                best = cand
        return best


class Decision(enum.Enum):
    """§9.3.3 Figure 33 decision codes (LISTENING: no decision, stay)."""

    M1 = "M1"
    M2 = "M2"
    M3 = "M3"
    P1 = "P1"
    P2 = "P2"
    S1 = "S1"
    LISTENING = "LISTENING"

    @property
    def recommended_state(self) -> PortState:
        return {
            "M1": PortState.MASTER,
            "M2": PortState.MASTER,
            "M3": PortState.MASTER,
            "P1": PortState.PASSIVE,
            "P2": PortState.PASSIVE,
            "S1": PortState.SLAVE,
            "LISTENING": PortState.LISTENING,
        }[self.value]


def state_decision(
    d0: ComparisonDataset,
    erbest: ComparisonDataset | None,
    ebest: ComparisonDataset | None,
    port_state: PortState,
    *,
    slave_only: bool = False,
    master_only: bool = False,
) -> Decision:
    """§9.3.3 state decision algorithm for one port.

    ``d0`` is the local clock, ``erbest`` the best foreign master on this port and ``ebest`` the
    best over all ports (the same as erbest for an ordinary clock). slaveOnly clocks never take a
    master role (§9.2.2.1); a masterOnly port (§9.2.2.2) is always master.
    """
    if master_only:
        return Decision.M2
    if erbest is None and port_state == PortState.LISTENING:
        return Decision.LISTENING
    if slave_only:
        if erbest is not None and ebest is not None and erbest == ebest:
            return Decision.S1
        return Decision.LISTENING
    if d0.grandmaster_clock_quality.clock_class <= 127:
        if erbest is None or compare(d0, erbest) > 0:
            return Decision.M1
        return Decision.P1
    if ebest is None or compare(d0, ebest) > 0:
        return Decision.M2
    if erbest is not None and erbest == ebest:
        return Decision.S1
    if erbest is None:
        return Decision.M3
    if compare(ebest, erbest) == Ordering.A_BETTER_BY_TOPOLOGY:
        return Decision.P2
    return Decision.M3
