"""PTP profiles as data: every shipped deploy/profiles/*.toml loads, holds the documented values
and cites its sources; the loader rejects bad documents with the offending key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock.cli.ptp import resolve_profile
from netclock.config import PtpSection
from netclock.ptp.datasets import DelayMechanism
from netclock.ptp.profiles import BUILTIN_PROFILES, Profile, ProfileError, load_profile

PROFILES = Path(__file__).parents[3] / "deploy" / "profiles"


def test_every_builtin_profile_file_exists_and_loads() -> None:
    names = sorted(p.stem for p in PROFILES.glob("*.toml"))
    assert names == sorted(BUILTIN_PROFILES)
    for name in names:
        prof = load_profile((PROFILES / f"{name}.toml").read_text())
        assert prof.name == name


def test_every_value_line_cites_a_source() -> None:
    for path in PROFILES.glob("*.toml"):
        lines = path.read_text().splitlines()
        assert lines[0].startswith("#")
        values = [ln for ln in lines if "=" in ln and not ln.startswith(("#", "name", "desc"))]
        assert values, path
        for ln in values:
            assert "#" in ln, (path.name, ln)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default-e2e", dict(domain_number=0, log_announce_interval=1, log_sync_interval=0,
                             log_min_delay_req_interval=0, announce_receipt_timeout=3,
                             delay_mechanism="E2E", transport="udpv4")),
        ("default-p2p", dict(domain_number=0, delay_mechanism="P2P",
                             log_min_pdelay_req_interval=0)),
        ("smpte-2059-2", dict(domain_number=127, log_announce_interval=-2, log_sync_interval=-3,
                              log_min_delay_req_interval=-3, announce_receipt_timeout=3,
                              delay_mechanism="E2E")),
        ("aes67-media", dict(domain_number=0, log_announce_interval=1, log_sync_interval=-3)),
        ("gptp", dict(transport="l2", delay_mechanism="P2P", log_sync_interval=-3,
                      transport_specific=1, follow_up_info_tlv=True,
                      neighbor_prop_delay_thresh=800, priority1=248)),
    ],
)
def test_profile_values(name: str, expected: dict[str, object]) -> None:
    prof = resolve_profile(name)
    for key, value in expected.items():
        assert getattr(prof, key) == value, key


def test_port_config_from_profile_with_overrides() -> None:
    cfg = resolve_profile("gptp").port_config(slave_only=True)
    assert cfg.major_sdo_id == 1 and cfg.delay_mechanism is DelayMechanism.P2P
    assert cfg.follow_up_info_tlv and cfg.neighbor_prop_delay_thresh == 800
    assert cfg.log_sync_interval == -3 and cfg.slave_only
    smpte = resolve_profile("smpte").port_config()
    assert smpte.domain_number == 127 and smpte.log_announce_interval == -2


def test_resolve_profile_by_file_and_unknown_name(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\n[port]\ndomain_number = 5\n')
    assert resolve_profile(str(f)).domain_number == 5
    with pytest.raises(ValueError, match="no profile"):
        resolve_profile("no-such-profile")
    f.write_text('name = "bad"\n[port]\ndomain_number = 500\n')
    with pytest.raises(ValueError, match=r"mine\.toml.*domain_number=500"):
        resolve_profile(str(f))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n[port]\ndomian_number = 1\n", "unknown key port.domian_number"),
        ("name = 'x'\nport = 3\n", r"\[port\] must be a table"),
        ("name = 'x'\nextra = 1\n", "unknown top-level key 'extra'"),
        ("[port]\ndomain_number = 1\n", "'name'"),
        ("name = 'x'\n[port]\ndomain_number = '1'\n", "must be an integer"),
        ("name = 'x'\n[port]\ndomain_number = true\n", "must be an integer"),
        ("name = 'x'\n[port]\nlog_sync_interval = -9\n", "outside -7..7"),
        ("name = 'x'\n[port]\nannounce_receipt_timeout = 1\n", "outside 2..255"),
        ("name = 'x'\n[port]\ntwo_step = 1\n", "true or false"),
        ("name = 'x'\n[port]\ndelay_mechanism = 'E2P'\n", "not one of E2E, P2P, NONE"),
        ("name = 'x'\n[port]\ntransport = 'tcp'\n", "not one of udpv4, udpv6, l2"),
        ("name = 'x'\n[port]\nfollow_up_info_tlv = true\n", "needs delay_mechanism"),
        ("name = 'x'\n[port\n", "not valid TOML"),
    ],
)
def test_invalid_documents_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile(text)


def test_choices_are_case_insensitive() -> None:
    prof = load_profile("name = 'x'\n[port]\ndelay_mechanism = 'p2p'\ntransport = 'UDPv6'\n")
    assert prof.delay_mechanism == "P2P" and prof.transport == "udpv6"


@given(st.text(max_size=200))
def test_loader_raises_only_profile_error(text: str) -> None:
    try:
        result: object = load_profile(text)
    except ProfileError as exc:
        result = exc
    assert isinstance(result, Profile | ProfileError)


# -- profiles shipped in the package, and the daemon's [ptp] profile ------------------------------

PACKAGED = Path(__file__).parents[3] / "netclock" / "ptp" / "profile_data"


def test_packaged_profiles_are_the_documented_ones() -> None:
    """deploy/profiles is netclock/ptp/profile_data (a link: one copy), every file in it loads
    through the package's resource reader, and the built-in names are exactly those files."""
    from netclock.platform.ptp_transport import builtin_profile_text

    assert PROFILES.resolve() == PACKAGED.resolve()
    packaged = sorted(p.stem for p in PACKAGED.glob("*.toml"))
    assert packaged == sorted(BUILTIN_PROFILES)
    for name in packaged:
        assert builtin_profile_text(name) == (PACKAGED / f"{name}.toml").read_text()
    assert builtin_profile_text("no-such-profile") is None


def test_find_profile_rejects_paths_as_names() -> None:
    from netclock.platform.ptp_transport import find_profile

    for spec in ("../gptp", "profile_data/gptp", ".hidden"):
        with pytest.raises(ValueError, match="no profile"):
            find_profile(spec)


def _ptp(text: str) -> PtpSection:
    from netclock.config import load_text

    return load_text("[ptp]\nenabled = true\n" + text).ptp


def test_daemon_profile_without_profile_is_the_ptp_keys() -> None:
    from netclock.daemon.ptp_source import effective_profile

    prof = effective_profile(_ptp(
        'transport = "udpv6"\ndelay-mechanism = "p2p"\ndomain = 4\nudp6-scope = 2\n'
        "log-min-pdelay-req-interval = -2\n"))
    assert (prof.transport, prof.delay_mechanism, prof.domain_number) == ("udpv6", "P2P", 4)
    assert prof.udp6_scope == 2 and prof.log_min_pdelay_req_interval == -2
    # everything else is the default (E2E) profile
    base = resolve_profile("default-e2e")
    assert prof.log_sync_interval == base.log_sync_interval
    assert prof.transport_specific == 0 and not prof.follow_up_info_tlv


def test_daemon_profile_keys_set_override_the_profile() -> None:
    from netclock.daemon.ptp_source import effective_profile

    gptp = effective_profile(_ptp('profile = "gptp"\n'))
    assert gptp == resolve_profile("gptp")
    smpte = effective_profile(_ptp(
        'profile = "smpte-2059-2"\nlog-sync-interval = -4\npriority1 = 90\n'))
    want = resolve_profile("smpte-2059-2")
    assert smpte.domain_number == 127 == want.domain_number  # [ptp] domain left at default
    assert smpte.log_sync_interval == -4 and smpte.priority1 == 90
    assert smpte.log_announce_interval == want.log_announce_interval == -2


def test_daemon_profile_unknown_profile_names_it(tmp_path: Path) -> None:
    from netclock.daemon.ptp_source import effective_profile

    with pytest.raises(ValueError, match="no-such"):
        effective_profile(_ptp('profile = "no-such"\n'))
    f = tmp_path / "bad.toml"
    f.write_text('name = "bad"\n[port]\ntransport = "carrier-pigeon"\n')
    with pytest.raises(ValueError, match=r"bad\.toml.*transport"):
        effective_profile(_ptp(f'profile = "{f}"\n'))


def test_extra_domains_config() -> None:
    from netclock.config import ConfigError, load_text

    ptp = _ptp("[[ptp.extra-domain]]\ndomain = 1\nsource-priority = 3\n"
               "[[ptp.extra-domain]]\ndomain = 2\n")
    assert [(d.domain, d.source_priority) for d in ptp.extra_domains] == [(1, 3), (2, 2)]
    with pytest.raises(ConfigError, match=r"ptp\.extra-domain\[1\]\.domain = 1 is already"):
        load_text("[ptp]\n[[ptp.extra-domain]]\ndomain = 1\n[[ptp.extra-domain]]\ndomain = 1\n")
    with pytest.raises(ConfigError, match=r"ptp\.extra-domain\[0\]\.domain is required"):
        load_text("[ptp]\n[[ptp.extra-domain]]\nsource-priority = 1\n")
