"""``netclock config check|default`` end to end (the installed CLI entry point)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netclock.config import render_default_toml

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netclock", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_check_good_file(tmp_path: Path) -> None:
    f = tmp_path / "ok.toml"
    f.write_text('[ptp]\nenabled = true\n[[ntp.server]]\naddress = "192.0.2.1"\n')
    r = _run("config", "check", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{f}: OK (ptp on, 1 NTP server(s))"


def test_check_bad_file_names_each_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[ptp]\nprioriti1 = 3\ndomain = 256\n")
    r = _run("config", "check", str(f))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{f}: unknown key 'ptp.prioriti1' (did you mean 'ptp.priority1'?)",
        f"{f}: ptp.domain = 256 is out of range 0..255",
    ]
    assert r.stdout == ""


def test_check_missing_file(tmp_path: Path) -> None:
    r = _run("config", "check", str(tmp_path / "nope.toml"))
    assert r.returncode == 1 and "cannot read" in r.stderr


def test_default_prints_the_shipped_defaults() -> None:
    r = _run("config", "default")
    assert r.returncode == 0
    assert r.stdout == render_default_toml()
    assert r.stdout == (ROOT / "deploy" / "netclock.toml.default").read_text()
