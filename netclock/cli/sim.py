"""``netclock sim``: run one deterministic master/slave simulation and print its error metrics.

Example::

    netclock sim --drift-ppm 50 --wander 1 --jitter-us 20 --jitter-dist exponential \\
        --interval-log2 -3 --duration 300 --seed 7 --estimator window --json

``--scenario NAME`` runs one named fault scenario from :mod:`netclock.sim.library` instead
(the other knobs are ignored) and says PASS/FAIL against its limits; the exit status is 1 on
FAIL. ``--list-scenarios`` lists them.

``--json`` prints one JSON object (keys sorted; the same arguments always print the same
bytes); without it a short table. Error statistics are over the samples after lock (the first
time from which ``|error|`` stays below ``--lock-threshold-us``); ``rms_all_error_ns`` covers
every sample.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _spike(text: str) -> tuple[float, float, float, str]:
    """AT_S:DURATION_S:EXTRA_US[:ms|sm|both]."""
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("spike is AT_S:DURATION_S:EXTRA_US[:ms|sm|both]")
    try:
        at, dur, extra = float(parts[0]), float(parts[1]), float(parts[2])
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad spike {text!r}: {e}") from None
    direction = parts[3] if len(parts) == 4 else "ms"
    if direction not in ("ms", "sm", "both"):
        raise argparse.ArgumentTypeError("spike direction must be ms, sm or both")
    return at, dur, extra, direction


def _step(text: str) -> tuple[float, int]:
    """AT_S:STEP_NS."""
    try:
        at, ns = text.split(":")
        return float(at), int(ns)
    except ValueError:
        raise argparse.ArgumentTypeError("step is AT_S:STEP_NS (integer ns)") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sim",
        help="simulate a master/slave exchange and score an estimator",
        description="Deterministic simulation of two-way time transfer between a master and "
        "a slave over an impaired link; prints the published-time error statistics.",
    )
    g = p.add_argument_group("estimator and run")
    g.add_argument(
        "--estimator",
        choices=("window", "gst", "pi"),
        default="window",
        help="window = netclock, gst = GStreamer regression, pi = linuxptp PI servo",
    )
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--duration", type=float, default=300.0, help="seconds of simulated time")
    g.add_argument(
        "--interval-log2",
        type=int,
        default=0,
        help="exchange interval 2^N s (PTP logSyncInterval), -9..10",
    )
    g.add_argument("--lock-threshold-us", type=float, default=10.0)
    g.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="also report the RMS over samples after this many seconds",
    )
    g.add_argument(
        "--sample-interval-ms",
        type=float,
        default=100.0,
        help="how often the error is sampled (true time)",
    )
    g.add_argument(
        "--no-hold",
        action="store_true",
        help="do not apply the monotonic hold to the published time",
    )
    o = p.add_argument_group("oscillators")
    o.add_argument("--drift-ppm", type=float, default=10.0, help="slave frequency error")
    o.add_argument(
        "--wander",
        type=float,
        default=0.0,
        help="slave random-walk frequency wander, ppb per sqrt(s)",
    )
    o.add_argument(
        "--temp-ppb",
        type=float,
        default=0.0,
        help="slave periodic (temperature-like) frequency term amplitude, ppb",
    )
    o.add_argument("--temp-period", type=float, default=600.0, help="its period, s")
    o.add_argument("--master-drift-ppm", type=float, default=0.0)
    o.add_argument(
        "--step",
        type=_step,
        action="append",
        default=[],
        metavar="AT_S:STEP_NS",
        help="master clock steps by STEP_NS at AT_S (repeatable)",
    )
    n = p.add_argument_group("path")
    n.add_argument("--delay-us", type=float, default=100.0, help="one-way base delay")
    n.add_argument(
        "--jitter-us",
        type=float,
        default=5.0,
        help="jitter scale: std dev (normal) or mean (exponential, pareto, lognormal)",
    )
    n.add_argument(
        "--jitter-dist",
        choices=("normal", "exponential", "pareto", "lognormal"),
        default="exponential",
    )
    n.add_argument(
        "--asymmetry-us", type=float, default=0.0, help="master->slave minus slave->master delay"
    )
    n.add_argument("--loss", type=float, default=0.0, help="per-packet loss probability")
    n.add_argument("--reorder", type=float, default=0.0, help="per-packet hold-back probability")
    n.add_argument(
        "--spike",
        type=_spike,
        action="append",
        default=[],
        metavar="AT_S:DURATION_S:EXTRA_US[:DIR]",
        help="scheduled delay spike; DIR ms (default), sm or both (repeatable)",
    )
    n.add_argument(
        "--spike-rate",
        type=float,
        default=0.0,
        help="random spikes per minute (both directions independently)",
    )
    n.add_argument("--spike-us", type=float, default=2000.0, help="random spike height")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--scenario", metavar="NAME", default=None,
                   help="run a named fault scenario with pass limits (see --list-scenarios)")
    p.add_argument("--list-scenarios", action="store_true",
                   help="list the named fault scenarios and their limits")
    p.set_defaults(func=_run)


def _run_named(args: argparse.Namespace) -> int:
    from netclock.sim.library import SCENARIOS, evaluate, verdict_dict

    if args.list_scenarios:
        for name, sc in SCENARIOS.items():
            lim = sc.limits
            print(f"{name:<32} {sc.harness:<10} rms ≤ {lim.rms_ns:,.0f} ns, max ≤ "
                  f"{lim.max_ns:,.0f} ns, lock ≤ {lim.lock_s:g} s  {sc.description}")
        return 0
    if args.scenario not in SCENARIOS:
        print(f"netclock sim: unknown scenario {args.scenario!r}; --list-scenarios lists them")
        return 2
    sc = SCENARIOS[args.scenario]
    v = evaluate(sc, args.seed)
    d = verdict_dict(v, sc)
    if args.json:
        print(json.dumps(d, sort_keys=True))
    else:
        lim = sc.limits
        print(f"{sc.name}: {sc.description}")
        print(f"{'lock time':<14} {_fmt(d['lock_time_s'], 's'):>14}   limit {lim.lock_s:g} s "
              f"(|error| < {lim.lock_threshold_ns} ns from then on)")
        for label, key, limit in (("rms error", "rms_error_ns", lim.rms_ns),
                                  ("max |error|", "max_error_ns", lim.max_ns)):
            print(f"{label:<14} {_fmt(d[key], 'ns'):>14}   limit {limit:.0f} ns")
        for k, val in v.info.items():
            print(f"  {k}: {val}")
        print("PASS" if v.passed else "FAIL: " + "; ".join(v.failures))
    return 0 if v.passed else 1


def _run(args: argparse.Namespace) -> int:
    if args.scenario is not None or args.list_scenarios:
        return _run_named(args)
    from netclock.sim.scenario import (
        Scenario,
        SpikeSpec,
        StepSpec,
        result_dict,
        run_scenario,
    )

    sc = Scenario(
        estimator=args.estimator,
        seed=args.seed,
        duration_s=args.duration,
        interval_log2=args.interval_log2,
        drift_ppm=args.drift_ppm,
        wander_ppb=args.wander,
        temp_ppb=args.temp_ppb,
        temp_period_s=args.temp_period,
        master_drift_ppm=args.master_drift_ppm,
        steps=tuple(StepSpec(at, ns) for at, ns in args.step),
        delay_us=args.delay_us,
        jitter_us=args.jitter_us,
        jitter_dist=args.jitter_dist,
        asymmetry_us=args.asymmetry_us,
        loss=args.loss,
        reorder=args.reorder,
        spikes=tuple(SpikeSpec(*s) for s in args.spike),
        spike_rate_per_min=args.spike_rate,
        spike_us=args.spike_us if args.spike_rate > 0 else 0.0,
        sample_interval_ms=args.sample_interval_ms,
        lock_threshold_us=args.lock_threshold_us,
        settle_s=args.settle,
        hold=not args.no_hold,
    )
    res = result_dict(run_scenario(sc))
    if args.json:
        print(json.dumps(res, sort_keys=True))
        return 0
    over = "after lock" if res["locked"] else "never locked: all"
    rows = [
        ("estimator", res["estimator"]),
        ("seed", res["seed"]),
        ("lock time", _fmt(res["lock_time_s"], "s")),
        (f"rms error ({over})", _fmt(res["rms_error_ns"], "ns")),
        (f"p99 |error| ({over})", _fmt(res["p99_error_ns"], "ns")),
        (f"max |error| ({over})", _fmt(res["max_error_ns"], "ns")),
        ("rms error (all samples)", _fmt(res["rms_all_error_ns"], "ns")),
        ("frequency error at end", _fmt(res["freq_error_ppb"], "ppb")),
        ("samples / after lock", f"{res['samples']} / {res['samples_locked']}"),
        ("exchanges completed", res["exchanges"]),
    ]
    for k, v in rows:
        print(f"{k:<36} {v}")
    return 0


def _fmt(v: object, unit: str) -> str:
    if v is None:
        return "-"
    assert isinstance(v, int | float)
    return f"{v:.1f} {unit}" if unit != "s" else f"{v:.1f} s"
