"""Acceptable master table (IEEE 1588-2019 §17.6): parsing, matching, and the port's BMCA.

An Announce whose sender port is not in a non-empty table never becomes a foreign-master
record, so it can win no BMCA; each one is counted in ``counters["not_acceptable"]``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netclock.config import ConfigError, load_text
from netclock.ptp.bmca import (
    AcceptableMaster,
    ForeignMasterList,
    acceptable,
    parse_acceptable_masters,
)
from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import Announce, ClockIdentity, ClockQuality, Flags, Header, PortIdentity

NS = 1_000_000_000
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)
GOOD = PortIdentity(ClockIdentity(bytes.fromhex("001122fffe334455")), 1)
ROGUE = PortIdentity(ClockIdentity(bytes.fromhex("0000000000000001")), 1)  # wins any BMCA


def announce(sender: PortIdentity, seq: int, p1: int = 128, cls: int = 248) -> bytes:
    return Announce(
        header=Header(sender, seq, log_message_interval=1, flags=Flags.PTP_TIMESCALE),
        current_utc_offset=37,
        grandmaster_priority1=p1,
        grandmaster_clock_quality=ClockQuality(cls),
        grandmaster_identity=sender.clock_identity,
    ).pack()


def port(table: str = "", **cfg: object) -> PtpPort:
    c = PortConfig(acceptable_masters=parse_acceptable_masters(table), **cfg)  # type: ignore[arg-type]
    p = PtpPort(c, ME, random.Random(1))
    p.start(0)
    return p


def feed(p: PtpPort, sender: PortIdentity, count: int, t0: int = 0, **kw: int) -> int:
    for i in range(count):
        p.handle_general_receive(announce(sender, i, **kw), t0 + (i + 1) * NS)
    return t0 + count * NS


# -- parsing ----------------------------------------------------------------------------------


def test_parse_forms_pmc_prints() -> None:
    text = "001122.fffe.334455, 001122fffe334455-1\t0011.22ff.fe33.4456"
    a, b, c = parse_acceptable_masters(text)
    assert a == AcceptableMaster(GOOD.clock_identity, None)
    assert b == AcceptableMaster(GOOD.clock_identity, 1)
    assert c.clock_identity.raw.hex() == "001122fffe334456" and c.port_number is None
    assert str(b) == "001122.fffe.334455-1" and str(a) == "001122.fffe.334455"
    assert parse_acceptable_masters("  ") == ()


@pytest.mark.parametrize(
    "bad",
    ["001122.fffe.3344", "001122.fffe.33445566", "zz1122.fffe.334455", "001122.fffe.334455-",
     "001122.fffe.334455-65536", "001122.fffe.334455-+1", "001122.fffe.334455-x", "-1"],
)
def test_parse_rejects_malformed_entries_naming_them(bad: str) -> None:
    with pytest.raises(ValueError, match="clockIdentity"):
        AcceptableMaster.parse(bad)


@given(st.binary(min_size=8, max_size=8), st.none() | st.integers(0, 0xFFFF))
def test_str_parse_round_trip(raw: bytes, number: int | None) -> None:
    e = AcceptableMaster(ClockIdentity(raw), number)
    assert AcceptableMaster.parse(str(e)) == e


@given(st.text(max_size=40) | st.from_regex(r"[0-9a-f.]{14,20}(-[0-9+]{0,6})?", fullmatch=True))
def test_parse_raises_only_value_error_and_what_it_accepts_round_trips(text: str) -> None:
    try:
        table = parse_acceptable_masters(text)
    except ValueError as e:
        assert "clockIdentity" in str(e)
        return
    assert parse_acceptable_masters(" ".join(map(str, table))) == table
    assert len(table) == len(text.replace(",", " ").split())


def test_config_knob_is_validated_with_the_key_named() -> None:
    cfg = load_text('[ptp]\nacceptable-masters = "001122.fffe.334455-1"\n')
    assert parse_acceptable_masters(cfg.ptp.acceptable_masters)[0].port_number == 1
    with pytest.raises(ConfigError) as e:
        load_text('[ptp]\nacceptable-masters = "001122.fffe.3344"\n')
    assert e.value.key == "ptp.acceptable-masters" and "001122.fffe.3344" in str(e.value)


# -- matching ---------------------------------------------------------------------------------

identities = st.builds(ClockIdentity, st.binary(min_size=8, max_size=8))
ports = st.builds(PortIdentity, identities, st.integers(0, 0xFFFF))
entries = st.builds(AcceptableMaster, identities, st.none() | st.integers(0, 0xFFFF))


@given(st.lists(entries, max_size=5), ports)
def test_acceptable_is_exactly_listed_identity_and_port(
    table: list[AcceptableMaster], sender: PortIdentity
) -> None:
    listed = any(
        e.clock_identity == sender.clock_identity and e.port_number in (None, sender.port_number)
        for e in table
    )
    assert acceptable(tuple(table), sender) == (not table or listed)


def test_empty_table_accepts_everyone() -> None:
    assert acceptable((), ROGUE)


# -- the port ---------------------------------------------------------------------------------


def test_unlisted_master_is_never_selected_and_is_counted() -> None:
    p = port("001122.fffe.334455", slave_only=True)
    feed(p, ROGUE, 6, p1=0, cls=6)  # the best possible grandmaster, but not on the list
    assert p.state is PortState.LISTENING and p.parent is None
    assert len(p.foreign) == 0 and p.counters["not_acceptable"] == 6


def test_listed_master_is_selected_while_a_better_unlisted_one_is_ignored() -> None:
    p = port("001122.fffe.334455")
    for i in range(4):
        p.handle_general_receive(announce(ROGUE, i, p1=0, cls=6), (2 * i + 1) * NS // 2)
        p.handle_general_receive(announce(GOOD, i, p1=100), (2 * i + 2) * NS // 2)
    assert p.state is PortState.UNCALIBRATED and p.parent == GOOD
    assert p.counters["not_acceptable"] == 4


def test_port_number_restricts_to_that_port() -> None:
    p = port("001122.fffe.334455-2", slave_only=True)
    feed(p, GOOD, 3)  # port 1 of the listed clock
    assert p.parent is None and p.counters["not_acceptable"] == 3
    feed(p, PortIdentity(GOOD.clock_identity, 2), 2, t0=3 * NS)
    assert p.parent == PortIdentity(GOOD.clock_identity, 2)


def test_without_a_table_the_better_master_wins() -> None:
    p = port()
    for i in range(3):
        p.handle_general_receive(announce(ROGUE, i, p1=0, cls=6), (2 * i + 1) * NS // 2)
        p.handle_general_receive(announce(GOOD, i, p1=200), (2 * i + 2) * NS // 2)
    assert p.parent == ROGUE and p.counters["not_acceptable"] == 0


def test_reconfigured_table_drops_the_parent_it_no_longer_lists() -> None:
    p = port(slave_only=True)
    t = feed(p, ROGUE, 3)
    assert p.parent == ROGUE
    p.reconfigure(t, acceptable_masters=parse_acceptable_masters("001122.fffe.334455"))
    assert p.parent is None and p.state is PortState.LISTENING and len(p.foreign) == 0
    feed(p, GOOD, 2, t0=t)
    assert p.parent == GOOD


def test_foreign_master_list_retain_acceptable() -> None:
    fm = ForeignMasterList(ME)
    for sender in (GOOD, ROGUE):
        msg = Announce.unpack(announce(sender, 0))
        assert isinstance(msg, Announce)
        fm.add(msg, 0)
    fm.retain_acceptable(parse_acceptable_masters("001122.fffe.334455"))
    assert len(fm) == 1
    fm.retain_acceptable(())
    assert len(fm) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([GOOD, ROGUE]), st.integers(0, 255),
                          st.sampled_from([6, 127, 248])), min_size=1, max_size=30))
def test_any_announce_sequence_only_ever_selects_listed_parents(
    seq: list[tuple[PortIdentity, int, int]],
) -> None:
    p = port("001122.fffe.334455")
    rogue_sent = 0
    for i, (sender, p1, cls) in enumerate(seq):
        p.handle_general_receive(announce(sender, i, p1=p1, cls=cls), (i + 1) * NS // 2)
        rogue_sent += sender == ROGUE
        assert p.parent in (None, GOOD)
    assert p.counters["not_acceptable"] == rogue_sent
