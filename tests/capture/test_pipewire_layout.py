"""capture.pipewire's hard-coded struct layouts and constants against the installed C headers."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from capture import pipewire as pw

PROBE = Path(__file__).parent / "probes" / "pipewire_layout.c"


def _probe(tmp_path: Path) -> dict[str, int]:
    if shutil.which("gcc") is None or shutil.which("pkg-config") is None:
        pytest.skip("gcc/pkg-config not installed")
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libpipewire-0.3"], capture_output=True, text=True
    )
    if flags.returncode != 0:
        pytest.skip("libpipewire-0.3-dev headers not installed")
    exe = tmp_path / "probe"
    subprocess.run(
        ["gcc", "-o", str(exe), str(PROBE), *flags.stdout.split()], check=True, timeout=60
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=10)
    return dict(json.loads(out.stdout))


def test_layout_and_constants_match_headers(tmp_path: Path) -> None:
    c = _probe(tmp_path)
    mismatches = []
    checked = 0
    for key, value in c.items():
        if key == "end":
            continue
        if key.startswith("sizeof "):
            name = key.split()[1]
            if name == "spa_io_position":
                continue
            got = ctypes.sizeof(pw.STRUCTS[name])
        elif key.startswith("offsetof "):
            sname, field = key.split()[1].split(".")
            got = getattr(pw.STRUCTS[sname], field).offset
        else:
            got = pw.CONSTANTS[key]
        checked += 1
        if got != value:
            mismatches.append((key, got, value))
    assert mismatches == []
    assert checked >= 100
    assert set(pw.CONSTANTS) <= set(c)


def test_pod_builders_are_aligned_and_sized() -> None:
    for pod in (
        pw.video_format(3),
        pw.video_format(3, fixed=False),
        pw.audio_format(3),
        pw.meta_header_param(),
    ):
        size, typ = int.from_bytes(pod[:4], "little"), int.from_bytes(pod[4:8], "little")
        assert typ == pw.CONSTANTS["SPA_TYPE_Object"]
        assert len(pod) == 8 + size and len(pod) % 8 == 0
