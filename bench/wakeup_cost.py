"""Benchmark: CPU time one timer wake-up costs a process on this machine, C against Python.

Prints a table, asserts nothing. Why: a daemon that sleeps between packets pays for every
wake-up (the timer interrupt, the switch back in, caches its sleep let go cold), and on a VM
that cost is large. ptp4l at 16 Sync/s wakes ~40 times a second, `netclock run` ~10; this
bench says what a wake-up costs each kind of process, doing nothing else, so that
`bench/daemon_cpu_rss.py`'s figures can be read against it.

Each row sleeps ``--rate`` times a second for ``--seconds`` and reads its own scheduler run
time (``/proc/self/schedstat``) before and after:

* C ``nanosleep`` (compiled with the system ``cc`` into a temporary directory; skipped without);
* Python ``time.sleep``;
* Python ``select.epoll.poll`` with a timeout (what the asyncio loop blocks in);
* an asyncio loop running one ``call_later`` callback per wake-up (netclock's daemon loop).

    python bench/wakeup_cost.py [--rate 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double run_s(void) {
    unsigned long long ns = 0;
    FILE *f = fopen("/proc/self/schedstat", "r");
    if (!f || fscanf(f, "%llu", &ns) != 1) exit(1);
    fclose(f);
    return ns / 1e9;
}
int main(int argc, char **argv) {
    long rate = atol(argv[1]), n = rate * atol(argv[2]);
    struct timespec ts = {0, 1000000000L / rate};
    double c0 = run_s();
    for (long i = 0; i < n; i++) nanosleep(&ts, NULL);
    printf("%.3f\n", (run_s() - c0) / n * 1e6);
    return 0;
}
"""


def run_s() -> float:
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def c_nanosleep(rate: int, seconds: int) -> float | None:
    cc = shutil.which("cc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "w.c", Path(d) / "w"
        src.write_text(C_SOURCE)
        subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
        out = subprocess.run([str(exe), str(rate), str(seconds)], capture_output=True,
                             text=True, check=True).stdout
    return float(out)


def py_sleep(rate: int, seconds: int) -> float:
    n = rate * seconds
    c0 = run_s()
    for _ in range(n):
        time.sleep(1 / rate)
    return (run_s() - c0) / n * 1e6


def py_epoll(rate: int, seconds: int) -> float:
    n = rate * seconds
    ep = select.epoll()
    c0 = run_s()
    for _ in range(n):
        ep.poll(1 / rate)
    ep.close()
    return (run_s() - c0) / n * 1e6


def py_asyncio(rate: int, seconds: int) -> float:
    n = rate * seconds

    async def main() -> float:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            if count >= n:
                done.set_result(None)
            else:
                loop.call_later(1 / rate, tick)

        c0 = run_s()
        loop.call_later(1 / rate, tick)
        await done
        return (run_s() - c0) / n * 1e6

    return asyncio.run(main())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=10, help="wake-ups per second")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    rows = [
        ("C nanosleep", c_nanosleep(args.rate, args.seconds)),
        ("Python time.sleep", py_sleep(args.rate, args.seconds)),
        ("Python epoll.poll(timeout)", py_epoll(args.rate, args.seconds)),
        ("Python asyncio call_later", py_asyncio(args.rate, args.seconds)),
    ]
    print(f"\nCPU time per timer wake-up, {args.rate}/s for {args.seconds} s each "
          f"(scheduler run time, /proc/self/schedstat)")
    print(f"{'sleeper':30} {'us of CPU per wake-up':>22}")
    for name, us in rows:
        print(f"{name:30} {'no cc' if us is None else f'{us:.1f}':>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
