"""Configuration declarations, TOML loading and the generated files (netclock.config)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netclock import config as C
from netclock.calibration import WindowedCalibration
from netclock.config import Config, ConfigError, NtpServer, PtpExtraDomain, load_file, load_text

ROOT = Path(__file__).resolve().parents[2]


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        load_text(text, "test.toml")
    return ei.value


# -- defaults -----------------------------------------------------------------------------------


def test_empty_file_is_the_default_config() -> None:
    assert load_text("") == Config()


def test_clock_defaults_match_the_calibration_core() -> None:
    """[clock] defaults are what the daemon's discipline uses (DisciplineConfig), and every
    knob passed on to WindowedCalibration exists there."""
    from netclock.discipline import DisciplineConfig

    d = DisciplineConfig()
    c = Config().clock
    pairs = {
        "window_size": "window_size",
        "window_threshold": "window_threshold",
        "outlier_k": "outlier_k",
        "error_floor_ns": "error_floor_ns",
        "step_threshold_ns": "fit_step_threshold_ns",
        "step_confirm": "step_confirm",
        "lock_threshold_ns": "lock_threshold_ns",
        "lock_samples": "lock_count",
    }
    for knob_name, field_name in pairs.items():
        assert getattr(c, knob_name) == getattr(d, field_name), knob_name
    sig = inspect.signature(WindowedCalibration.__init__).parameters
    for name in (
        "window_size",
        "window_threshold",
        "outlier_k",
        "error_floor_ns",
        "step_threshold_ns",
        "step_confirm",
    ):
        assert name in sig, name


def test_full_example_loads() -> None:
    cfg = load_text(
        """
[clock]
window-size = 64
outlier-k = 0          # off; an integer is fine for a float knob
[ptp]
enabled = true
domain = 127
event-port = 10319
general-port = 10320
log-sync-interval = -3
role = "auto"
[[ntp.server]]
address = "192.0.2.1"
minpoll = -2
maxpoll = 2
xleave = true
[[ntp.server]]
address = "192.0.2.2"
priority = 5
[publish]
shm-path = "/tmp/x.shm"
[metrics]
port = 19468
"""
    )
    assert cfg.clock.window_size == 64 and cfg.clock.outlier_k == 0.0
    assert isinstance(cfg.clock.outlier_k, float)
    assert (cfg.ptp.domain, cfg.ptp.log_sync_interval, cfg.ptp.role) == (127, -3, "auto")
    assert cfg.ntp.servers == (
        NtpServer(address="192.0.2.1", minpoll=-2, maxpoll=2, xleave=True),
        NtpServer(address="192.0.2.2", priority=5),
    )
    assert cfg.publish.shm_path == "/tmp/x.shm" and cfg.metrics.port == 19468
    assert cfg.metrics.listen_address == "127.0.0.1"


# -- errors name the key -----------------------------------------------------------------------


def test_unknown_key_suggests_the_closest() -> None:
    e = _err("[clock]\nwindow-sise = 3\n")
    assert str(e) == (
        "test.toml: unknown key 'clock.window-sise' (did you mean 'clock.window-size'?)"
    )
    assert e.key == "clock.window-sise"


def test_unknown_key_in_array_table_keeps_the_index() -> None:
    e = _err('[[ntp.server]]\naddress = "a"\n[[ntp.server]]\naddress = "b"\nminpol = 3\n')
    assert "unknown key 'ntp.server[1].minpol' (did you mean 'ntp.server[1].minpoll'?)" in str(e)


def test_unknown_section_and_top_level_key() -> None:
    assert "unknown section 'clok' (did you mean 'clock'?)" in str(_err("[clok]\n"))
    assert "unknown key 'verbose'" in str(_err("verbose = true\n"))
    assert "did you mean 'ntp.server'?" in str(_err("[ntp]\nservers = []\n"))


def test_snake_case_is_unknown_but_suggested() -> None:
    assert "did you mean 'clock.window-size'?" in str(_err("[clock]\nwindow_size = 3\n"))


def test_out_of_range_names_key_value_and_range() -> None:
    e = _err("[ptp]\npriority1 = 300\n")
    assert str(e) == "test.toml: ptp.priority1 = 300 is out of range 0..255"
    e = _err("[clock]\nerror-floor-ns = 0\n")
    assert "clock.error-floor-ns = 0 is out of range 1..1000000000 ns" in str(e)


def test_wrong_type_names_key_and_value() -> None:
    assert 'ptp.domain must be an integer, got str "x"' in str(_err('[ptp]\ndomain = "x"\n'))
    assert "ptp.enabled must be true or false, got int 1" in str(_err("[ptp]\nenabled = 1\n"))
    assert "clock.outlier-k must be a number, got bool" in str(_err("[clock]\noutlier-k = true"))
    assert "ntp.server must be an array of tables" in str(_err('[ntp]\nserver = {address="x"}'))
    assert "clock must be a table" in str(_err("clock = 3\n"))


def test_choices() -> None:
    e = _err('[ptp]\ntransport = "udp"\n')
    assert str(e) == 'test.toml: ptp.transport = "udp" is not one of: udpv4, udpv6, l2'


def test_required_key_in_array_table() -> None:
    assert "ntp.server[0].address is required" in str(_err("[[ntp.server]]\nport = 1\n"))


def test_cross_checks() -> None:
    e = _err("[clock]\nwindow-size = 3\nwindow-threshold = 5\n")
    assert e.key == "clock.window-threshold" and "window-size = 3" in str(e)
    assert "0 (off) or 1.0..100.0" in str(_err("[clock]\noutlier-k = 0.5\n"))
    e = _err('[[ntp.server]]\naddress = "a"\nminpoll = 5\nmaxpoll = 4\n')
    assert e.key == "ntp.server[0].minpoll"
    e = _err("[ptp]\nevent-port = 5000\ngeneral-port = 5000\n")
    assert e.key == "ptp.general-port"


def test_all_problems_reported_together() -> None:
    e = _err('[ptp]\npriority1 = -1\ntransport = "x"\n[clock]\nfoo = 1\n')
    assert [i.key for i in e.issues] == ["ptp.priority1", "ptp.transport", "clock.foo"]
    assert len(str(e).splitlines()) == 3


def test_syntax_error_and_unreadable_file(tmp_path: Path) -> None:
    assert "invalid TOML" in str(_err("[clock\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(str(tmp_path / "missing.toml"))


def _scalar_knobs() -> list[tuple[str, str, Any]]:
    out = []
    for sname, scls in C.SECTIONS.items():
        for k in C._knobs(scls):
            if k.kind != "table":
                out.append((sname, k.key, k))
    return out


@pytest.mark.parametrize(("section", "key", "k"), _scalar_knobs(), ids=lambda x: str(x))
def test_every_knob_checks_type_and_range(section: str, key: str, k: Any) -> None:
    path = f"{section}.{key}"
    bad_type = '"text"' if k.kind != "str" else "12"
    e = _err(f"[{section}]\n{key} = {bad_type}\n")
    assert e.key == path and f"{path} must be" in str(e)
    if k.meta["max"] is not None:
        over = k.meta["max"] + 1
        e = _err(f"[{section}]\n{key} = {over!r}\n")
        assert e.key == path and "is out of range" in str(e)
    if k.meta["min"] is not None:
        under = k.meta["min"] - 1
        e = _err(f"[{section}]\n{key} = {under!r}\n")
        assert e.key == path and "is out of range" in str(e)
    # The default itself is accepted.
    cfg = load_text(f"[{section}]\n{key} = {C._fmt(k.default)}\n")
    assert getattr(getattr(cfg, section), k.attr) == k.default


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_any_unknown_key_is_named(key: str) -> None:
    known = {k.key for k in C._knobs(C.ClockSection)}
    if key in known:
        return
    e = _err(f"[clock]\n{key} = 1\n")
    assert e.key == f"clock.{key}" and f"unknown key 'clock.{key}'" in str(e)


# -- generated files ---------------------------------------------------------------------------


def test_docs_config_md_is_in_sync() -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == C.render_markdown(), "regenerate: python -m netclock.config markdown"


def test_default_toml_is_in_sync() -> None:
    text = (ROOT / "deploy" / "netclock.toml.default").read_text()
    assert text == C.render_default_toml(), "regenerate: python -m netclock.config default-toml"


def test_default_toml_loads_as_default_and_uncommented_too() -> None:
    text = (ROOT / "deploy" / "netclock.toml.default").read_text()
    assert load_text(text) == Config()
    uncommented = re.sub(r"(?m)^# (\[\[|[a-z0-9-]+ = )", r"\1", text)
    cfg = load_text(uncommented)
    example = dataclasses.replace(Config().ntp, servers=(NtpServer(address="ntp.example.net"),))
    ptp = dataclasses.replace(Config().ptp, extra_domains=(PtpExtraDomain(domain=1),))
    assert cfg == dataclasses.replace(Config(), ntp=example, ptp=ptp)


def test_every_key_is_documented() -> None:
    md = C.render_markdown()
    toml = C.render_default_toml()
    for full in C.all_keys():
        leaf = full.rsplit(".", 1)[1]
        assert f"`{leaf}`" in md, full
        assert f"# {leaf} = " in toml, full


@given(
    size=st.integers(2, 65536),
    thr=st.integers(2, 65536),
    k=st.just(0.0) | st.floats(1.0, 100.0),
    floor=st.integers(1, 10**9),
    step=st.integers(0, 10**12),
    confirm=st.integers(1, 64),
)
def test_every_accepted_clock_section_is_accepted_by_the_core(
    size: int, thr: int, k: float, floor: int, step: int, confirm: int
) -> None:
    text = (
        f"[clock]\nwindow-size = {size}\nwindow-threshold = {thr}\noutlier-k = {k!r}\n"
        f"error-floor-ns = {floor}\nstep-threshold-ns = {step}\nstep-confirm = {confirm}\n"
    )
    try:
        c = load_text(text).clock
    except ConfigError as e:
        assert thr > size and e.key == "clock.window-threshold"
        return
    WindowedCalibration(
        c.window_size,
        c.window_threshold,
        outlier_k=c.outlier_k,
        error_floor_ns=c.error_floor_ns,
        step_threshold_ns=c.step_threshold_ns,
        step_confirm=c.step_confirm,
    )
