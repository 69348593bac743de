"""``netclock capture`` (stamp a source's frames into the shared time domain) and
``netclock align`` (compare two capture files frame by frame)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any


def register(subparsers: Any) -> None:
    c = subparsers.add_parser(
        "capture",
        help="stamp ALSA/V4L2/PipeWire frames with their capture time in network time",
        description="Write one JSON line per frame: the subsystem's own timestamp, converted "
        "into the shared time domain, with sync state and an uncertainty bound. Frames are "
        "written (flagged) when sync is lost; SIGTERM flushes and fsyncs before exit.",
    )
    c.add_argument(
        "--source", required=True, metavar="pipewire:TARGET|alsa:DEVICE|v4l2:/dev/videoN"
    )
    c.add_argument("--out", required=True, metavar="FILE.jsonl", help="appended to")
    c.add_argument(
        "--clock",
        choices=("shared", "monotonic"),
        default="shared",
        help="shared: the netclock daemon's published time (default); monotonic: "
        "network time = CLOCK_MONOTONIC (no daemon; one machine or tests)",
    )
    c.add_argument("--shm", metavar="PATH", help="daemon's shared-memory file (default: auto)")
    c.add_argument("--domain", type=int, default=None, help="published domain number to use")
    c.add_argument(
        "--media",
        choices=("video", "audio"),
        default="video",
        help="pipewire: stream media type (default video)",
    )
    c.add_argument(
        "--capture-sink",
        action="store_true",
        help="pipewire: TARGET is an Audio/Sink; capture its monitor",
    )
    c.add_argument("--rate", type=int, default=48000, help="alsa: sample rate")
    c.add_argument("--channels", type=int, default=2, help="alsa: channels")
    c.add_argument("--buffers", type=int, default=4, help="v4l2: MMAP buffers")
    c.add_argument(
        "--copy-clock",
        choices=("monotonic", "realtime", "other"),
        default="other",
        help="v4l2: clock of TIMESTAMP_COPY stamps, if known (default other: unmapped)",
    )
    c.add_argument(
        "--unknown-clock",
        choices=("monotonic", "realtime", "other"),
        default="other",
        help="v4l2: clock of TIMESTAMP_UNKNOWN stamps (pre-3.9 drivers: realtime)",
    )
    c.add_argument(
        "--eof-to-sof",
        action="store_true",
        help="v4l2: move end-of-frame stamps back one frame interval",
    )
    c.add_argument(
        "--holdover-ppb",
        type=int,
        default=None,
        help="growth of the error bound while unsynced (default 100000 = 100 ppm)",
    )
    c.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    c.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    c.add_argument("--stats", action="store_true", help="print metrics as JSON on exit")
    c.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics (netclock_capture_*) on this TCP port (0: any free "
        "port; the URL is printed on stderr)",
    )
    c.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDR",
        help="address the metrics endpoint binds to (default 127.0.0.1)",
    )
    c.set_defaults(func=_capture)

    a = subparsers.add_parser(
        "align", help="pair two capture files' frames and report their time differences"
    )
    a.add_argument("file_a", metavar="A.jsonl")
    a.add_argument("file_b", metavar="B.jsonl")
    a.add_argument("--by", choices=("seq", "pts"), default="seq", help="pairing key")
    a.add_argument("--plot", metavar="OUT.png", help="write a histogram of Δ")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=_align)


def _domain(args: argparse.Namespace) -> Any:
    from capture.timedomain import CalibrationDomain, SharedClockDomain

    if args.clock == "monotonic":
        return CalibrationDomain.identity()
    return SharedClockDomain(path=args.shm, domain=args.domain)


def _capture(args: argparse.Namespace) -> int:
    from capture.agent import Agent, RecordWriter, open_source, parse_source
    from capture.frame import SourceKind

    try:
        spec = parse_source(args.source)
    except ValueError as e:
        print(f"netclock capture: {e}", file=sys.stderr)
        return 2
    try:
        domain = _domain(args)
    except (RuntimeError, OSError) as e:
        print(f"netclock capture: {e}", file=sys.stderr)
        return 1
    opts: dict[str, Any] = {}
    if spec.kind is SourceKind.PIPEWIRE:
        opts = {"media": args.media, "capture_sink": args.capture_sink}
    elif spec.kind is SourceKind.ALSA:
        opts = {"rate": args.rate, "channels": args.channels}
    else:
        opts = {
            "n_buffers": args.buffers,
            "copy_clock": args.copy_clock,
            "unknown_clock": args.unknown_clock,
        }
    try:
        source = open_source(spec, **opts)
    except OSError as e:
        print(f"netclock capture: cannot open {args.source}: {e}", file=sys.stderr)
        return 1
    writer = RecordWriter(args.out)
    agent = Agent(
        source, domain, writer, eof_to_sof=args.eof_to_sof, holdover_ppb=args.holdover_ppb
    )

    server = None
    if args.metrics_port is not None:
        from netclock.metrics import start_capture_metrics_server

        try:
            server = start_capture_metrics_server(
                lambda: [agent.stats(args.source)], args.metrics_address, args.metrics_port
            )
        except OSError as e:
            print(f"netclock capture: {e}", file=sys.stderr)
            source.close()
            writer.close()
            return 1
        print(f"netclock capture: metrics at {server.url}", file=sys.stderr, flush=True)

    def _stop(_sig: int, _frame: object) -> None:
        agent.stop()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent.run(
            max_frames=args.max_frames,
            duration_ns=None if args.duration is None else int(args.duration * 1e9),
            now=time.monotonic_ns,
        )
    finally:
        writer.close()
        if server is not None:
            server.close()
        for s, h in old.items():
            signal.signal(s, h)
    if args.stats:
        print(json.dumps({"written": writer.written, **agent.summary()}), file=sys.stderr)
    return 0


def _align(args: argparse.Namespace) -> int:
    from capture.align import align, load, write_histogram_png

    a, bad_a = load(args.file_a)
    b, bad_b = load(args.file_b)
    res = align(a, b, args.by)
    summary = res.summary()
    summary.update(bad_lines_a=bad_a, bad_lines_b=bad_b)
    if args.plot and res.deltas_ns:
        bounds = sorted(res.bounds_ns)
        lo, hi, _ = write_histogram_png(res.deltas_ns, args.plot, bound_ns=bounds[len(bounds) // 2])
        summary.update(
            plot=args.plot, plot_lo_ns=lo, plot_hi_ns=hi, plot_bound_ns=bounds[len(bounds) // 2]
        )
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>18}: {v}")
    return 0 if res.compared else 1
