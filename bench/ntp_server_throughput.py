"""NTP server throughput on loopback: netclock vs chronyd with the same load generator.

Prints a table; asserts nothing. Loopback only (127.0.0.1), bounded by a request count and a
time limit. The load generator is a small closed-loop C program (sendmmsg/recvmmsg, a fixed
window of outstanding requests) compiled with the system ``cc`` into a temporary directory; each
server is pinned to one CPU and the generator to another, so the rate is requests/s for one core.

    python bench/ntp_server_throughput.py [--requests 200000] [--seconds 8] [--windows 1,16,64]

chronyd runs with -x (never touches the clock), as a child, and is stopped by PID and waited.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GENERATOR_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
static double now_s(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: gen HOST PORT WINDOW TOTAL SECONDS\n"); return 2; }
    int window = atoi(argv[3]); long total = atol(argv[4]); double secs = atof(argv[5]);
    struct sockaddr_in sa = {0}; sa.sin_family = AF_INET; sa.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("connect"); return 1; }
    struct timeval tv = {0, 100000}; setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char req[BATCH][48]; struct mmsghdr sm[BATCH], rm[BATCH];
    struct iovec siov[BATCH], riov[BATCH]; unsigned char rbuf[BATCH][128];
    memset(sm, 0, sizeof sm); memset(rm, 0, sizeof rm);
    for (int i = 0; i < BATCH; i++) {
        memset(req[i], 0, 48); req[i][0] = 0x23;
        siov[i].iov_base = req[i]; siov[i].iov_len = 48;
        sm[i].msg_hdr.msg_iov = &siov[i]; sm[i].msg_hdr.msg_iovlen = 1;
        riov[i].iov_base = rbuf[i]; riov[i].iov_len = sizeof rbuf[i];
        rm[i].msg_hdr.msg_iov = &riov[i]; rm[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0, received = 0, timeouts = 0; uint64_t seq = 1;
    double t0 = now_s(), end = t0 + secs;
    #define SEND(n) do { int k_ = (n); for (int i_ = 0; i_ < k_; i_++) { \
        uint64_t s_ = seq++; \
        for (int b_ = 0; b_ < 8; b_++) req[i_][40 + b_] = s_ >> (56 - 8 * b_); } \
        int r_ = sendmmsg(fd, sm, k_, 0); if (r_ > 0) sent += r_; } while (0)
    long first = window < total ? window : total;
    while (first > 0) { int k = first > BATCH ? BATCH : first; SEND(k); first -= k; }
    while (received < total && now_s() < end) {
        int n = recvmmsg(fd, rm, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {  /* lost replies: refill */
                timeouts++; long k = window; if (k > total - sent) k = total - sent;
                while (k > 0) { int b = k > BATCH ? BATCH : k; SEND(b); k -= b; }
                continue;
            }
            if (errno == EINTR) continue; perror("recvmmsg"); break;
        }
        received += n;
        long k = n; if (k > total - sent) k = total - sent;
        while (k > 0) { int b = k > BATCH ? BATCH : k; SEND(b); k -= b; }
    }
    double el = now_s() - t0;
    printf("sent %ld received %ld seconds %.3f rate %.0f timeouts %ld\n",
           sent, received, el, received / el, timeouts);
    return 0;
}
"""


def build_generator(tmp: Path) -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src = tmp / "gen.c"
    src.write_text(GENERATOR_C)
    exe = tmp / "gen"
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def wait_port(port: int, timeout: float = 5.0) -> None:
    """Until something answers an NTP request on 127.0.0.1:port."""
    import socket

    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(b"\x23" + bytes(47), ("127.0.0.1", port))
            try:
                s.recvfrom(128)
                return
            except OSError:
                continue
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def start_netclock(port: int, cpu: int, xleave: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = ["taskset", "-c", str(cpu), sys.executable, "-m", "netclock", "ntp", "serve",
           "--listen", f"127.0.0.1:{port}"]
    if not xleave:
        cmd.append("--no-xleave")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def start_chronyd(port: int, cpu: int, tmp: Path) -> subprocess.Popen[bytes]:
    conf = tmp / "chrony-server.conf"
    conf.write_text("\n".join([
        f"port {port}", "bindaddress 127.0.0.1", "local stratum 1", "allow 127.0.0.1",
        f"pidfile {tmp}/chronyd.pid", "cmdport 0", "",
    ]))
    return subprocess.Popen(["taskset", "-c", str(cpu), "chronyd", "-x", "-d", "-u", "root",
                             "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_load(gen: Path, port: int, window: int, requests: int, seconds: float,
             cpu: int) -> dict[str, float]:
    out = subprocess.run(["taskset", "-c", str(cpu), str(gen), "127.0.0.1", str(port),
                          str(window), str(requests), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 10).stdout
    m = re.search(r"sent (\d+) received (\d+) seconds ([\d.]+) rate (\d+) timeouts (\d+)", out)
    if not m:
        raise RuntimeError(f"generator output: {out!r}")
    return {"sent": int(m[1]), "received": int(m[2]), "seconds": float(m[3]),
            "rate": float(m[4]), "timeouts": int(m[5])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--windows", default="1,16,64")
    ap.add_argument("--port", type=int, default=12123)
    args = ap.parse_args()
    ncpu = os.cpu_count() or 1
    server_cpu, gen_cpu = (1, 0) if ncpu > 1 else (0, 0)
    windows = [int(w) for w in args.windows.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gen = build_generator(tmp)
        if gen is None:
            print("no C compiler: cannot build the load generator")
            return 1
        servers: list[tuple[str, Callable[[], subprocess.Popen[bytes]]]] = [
            ("netclock (xleave on: TX stamps)",
             lambda: start_netclock(args.port, server_cpu, True)),
            ("netclock (--no-xleave)", lambda: start_netclock(args.port, server_cpu, False)),
        ]
        if shutil.which("chronyd"):
            servers.append(("chronyd 4.3 -x", lambda: start_chronyd(args.port, server_cpu, tmp)))
        rows = []
        for name, start in servers:
            proc = start()
            try:
                wait_port(args.port)
                for w in windows:
                    cpu0 = cpu_seconds(proc.pid)
                    res = run_load(gen, args.port, w, args.requests, args.seconds, gen_cpu)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    rows.append((name, w, res, cpu))
            finally:
                stop(proc)
            time.sleep(0.3)
    print(f"\nNTP server throughput, loopback, server on CPU {server_cpu}, generator on CPU "
          f"{gen_cpu}; at most {args.requests} requests or {args.seconds} s per cell\n")
    print("| server | window | replies | seconds | replies/s | server CPU s | replies per CPU s |")
    print("|---|---|---|---|---|---|---|")
    for name, w, res, cpu in rows:
        per_cpu = res["received"] / cpu if cpu > 0 else float("nan")
        print(f"| {name} | {w} | {res['received']:.0f} | {res['seconds']:.2f} | "
              f"{res['rate']:.0f} | {cpu:.2f} | {per_cpu:.0f} |")
    by = {(n, w): r["rate"] for n, w, r, _ in rows}
    if shutil.which("chronyd"):
        print()
        for w in windows:
            c = by.get(("chronyd 4.3 -x", w))
            for n in ("netclock (xleave on: TX stamps)", "netclock (--no-xleave)"):
                if c and (n, w) in by:
                    print(f"window {w}: {n} / chronyd = {by[(n, w)] / c:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
