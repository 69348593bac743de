"""The parent's messages count only from the address its Announces come from (PtpPort).

A clockIdentity is a field anyone can write; an IP source address takes raw sockets on the path
to forge. Sync, Follow_Up, Delay_Resp and Announce that carry the parent's identity from another
address (a spoofer, or the parent's own packets replayed from another host) are dropped and
counted in ``wrong_source``; they can neither complete a measurement nor move the pinned
address. A master that really moves falls silent at the old address and is qualified again at
the new one after the receipt timeout.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.ptp.actions import Measurement, PortTimer, SendEvent
from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import DelayReq, parse
from tests.unit.ptp.test_port import EPOCH, ME, NS, Peer

GM_IP, EVIL_IP, NEW_IP = "192.0.2.1", "192.0.2.66", "192.0.2.9"


def slave(peer: Peer, src: str | None = GM_IP) -> tuple[PtpPort, int]:
    port = PtpPort(PortConfig(slave_only=True, min_delay_samples=1), ME, random.Random(7))
    port.start(0)
    for k in range(2):
        port.handle_general_receive(peer.announce(k), (k + 1) * NS, src)
    assert port.state is PortState.UNCALIBRATED and port.parent == peer.ident
    return port, 2 * NS


def measure(port: PtpPort, peer: Peer, seq: int, now: int, src: str | None) -> list[Measurement]:
    """One two-step Sync and a delay exchange from ``src`` (true offset 0, delay 10 us)."""
    t1, t2 = now + EPOCH, now + 10_000
    acts = port.handle_event_receive(peer.sync(seq), t2, t2, src)
    acts += port.handle_general_receive(peer.follow_up(seq, t1), t2 + 1000, src)
    reqs = [a for a in port.handle_timer(PortTimer.DELAY_REQ, t2 + 2000)
            if isinstance(a, SendEvent)]
    if reqs:
        t3 = t2 + 3000
        acts += port.handle_send_timestamp(reqs[0].context, t3, t3)
        msg = parse(reqs[0].data)
        assert isinstance(msg, DelayReq)
        resp = peer.delay_resp(msg.header.sequence_id, t3 + 10_000 + EPOCH)
        acts += port.handle_general_receive(resp, t3 + 5000, src)
    return [a for a in acts if isinstance(a, Measurement)]


def test_parent_messages_from_its_address_measure() -> None:
    peer = Peer()
    port, now = slave(peer)
    ms = measure(port, peer, 0, now, GM_IP) + measure(port, peer, 1, now + NS, GM_IP)
    assert ms and all(m.offset == -EPOCH and m.delay == 10_000 for m in ms)
    assert port.counters["wrong_source"] == 0


def test_spoofed_identity_from_another_address_is_dropped_and_counted() -> None:
    peer = Peer()
    port, now = slave(peer)
    measure(port, peer, 0, now, GM_IP)
    before = port.counters["wrong_source"]
    # Sync + Follow_Up claiming a time 1 s off, and a forged Delay_Resp, from the spoofer
    t2 = now + NS + 10_000
    assert port.handle_event_receive(peer.sync(7), t2, t2, EVIL_IP) == []
    assert port.handle_general_receive(peer.follow_up(7, now + EPOCH - NS), t2, EVIL_IP) == []
    assert port.handle_general_receive(peer.delay_resp(0, 0), t2, EVIL_IP) == []
    assert port.counters["wrong_source"] == before + 3
    # the real parent's next exchange measures the true offset, untouched by the spoof
    ms = measure(port, peer, 8, now + 2 * NS, GM_IP)
    assert ms and all(m.offset == -EPOCH for m in ms)


def test_spoofed_announce_cannot_move_the_pinned_address() -> None:
    peer = Peer()
    port, now = slave(peer)
    for k in range(5):
        assert port.handle_general_receive(peer.announce(10 + k), now + k, EVIL_IP) == []
    assert port.counters["wrong_source"] == 5
    assert measure(port, peer, 0, now + NS, EVIL_IP) == []  # still refused
    assert measure(port, peer, 1, now + 2 * NS, GM_IP)  # and the parent still measures


def test_master_that_moves_is_requalified_at_its_new_address() -> None:
    peer = Peer()
    port, now = slave(peer)
    measure(port, peer, 0, now, GM_IP)
    # its Announces now come from NEW_IP: refused, until the receipt timeout forgets it
    port.handle_general_receive(peer.announce(20), now + NS, NEW_IP)
    port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, now + 10 * NS)
    assert port.state is PortState.LISTENING
    for k in range(2):
        port.handle_general_receive(peer.announce(21 + k), now + (11 + k) * NS, NEW_IP)
    assert port.state is PortState.UNCALIBRATED and port.parent == peer.ident
    assert measure(port, peer, 1, now + 13 * NS, NEW_IP)
    assert measure(port, peer, 2, now + 14 * NS, GM_IP) == []


def test_without_addresses_only_the_identity_is_checked() -> None:
    """L2 transports pass no address: nothing to pin, identity as before."""
    peer = Peer()
    port, now = slave(peer, src=None)
    assert measure(port, peer, 0, now, None)
    assert port.counters["wrong_source"] == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["sync", "follow_up", "announce", "delay_resp"]),
                          st.integers(0, 0xFFFF), st.integers(-10**12, 10**12)), max_size=40))
def test_no_sequence_from_a_spoofer_yields_a_measurement_or_moves_the_parent(
    msgs: list[tuple[str, int, int]],
) -> None:
    peer = Peer()
    port, now = slave(peer)
    for kind, seq, t in msgs:
        stamp = max(t + EPOCH, 0)
        if kind == "sync":
            data = peer.sync(seq)
        elif kind == "follow_up":
            data = peer.follow_up(seq, stamp)
        elif kind == "announce":
            data = peer.announce(seq)
        else:
            data = peer.delay_resp(seq, stamp)
        if kind == "sync":
            acts = port.handle_event_receive(data, now, now, EVIL_IP)
        else:
            acts = port.handle_general_receive(data, now, EVIL_IP)
        assert not any(isinstance(a, Measurement) for a in acts)
        now += 1000
    assert port.parent == peer.ident
    assert measure(port, peer, 1, now + NS, GM_IP)
