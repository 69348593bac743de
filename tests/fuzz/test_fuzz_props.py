"""Hypothesis fuzzing of the parsers bench/fuzz.py also hammers: each raises only its own
error type. (PTP/NTP wire codecs have their own st.binary() properties under tests/property.)"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from netclock import config, shm
from netclock.ntp import auth
from netclock.ntp.server import DisciplineState, NtpServer
from netclock.ptp.wire.mgmt_data import DATA_SETS, OctetValue
from netclock.ptp.wire.types import ParseError as PtpParseError

KEYS = auth.parse_keys("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n2 SHA1 ASCII:k\n")
TOML_BITS = st.sampled_from(["[clock]", "[ptp]", "[[ntp.server]]", "window-size = ", "1", "-1",
                             "\"x\"", "true", "\n", "=", "[", "]", "{", "}", ".", "domain = ",
                             "address = \"127.0.0.1\"", "1e999", "nan", "inf", "0x10"])


@settings(max_examples=200)
@given(st.one_of(st.text(max_size=300), st.lists(TOML_BITS, max_size=40).map("".join)))
def test_config_loader_raises_only_config_error(text: str) -> None:
    with contextlib.suppress(config.ConfigError):
        config.load_text(text)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_keys_file_raises_only_key_file_error(text: str) -> None:
    with contextlib.suppress(auth.KeyFileError):
        auth.parse_keys(text)


@settings(max_examples=200)
@given(st.sampled_from(sorted(DATA_SETS)), st.binary(max_size=64))
def test_management_data_sets_raise_only_parse_error(mid: int, data: bytes) -> None:
    for cls in (DATA_SETS[mid], OctetValue):
        with contextlib.suppress(PtpParseError):
            cls.unpack(data)


@settings(max_examples=200)
@given(st.binary(max_size=600), st.booleans())
def test_shm_reader_raises_only_layout_error(data: bytes, verify: bool) -> None:
    for fn in (lambda: shm.unpack_header(data), lambda: shm.unpack_record(data, verify=verify)):
        with contextlib.suppress(shm.ShmLayoutError):
            fn()


@settings(max_examples=200)
@given(st.binary(min_size=40, max_size=200), st.sampled_from([None, 1, 2, 9]))
def test_authenticating_server_never_raises(data: bytes, key_id: int | None) -> None:
    srv = NtpServer(lambda m: m + 10**18, DisciplineState(), keys=KEYS)
    raw = data if key_id not in KEYS else auth.sign(data, KEYS[key_id])
    resp = srv.respond(raw, 10**9, 10**9, "c")
    if resp is not None:
        assert len(resp.data) <= len(raw)
        srv.restamp(resp, 2 * 10**9)
