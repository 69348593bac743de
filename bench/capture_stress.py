"""Run the capture tests N times in a row while CPU hogs load the machine (a CI-like run).

Usage: ``python bench/capture_stress.py [--runs 3] [--hogs 2] [-- PYTEST_ARGS...]``

Starts ``--hogs`` busy-loop Python processes (direct children), runs ``pytest tests/capture``
``--runs`` times, then stops the hogs by PID (terminate, wait, kill). Prints one line per run
(exit status, duration, pass/fail counts) and the two-machine test's measured figures.
Asserts nothing; exits non-zero when any run failed.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("pytest_args", nargs="*", default=["tests/capture"])
    args = ap.parse_args()
    # SIGTERM -> SystemExit, so the finally below still stops the hogs by PID.
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(143))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    failed = 0
    try:
        for i in range(args.runs):
            t0 = time.monotonic()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-s",
                    "-p",
                    "no:cacheprovider",
                    *args.pytest_args,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            dt = time.monotonic() - t0
            tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
            figures = re.findall(r"\{\"compared\".*", r.stdout)
            print(f"run {i + 1}: rc={r.returncode} {dt:6.1f} s  {tail}", flush=True)
            for f in figures:
                print(f"    two-machine: {f}", flush=True)
            if r.returncode != 0:
                failed += 1
                fails = [ln for ln in r.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
                print("\n".join("    " + ln for ln in fails), flush=True)
                (Path(tempfile.gettempdir()) / f"capture_stress_run{i + 1}.log").write_text(
                    r.stdout + r.stderr
                )
    finally:
        for h in hogs:
            h.terminate()
        for h in hogs:
            try:
                h.wait(timeout=3)
            except subprocess.TimeoutExpired:
                h.kill()
                h.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
