"""RxPoller and StampedSocket.pause_reader/collect: reading stamped sockets on a timer.

Real loopback sockets with kernel stamps: a paused socket delivers nothing until it is polled,
its stamps are still the arrival times, two sockets are merged in arrival order, TX stamps of
sends still arrive, and stopping the poller goes back to a wake-up per datagram.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from netclock.platform.clockmap import Bracket, ClockMap
from netclock.platform.timestamping import Received, RxPoller, Stamp, StampedSocket
from netclock.platform.udp import open_udp

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def _pair(seen: list[tuple[str, Received]], tag: str, cmap: ClockMap) -> StampedSocket:
    return StampedSocket(open_udp("127.0.0.1"), clock_map=cmap,
                         on_receive=lambda r: seen.append((tag, r)))


def _rx_tx(
    cmap: ClockMap,
) -> tuple[list[tuple[str, Received]], StampedSocket, StampedSocket]:
    """What a receiving socket delivers (tagged "a"), that socket, and one to send to it."""
    seen: list[tuple[str, Received]] = []
    return seen, _pair(seen, "a", cmap), StampedSocket(open_udp("127.0.0.1"), clock_map=cmap)


def test_paused_socket_delivers_on_poll_with_arrival_stamps() -> None:
    async def main() -> None:
        cmap = ClockMap()
        seen, rx, tx = _rx_tx(cmap)
        # (an interval far beyond the test's own sleeps: its timer must not poll first, even
        # on a loaded machine)
        poller = RxPoller([rx], 0.9)
        try:
            poller.start()
            assert rx.polled and poller.running
            sent_at = []
            for i in range(5):
                before = time.monotonic_ns()
                tx.send_general(b"m%d" % i, rx.local_address)
                sent_at.append((before, time.monotonic_ns()))
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.02)
            assert seen == []  # no wake-up per datagram while paused
            polled_at = time.monotonic_ns()
            assert poller.poll() == 5
            assert [r.data for _, r in seen] == [b"m%d" % i for i in range(5)]
            for (_, r), (t0, t1) in zip(seen, sent_at, strict=True):
                assert r.stamp_source == "kernel"
                # stamped on arrival, not when read: each within a few ms of its send (the
                # send bracketed, so a preempted sender does not count against it), and the
                # first one long before the poll
                assert t0 - 1_000_000 <= r.rx_ns <= t1 + 5_000_000, (t0, t1, r.rx_ns)
            assert polled_at - seen[0][1].rx_ns > 40_000_000
            assert rx.counters.rx_kernel == 5 and rx.counters.rx_user == 0
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())


def test_two_sockets_are_merged_in_arrival_order() -> None:
    """As a PTP Sync (event port) and its Follow_Up (general port): sent alternately to two
    sockets, they are delivered in the order they arrived, not socket by socket."""

    async def main() -> None:
        cmap = ClockMap()
        seen: list[tuple[str, Received]] = []
        event, general = _pair(seen, "event", cmap), _pair(seen, "general", cmap)
        tx = StampedSocket(open_udp("127.0.0.1"), clock_map=cmap)
        poller = RxPoller([event, general], 0.25)
        try:
            poller.start()
            order = []
            for i in range(8):
                dest = event if i % 2 == 0 else general
                order.append(("event" if dest is event else "general", b"%d" % i))
                tx.send_general(b"%d" % i, dest.local_address)
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.01)
            assert poller.poll() == 8
            assert [(tag, r.data) for tag, r in seen] == order
            stamps = [r.rx_ns for _, r in seen]
            assert stamps == sorted(stamps)
        finally:
            poller.stop()
            event.close()
            general.close()
            tx.close()

    run(main())


def test_timer_polls_and_stop_returns_to_per_datagram_wakeups() -> None:
    async def main() -> None:
        cmap = ClockMap()
        seen, rx, tx = _rx_tx(cmap)
        poller = RxPoller([rx], 0.05)
        try:
            poller.start()
            tx.send_general(b"x", rx.local_address)
            await asyncio.sleep(0.12)  # the timer, not a wake-up, delivered it
            assert [r.data for _, r in seen] == [b"x"]
            assert poller.polls >= 2
            tx.send_general(b"queued", rx.local_address)
            await asyncio.sleep(0.005)
            poller.stop()  # reads what queued, then resumes the reader
            assert not rx.polled and not poller.running
            assert [r.data for _, r in seen] == [b"x", b"queued"]
            polls = poller.polls
            tx.send_general(b"woken", rx.local_address)
            await asyncio.sleep(0.02)
            assert [r.data for _, r in seen][-1] == b"woken" and poller.polls == polls
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())


def test_a_driven_poller_polls_only_from_its_owners_ticks_past_the_interval_less_slack() -> None:
    async def main() -> None:
        cmap = ClockMap()
        seen, rx, tx = _rx_tx(cmap)
        loop = asyncio.get_running_loop()
        poller = RxPoller([rx], 0.2, timer=False, slack_s=0.05)
        try:
            poller.start()
            t0 = loop.time()
            tx.send_general(b"x", rx.local_address)
            await asyncio.sleep(0.3)  # no timer of its own: nothing read
            assert seen == [] and poller.polls == 0 and rx.polled
            poller.tick(t0 + 0.14)  # less than interval - slack since the start: not yet
            assert poller.polls == 0
            poller.tick(t0 + 0.16)
            assert [r.data for _, r in seen] == [b"x"] and poller.polls == 1
            poller.tick(t0 + 0.30)  # 0.14 since that poll
            assert poller.polls == 1
            poller.tick(t0 + 0.32)
            assert poller.polls == 2
            poller.stop()
            poller.tick(t0 + 1.0)  # a stopped poller ignores ticks
            assert poller.polls == 3 and not rx.polled  # (stop read what was queued)
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())


def test_a_driven_poller_with_wanted_polls_only_while_a_datagram_is_due() -> None:
    async def main() -> None:
        cmap = ClockMap()
        seen, rx, tx = _rx_tx(cmap)
        loop = asyncio.get_running_loop()
        due = [False]
        poller = RxPoller([rx], 0.2, timer=False, slack_s=0.05, wanted=lambda: due[0])
        try:
            poller.start()
            t0 = loop.time()
            tx.send_general(b"x", rx.local_address)
            await asyncio.sleep(0.05)
            poller.tick(t0 + 0.2)  # the interval has passed, but nothing is due: not read
            assert poller.polls == 0 and seen == []
            due[0] = True
            poller.tick(t0 + 0.25)
            assert poller.polls == 1 and [r.data for _, r in seen] == [b"x"]
            due[0] = False
            tx.send_general(b"y", rx.local_address)
            await asyncio.sleep(0.05)
            poller.tick(t0 + 0.6)
            assert poller.polls == 1  # it waits in the socket for the next due poll
            due[0] = True
            poller.tick(t0 + 0.61)
            assert poller.polls == 2 and [r.data for _, r in seen] == [b"x", b"y"]
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())


def test_a_batch_after_a_realtime_step_re_measures_the_mapping_once() -> None:
    """A collected batch maps its stamps with one estimate read; a stamp that falls outside
    its window (REALTIME stepped since the mapping was measured) re-measures it, once, and
    every datagram of the batch gets its arrival time."""
    shift = [10**9]  # REALTIME as the mapping last saw it: 1 s ahead of what it is now

    def reader() -> Bracket:
        m1 = time.monotonic_ns()
        rt = time.time_ns() + shift[0]
        return Bracket(m1, rt, time.monotonic_ns())

    async def main() -> None:
        cmap = ClockMap(reader=reader)
        cmap.recheck()
        shift[0] = 0  # REALTIME steps back by 1 s
        _, rx, tx = _rx_tx(cmap)
        try:
            rx.pause_reader()
            before = time.monotonic_ns()
            for i in range(3):
                tx.send_general(bytes([i]), rx.local_address)
            await asyncio.sleep(0.05)
            measurements = cmap.measurements
            got = rx.collect()
            after = time.monotonic_ns()
            assert [r.data for r in got] == [b"\0", b"\1", b"\2"]
            assert all(r.stamp.source == "kernel" for r in got)
            assert all(before - 50_000 <= r.rx_ns <= after for r in got), (before, got, after)
            assert cmap.steps == 1 and cmap.measurements == measurements + 1
        finally:
            rx.close()
            tx.close()

    run(main())


def test_tx_stamps_of_a_paused_socket_still_arrive() -> None:
    """The error queue is read right after each send, and at the TX deadline: a paused socket
    (no EPOLLERR wake-up) still gets every kernel TX stamp."""

    async def main() -> None:
        cmap = ClockMap()
        seen: list[tuple[str, Received]] = []
        a = _pair(seen, "a", cmap)
        peer = open_udp("127.0.0.1")
        poller = RxPoller([a], 0.3)
        try:
            poller.start()
            stamps: list[Stamp | None] = []
            for i in range(10):
                before = time.monotonic_ns()
                a.send_event_cb(b"e%d" % i, peer.getsockname(), stamps.append)
                after = time.monotonic_ns()
                await asyncio.sleep(0.001)
                assert len(stamps) == i + 1
                s = stamps[-1]
                assert s is not None and s.source == "kernel"
                assert before - s.uncertainty_ns - 1 <= s.ns <= after + s.uncertainty_ns + 1
            assert a.counters.tx_kernel == 10 and a.counters.tx_timeouts == 0
            assert a.pending_tx == 0
        finally:
            poller.stop()
            a.close()
            peer.close()

    run(main())


def test_tx_deadline_reads_the_error_queue_before_giving_up() -> None:
    """A stamp that arrives after the send (not drained then) is still taken at the deadline
    instead of the userspace fallback."""

    async def main() -> None:
        cmap = ClockMap()
        a = StampedSocket(open_udp("127.0.0.1"), clock_map=cmap, tx_timeout_s=0.05)
        peer = open_udp("127.0.0.1")
        a.pause_reader()
        drain = a._drain_errqueue
        skipped = []

        def skip_once() -> None:  # the drain right after sendmsg finds nothing, as if late
            if not skipped:
                skipped.append(True)
                return
            drain()

        a._drain_errqueue = skip_once  # type: ignore[method-assign]
        got: list[Stamp | None] = []
        try:
            a.send_event_cb(b"late", peer.getsockname(), got.append)
            assert got == [] and a.pending_tx == 1
            await asyncio.sleep(0.1)
            assert len(got) == 1 and got[0] is not None and got[0].source == "kernel"
            assert a.counters.tx_timeouts == 0 and a.counters.tx_kernel == 1
        finally:
            a.close()
            peer.close()

    run(main())


def test_interval_is_checked_and_close_while_paused_is_clean() -> None:
    async def main() -> None:
        cmap = ClockMap()
        seen: list[tuple[str, Received]] = []
        a = _pair(seen, "a", cmap)
        for bad in (0.0, -1.0, 1.0, 5.0):
            with pytest.raises(ValueError):
                RxPoller([a], bad)
        poller = RxPoller([a], 0.1)
        poller.start()
        a.close()  # the owner closes its socket under a running poller
        assert poller.poll() == 0
        poller.stop()
        assert a.closed and a.collect() == []

    run(main())


def test_a_burst_switches_to_per_datagram_wakeups_until_it_ends() -> None:
    """Polling would let a flood overflow the receive buffer between two polls (and drop the
    wanted datagrams with the flood): a poll that finds ``busy`` or more goes back to a
    wake-up per datagram, and polling resumes once an interval is quiet again."""

    async def main() -> None:
        cmap = ClockMap()
        seen, rx, tx = _rx_tx(cmap)
        poller = RxPoller([rx], 0.05, busy=20)
        try:
            poller.start()
            for i in range(30):  # a burst: 30 in one interval
                tx.send_general(b"b%d" % i, rx.local_address)
            await asyncio.sleep(0.08)
            assert poller.busy and poller.bursts == 1 and not rx.polled
            n = len(seen)
            tx.send_general(b"during", rx.local_address)
            await asyncio.sleep(0.005)  # delivered by a wake-up, well before the next poll
            assert len(seen) == n + 1 and seen[-1][1].data == b"during"
            await asyncio.sleep(0.15)  # quiet intervals: polling again
            assert not poller.busy and rx.polled
            tx.send_general(b"after", rx.local_address)
            await asyncio.sleep(0.005)
            assert seen[-1][1].data != b"after"  # waits for the next poll
            await asyncio.sleep(0.08)
            assert seen[-1][1].data == b"after"
            assert len(seen) == 32 and rx.counters.rx_kernel == 32
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())


def test_collect_drains_the_error_queue_when_a_stamp_is_pending_or_every_16th_call() -> None:
    async def main() -> None:
        a = StampedSocket(open_udp("127.0.0.1"), clock_map=ClockMap(), tx_timeout_s=5.0)
        peer = open_udp("127.0.0.1")
        a.pause_reader()
        got: list[Stamp | None] = []
        try:
            a._drain_errqueue = lambda: None  # type: ignore[method-assign]
            a.send_event_cb(b"x", peer.getsockname(), got.append)  # its stamp stays queued
            del a._drain_errqueue  # the real one again
            assert got == [] and a.pending_tx == 1
            a.collect()  # a stamp is pending: drained
            assert len(got) == 1 and got[0] is not None and got[0].source == "kernel"
            drains = []
            real = a._drain_errqueue
            a._drain_errqueue = lambda: drains.append(real())  # type: ignore[method-assign]
            for _ in range(32):
                a.collect()  # nothing pending: the error queue on every 16th call only
            assert len(drains) == 2
        finally:
            a.close()
            peer.close()

    run(main())


def test_stop_from_a_delivered_datagram_keeps_arrival_order() -> None:
    """A datagram of a poll can stop the poller (a PTP port that becomes master on an
    Announce): the rest of that poll is still delivered in order, before anything newer."""

    async def main() -> None:
        cmap = ClockMap()
        seen: list[bytes] = []
        poller: RxPoller | None = None

        def on_rx(r: Received) -> None:
            seen.append(r.data)
            if r.data == b"1" and poller is not None:
                tx.send_general(b"late", rx.local_address)  # queued behind 2 and 3's batch
                poller.stop()

        rx = StampedSocket(open_udp("127.0.0.1"), clock_map=cmap, on_receive=on_rx)
        tx = StampedSocket(open_udp("127.0.0.1"), clock_map=cmap)
        poller = RxPoller([rx], 0.2)
        try:
            poller.start()
            for i in range(4):
                tx.send_general(b"%d" % i, rx.local_address)
            await asyncio.sleep(0.02)
            assert poller.poll() == 4
            assert seen == [b"0", b"1", b"2", b"3"] and not poller.running and not rx.polled
            await asyncio.sleep(0.02)  # the reader (per-datagram wake-ups again) reads the rest
            assert seen == [b"0", b"1", b"2", b"3", b"late"]
        finally:
            poller.stop()
            rx.close()
            tx.close()

    run(main())
