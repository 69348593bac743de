"""Pair the records of the same frames from two capture files and measure their agreement.

Two agents that captured the same frames (same producer pts, or same sequence numbers) should
report the same network time for each: Δ = net_a − net_b is, for each pair, the error of the
whole chain (sync of both machines plus both subsystem stamps). Each record carries its own
uncertainty bound, so a pair is *inside* when ``|Δ| <= unc_a + unc_b``.

Pure except :func:`load` (reads files) and :func:`write_histogram_png` (writes a PNG with
zlib; no plotting library needed).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from capture.frame import FrameRecord, RecordError, loads

__all__ = ["AlignResult", "align", "load", "pair", "write_histogram_png"]


def load(path: str | Path) -> tuple[list[FrameRecord], int]:
    """Records of a JSON Lines file, and how many lines were not valid records."""
    recs: list[FrameRecord] = []
    bad = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                recs.append(loads(line))
            except RecordError:
                bad += 1  # e.g. a torn last line after a power cut
    return recs, bad


def _key(r: FrameRecord, by: str) -> int | None:
    if by == "seq":
        return r.seq
    if by == "pts":
        return r.pts_ns
    raise ValueError("pair by 'seq' or 'pts'")


def pair(
    a: Iterable[FrameRecord], b: Iterable[FrameRecord], by: str = "seq"
) -> list[tuple[FrameRecord, FrameRecord]]:
    """Pairs with equal key, in A's order (the first record of a key wins on each side)."""
    index: dict[int, FrameRecord] = {}
    for r in b:
        k = _key(r, by)
        if k is not None:
            index.setdefault(k, r)
    seen: set[int] = set()
    out = []
    for r in a:
        k = _key(r, by)
        if k is None or k in seen or k not in index:
            continue
        seen.add(k)
        out.append((r, index[k]))
    return out


@dataclass(frozen=True, slots=True)
class AlignResult:
    pairs: int
    compared: int
    """Pairs where both sides have a network time."""
    only_a: int
    only_b: int
    deltas_ns: tuple[int, ...]
    bounds_ns: tuple[int, ...]
    inside: int
    unsynced_pairs: int
    domains: tuple[str, ...]

    @property
    def fraction_inside(self) -> float:
        return self.inside / self.compared if self.compared else math.nan

    def abs_quantile(self, q: float) -> int | None:
        if not self.deltas_ns:
            return None
        s = sorted(abs(d) for d in self.deltas_ns)
        return s[min(len(s) - 1, math.ceil(q * len(s)) - 1 if q > 0 else 0)]

    def summary(self) -> dict[str, object]:
        d = self.deltas_ns
        mean = math.fsum(d) / len(d) if d else math.nan
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / len(d)) if d else math.nan
        return {
            "pairs": self.pairs,
            "compared": self.compared,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "delta_mean_ns": None if not d else round(mean, 1),
            "delta_std_ns": None if not d else round(std, 1),
            "delta_min_ns": min(d) if d else None,
            "delta_max_ns": max(d) if d else None,
            "abs_delta_p50_ns": self.abs_quantile(0.5),
            "abs_delta_p99_ns": self.abs_quantile(0.99),
            "abs_delta_max_ns": self.abs_quantile(1.0),
            "inside": self.inside,
            "fraction_inside": None if not self.compared else round(self.fraction_inside, 6),
            "unsynced_pairs": self.unsynced_pairs,
            "domains": list(self.domains),
        }


def align(a: Sequence[FrameRecord], b: Sequence[FrameRecord], by: str = "seq") -> AlignResult:
    ps = pair(a, b, by)
    deltas: list[int] = []
    bounds: list[int] = []
    inside = unsynced = 0
    for ra, rb in ps:
        if not (ra.synced and rb.synced):
            unsynced += 1
        if ra.net_ns is None or rb.net_ns is None:
            continue
        d = ra.net_ns - rb.net_ns
        bound = ra.uncertainty_ns + rb.uncertainty_ns
        deltas.append(d)
        bounds.append(bound)
        if abs(d) <= bound:
            inside += 1
    keys_a = {_key(r, by) for r in a} - {None}
    keys_b = {_key(r, by) for r in b} - {None}
    domains = tuple(sorted({r.domain for r in a} | {r.domain for r in b}))
    return AlignResult(
        pairs=len(ps),
        compared=len(deltas),
        only_a=len(keys_a - keys_b),
        only_b=len(keys_b - keys_a),
        deltas_ns=tuple(deltas),
        bounds_ns=tuple(bounds),
        inside=inside,
        unsynced_pairs=unsynced,
        domains=domains,
    )


# ---------------------------------------------------------------------------------------------
# PNG histogram (no plotting dependency)
# ---------------------------------------------------------------------------------------------
def _png(width: int, height: int, rows: list[bytearray]) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + bytes(r) for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_histogram_png(
    deltas_ns: Sequence[int],
    path: str | Path,
    *,
    bound_ns: int | None = None,
    bins: int = 60,
    width: int = 640,
    height: int = 320,
) -> tuple[int, int, list[int]]:
    """Histogram of Δ: blue bars, black zero line, red lines at ±``bound_ns`` (e.g. the median
    combined uncertainty). Returns (lo_ns, hi_ns, counts) – the axis range and bin counts –
    so callers can print the scale the image has no text for."""
    if not deltas_ns:
        raise ValueError("no deltas to plot")
    lo, hi = min(deltas_ns), max(deltas_ns)
    if bound_ns is not None:
        lo, hi = min(lo, -bound_ns), max(hi, bound_ns)
    lo, hi = min(lo, 0), max(hi, 0)
    if hi == lo:
        hi = lo + 1
    span = hi - lo
    counts = [0] * bins
    for d in deltas_ns:
        counts[min(bins - 1, (d - lo) * bins // span)] += 1
    top = max(counts)
    margin = 10
    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    rows = [bytearray(b"\xff" * (3 * width)) for _ in range(height)]

    def put(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            rows[y][3 * x : 3 * x + 3] = bytes(rgb)

    for i, c in enumerate(counts):
        x0 = margin + i * plot_w // bins
        x1 = margin + (i + 1) * plot_w // bins - 1
        h = round(c * plot_h / top)
        for x in range(x0, max(x0 + 1, x1)):
            for y in range(height - margin - h, height - margin):
                put(x, y, (40, 90, 200))

    def vline(v: int, rgb: tuple[int, int, int]) -> None:
        x = margin + (v - lo) * plot_w // span
        for y in range(margin, height - margin):
            put(x, y, rgb)

    for x in range(margin, width - margin):
        put(x, height - margin, (0, 0, 0))
    vline(0, (0, 0, 0))
    if bound_ns is not None:
        vline(-bound_ns, (220, 30, 30))
        vline(bound_ns, (220, 30, 30))
    Path(path).write_bytes(_png(width, height, rows))
    return lo, hi, counts
