"""Fuzz every parser that reads untrusted bytes; print a table (asserts nothing by itself).

    python bench/fuzz.py                      # 10^6 inputs per parser, all cores
    python bench/fuzz.py --short              # ~10 s, what tests/fuzz runs
    python bench/fuzz.py --inputs 200000 --targets ntp,ptp --json
    python bench/fuzz.py --atheris ntp --inputs 100000   # coverage-guided (libFuzzer)

Targets and what counts as *expected* (anything else is an unexpected exception):

* ``ptp``: :func:`netclock.ptp.wire.messages.parse` (all message types, TLVs) and, for MANAGEMENT
  messages, the dataField codec of the data set named by each MANAGEMENT TLV → ``ParseError``.
* ``ntp``: :meth:`NtpPacket.unpack` (header, RFC 7822 extension fields, MACs, crypto-NAKs) →
  ``ParseError``; a parsed packet must re-encode byte for byte; then
  :func:`netclock.ntp.auth.verify` against a keyring (AES-CMAC, SHA-1, MD5 keys) must return a
  verdict and never raise; and :meth:`NtpServer.respond` must answer or drop, never raise.
* ``config``: :func:`netclock.config.load_text` (TOML text) → ``ConfigError``.
* ``shm``: :func:`netclock.shm.unpack_header` and :func:`unpack_record` (with and without the
  CRC check, and with the CRC recomputed after mutation) → ``ShmLayoutError``.
* ``keys``: :func:`netclock.ntp.auth.parse_keys` (chrony keys file text) → ``KeyFileError``.

Inputs: a third uniformly random bytes, the rest mutations (bit flips, interesting values in
length fields, insert/delete/duplicate/splice/truncate) of golden vectors
(tests/vectors/ntp/packets.json, tests/vectors/ptp/ptp4l_vectors.json) and of structured inputs
built by this script (extension fields + MACs, TLV chains, management data sets, TOML files,
shared-memory headers and records). A hang is an input that runs past ``--time-limit`` s
(SIGALRM per input). Deterministic per ``--seed``. Crashing inputs are written under
``--crash-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netclock import config as nc_config  # noqa: E402
from netclock import shm  # noqa: E402
from netclock.calibration import Calibration  # noqa: E402
from netclock.ntp import auth  # noqa: E402
from netclock.ntp.server import DisciplineState, NtpServer, RateLimit  # noqa: E402
from netclock.ntp.wire import ExtensionField, Mac, Mode, NtpPacket  # noqa: E402
from netclock.ntp.wire import ParseError as NtpParseError  # noqa: E402
from netclock.ptp.wire import messages as ptp_messages  # noqa: E402
from netclock.ptp.wire.mgmt_data import DATA_SETS, OctetValue  # noqa: E402
from netclock.ptp.wire.tlv import ManagementId, ManagementTlv, TlvType  # noqa: E402
from netclock.ptp.wire.types import ParseError as PtpParseError  # noqa: E402
from netclock.time import NtpTimestamp  # noqa: E402

TARGETS = ("ptp", "ntp", "config", "shm", "keys")


class Hang(Exception):
    pass


# -- seeds ------------------------------------------------------------------------------------

KEYS_TEXT = (
    "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
    "2 SHA1 HEX:0123456789abcdef0123456789abcdef01234567\n"
    "3 MD5 ASCII:secret\n"
)
KEYS = auth.parse_keys(KEYS_TEXT)


def _ntp_seeds() -> list[bytes]:
    data = json.loads((ROOT / "tests/vectors/ntp/packets.json").read_text())
    seeds = [bytes.fromhex(p["hex"]) for p in data["packets"]]
    base = NtpPacket(mode=Mode.CLIENT, transmit_ts=NtpTimestamp.from_u64(0x0123456789ABCDEF))
    raw = base.pack()
    seeds += [auth.sign(raw, k) for k in KEYS.values()]
    seeds.append(auth.crypto_nak(raw))
    ef = ExtensionField.padded(0x0104, b"\x01" * 32).pack()
    seeds.append(raw + ef + ExtensionField.padded(0x0204, b"", 28).pack())
    seeds.append(auth.sign(raw + ef, KEYS[1]))
    seeds.append(NtpPacket(mode=Mode.CLIENT, mac=Mac(7, bytes(24))).pack())
    return seeds


def _ptp_seeds() -> list[bytes]:
    data = json.loads((ROOT / "tests/vectors/ptp/ptp4l_vectors.json").read_text())
    seeds = [bytes.fromhex(p["hex"]) for p in data["packets"]]
    rng = random.Random(0)
    for mid, cls in DATA_SETS.items():
        size = {0x2000: 20, 0x2001: 18, 0x2002: 32, 0x2003: 4, 0x2004: 26}.get(mid, 24)
        tlv = ManagementTlv(mid, bytes(rng.randrange(256) for _ in range(size)))
        seeds.append(ptp_messages.Management(action=2, tlvs=(tlv,)).pack())
        del cls
    for mid in list(ManagementId)[:12]:
        seeds.append(ptp_messages.Management(tlvs=(ManagementTlv(int(mid), b""),)).pack())
    return seeds


def _config_seeds() -> list[bytes]:
    texts = [
        nc_config.render_default_toml(),
        "[clock]\nwindow-size = 32\n\n[ptp]\ndomain = 0\ninterface = \"eth0\"\n",
        "[[ntp.server]]\naddress = \"127.0.0.1\"\n[[ntp.server]]\naddress = \"::1\"\n",
        "[publish]\n[metrics]\n[log]\n",
        'a = [1, 2, {x = "y"}]\nb = 1979-05-27T07:32:00Z\nc = """multi\nline"""\n',
    ]
    return [t.encode() for t in texts]


def _shm_seeds() -> list[bytes]:
    hdr = shm.pack_header(shm.Header(record_count=2, writer_pid=1234,
                                     state=shm.WriterState(1), created_mono_ns=99))
    rec = bytes(shm.pack_record(None, seq=2))
    out = [hdr, rec, hdr + rec + rec]
    r = shm.DomainRecord(domain=3, calibration=Calibration(10, 20, 3, 4, 1),
                         error_bound_ns=1000, update_mono_ns=5, utc_offset_s=37,
                         utc_offset_valid=True, leap61=True)
    out.append(bytes(shm.pack_record(r, seq=4)))
    return out


def _keys_seeds() -> list[bytes]:
    return [KEYS_TEXT.encode(), b"# c\n4 bare\n5 MD5 HEX:00ff\n"]


# -- input generation -------------------------------------------------------------------------

INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF, 4, 16, 28)
INTERESTING_16 = (0, 1, 3, 4, 15, 16, 20, 24, 28, 44, 0x7FFF, 0x8000, 0xFFFF, 0xFFFC)


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        op = rng.randrange(11)
        n = len(buf)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 2 and n:
            buf[rng.randrange(n)] = rng.choice(INTERESTING_8)
        elif op == 3 and n >= 2:
            i = rng.randrange(n - 1)
            buf[i : i + 2] = struct.pack("!H", rng.choice(INTERESTING_16))
        elif op == 4:
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.choice((1, 2, 4, 16, 28, 64)))
        elif op == 5 and n:
            i = rng.randrange(n)
            del buf[i : i + rng.randrange(1, 33)]
        elif op == 6 and n:
            buf = buf[: rng.randrange(n + 1)]
        elif op == 7 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 65))
            buf[i:i] = buf[i:j]
        elif op == 8:
            other = rng.choice(pool)
            if other:
                i = rng.randrange(len(other))
                buf[rng.randrange(n + 1):] = other[i:]
        elif op == 9:
            buf += rng.randbytes(rng.randrange(1, 100))
        elif op == 10 and n >= 4:  # interesting 32-bit
            i = rng.randrange(n - 3)
            buf[i : i + 4] = struct.pack("!I", rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF)))
    return bytes(buf)


def _ntp_struct(rng: random.Random) -> bytes:
    head = bytearray(rng.randbytes(48))
    head[0] = (rng.randrange(4) << 6) | (rng.choice((1, 2, 3, 4, 4, 4, 5, 7)) << 3) | rng.choice(
        (3, 3, 4, 1, 2, 5, 6, 0))
    out = bytes(head)
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        size = rng.choice((16, 20, 24, 28, 32, 4, 0, rng.randrange(0, 300)))
        out += struct.pack("!HH", rng.randrange(0x10000), size) + rng.randbytes(max(size - 4, 0))
    tail = rng.choice((None, 0, 16, 20, 24))
    if tail is not None:
        key = rng.choice((1, 2, 3, 9, 0))
        if key in KEYS and rng.random() < 0.5:
            out = auth.sign(out, KEYS[key])
        else:
            out += struct.pack("!I", key) + rng.randbytes(tail)
    return out


def _ptp_struct(rng: random.Random, seeds: list[bytes]) -> bytes:
    base = bytearray(rng.choice(seeds))
    if rng.random() < 0.5:  # a management message with a random data-set TLV
        mid = rng.choice([*DATA_SETS, *(int(m) for m in ManagementId), rng.randrange(0x10000)])
        tlv = ManagementTlv(mid, rng.randbytes(rng.choice((0, 1, 2, 4, 18, 20, 26, 32, 33))))
        base = bytearray(ptp_messages.Management(action=rng.randrange(5), tlvs=(tlv,)).pack())
    for _ in range(rng.choice((0, 1, 2, 3))):
        ttype = rng.choice([*(int(t) for t in TlvType), rng.randrange(0x10000)])
        length = rng.choice((0, 1, 2, 4, 6, 10, 12, 16, rng.randrange(64)))
        base += struct.pack("!HH", ttype, length) + rng.randbytes(
            length if rng.random() < 0.8 else rng.randrange(length + 1))
    if rng.random() < 0.7 and len(base) >= 4:
        struct.pack_into("!H", base, 2, min(len(base), 0xFFFF))
    return bytes(base)


TOML_TOKENS = [b"[", b"]", b"[[", b"]]", b"=", b"\"", b"'", b"\n", b"{", b"}", b",", b".",
               b"#", b"\"\"\"", b"true", b"-1", b"1e400", b"nan", b"0x7f", b"1979-05-27",
               b"clock", b"ptp", b"ntp", b"server", b"window-size", b"domain", b"\\u0000",
               b"\xff", b"\x00", b" ", b"inf", b"99999999999999999999999"]


def _toml_struct(rng: random.Random, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.05:  # deep nesting (recursion limits in tomllib)
        d = rng.randrange(100, 3000)
        return b"a = " + b"[" * d + b"1" + b"]" * d + b"\n"
    if rng.random() < 0.05:
        d = rng.randrange(100, 3000)
        return b"a = " + b"{b = " * d + b"1" + b"}" * d + b"\n"
    base = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(1, 6)):
        i = rng.randrange(len(base) + 1)
        base[i:i] = rng.choice(TOML_TOKENS)
    return bytes(base)


def _shm_struct(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(_mutate(rng, rng.choice(seeds), seeds))
    if len(data) >= shm.RECORD_SIZE and rng.random() < 0.6:  # keep the CRC right
        body = bytes(data[: shm.RECORD_SIZE])
        crc = shm.record_crc(body)
        data[shm.RECORD_SIZE - 4 : shm.RECORD_SIZE] = crc.to_bytes(4, "little")
    return bytes(data)


@dataclass
class Target:
    name: str
    seeds: list[bytes]
    run: Callable[[bytes], None]
    structured: Callable[[random.Random, list[bytes]], bytes]
    max_random: int = 300


def _run_ptp(data: bytes) -> None:
    try:
        msg = ptp_messages.parse(data)
    except PtpParseError:
        return
    if isinstance(msg, ptp_messages.Management):
        for tlv in msg.tlvs:
            if isinstance(tlv, ManagementTlv):
                cls = DATA_SETS.get(tlv.management_id)
                try:
                    if cls is not None:
                        cls.unpack(tlv.data)
                    OctetValue.unpack(tlv.data)
                except PtpParseError:
                    pass
    msg.pack()  # whatever parsed must re-encode


_SERVER: list[NtpServer] = []


def _run_ntp(data: bytes) -> None:
    try:
        pkt = NtpPacket.unpack(data)
    except NtpParseError:
        pkt = None
    if pkt is not None and pkt.pack() != data:
        raise AssertionError("NTP packet does not re-encode byte for byte")
    auth.verify(data, KEYS, pkt)
    if not _SERVER:
        _SERVER.append(NtpServer(lambda m: m + 1_800_000_000 * 10**9, DisciplineState(),
                                 rate_limit=RateLimit(), keys=KEYS))
    srv = _SERVER[0]
    resp = srv.respond(data, 10**9, 10**9 + 1000, data[:2])
    if resp is not None:
        srv.restamp(resp, 10**9 + 2000)


def _run_config(data: bytes) -> None:
    with contextlib.suppress(nc_config.ConfigError):
        nc_config.load_text(data.decode("utf-8", "replace"))


def _run_shm(data: bytes) -> None:
    with contextlib.suppress(shm.ShmLayoutError):
        shm.unpack_header(data)
    for verify in (True, False):
        with contextlib.suppress(shm.ShmLayoutError):
            shm.unpack_record(data, 0, verify=verify)


def _run_keys(data: bytes) -> None:
    with contextlib.suppress(auth.KeyFileError):
        auth.parse_keys(data.decode("utf-8", "replace"))


def make_targets() -> dict[str, Target]:
    ntp = _ntp_seeds()
    ptp = _ptp_seeds()
    return {
        "ptp": Target("ptp", ptp, _run_ptp, _ptp_struct),
        "ntp": Target("ntp", ntp, _run_ntp, lambda rng, _s: _ntp_struct(rng)),
        "config": Target("config", _config_seeds(), _run_config, _toml_struct, 400),
        "shm": Target("shm", _shm_seeds(), _run_shm, _shm_struct, 400),
        "keys": Target("keys", _keys_seeds(), _run_keys,
                       lambda rng, s: _mutate(rng, rng.choice(s), s)),
    }


def inputs(t: Target, rng: random.Random, n: int) -> Iterator[bytes]:
    for _ in range(n):
        r = rng.random()
        if r < 0.33:
            yield rng.randbytes(rng.randrange(t.max_random))
        elif r < 0.66:
            yield _mutate(rng, rng.choice(t.seeds), t.seeds)
        else:
            d = t.structured(rng, t.seeds)
            yield _mutate(rng, d, t.seeds) if rng.random() < 0.3 else d


# -- workers ----------------------------------------------------------------------------------


@dataclass
class Chunk:
    target: str
    inputs: int = 0
    exceptions: int = 0
    hangs: int = 0
    slowest_s: float = 0.0
    cpu_s: float = 0.0
    #: distinct error (first 120 chars) -> [count, hex of the first input that raised it]
    samples: dict[str, list[Any]] = field(default_factory=dict)


def _alarm(_sig: int, _frame: Any) -> None:
    raise Hang


def run_chunk(args: tuple[str, int, int, float, str | None]) -> Chunk:
    name, seed, n, limit, crash_dir = args
    t = make_targets()[name]
    rng = random.Random(f"{name}:{seed}")
    out = Chunk(name)
    signal.signal(signal.SIGALRM, _alarm)
    start = time.process_time()
    for data in inputs(t, rng, n):
        out.inputs += 1
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, limit)
        kind = None
        try:
            t.run(data)
        except Hang:
            kind = "hang"
        except RecursionError:
            kind = "exception"
            err = "RecursionError"
        except Exception as e:
            kind = "exception"
            err = "".join(traceback.format_exception_only(e)).strip()[:300]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        dt = time.perf_counter() - t0
        out.slowest_s = max(out.slowest_s, dt)
        if kind == "hang":
            out.hangs += 1
            err = f"ran past {limit} s"
        if kind is not None:
            if kind == "exception":
                out.exceptions += 1
            key = f"{kind}: {err.splitlines()[-1][:120]}"
            if key in out.samples:
                out.samples[key][0] += 1
            elif len(out.samples) < 20:
                out.samples[key] = [1, data[:512].hex()]
            if crash_dir:
                p = Path(crash_dir) / name
                p.mkdir(parents=True, exist_ok=True)
                (p / f"{kind}-{seed}-{out.inputs}.bin").write_bytes(data)
    out.cpu_s = time.process_time() - start
    return out


def run_all(
    targets: list[str], per_target: int, workers: int, limit: float, seed: int,
    crash_dir: str | None, chunk: int = 25_000,
) -> tuple[dict[str, Chunk], dict[str, float]]:
    jobs: list[tuple[str, int, int, float, str | None]] = []
    for name in targets:
        left, i = per_target, 0
        while left > 0:
            k = min(chunk, left)
            jobs.append((name, seed * 1_000_003 + i, k, limit, crash_dir))
            left -= k
            i += 1
    totals = {name: Chunk(name) for name in targets}
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        for c in pool.imap_unordered(run_chunk, jobs):
            tot = totals[c.target]
            tot.inputs += c.inputs
            tot.exceptions += c.exceptions
            tot.hangs += c.hangs
            tot.cpu_s += c.cpu_s
            tot.slowest_s = max(tot.slowest_s, c.slowest_s)
            for key, (count, example) in c.samples.items():
                tot.samples.setdefault(key, [0, example])[0] += count
            wall[c.target] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - t0
    return totals, wall


# -- atheris ----------------------------------------------------------------------------------


def run_atheris(name: str, runs: int) -> int:
    """Coverage-guided fuzzing of one target with atheris/libFuzzer (stops at the first crash)."""
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris)")
        return 2
    t = make_targets()[name]
    corpus = Path(os.environ.get("TMPDIR", "/tmp")) / f"netclock-fuzz-corpus-{name}"
    corpus.mkdir(exist_ok=True)
    for i, s in enumerate(t.seeds):
        (corpus / f"seed{i}").write_bytes(s)
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-timeout=2", str(corpus)], t.run)
    atheris.Fuzz()
    return 0


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000, help="inputs per parser")
    ap.add_argument("--short", action="store_true", help="CI size: 20000 inputs per parser")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--time-limit", type=float, default=1.0, help="per-input limit, s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crash-dir", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--atheris", metavar="TARGET", default=None)
    args = ap.parse_args(argv)
    if args.atheris:
        return run_atheris(args.atheris, args.inputs)
    n = 20_000 if args.short else args.inputs
    names = [t for t in args.targets.split(",") if t]
    for t in names:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r} (known: {', '.join(TARGETS)})")
    totals, wall = run_all(names, n, args.workers, args.time_limit, args.seed, args.crash_dir,
                           chunk=min(25_000, max(1000, n // (2 * args.workers))))
    if args.json:
        print(json.dumps({
            "workers": args.workers, "wall_s": round(wall["total"], 2),
            "targets": {k: {"inputs": c.inputs, "exceptions": c.exceptions, "hangs": c.hangs,
                            "cpu_s": round(c.cpu_s, 2), "slowest_s": round(c.slowest_s, 4),
                            "samples": c.samples} for k, c in totals.items()},
        }))
    else:
        print(f"{'parser':<8} {'inputs':>10} {'unexpected':>10} {'hangs':>6} {'cpu s':>8} "
              f"{'µs/input':>9} {'slowest ms':>10}")
        for k, c in totals.items():
            print(f"{k:<8} {c.inputs:>10} {c.exceptions:>10} {c.hangs:>6} {c.cpu_s:>8.1f} "
                  f"{1e6 * c.cpu_s / max(c.inputs, 1):>9.1f} {1e3 * c.slowest_s:>10.2f}")
        print(f"wall {wall['total']:.1f} s on {args.workers} workers, per-input limit "
              f"{args.time_limit} s, seed {args.seed}")
        for k, c in totals.items():
            for key, (count, example) in c.samples.items():
                print(f"  {k} {count}x {key}\n    first input {example[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
