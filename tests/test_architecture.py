"""Architecture rules that code review alone would miss.

1. The sans-IO cores import nothing that does I/O or reads a clock (AST scan of every module).
2. At run time, the calibration and estimator code never reads a system clock: every clock
   reader in ``time`` is replaced by one that raises, and a full fit runs (statime's
   panicking TestClock).
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "netclock"
CAPTURE = ROOT / "capture"

#: Modules and packages that must stay pure (relative to netclock/).
PURE = [
    "time.py",
    "calibration.py",
    "clock.py",
    "selection.py",
    "shm.py",
    "config.py",
    "discipline.py",
    "observe.py",
    "estimators",
    "sim",
    "ntp",
    "ptp",
]

#: Top-level modules a pure module may not import.
FORBIDDEN = {
    "asyncio",
    "ctypes",
    "fcntl",
    "mmap",
    "os",
    "prometheus_client",
    "select",
    "selectors",
    "signal",
    "socket",
    "ssl",
    "subprocess",
    "threading",
    "time",
    "multiprocessing",
    "netclock.platform",
    "netclock.daemon",
    "netclock.cli",
    "netclock.client",
    "netclock.metrics",
}


#: Pure capture modules (relative to capture/): stamping logic with no device or clock access.
PURE_CAPTURE = ["frame.py", "stamping.py", "timedomain.py", "align.py"]


def pure_files() -> Iterator[Path]:
    for entry in [*PURE, *(f"../capture/{c}" for c in PURE_CAPTURE)]:
        p = (PKG / entry).resolve()
        if p.is_dir():
            yield from sorted(p.rglob("*.py"))
        elif p.exists():
            yield p


def imported_modules(path: Path, source: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in ``path`` (or in ``source``, read as if at ``path``)."""
    text = path.read_text() if source is None else source
    tree = ast.parse(text, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                pkg = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(pkg)
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for alias in node.names:  # `from netclock import platform`
                yield node.lineno, f"{mod}.{alias.name}"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            yield node.lineno, "__import__"


def is_forbidden(mod: str) -> bool:
    if mod == "__import__":
        return True
    return any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN)


def test_pure_modules_exist() -> None:
    files = list(pure_files())
    names = {p.name for p in files}
    assert {"time.py", "calibration.py"} <= names
    assert len(files) >= 2


@pytest.mark.parametrize("path", list(pure_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_imports(path: Path) -> None:
    bad = [f"{path.name}:{line} imports {mod}" for line, mod in imported_modules(path)]
    bad = [b for b in bad if is_forbidden(b.rsplit(" ", 1)[1])]
    assert not bad, "sans-IO core does I/O or reads a clock:\n" + "\n".join(bad)


def test_scanner_catches_violations() -> None:
    """The scan itself works: imports of time, socket and the platform layer are caught."""
    src = "import time\nfrom socket import socket\nfrom ..platform import udp\n"
    mods = [m for _, m in imported_modules(PKG / "ntp" / "probe.py", src)]
    assert "time" in mods and "socket" in mods and "netclock.platform" in mods
    assert all(is_forbidden(m) for m in ("time", "socket", "netclock.platform.udp", "os.path"))
    assert not is_forbidden("timeit_not") and not is_forbidden("netclock.time")


CLOCK_READERS = [
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "process_time_ns",
    "thread_time",
    "thread_time_ns",
    "clock_gettime",
    "clock_gettime_ns",
    "sleep",
]


@pytest.fixture
def panicking_clocks(monkeypatch: pytest.MonkeyPatch) -> None:
    def panic(*_a: object, **_k: object) -> None:
        raise AssertionError("a sans-IO core read a system clock")

    for name in CLOCK_READERS:
        if hasattr(time, name):
            monkeypatch.setattr(time, name, panic)


def test_calibration_never_reads_a_clock(panicking_clocks: None) -> None:
    from netclock.calibration import MonotonicHold, WindowedCalibration

    rng = random.Random(7)
    w = WindowedCalibration()
    hold = MonotonicHold()
    for i in range(100):
        x = 10**18 + i * 125_000_000
        y = x + 5_000 + i * 6 + round(rng.gauss(0, 200))
        w.add_observation(x, y, error_ns=abs(round(rng.gauss(0, 300))))
        if w.calibration is not None:
            hold.read(w.calibration, x)
    w.add_observation(10**18 + 101 * 125_000_000, 10**18 + 10**9)
    assert w.calibration is not None


@pytest.mark.parametrize("estimator", ["window", "gst", "pi"])
def test_estimators_and_simulator_never_read_a_clock(
    panicking_clocks: None, estimator: str
) -> None:
    """A whole simulated run (oscillators, links, scheduler, estimator) with every clock
    reader of ``time`` raising: all time comes from the simulator's own ground truth."""
    from netclock.estimators import create_estimator
    from netclock.sim.scenario import Scenario, run_scenario

    sc = Scenario(duration_s=30, drift_ppm=20.0, jitter_us=5.0, loss=0.05, seed=3)
    res = run_scenario(sc, create_estimator(estimator, 1.0))
    assert res.exchanges > 0 and res.metrics.samples > 0
