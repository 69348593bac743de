"""Fixtures: a private headless PipeWire session (children of the test process, stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.headless import HeadlessPipeWire, available


def _session(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeadlessPipeWire]:
    reason = available()
    if reason:
        pytest.skip(f"headless PipeWire unavailable: {reason}")
    try:
        from capture.pipewire import library

        library()
    except OSError as e:
        pytest.skip(f"libpipewire-0.3 unavailable: {e}")
    pw = HeadlessPipeWire(tmp)
    pw.start()
    try:
        for k in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "PIPEWIRE_RUNTIME_DIR"):
            monkeypatch.setenv(k, pw.env[k])
        yield pw
    finally:
        pw.stop()


@pytest.fixture
def pipewire_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeadlessPipeWire]:
    """A fresh session per test (the SPA videotestsrc serves only its first consumer)."""
    yield from _session(tmp_path, monkeypatch)
