"""``netclock plot RUN.jsonl --out FILE.png``: offset, delay, rate and lock state of a recorded run.

The input is a run record (docs/run-record.md): one JSON object per line, written by the
daemon's ``--record`` (or by the simulator). matplotlib is imported inside the command only, so
the rest of the CLI never pays for it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

NS_PER_S = 1_000_000_000

#: Lock states in plotting order (bottom to top), as run records spell them.
STATES: tuple[str, ...] = ("freerun", "locking", "locked", "holdover")
_STATE_COLORS = {
    "freerun": "#9e9e9e",
    "locking": "#f2b01e",
    "locked": "#2e9e44",
    "holdover": "#e8710a",
}
HEADER_KEY = "netclock_run_record"
RECORD_VERSION = 1


class RunRecordError(ValueError):
    """A run record cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of a run record (integer nanoseconds; the rate is a float in ppb)."""

    t_mono_ns: int
    source: str
    state: str
    offset_ns: int | None = None
    delay_ns: int | None = None
    rate_ppb: float | None = None
    error_bound_ns: int | None = None
    domain: int = 0
    true_error_ns: int | None = None
    """Published time minus the truth, when the recorder knows it (simulator, namespaces)."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plot",
        help="plot a recorded run (offset, delay, rate, lock state) to a PNG",
        description="Render a run record (JSON lines; see docs/run-record.md) to an image: "
        "offset with its error bound, path delay, rate and the lock-state timeline.",
    )
    p.add_argument("record", metavar="RUN.jsonl", help="run record written by --record")
    p.add_argument("--out", required=True, metavar="FILE.png", help="image to write")
    p.add_argument("--source", action="append", default=None, metavar="NAME",
                   help="plot only this source (repeatable)")
    p.add_argument("--domain", type=int, default=None, metavar="N", help="plot only domain N")
    p.add_argument("--title", default=None, help="figure title (default: the file name)")
    p.add_argument("--dpi", type=int, default=110, help="image resolution (default 110)")
    p.set_defaults(func=_plot)


# -- reading ------------------------------------------------------------------------------------


def _int_or_none(obj: dict[str, Any], key: str, where: str) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise RunRecordError(f"{where}: '{key}' must be an integer number of ns or null, got {v!r}")
    return v


def parse_line(obj: Any, where: str) -> Sample | None:
    """One decoded JSON line → :class:`Sample`; ``None`` for the optional header line."""
    if not isinstance(obj, dict):
        raise RunRecordError(f"{where}: expected a JSON object")
    if HEADER_KEY in obj:
        version = obj[HEADER_KEY]
        if version != RECORD_VERSION:
            raise RunRecordError(f"{where}: unsupported run record version {version!r}")
        return None
    t = _int_or_none(obj, "t_mono_ns", where)
    if t is None:
        raise RunRecordError(f"{where}: missing 't_mono_ns'")
    state = obj.get("state")
    if not isinstance(state, str) or state.lower() not in STATES:
        raise RunRecordError(f"{where}: 'state' must be one of {', '.join(STATES)}, got {state!r}")
    source = obj.get("source", "")
    if not isinstance(source, str):
        raise RunRecordError(f"{where}: 'source' must be a string")
    rate = obj.get("rate_ppb")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
        raise RunRecordError(f"{where}: 'rate_ppb' must be a number or null, got {rate!r}")
    domain = _int_or_none(obj, "domain", where)
    return Sample(
        t_mono_ns=t,
        source=source,
        state=state.lower(),
        offset_ns=_int_or_none(obj, "offset_ns", where),
        delay_ns=_int_or_none(obj, "delay_ns", where),
        rate_ppb=None if rate is None else float(rate),
        error_bound_ns=_int_or_none(obj, "error_bound_ns", where),
        domain=0 if domain is None else domain,
        true_error_ns=_int_or_none(obj, "true_error_ns", where),
    )


def read_run_record(path: str) -> list[Sample]:
    """Read a run record; blank lines are skipped, anything malformed raises RunRecordError."""
    samples: list[Sample] = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RunRecordError(f"{where}: invalid JSON: {e.msg}") from None
                s = parse_line(obj, where)
                if s is not None:
                    samples.append(s)
    except OSError as e:
        raise RunRecordError(f"{path}: {e.strerror}") from None
    if not samples:
        raise RunRecordError(f"{path}: no samples")
    return samples


# -- rendering ----------------------------------------------------------------------------------


def _scale(values: Iterable[float]) -> tuple[float, str]:
    """Divisor and unit label for nanosecond values: ns, µs, ms or s."""
    peak = max((abs(v) for v in values), default=0.0)
    for div, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if peak >= div:
            return div, unit
    return 1.0, "ns"


def _rms(values: Sequence[int]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else math.nan


def summary(samples: Sequence[Sample]) -> str:
    """One line: samples, duration, final state, RMS offset while locked."""
    dur = (samples[-1].t_mono_ns - samples[0].t_mono_ns) / NS_PER_S
    locked = [s.offset_ns for s in samples if s.state == "locked" and s.offset_ns is not None]
    rms = _rms(locked)
    div, unit = _scale([rms] if locked else [])
    rms_text = f"RMS offset while locked {rms / div:.3g} {unit}" if locked else "never locked"
    final = samples[-1].state.upper()
    return f"{len(samples)} samples over {dur:.1f} s, final state {final}, {rms_text}"


def render(samples: Sequence[Sample], out: str, *, title: str = "", dpi: int = 110) -> None:
    """Write the four-panel figure to ``out`` (format from the extension; PNG usually)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = samples[0].t_mono_ns
    sources = sorted({s.source for s in samples})
    fig, (ax_off, ax_delay, ax_rate, ax_state) = plt.subplots(
        4, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2, 1.2]}
    )
    off_div, off_unit = _scale(
        [s.offset_ns for s in samples if s.offset_ns is not None]
        + [s.error_bound_ns for s in samples if s.error_bound_ns is not None]
        + [s.true_error_ns for s in samples if s.true_error_ns is not None]
    )
    delay_div, delay_unit = _scale([s.delay_ns for s in samples if s.delay_ns is not None])

    bounded = [s for s in samples if s.error_bound_ns is not None]
    if bounded:
        xb = [(s.t_mono_ns - t0) / NS_PER_S for s in bounded]
        eb = [s.error_bound_ns / off_div for s in bounded if s.error_bound_ns is not None]
        ax_off.fill_between(xb, [-e for e in eb], eb, step="post", color="#1f77b4", alpha=0.15,
                            linewidth=0, label="± error bound")
    for name in sources:
        mine = [s for s in samples if s.source == name]
        label = name or "(source)"
        pts = [((s.t_mono_ns - t0) / NS_PER_S, s.offset_ns / off_div)
               for s in mine if s.offset_ns is not None]
        if pts:
            ax_off.plot(*zip(*pts, strict=True), ".-", ms=2, lw=0.8, label=label)
        pts = [((s.t_mono_ns - t0) / NS_PER_S, s.delay_ns / delay_div)
               for s in mine if s.delay_ns is not None]
        if pts:
            ax_delay.plot(*zip(*pts, strict=True), ".-", ms=2, lw=0.8, label=label)
    # The true error and the fitted rate belong to the published time, not to a source: one
    # line each, whichever source's measurement the sample came with.
    tpts = [((s.t_mono_ns - t0) / NS_PER_S, s.true_error_ns / off_div)
            for s in samples if s.true_error_ns is not None]
    if tpts:
        ax_off.plot(*zip(*tpts, strict=True), "--", lw=1.0, color="#d62728",
                    label="true error (published − truth)")
    rpts = [((s.t_mono_ns - t0) / NS_PER_S, s.rate_ppb)
            for s in samples if s.rate_ppb is not None]
    if rpts:
        ax_rate.plot(*zip(*rpts, strict=True), "-", lw=1.0, color="#2ca02c")
    ax_off.axhline(0.0, color="black", lw=0.5)
    # A converging run spans decades: show the locked part linearly, the rest logarithmically.
    locked = sorted(abs(s.offset_ns) for s in samples
                    if s.state == "locked" and s.offset_ns is not None)
    peak = max((abs(s.offset_ns) for s in samples if s.offset_ns is not None), default=0)
    if locked:
        typical = locked[min(len(locked) - 1, int(0.95 * len(locked)))]
        if typical > 0 and peak > 20 * typical:
            ax_off.set_yscale("symlog", linthresh=2 * typical / off_div, linscale=2.0)
            off_unit += ", symlog"
    ax_off.set_ylabel(f"offset ({off_unit})")
    ax_off.legend(loc="upper right", fontsize=8)
    ax_delay.set_ylabel(f"path delay ({delay_unit})")
    ax_rate.set_ylabel("rate (ppb)")
    for ax in (ax_delay, ax_rate):
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")

    # Lock-state timeline: one coloured band per run of equal state.
    x = [(s.t_mono_ns - t0) / NS_PER_S for s in samples]
    end = x[-1] if len(x) > 1 else x[0] + 1.0
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i].state != samples[start].state:
            state = samples[start].state
            x1 = x[i] if i < len(samples) else end
            y = STATES.index(state)
            ax_state.broken_barh([(x[start], max(x1 - x[start], 1e-9))], (y - 0.4, 0.8),
                                 facecolors=_STATE_COLORS[state])
            start = i
    ax_state.set_yticks(range(len(STATES)), [s.upper() for s in STATES], fontsize=8)
    ax_state.set_ylim(-0.6, len(STATES) - 0.4)
    ax_state.set_xlabel("time since first sample (s)")
    for ax in (ax_off, ax_delay, ax_rate, ax_state):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{title}\n{summary(samples)}" if title else summary(samples), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def _plot(args: argparse.Namespace) -> int:
    try:
        samples = read_run_record(args.record)
    except RunRecordError as e:
        print(f"netclock plot: {e}", file=sys.stderr)
        return 1
    if args.source:
        samples = [s for s in samples if s.source in set(args.source)]
    if args.domain is not None:
        samples = [s for s in samples if s.domain == args.domain]
    if not samples:
        print("netclock plot: no samples match the filters", file=sys.stderr)
        return 1
    samples.sort(key=lambda s: s.t_mono_ns)
    import os

    render(samples, args.out, title=args.title or os.path.basename(args.record), dpi=args.dpi)
    print(f"{args.out}: {summary(samples)}")
    return 0
