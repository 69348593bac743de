"""NTP server access control (chrony-style allow/deny subnets) on the sans-IO server."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.config import ConfigError, load_text
from netclock.ntp.server import AccessControl, DisciplineState, NtpServer, RateLimit
from netclock.ntp.wire import KISS_DENY, Mode, NtpPacket
from netclock.time import NS_PER_S, NtpTimestamp


def served(mono: int) -> int:
    return mono + 1_790_000_000 * NS_PER_S


REQ = NtpPacket(mode=Mode.CLIENT, transmit_ts=NtpTimestamp.from_u64(0x1234_5678_9ABC_DEF0)).pack()


def server(acl: AccessControl, rate_limit: RateLimit | None = None) -> NtpServer:
    return NtpServer(served, DisciplineState(), rate_limit=rate_limit, access=acl)


def test_no_rules_allow_everyone() -> None:
    acl = AccessControl()
    assert not acl.active
    assert acl.permits("203.0.113.9") and acl.permits(None) and acl.permits(("::1", 123, 0, 0))


def test_allow_list_denies_everything_outside_it() -> None:
    acl = AccessControl.parse("10.0.0.0/8, 2001:db8::/32")
    assert acl.permits("10.1.2.3") and acl.permits("2001:db8::7")
    assert not acl.permits("11.0.0.1") and not acl.permits("2001:db9::1")


def test_deny_only_allows_the_rest() -> None:
    acl = AccessControl.parse(deny="192.0.2.0/24")
    assert not acl.permits("192.0.2.200") and acl.permits("198.51.100.1")


def test_most_specific_rule_wins_and_deny_wins_a_tie() -> None:
    acl = AccessControl.parse("10.0.0.0/8 10.1.2.0/24 10.9.0.0/16", "10.1.0.0/16 10.9.0.0/16")
    assert acl.permits("10.200.0.1")  # /8 allow
    assert not acl.permits("10.1.3.3")  # /16 deny inside the /8
    assert acl.permits("10.1.2.3")  # /24 allow inside the /16 deny
    assert not acl.permits("10.9.0.1")  # the same /16 allowed and denied: deny
    assert not acl.permits("172.16.0.1")  # no rule, allow list given


def test_single_host_rules_and_address_forms() -> None:
    acl = AccessControl.parse("192.0.2.7 fe80::1")
    assert acl.permits("192.0.2.7") and not acl.permits("192.0.2.8")
    assert acl.permits("::ffff:192.0.2.7")  # IPv4-mapped counts as IPv4
    assert acl.permits("fe80::1%eth0") and acl.permits(("192.0.2.7", 123))
    assert not acl.permits(None) and not acl.permits("not-an-address") and not acl.permits(7)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.org", "10.0.0.0/8x", "::/129"])
def test_parse_names_the_bad_subnet(bad: str) -> None:
    with pytest.raises(ValueError, match="not an address or subnet") as e:
        AccessControl.parse(allow=f"10.0.0.0/8 {bad}")
    assert bad in str(e.value)


def test_config_knobs_are_validated_with_the_key_named() -> None:
    cfg = load_text('[ntp]\nserve = true\nallow = "10.0.0.0/8"\ndeny = "10.1.0.0/16"\n'
                    "deny-kod = true\n")
    assert (cfg.ntp.allow, cfg.ntp.deny, cfg.ntp.deny_kod) == ("10.0.0.0/8", "10.1.0.0/16", True)
    with pytest.raises(ConfigError) as e:
        load_text('[ntp]\ndeny = "10.0.0.0/40"\n')
    assert e.value.key == "ntp.deny" and "10.0.0.0/40" in str(e.value)


def test_denied_request_is_dropped_silently_and_counted() -> None:
    srv = server(AccessControl.parse("10.0.0.0/8"))
    assert srv.respond(REQ, NS_PER_S, NS_PER_S, "192.0.2.1") is None
    assert srv.respond(b"garbage", NS_PER_S, NS_PER_S, "192.0.2.1") is None
    assert srv.counters.denied == 2 and srv.counters.dropped_bad == 0
    assert srv.respond(REQ, NS_PER_S, NS_PER_S, "10.0.0.1") is not None
    assert srv.counters.responded == 1


def test_deny_kod_once_per_interval_per_client() -> None:
    srv = server(AccessControl.parse(deny="192.0.2.0/24", kod=True), RateLimit())
    r = srv.respond(REQ, NS_PER_S, NS_PER_S, "192.0.2.1")
    assert r is not None and r.kod and r.tx_token is None
    kod = NtpPacket.unpack(r.data)
    assert (kod.mode, kod.stratum, kod.reference_id) == (Mode.SERVER, 0, KISS_DENY)
    assert kod.origin_ts == NtpPacket.unpack(REQ).transmit_ts  # passes the client's origin check
    assert len(r.data) <= len(REQ)
    assert srv.respond(REQ, NS_PER_S + NS_PER_S // 2, 0, "192.0.2.1") is None  # within 1 s
    assert srv.respond(REQ, NS_PER_S + 1, 0, "192.0.2.2") is not None  # another client
    assert srv.respond(REQ, 2 * NS_PER_S, 0, "192.0.2.1") is not None
    assert srv.respond(REQ[:40], 9 * NS_PER_S, 0, "192.0.2.1") is None  # no KoD for junk
    c = srv.counters
    assert (c.denied, c.deny_kod_sent, c.responded) == (5, 3, 0)


def test_denied_signed_request_costs_no_mac_check() -> None:
    from netclock.ntp.auth import KeyType, SymmetricKey, sign

    key = SymmetricKey(1, KeyType.SHA1, b"k" * 20)
    srv = NtpServer(served, DisciplineState(), keys={1: key},
                    access=AccessControl.parse("10.0.0.0/8"))
    assert srv.respond(sign(REQ, key), NS_PER_S, NS_PER_S, "192.0.2.1") is None
    assert srv.counters.auth_ok == 0 and srv.counters.denied == 1
    r = srv.respond(sign(REQ, key), NS_PER_S, NS_PER_S, "10.0.0.1")
    assert r is not None and srv.counters.auth_ok == 1


prefixes4 = st.builds(
    lambda a, n: ipaddress.IPv4Network((a, n), strict=False),
    st.integers(0, 2**32 - 1), st.integers(0, 32),
)


@given(st.lists(prefixes4, max_size=4), st.lists(prefixes4, max_size=4),
       st.integers(0, 2**32 - 1))
def test_permits_matches_a_longest_prefix_reference(
    allow: list[ipaddress.IPv4Network], deny: list[ipaddress.IPv4Network], addr: int
) -> None:
    ip = ipaddress.IPv4Address(addr)
    acl = AccessControl(tuple(allow), tuple(deny))
    rules = [(n.prefixlen, 0, True) for n in allow if ip in n]
    rules += [(n.prefixlen, 1, False) for n in deny if ip in n]  # deny sorts after allow
    expected = max(rules)[2] if rules else not allow
    assert acl.permits(str(ip)) == expected
    srv = server(acl)
    assert (srv.respond(REQ, NS_PER_S, NS_PER_S, str(ip)) is not None) == expected
