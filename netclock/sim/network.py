"""A simulated network of named nodes that exchange bytes, with RX/TX timestamps.

Pure module. :class:`SimNetwork` drives sans-IO cores the way the daemon drives them over real
sockets, but on simulated time:

* each node has a :class:`~netclock.sim.clock.SimClock` and a *core*: any object with the four
  methods of :class:`SimCore`. Every call gets ``now``, the node's own clock reading (int ns),
  never true time;
* a core answers with actions: :class:`Send` (bytes to a named node), :class:`SetTimer` (a
  deadline on the node's own clock) and :class:`CancelTimer`;
* a packet travels over the :class:`~netclock.sim.link.Link` of its direction (``connect``):
  the receiver's ``on_receive`` gets the **RX timestamp** read from its own clock at the true
  delivery time; a ``Send`` with a ``ctx`` makes the sender's ``on_tx_timestamp(ctx, tx_ts)``
  run right after, with the **TX timestamp** read from the sender's clock at the true send
  time (SO_TIMESTAMPING's error queue, without its latency).

Plugging in a protocol core (``netclock.ntp`` / ``netclock.ptp``): those cores take bytes and
``now`` and return their own frozen action dataclasses. Wrap one in a small adapter that
implements :class:`SimCore` and translates (the same job the daemon's I/O loop does)::

    class PtpPortAdapter:
        def __init__(self, port, peer):
            self.port, self.peer = port, peer
        def _tr(self, actions):
            for a in actions:
                if isinstance(a, ptp.SendEvent):   # needs a TX timestamp
                    yield Send(self.peer, a.data, ctx=a.context)
                elif isinstance(a, ptp.SendGeneral):
                    yield Send(self.peer, a.data)
                elif isinstance(a, ptp.ResetTimer):
                    yield SetTimer(a.timer, a.deadline_ns)
        def start(self, now):
            return self._tr(self.port.start(now))
        def on_receive(self, data, src, rx_ts, now):
            return self._tr(self.port.handle_event_receive(data, rx_ts, now))
        def on_timer(self, timer, now):
            return self._tr(self.port.handle_timer(timer, now))
        def on_tx_timestamp(self, ctx, tx_ts, now):
            return self._tr(self.port.handle_send_timestamp(ctx, tx_ts, now))

(names of the PTP actions are illustrative). ``tests/sim/test_network.py`` runs a tiny byte-level
two-way core through exactly this path, and :mod:`netclock.sim.twoway` is built on it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from netclock.sim.clock import SimClock
from netclock.sim.link import Link
from netclock.sim.scheduler import Scheduler, TimerHandle

__all__ = ["CancelTimer", "Send", "SetTimer", "SimAction", "SimCore", "SimNetwork"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to node ``dst``; with ``ctx`` set, report the TX timestamp for it."""

    dst: str
    data: bytes
    ctx: Hashable | None = None


@dataclass(frozen=True, slots=True)
class SetTimer:
    """(Re)arm timer ``timer`` to fire when the node's own clock reads ``deadline_ns``."""

    timer: Hashable
    deadline_ns: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Hashable


SimAction = Send | SetTimer | CancelTimer


class SimCore(Protocol):
    """What a node runs. ``now`` is always the node's own clock reading (int ns)."""

    def start(self, now: int) -> Iterable[SimAction]: ...

    def on_receive(self, data: bytes, src: str, rx_ts: int, now: int) -> Iterable[SimAction]: ...

    def on_timer(self, timer: Hashable, now: int) -> Iterable[SimAction]: ...

    def on_tx_timestamp(self, ctx: Hashable, tx_ts: int, now: int) -> Iterable[SimAction]: ...


@dataclass
class _Node:
    name: str
    clock: SimClock
    core: SimCore
    timers: dict[Hashable, TimerHandle] = field(default_factory=dict)


class SimNetwork:
    """Named nodes joined by per-direction links, run by one :class:`Scheduler`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.sched = scheduler
        self._nodes: dict[str, _Node] = {}
        self._links: dict[tuple[str, str], Link] = {}
        self.delivered: dict[tuple[str, str], int] = {}
        self.unroutable = 0

    def add_node(self, name: str, clock: SimClock, core: SimCore) -> None:
        if name in self._nodes:
            raise ValueError(f"node {name!r} exists")
        self._nodes[name] = _Node(name, clock, core)

    def connect(self, src: str, dst: str, link: Link) -> None:
        """Packets from ``src`` to ``dst`` travel over ``link`` (one direction)."""
        for n in (src, dst):
            if n not in self._nodes:
                raise KeyError(f"unknown node {n!r}")
        self._links[(src, dst)] = link
        self.delivered[(src, dst)] = 0

    def link(self, src: str, dst: str) -> Link:
        return self._links[(src, dst)]

    def clock(self, name: str) -> SimClock:
        return self._nodes[name].clock

    def now_of(self, name: str) -> int:
        """Node ``name``'s clock reading at the current true time."""
        return self._nodes[name].clock.read(self.sched.now)

    def start(self) -> None:
        """Call every core's ``start`` at the current true time (in insertion order)."""
        for node in list(self._nodes.values()):
            self._apply(node, node.core.start(node.clock.read(self.sched.now)))

    # -- internals --------------------------------------------------------------------------------
    def _true_time_of(self, clock: SimClock, deadline_ns: int) -> int:
        """Earliest true time (from now on) at which ``clock`` reads >= ``deadline_ns``.

        Newton steps (a clock's rate is within a fraction of a percent of 1), then ns steps
        for the rounding; a clock that never gets there (it would need a huge backward step)
        fires after the last Newton step rather than loop.
        """
        t = self.sched.now
        for _ in range(64):
            diff = deadline_ns - clock.read(t)
            if diff <= 0:
                return t
            if diff <= 4:
                break
            t += diff
        for _ in range(64):
            if clock.read(t) >= deadline_ns:
                break
            t += 1
        return t

    def _apply(self, node: _Node, actions: Iterable[SimAction]) -> None:
        for a in actions:
            if isinstance(a, Send):
                self._send(node, a)
            elif isinstance(a, SetTimer):
                old = node.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
                at = self._true_time_of(node.clock, a.deadline_ns)
                node.timers[a.timer] = self.sched.at(at, self._fire(node, a.timer))
            elif isinstance(a, CancelTimer):
                old = node.timers.pop(a.timer, None)
                if old is not None:
                    old.cancel()
            else:  # pragma: no cover - typing makes this unreachable
                raise TypeError(f"unknown sim action {a!r}")

    def _fire(self, node: _Node, timer: Hashable) -> Callable[[], None]:
        def run() -> None:
            node.timers.pop(timer, None)
            self._apply(node, node.core.on_timer(timer, node.clock.read(self.sched.now)))

        return run

    def _send(self, node: _Node, a: Send) -> None:
        now = self.sched.now
        if a.ctx is not None:
            ctx = a.ctx
            tx_ts = node.clock.read(now)

            def report() -> None:
                self._apply(
                    node, node.core.on_tx_timestamp(ctx, tx_ts, node.clock.read(self.sched.now))
                )

            self.sched.at(now, report)
        key = (node.name, a.dst)
        link = self._links.get(key)
        if link is None:
            self.unroutable += 1
            return
        at = link.transit(now)
        if at is None:
            return
        dst = self._nodes[a.dst]
        data, src = a.data, node.name

        def deliver() -> None:
            self.delivered[key] += 1
            rx = dst.clock.read(self.sched.now)
            self._apply(dst, dst.core.on_receive(data, src, rx, rx))

        self.sched.at(at, deliver)
