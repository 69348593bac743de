"""Fixtures for tests/deploy.

``daemon_pair``: a real grandmaster and agent (``netclock run`` child processes on loopback, the
agent recording its run with ``--record``), started once per session and stopped by PID.

``exposed_names``: every sample name the two RUNNING daemons serve on ``/metrics``, scraped over
HTTP once the agent is LOCKED — the names a dashboard or rule may use.

``capture_exposition``: a live scrape of a RUNNING ``netclock capture --metrics-port`` that
stamps a headless PipeWire session's test pattern with the running agent's published time
(skips when PipeWire is not installed).

``catalogue_names``: the names the metrics module serves for a snapshot in which every field is
populated (the catalogue itself; a daemon following NTP leaves e.g. the TAI-UTC offset out).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_helpers import (
    LOCKED,
    Daemon,
    full_snapshot,
    pipewire_unavailable,
    sample_names,
    scrape,
    start_agent,
    start_capture,
    start_grandmaster,
    wait_frames,
    wait_metric,
)


@dataclass
class DaemonPair:
    gm: Daemon
    agent: Daemon
    gm_exposition: str
    agent_exposition: str
    shm: Path
    """The agent's shared-memory segment."""


@pytest.fixture(scope="session")
def daemon_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonPair]:
    tmp: Path = tmp_path_factory.mktemp("daemons")
    gm, ntp_port = start_grandmaster(tmp)
    agent = None
    try:
        agent = start_agent(tmp, ntp_port)
        gm_text = wait_metric(gm, LOCKED)
        agent_text = wait_metric(agent, LOCKED)
        yield DaemonPair(gm, agent, gm_text, agent_text, tmp / "agent" / "clock.shm")
    finally:
        if agent is not None:
            agent.stop()
        gm.stop()


@pytest.fixture(scope="session")
def exposed_names(daemon_pair: DaemonPair) -> set[str]:
    return sample_names(daemon_pair.gm_exposition) | sample_names(daemon_pair.agent_exposition)


@pytest.fixture(scope="session")
def catalogue_names() -> Iterator[set[str]]:
    from netclock.metrics import start_metrics_server

    snap = full_snapshot()
    server = start_metrics_server(lambda: snap, "127.0.0.1", 0)
    try:
        yield sample_names(scrape(server.url))
    finally:
        server.close()


@pytest.fixture(scope="session")
def capture_exposition(
    daemon_pair: DaemonPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    from capture.headless import HeadlessPipeWire

    reason = pipewire_unavailable()
    if reason:
        pytest.skip(f"headless PipeWire unavailable: {reason}")
    tmp: Path = tmp_path_factory.mktemp("capture")
    session = HeadlessPipeWire(tmp / "pw")
    session.start()
    capture = None
    try:
        capture = start_capture(tmp, daemon_pair.shm, session.env)
        yield wait_frames(capture, 5)
    finally:
        if capture is not None:
            capture.stop()
        session.stop()
