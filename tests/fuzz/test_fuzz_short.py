"""CI-sized run of bench/fuzz.py: every parser gets 20 000 random and mutated inputs and must
raise only its own error type, never hang (per-input time limit), never anything else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def short_run() -> dict[str, dict[str, object]]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--short", "--json", "--workers", "2",
         "--time-limit", "2"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    targets: dict[str, dict[str, object]] = json.loads(out.stdout)["targets"]
    return targets


@pytest.mark.parametrize("target", ["ptp", "ntp", "config", "shm", "keys"])
def test_parser_raises_only_its_own_error(
    short_run: dict[str, dict[str, object]], target: str
) -> None:
    r = short_run[target]
    assert r["inputs"] == 20_000
    assert r["hangs"] == 0, r["samples"]
    samples = r["samples"]
    assert isinstance(samples, dict)
    assert r["exceptions"] == 0, samples
