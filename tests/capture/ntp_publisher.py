"""Stand-in for the netclock slave daemon in the two-machine capture test (NOT the daemon).

Run as ``python ntp_publisher.py MASTER_IP PORT SHM_PATH``: every 200 ms measure the master
with netclock's NTP client (kernel timestamps), turn it into a (MONOTONIC, network) observation
through netclock's REALTIME->MONOTONIC ClockMap, fit netclock's WindowedCalibration and publish
it with netclock's ShmWriter (LOCKED once fitted; error bound = half the round-trip delay + the
mapping uncertainty + the fit's residual RMS). Prints "published" once the first fit is out.
Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from netclock.calibration import WindowedCalibration
from netclock.observe import LockState, Timescale
from netclock.platform.clockmap import ClockMap
from netclock.platform.ntp_transport import query
from netclock.platform.shm_writer import ShmWriter
from netclock.shm import DomainRecord


def main() -> int:
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    stop = False

    def on_term(_s: int, _f: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    cmap = ClockMap()
    fit = WindowedCalibration(window_size=16, window_threshold=3, step_threshold_ns=0)
    writer = ShmWriter(path)
    announced = False
    try:
        while not stop:
            res = asyncio.run(query(host, port, count=1, poll=-5, timeout_s=2.0))
            mono = time.monotonic_ns()
            net = cmap.estimate.to_realtime(mono) + res.offset_ns
            err = res.delay_ns // 2 + res.mapping_uncertainty_ns + cmap.estimate.uncertainty_ns
            fr = fit.add_observation(mono, net, max(err, 1))
            if fr is not None:
                bound = err + int(fr.residual_rms_ns) + 1
                writer.publish(
                    [
                        DomainRecord(
                            domain=256,
                            calibration=fr.calibration,
                            lock_state=LockState.LOCKED,
                            timescale=Timescale.UTC,
                            error_bound_ns=bound,
                            update_mono_ns=mono,
                            error_growth_ps_per_s=10_000_000,  # 10 ppm of age
                        )
                    ]
                )
                if not announced:
                    print("published", flush=True)
                    announced = True
            time.sleep(0.2)
    finally:
        writer.close(unlink=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
