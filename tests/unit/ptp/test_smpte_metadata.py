"""SMPTE ST 2059-2 synchronization metadata (SM) TLV: codec, emission by a master, reception by
a slave (netclock/ptp/wire/smpte.py, PtpPort)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.ptp.actions import PortTimer, SendGeneral
from netclock.ptp.datasets import PortState
from netclock.ptp.port import PortConfig, PtpPort, locking_status
from netclock.ptp.profiles import load_profile
from netclock.ptp.wire import ClockQuality, Header, Management, parse
from netclock.ptp.wire.messages import ManagementAction
from netclock.ptp.wire.smpte import LockingStatus, SyncMetadata
from netclock.ptp.wire.tlv import OrganizationExtensionTlv
from netclock.ptp.wire.types import ALL_PORTS, ParseError
from tests.unit.ptp.test_port import GM, ME, NS, Peer
from tests.unit.ptp.test_profiles import PROFILES

#: 59.94 Hz drop-frame, locked, local time UTC-5 with a +1 h DST jump at PTP second
#: 0x0000_6789_ABCD, next jam at 0x0000_6789_0000, previous jam at 0x0000_6788_0000 (offset
#: -5 h then), DST now off and on after the jump, no leap second: the 42 octets by hand.
GOLDEN_VALUE = bytes.fromhex(
    "0000ea60" "000003e9"      # defaultSystemFrameRate 60000/1001
    "04" "01"                  # masterLockingStatus LOCKED, timeAddressFlags drop frame
    "ffffb9b0"                 # currentLocalOffset -18000 s
    "00000e10"                 # jumpSeconds +3600 s
    "00006789abcd"             # timeOfNextJump
    "000067890000"             # timeOfNextJam
    "000067880000"             # timeOfPreviousJam
    "ffffb9b0"                 # previousJamLocalOffset -18000 s
    "02" "00"                  # daylightSaving: on after the next jump; leapSecondJump 0
)
GOLDEN = SyncMetadata(60000, 1001, LockingStatus.LOCKED, 1, -18000, 3600, 0x6789ABCD,
                      0x67890000, 0x67880000, -18000, 2, 0)


def test_golden_value_both_ways() -> None:
    assert len(GOLDEN_VALUE) == 42
    assert GOLDEN.pack_value() == GOLDEN_VALUE
    assert SyncMetadata.unpack_value(GOLDEN_VALUE) == GOLDEN
    assert GOLDEN.drop_frame and GOLDEN.local_seconds(1_000_000) == 1_000_000 - 18000
    assert GOLDEN.locking_name == "locked"
    assert replace(GOLDEN, locking_status=9).locking_name == "status 9"


def test_tlv_is_the_smpte_organization_extension() -> None:
    raw = GOLDEN.tlv().pack()
    # tlvType ORGANIZATION_EXTENSION, lengthField 48, SMPTE OUI, subtype 1, then the value
    assert raw[:4] == bytes.fromhex("00030030")
    assert raw[4:10] == bytes.fromhex("6897e8000001")
    assert raw[10:] == GOLDEN_VALUE


def test_management_message_layout_and_parse() -> None:
    header = Header(source_port_identity=GM, sequence_id=7, log_message_interval=0x7F)
    raw = GOLDEN.message(header).pack()
    assert len(raw) == 34 + 14 + 52  # header, management body, TLV (4 + 48)
    assert raw[0] & 0x0F == 0xD  # Management
    assert raw[34:44] == b"\xff" * 10  # every port
    assert raw[46] & 0x0F == ManagementAction.COMMAND
    msg = parse(raw)
    assert isinstance(msg, Management) and msg.target_port_identity == ALL_PORTS
    (tlv,) = msg.tlvs
    assert isinstance(tlv, OrganizationExtensionTlv)
    assert SyncMetadata.from_tlvs(msg.tlvs) == GOLDEN
    assert msg.pack() == raw


def test_other_organization_extensions_are_not_metadata() -> None:
    other = OrganizationExtensionTlv(b"\x00\x80\xc2", b"\x00\x00\x01", b"\0" * 28)
    assert SyncMetadata.from_tlvs((other,)) is None
    short = OrganizationExtensionTlv(b"\x68\x97\xe8", b"\x00\x00\x01", b"\0" * 41)
    with pytest.raises(ParseError):
        SyncMetadata.from_tlvs((short,))


@pytest.mark.parametrize("field,value", [
    ("frame_rate_numerator", -1), ("locking_status", 256), ("current_local_offset", 1 << 31),
    ("time_of_next_jam", 1 << 48), ("daylight_saving", -1),
])
def test_out_of_range_values_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        replace(GOLDEN, **{field: value})


@given(st.binary(min_size=42, max_size=60))
def test_any_42_octets_round_trip(data: bytes) -> None:
    sm = SyncMetadata.unpack_value(data)
    assert sm.pack_value() == data[:42]


@given(st.binary(max_size=41))
def test_short_values_raise_only_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        SyncMetadata.unpack_value(data)


@pytest.mark.parametrize("cls,status", [
    (6, LockingStatus.LOCKED), (13, LockingStatus.LOCKED), (7, LockingStatus.WARM_LOCKING),
    (52, LockingStatus.COLD_LOCKING), (187, LockingStatus.COLD_LOCKING),
    (248, LockingStatus.FREE_RUN), (255, LockingStatus.FREE_RUN),
])
def test_locking_status_follows_the_clock_class(cls: int, status: LockingStatus) -> None:
    assert locking_status(cls) is status


def _master(clock_class: int) -> tuple[PtpPort, list[object]]:
    cfg = PortConfig(master_only=True, log_announce_interval=-2,
                     clock_quality=ClockQuality(clock_class),
                     sync_metadata=SyncMetadata(25, 1))
    port = PtpPort(cfg, ME, random.Random(3))
    port.start(0)
    port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, 4 * NS)
    assert port.state is PortState.MASTER
    acts = port.handle_timer(PortTimer.ANNOUNCE, 5 * NS)
    return port, [parse(a.data) for a in acts if isinstance(a, SendGeneral)]


def test_master_sends_metadata_with_each_announce() -> None:
    _, msgs = _master(6)
    (mgmt,) = [m for m in msgs if isinstance(m, Management)]
    assert mgmt.action == ManagementAction.COMMAND and mgmt.target_port_identity == ALL_PORTS
    sm = SyncMetadata.from_tlvs(mgmt.tlvs)
    assert sm == SyncMetadata(25, 1, LockingStatus.LOCKED)
    _, msgs = _master(248)
    (mgmt,) = [m for m in msgs if isinstance(m, Management)]
    assert SyncMetadata.from_tlvs(mgmt.tlvs).locking_status == LockingStatus.FREE_RUN  # type: ignore[union-attr]


def test_master_without_metadata_sends_none() -> None:
    port = PtpPort(PortConfig(master_only=True), ME, random.Random(3))
    port.start(0)
    port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, 10 * NS)
    acts = port.handle_timer(PortTimer.ANNOUNCE, 11 * NS)
    assert not any(isinstance(parse(a.data), Management) for a in acts
                   if isinstance(a, SendGeneral))


def _slave() -> PtpPort:
    port = PtpPort(PortConfig(slave_only=True), ME, random.Random(7))
    port.start(0)
    peer = Peer()
    for k in range(2):
        port.handle_general_receive(peer.announce(k), (k + 1) * NS, "192.0.2.1")
    assert port.parent == GM
    return port


def test_slave_keeps_its_parents_metadata_and_does_not_answer() -> None:
    port = _slave()
    raw = GOLDEN.message(Header(source_port_identity=GM, sequence_id=1,
                                log_message_interval=0x7F)).pack()
    assert port.handle_general_receive(raw, 3 * NS, "192.0.2.1") == []
    assert port.sync_metadata == GOLDEN


def test_metadata_from_anyone_else_is_ignored() -> None:
    port = _slave()
    other = Peer(ident=replace(GM, port_number=9))
    raw = GOLDEN.message(Header(source_port_identity=other.ident)).pack()
    port.handle_general_receive(raw, 3 * NS, "192.0.2.1")
    spoofed = GOLDEN.message(Header(source_port_identity=GM)).pack()
    port.handle_general_receive(spoofed, 3 * NS, "192.0.2.66")  # the parent's identity, elsewhere
    assert port.sync_metadata is None


def test_smpte_profile_sends_metadata_and_others_do_not() -> None:
    smpte = load_profile((PROFILES / "smpte-2059-2.toml").read_text())
    assert smpte.port_config().sync_metadata == SyncMetadata(30000, 1001)
    for name in ("default-e2e", "aes67-media", "gptp"):
        prof = load_profile((PROFILES / f"{name}.toml").read_text())
        assert prof.port_config().sync_metadata is None, name
