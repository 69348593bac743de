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
    assert gm.reference.enabled  # the grandmaster's time source: its local clock
    for name in ("agent.toml", "capture-agent.toml"):
        cfg = load_file(str(DEPLOY / "configs" / name))
        assert cfg.ptp.role == "slave-only"
        assert not cfg.reference.enabled
        assert [s.address for s in cfg.ntp.servers] == ["grandmaster"]  # compose service
        assert cfg.ntp.servers[0].priority > cfg.ptp.source_priority  # PTP first, NTP fail-over
        assert cfg.publish.shm_group == "netclock"


@pytest.mark.parametrize("name", ["agent.toml", "capture-agent.toml"])
def test_source_timeout_covers_the_ntp_poll_interval(name: str) -> None:
    """Real daemon runs on loopback: with minpoll 0, maxpoll 4 and source-timeout-s 5 the agent
    went LOCKED -> HOLDOVER between NTP measurements (the poll interval grows to 2^maxpoll s;
    gaps of 32 s); at a fixed 1 s poll and 10 s timeout it still did (gaps of 14 s); at a fixed
    0.25 s poll it stayed LOCKED for 90 s (gaps of at most 16 polls, 4 s). The clock filter
    passes only some responses on; the timeout must cover 32 polls at the longest interval."""
    from netclock.config import load_file

    cfg = load_file(str(DEPLOY / "configs" / name))
    for server in cfg.ntp.servers:
        assert cfg.holdover.source_timeout_s >= 32 * 2.0**server.maxpoll, server
