"""deploy/systemd: `systemd-analyze verify` and the hardening keys.

verify needs the ExecStart= binary to exist, so the units are verified from a temporary copy
whose ExecStart points at this machine's Python interpreter (the only change). Any warning
(unknown key, unparsable value) counts as a failure.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY

SYSTEMD = DEPLOY / "systemd"
UNITS = ["netclock.service", "netclock-capture@.service"]
ALLOWED_CAPS = {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}


def _unit(name: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string((SYSTEMD / name).read_text())
    return cp


def _values(name: str, section: str, key: str) -> list[str]:
    """Every assignment of a key (systemd keys may repeat; configparser keeps the last)."""
    out, current = [], None
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and line.startswith(f"{key}="):
            out.append(line.split("=", 1)[1])
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    exe = Path(sys.executable).resolve()
    for name in [*UNITS, "netclock-l2.conf"]:
        text = (SYSTEMD / name).read_text().replace("/usr/bin/netclock", str(exe))
        (tmp_path / name).write_text(text)
    dropin = tmp_path / "netclock.service.d"
    dropin.mkdir()
    shutil.copy(tmp_path / "netclock-l2.conf", dropin / "l2.conf")
    for name in UNITS:
        r = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )
        assert r.returncode == 0, r.stderr
        complaints = [ln for ln in r.stderr.splitlines() if name.split("@")[0] in ln]
        assert not complaints, complaints


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_verify_is_not_vacuous(tmp_path: Path) -> None:
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/nonexistent/netclock run\nProtectSystem=bogus\n")
    r = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode != 0
    assert "bogus" in r.stderr


@pytest.mark.parametrize("name", UNITS)
def test_hardening(name: str) -> None:
    svc = _unit(name)["Service"]
    assert svc["ProtectSystem"] == "strict"
    assert svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectClock"] == "yes"
    assert svc["ProtectHome"] == "yes" and svc["PrivateTmp"] == "yes"
    assert svc["RestrictNamespaces"] == "yes" and svc["RestrictSUIDSGID"] == "yes"
    assert "~@clock" in _values(name, "Service", "SystemCallFilter")
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "", "root", "0")
    bounding = set(svc["CapabilityBoundingSet"].split())
    ambient = set(svc["AmbientCapabilities"].split())
    assert ambient <= bounding <= ALLOWED_CAPS
    code = [ln for ln in (SYSTEMD / name).read_text().splitlines() if not ln.startswith("#")]
    assert not any("SYS_TIME" in ln or "SYS_ADMIN" in ln for ln in code)
    assert "RuntimeDirectory" in svc or "StateDirectory" in svc


def test_daemon_unit_shape() -> None:
    svc = _unit("netclock.service")["Service"]
    assert svc["User"] == "netclock"
    assert svc["RuntimeDirectory"] == "netclock"
    assert svc["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert svc["ExecStart"].split()[1:] == ["run", "--config", "/etc/netclock/netclock.toml"]
    l2 = configparser.RawConfigParser()
    l2.optionxform = str  # type: ignore[assignment,method-assign]
    l2.read_string((SYSTEMD / "netclock-l2.conf").read_text())
    assert set(l2["Service"]["AmbientCapabilities"].split()) == ALLOWED_CAPS
    assert "AF_PACKET" in l2["Service"]["RestrictAddressFamilies"]


def test_capture_unit_has_no_capability_and_reads_the_segment_as_group() -> None:
    svc = _unit("netclock-capture@.service")["Service"]
    assert svc["DynamicUser"] == "yes"
    assert svc["CapabilityBoundingSet"] == "" and svc["AmbientCapabilities"] == ""
    assert "netclock" in svc["SupplementaryGroups"].split()
    assert svc["PrivateNetwork"] == "yes"
    assert svc["DevicePolicy"] == "closed"
    assert "capture" in svc["ExecStart"].split()
