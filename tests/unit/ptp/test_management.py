"""Management (§15): data-set encodings against ptp4l's responses; netclock answers pmc GETs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from netclock.ptp.actions import PortTimer, SendGeneral
from netclock.ptp.datasets import DelayMechanism, PortState
from netclock.ptp.port import PortConfig, PtpPort
from netclock.ptp.wire import (
    ClockIdentity,
    Header,
    Management,
    ManagementAction,
    ManagementErrorId,
    ManagementErrorStatusTlv,
    ManagementId,
    ManagementTlv,
    PortIdentity,
    parse,
)
from netclock.ptp.wire.mgmt_data import (
    DATA_SETS,
    CurrentDataSet,
    DefaultDataSet,
    OctetValue,
    ParentDataSet,
    PortDataSet,
    TimePropertiesDataSet,
    TimeStatusNp,
)

PACKETS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "ptp" / "ptp4l_vectors.json").read_text()
)["packets"]
MGMT = [parse(bytes.fromhex(p["hex"])) for p in PACKETS if p["message_type"] == 13]
GETS = [m for m in MGMT if isinstance(m, Management) and m.action == ManagementAction.GET]
RESPONSES = [m for m in MGMT if isinstance(m, Management)
             and m.action == ManagementAction.RESPONSE]
ME = PortIdentity(ClockIdentity(b"\x50" * 8), 1)


@pytest.mark.parametrize("resp", RESPONSES, ids=lambda m: hex(m.tlvs[0].management_id))
def test_ptp4l_response_data_round_trips(resp: Management) -> None:
    tlv = resp.tlvs[0]
    assert isinstance(tlv, ManagementTlv)
    if tlv.management_id in DATA_SETS:
        ds = DATA_SETS[tlv.management_id].unpack(tlv.data)
        assert ds.pack() == tlv.data
    elif tlv.management_id in (ManagementId.PRIORITY1, ManagementId.DOMAIN):
        assert OctetValue.unpack(tlv.data).pack() == tlv.data


def test_decoded_ptp4l_values() -> None:
    by_id = {m.tlvs[0].management_id: m.tlvs[0] for m in RESPONSES}  # type: ignore[union-attr]
    d = DefaultDataSet.unpack(by_id[ManagementId.DEFAULT_DATA_SET].data)  # type: ignore[union-attr]
    assert d.priority1 == 100 and d.two_step and not d.slave_only and d.number_ports == 1
    p = ParentDataSet.unpack(by_id[ManagementId.PARENT_DATA_SET].data)  # type: ignore[union-attr]
    assert p.grandmaster_identity == d.clock_identity
    t = TimePropertiesDataSet.unpack(
        by_id[ManagementId.TIME_PROPERTIES_DATA_SET].data)  # type: ignore[union-attr]
    assert t.current_utc_offset == 37
    s = PortDataSet.unpack(by_id[ManagementId.PORT_DATA_SET].data)  # type: ignore[union-attr]
    assert s.version_number == 2 and s.delay_mechanism == 1


@pytest.mark.parametrize("get", GETS, ids=lambda m: hex(m.tlvs[0].management_id))
def test_netclock_answers_pmc_get_like_ptp4l(get: Management) -> None:
    port = PtpPort(PortConfig(priority1=90), ME, random.Random(1))
    port.start(0)
    port.handle_timer(PortTimer.ANNOUNCE_RECEIPT, 10**10)
    assert port.state is PortState.MASTER
    acts = port.handle_general_receive(get.pack(), 10**10)
    (reply,) = [parse(a.data) for a in acts if isinstance(a, SendGeneral)]
    assert isinstance(reply, Management)
    assert reply.action == ManagementAction.RESPONSE
    assert reply.target_port_identity == get.header.source_port_identity
    assert reply.header.sequence_id == get.header.sequence_id
    tlv = reply.tlvs[0]
    mid = get.tlvs[0].management_id  # type: ignore[union-attr]
    if mid == ManagementId.CLOCK_DESCRIPTION:
        assert isinstance(tlv, ManagementErrorStatusTlv)
        return
    assert isinstance(tlv, ManagementTlv) and tlv.management_id == mid
    # same dataField length as ptp4l's answer to the same GET
    (theirs,) = [r.tlvs[0] for r in RESPONSES
                 if r.tlvs[0].management_id == mid]  # type: ignore[union-attr]
    assert len(tlv.data) == len(theirs.data)  # type: ignore[union-attr]
    if mid == ManagementId.DEFAULT_DATA_SET:
        d = DefaultDataSet.unpack(tlv.data)
        assert d.priority1 == 90 and d.clock_identity == ME.clock_identity
    if mid == ManagementId.PORT_DATA_SET:
        assert PortDataSet.unpack(tlv.data).port_state == PortState.MASTER
    if mid == ManagementId.PRIORITY1:
        assert tlv.data[0] == 90


def test_set_and_foreign_targets() -> None:
    port = PtpPort(PortConfig(), ME, random.Random(1))
    port.start(0)
    src = PortIdentity(ClockIdentity(b"\x07" * 8), 9)
    set_msg = Management(Header(src, 3), action=ManagementAction.SET,
                         tlvs=(ManagementTlv(ManagementId.PRIORITY1, b"\x01\x00"),))
    (reply,) = [parse(a.data) for a in port.handle_general_receive(set_msg.pack(), 1)
                if isinstance(a, SendGeneral)]
    assert isinstance(reply, Management)
    assert isinstance(reply.tlvs[0], ManagementErrorStatusTlv)
    other = Management(Header(src, 4), target_port_identity=PortIdentity(
        ClockIdentity(b"\x33" * 8), 1), tlvs=(ManagementTlv(ManagementId.PRIORITY1),))
    assert port.handle_general_receive(other.pack(), 1) == []


def _ask(port: PtpPort, action: int, mid: int, domain: int = 0) -> Management:
    src = PortIdentity(ClockIdentity(b"\x07" * 8), 9)
    req = Management(Header(src, 11, domain_number=domain), action=action,
                     tlvs=(ManagementTlv(mid),))
    out = port.handle_management(req.pack(), 1)
    assert out is not None
    reply = parse(out)
    assert isinstance(reply, Management) and reply.header.sequence_id == 11
    return reply


def _data(reply: Management) -> bytes:
    (tlv,) = reply.tlvs
    assert isinstance(tlv, ManagementTlv)
    return tlv.data


def test_local_channel_answers_any_domain_and_uses_standard_errors() -> None:
    port = PtpPort(PortConfig(domain_number=127, priority2=77), ME, random.Random(1))
    port.start(0)
    r = _ask(port, ManagementAction.GET, ManagementId.DEFAULT_DATA_SET, domain=0)
    assert r.action == ManagementAction.RESPONSE and r.header.domain_number == 127
    d = DefaultDataSet.unpack(_data(r))
    assert d.priority2 == 77 and d.domain_number == 127
    for action, mid, err, reply_action in (
        (ManagementAction.SET, ManagementId.PRIORITY2, ManagementErrorId.NOT_SUPPORTED,
         ManagementAction.RESPONSE),
        (ManagementAction.COMMAND, ManagementId.ENABLE_PORT, ManagementErrorId.NOT_SUPPORTED,
         ManagementAction.ACKNOWLEDGE),
        (ManagementAction.GET, 0x1ABC, ManagementErrorId.NO_SUCH_ID, ManagementAction.RESPONSE),
        (ManagementAction.GET, ManagementId.USER_DESCRIPTION, ManagementErrorId.NOT_SUPPORTED,
         ManagementAction.RESPONSE),
    ):
        r = _ask(port, action, mid)
        (tlv,) = r.tlvs
        assert isinstance(tlv, ManagementErrorStatusTlv)
        assert (tlv.management_error_id, tlv.management_id, r.action) == (err, mid, reply_action)
    assert port.handle_management(b"\x00garbage", 1) is None


def test_time_status_np_reports_the_servo_view() -> None:
    port = PtpPort(PortConfig(), ME, random.Random(1))
    port.start(0)
    r = _ask(port, ManagementAction.GET, ManagementId.TIME_STATUS_NP)
    ts = TimeStatusNp.unpack(_data(r))
    assert not ts.gm_present and ts.gm_identity == ME.clock_identity and ts.master_offset == 0
    assert len(ts.pack()) == 50 and TimeStatusNp.unpack(ts.pack()) == ts
    port.set_servo_status(-321, 1_700_000_000 * 10**9)
    r = _ask(port, ManagementAction.GET, ManagementId.CURRENT_DATA_SET)
    assert CurrentDataSet.unpack(_data(r)).offset_from_master.to_ns() == -321


def test_port_data_set_reports_peer_delay_mechanism() -> None:
    port = PtpPort(PortConfig(delay_mechanism=DelayMechanism.P2P,
                              log_min_pdelay_req_interval=-2), ME, random.Random(1))
    port.start(0)
    pds = PortDataSet.unpack(_data(_ask(port, ManagementAction.GET,
                                        ManagementId.PORT_DATA_SET)))
    assert pds.delay_mechanism == DelayMechanism.P2P and pds.log_min_pdelay_req_interval == -2
    assert pds.version_number == 2 and pds.minor_version_number == 0
    r = _ask(port, ManagementAction.GET, ManagementId.DELAY_MECHANISM)
    assert _data(r)[0] == DelayMechanism.P2P
