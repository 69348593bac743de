"""Example configs (deploy/configs, the systemd default) pass `netclock config check`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, ROOT

CONFIGS = [*sorted((DEPLOY / "configs").glob("*.toml")), DEPLOY / "netclock.toml.default"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_netclock_config_check_accepts(path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "netclock", "config", "check", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_config_check_rejects_a_bad_key(tmp_path: Path) -> None:
    """Control: the same command fails, naming the key, when a deploy config has a typo."""
    text = (DEPLOY / "configs" / "agent.toml").read_text().replace("shm-group", "shm-grop")
    bad = tmp_path / "agent.toml"
    bad.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "netclock", "config", "check", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 1
    assert "publish.shm-grop" in r.stderr


def test_roles() -> None:
    from netclock.config import load_file

    gm = load_file(str(DEPLOY / "configs" / "grandmaster.toml"))
    assert gm.ptp.role == "master-only" and gm.ntp.serve
    for name in ("agent.toml", "capture-agent.toml"):
        cfg = load_file(str(DEPLOY / "configs" / name))
        assert cfg.ptp.role == "slave-only"
        assert [s.address for s in cfg.ntp.servers] == ["grandmaster"]  # compose service
        assert cfg.ntp.servers[0].priority > cfg.ptp.source_priority  # PTP first, NTP fail-over
        assert cfg.publish.shm_group == "netclock"
