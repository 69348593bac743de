"""`netclock plot RUN.jsonl --out FILE.png` on a small run record (docs/run-record.md)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from netclock.cli import plot

pytest.importorskip("matplotlib", reason="matplotlib (pip) missing: netclock plot needs it")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _record(path: Path) -> Path:
    lines = [{"netclock_run_record": 1, "program": "netclock", "started_mono_ns": 10**9}]
    t = 10**9
    for i in range(60):
        t += 125_000_000
        state = "freerun" if i < 3 else "locking" if i < 20 else "locked" if i < 50 else "holdover"
        measured = 3 <= i < 50
        lines.append({
            "t_mono_ns": t,
            "source": "ptp:veth0:0",
            "state": state,
            "offset_ns": (20_000 // (i + 1) - 150 * (i % 3)) if measured else None,
            "delay_ns": 25_000 + 300 * (i % 5) if measured else None,
            "rate_ppb": 10_000.0 + 40.0 / (i + 1) if i >= 5 else None,
            "error_bound_ns": 900 + 50 * max(0, i - 50) if i >= 3 else None,
            "domain": 0,
        })
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="netclock")
    plot.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.png"
    assert _run(["plot", str(_record(tmp_path / "run.jsonl")), "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1210, 990)  # 11 x 9 inches at the default 110 dpi
    assert "60 samples over 7.4 s, final state HOLDOVER" in capsys.readouterr().out


def test_read_run_record_skips_header_and_keeps_nulls(tmp_path: Path) -> None:
    samples = plot.read_run_record(str(_record(tmp_path / "run.jsonl")))
    assert len(samples) == 60
    assert samples[0].state == "freerun" and samples[0].offset_ns is None
    assert samples[30].state == "locked" and isinstance(samples[30].offset_ns, int)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"state": "locked"}', "missing 't_mono_ns'"),
        ('{"t_mono_ns": 1, "state": "dancing"}', "'state' must be one of"),
        ('{"t_mono_ns": 1, "state": "locked", "offset_ns": 1.5}', "'offset_ns' must be an integer"),
        ('{"netclock_run_record": 99}', "unsupported run record version"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"t_mono_ns": 1, "state": "locked", "source": "s"}\n' + line + "\n")
    with pytest.raises(plot.RunRecordError, match=message) as e:
        plot.read_run_record(str(p))
    assert f"{p}:2" in str(e.value)


def test_plot_command_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_text("\n")
    assert _run(["plot", str(p), "--out", str(tmp_path / "x.png")]) == 1
    assert "no samples" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_true_error_is_read_when_recorded(tmp_path: Path) -> None:
    p = tmp_path / "truth.jsonl"
    p.write_text('{"t_mono_ns": 5, "state": "locked", "offset_ns": 3, "true_error_ns": -7}\n')
    (sample,) = plot.read_run_record(str(p))
    assert (sample.true_error_ns, sample.offset_ns, sample.source) == (-7, 3, "")


def test_plot_of_the_documented_real_run(tmp_path: Path) -> None:
    """docs/images/plot-veth-run.jsonl (a real veth run) still reads and renders."""
    record = Path(__file__).resolve().parents[2] / "docs" / "images" / "plot-veth-run.jsonl"
    out = tmp_path / "real.png"
    assert _run(["plot", str(record), "--out", str(out), "--dpi", "50"]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    states = {s.state for s in plot.read_run_record(str(record))}
    assert states == {"freerun", "locking", "locked", "holdover"}


def test_plot_of_a_running_daemons_record(tmp_path: Path, daemon_pair: Any) -> None:
    """`netclock run --record` of a real agent (conftest.daemon_pair, LOCKED by now) renders."""
    record = daemon_pair.agent.record
    text = record.read_text()
    copy = tmp_path / "agent.jsonl"
    copy.write_text(text[: text.rfind("\n") + 1])  # the agent is still appending
    samples = plot.read_run_record(str(copy))
    assert samples and all(s.source.startswith("ntp:127.0.0.2:") for s in samples)
    assert "locked" in {s.state for s in samples}
    assert any(s.offset_ns is not None and s.delay_ns is not None for s in samples)
    out = tmp_path / "agent.png"
    assert _run(["plot", str(copy), "--out", str(out), "--dpi", "50"]) == 0
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5_000


def test_plot_of_the_documented_daemon_run(tmp_path: Path) -> None:
    """docs/images/plot-daemon-failover.jsonl: `netclock run --record` of a real agent
    (deploy/examples/loopback-failover-run.sh) reads and renders, one true-error line."""
    record = Path(__file__).resolve().parents[2] / "docs" / "images" / "plot-daemon-failover.jsonl"
    samples = plot.read_run_record(str(record))
    assert {s.state for s in samples} == {"freerun", "locking", "locked", "holdover"}
    assert len({s.source for s in samples}) == 2
    assert all(s.true_error_ns is not None for s in samples if s.state != "freerun")
    out = tmp_path / "daemon.png"
    assert _run(["plot", str(record), "--out", str(out), "--dpi", "50"]) == 0
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    script = record.parents[2] / "deploy" / "examples" / "loopback-failover-run.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
