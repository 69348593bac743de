"""docs/shm-layout.md is enough to write a reader in C: compile one, read the daemon's file.

The C program maps the file, checks the header, does the seqlock read of a slot, checks the
CRC, and converts MONOTONIC values with 128-bit arithmetic; its answers must equal
``Calibration.to_external`` bit for bit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from netclock.calibration import MAX_RATE_TERM, RATE_DENOM, Calibration
from netclock.observe import LockState
from netclock.platform.shm_writer import ShmWriter
from netclock.shm import DomainRecord

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")

C_READER = r"""
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & -(c & 1));
    }
    return ~c;
}

static int64_t div_round(__int128 n, __int128 d) {  /* d > 0, halves away from zero */
    __int128 q = (n >= 0 ? 2 * n + d : 2 * n - d) / (2 * d);
    return (int64_t)q;
}

int main(int argc, char **argv) {
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) return 2;
    const uint8_t *m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return 2;
    if (memcmp(m, "NETCLKSM", 8) != 0) return 3;
    uint16_t ver, hsize, rsize, count;
    memcpy(&ver, m + 8, 2); memcpy(&hsize, m + 10, 2);
    memcpy(&rsize, m + 12, 2); memcpy(&count, m + 14, 2);
    if (ver != 1) return 4;
    int slot = atoi(argv[2]);
    const uint8_t *r = m + hsize + (size_t)slot * rsize;
    uint8_t copy[128];
    for (;;) {
        uint64_t s1 = __atomic_load_n((const uint64_t *)r, __ATOMIC_ACQUIRE);
        if (s1 & 1) continue;
        memcpy(copy, r, 128);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint64_t s2 = __atomic_load_n((const uint64_t *)r, __ATOMIC_ACQUIRE);
        if (s1 == s2) break;
    }
    uint32_t stored; memcpy(&stored, copy + 124, 4);
    if (crc32(copy + 8, 116) != stored) return 5;
    int64_t internal, external; uint64_t num, denom, epoch; uint16_t domain, flags;
    memcpy(&internal, copy + 8, 8); memcpy(&external, copy + 16, 8);
    memcpy(&num, copy + 24, 8); memcpy(&denom, copy + 32, 8); memcpy(&epoch, copy + 40, 8);
    memcpy(&domain, copy + 72, 2); memcpy(&flags, copy + 74, 2);
    printf("domain %u flags %u lock %u epoch %" PRIu64 "\n", domain, flags, copy[79], epoch);
    for (int i = 3; i < argc; i++) {
        int64_t mono = strtoll(argv[i], NULL, 10);
        printf("%" PRId64 "\n",
               div_round((__int128)(mono - internal) * (__int128)num, denom) + external);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("c")
    (d / "reader.c").write_text(C_READER)
    exe = d / "reader"
    subprocess.run(
        ["cc", "-O2", "-Wall", "-Werror", "-o", str(exe), str(d / "reader.c")],
        check=True,
        timeout=60,
    )
    return exe


@pytest.mark.parametrize(
    "cal",
    [
        Calibration(123_456_789, 1_700_000_000 * 10**9, RATE_DENOM + 4321, RATE_DENOM, 5),
        Calibration(-(10**18), 10**18, MAX_RATE_TERM, MAX_RATE_TERM - 1, 0),
        Calibration(10**15, -3, 1, MAX_RATE_TERM, 9),
        Calibration(0, 0, 2, 3, 1),
    ],
)
def test_c_reader_agrees_with_python(reader: Path, tmp_path: Path, cal: Calibration) -> None:
    w = ShmWriter(tmp_path / "clock.shm", slots=2)
    try:
        w.publish([None, DomainRecord(7, cal, lock_state=LockState.LOCKED)])
        monos = [-(10**18), -1, 0, 1, 2, 3, 5, cal.internal, cal.internal - 1, 4 * 10**18]
        r = subprocess.run(
            [str(reader), w.path, "1", *map(str, monos)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r
        lines = r.stdout.splitlines()
        assert lines[0] == f"domain 7 flags 3 lock 2 epoch {cal.epoch}"
        assert [int(x) for x in lines[1:]] == [cal.to_external(m) for m in monos]
    finally:
        w.close()
