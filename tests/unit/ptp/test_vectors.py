"""Golden vectors captured from ptp4l (see tests/vectors/ptp/README.md): decode → encode exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netclock.ptp.wire import (
    Announce,
    DelayReq,
    DelayResp,
    Flags,
    FollowUp,
    GrantUnicastTransmissionTlv,
    Management,
    ManagementAction,
    ManagementId,
    ManagementTlv,
    MessageType,
    OrganizationExtensionTlv,
    PathTraceTlv,
    PdelayReq,
    PdelayResp,
    PdelayRespFollowUp,
    RequestUnicastTransmissionTlv,
    Signaling,
    Sync,
    parse,
)

VECTORS = json.loads(
    (Path(__file__).parents[2] / "vectors" / "ptp" / "ptp4l_vectors.json").read_text()
)["packets"]


def _by(scenario: str, mtype: int) -> list[bytes]:
    return [
        bytes.fromhex(p["hex"])
        for p in VECTORS
        if p["scenario"] == scenario and p["message_type"] == mtype
    ]


@pytest.mark.parametrize("rec", VECTORS, ids=lambda r: f"{r['scenario']}-{r['message_type']}")
def test_decode_encode_byte_exact(rec: dict[str, object]) -> None:
    raw = bytes.fromhex(str(rec["hex"]))
    msg = parse(raw)
    assert rec["message_type"] == msg.MESSAGE_TYPE
    assert msg.pack() == raw
    # event messages go to 319, general to 320
    assert (rec["dport"] == 319) == MessageType(msg.MESSAGE_TYPE).is_event


def test_every_message_type_is_covered() -> None:
    seen = {type(parse(bytes.fromhex(p["hex"]))) for p in VECTORS}
    assert seen == {
        Sync, DelayReq, FollowUp, DelayResp, Announce, PdelayReq, PdelayResp,
        PdelayRespFollowUp, Signaling, Management,
    }


def test_two_step_sync_and_follow_up_match() -> None:
    syncs = [parse(r) for r in _by("e2e", 0)]
    fups = [parse(r) for r in _by("e2e", 8)]
    for s in syncs:
        assert isinstance(s, Sync)
        assert Flags.TWO_STEP in s.header.flags
        assert s.header.log_message_interval == -2
    by_seq = {f.header.sequence_id: f for f in fups if isinstance(f, FollowUp)}
    common = [s for s in syncs if s.header.sequence_id in by_seq]
    assert common, "capture holds at least one Sync with its Follow_Up"
    for s in common:
        fu = by_seq[s.header.sequence_id]
        assert fu.header.source_port_identity == s.header.source_port_identity
        assert fu.precise_origin_timestamp.seconds > 1_600_000_000  # CLOCK_REALTIME era


def test_delay_resp_answers_delay_req() -> None:
    reqs = [m for m in map(parse, _by("e2e", 1)) if isinstance(m, DelayReq)]
    resps = [m for m in map(parse, _by("e2e", 9)) if isinstance(m, DelayResp)]
    assert reqs and resps
    requesters = {r.header.source_port_identity for r in reqs}
    for r in resps:
        assert r.requesting_port_identity in requesters
        assert r.header.log_message_interval == -2  # logMinDelayReqInterval


def test_announce_fields() -> None:
    for raw in _by("e2e", 11):
        a = parse(raw)
        assert isinstance(a, Announce)
        assert a.grandmaster_priority1 == 100
        assert a.grandmaster_priority2 == 128
        assert a.grandmaster_clock_quality.clock_class == 248
        assert a.current_utc_offset == 37
        assert a.steps_removed == 0
        assert a.grandmaster_identity == a.header.source_port_identity.clock_identity


def test_path_trace_and_802_1as_tlvs() -> None:
    ann = parse(_by("tlv", 11)[0])
    assert isinstance(ann, Announce) and ann.header.domain_number == 24
    (pt,) = ann.tlvs
    assert isinstance(pt, PathTraceTlv)
    assert pt.path_sequence == (ann.grandmaster_identity,)
    fu = parse(_by("tlv", 8)[0])
    assert isinstance(fu, FollowUp)
    (org,) = fu.tlvs
    assert isinstance(org, OrganizationExtensionTlv)
    assert org.organization_id == bytes.fromhex("0080c2")  # IEEE 802.1
    assert org.organization_sub_type == b"\0\0\x01"


def test_pdelay_family() -> None:
    for raw in _by("p2p", 2):
        assert isinstance(parse(raw), PdelayReq)
    resp = [parse(r) for r in _by("p2p", 3)]
    fups = [parse(r) for r in _by("p2p", 10)]
    assert all(isinstance(r, PdelayResp) for r in resp)
    assert all(isinstance(r, PdelayRespFollowUp) for r in fups)
    for r in resp:
        assert isinstance(r, PdelayResp)
        assert Flags.TWO_STEP in r.header.flags


def test_unicast_signaling() -> None:
    kinds = set()
    for raw in _by("unicast", 12):
        sig = parse(raw)
        assert isinstance(sig, Signaling)
        for tlv in sig.tlvs:
            kinds.add(type(tlv))
            if isinstance(tlv, RequestUnicastTransmissionTlv | GrantUnicastTransmissionTlv):
                assert tlv.message_type in (MessageType.ANNOUNCE, MessageType.SYNC,
                                            MessageType.DELAY_RESP)
                assert tlv.duration_s > 0
    assert RequestUnicastTransmissionTlv in kinds
    assert GrantUnicastTransmissionTlv in kinds


def test_management_get_and_response() -> None:
    msgs = [m for m in map(parse, _by("management", 13)) if isinstance(m, Management)]
    gets = [m for m in msgs if m.action == ManagementAction.GET]
    responses = [m for m in msgs if m.action == ManagementAction.RESPONSE]
    assert gets and responses
    ids = set()
    for m in msgs:
        (tlv,) = m.tlvs
        assert isinstance(tlv, ManagementTlv)
        ids.add(tlv.management_id)
    assert {ManagementId.DEFAULT_DATA_SET, ManagementId.PARENT_DATA_SET,
            ManagementId.PORT_DATA_SET, ManagementId.PRIORITY1} <= ids
    # the response to GET PRIORITY1 carries ptp4l's configured value 100
    for m in responses:
        tlv = m.tlvs[0]
        assert isinstance(tlv, ManagementTlv)
        if tlv.management_id == ManagementId.PRIORITY1:
            assert tlv.data[0] == 100
        assert m.target_port_identity in {g.header.source_port_identity for g in gets}
