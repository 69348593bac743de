"""Servo path: measurements from a master/slave pair feed the windowed calibration."""

from __future__ import annotations

import math

from ptp_pair import Net

from netclock.ptp.actions import Measurement
from netclock.ptp.datasets import TimePropertiesDS
from netclock.ptp.filters import DelayFilter, MedianFilter
from netclock.ptp.port import PortConfig
from netclock.ptp.servo import FLOOR_MIN_GROUP, OffsetStats, PtpServo
from netclock.time import NS_PER_S

NS = NS_PER_S
EPOCH = 1_700_000_000 * NS


def test_calibration_maps_local_to_master_time() -> None:
    net = Net(delay_ns=25_000, jitter_ns=2_000, seed=3)
    net.add(PortConfig(priority1=100, log_sync_interval=-3), 0x0A, ptp_epoch=EPOCH)
    sl = net.add(PortConfig(slave_only=True, log_min_delay_req_interval=-3), 0x0B,
                 offset=5_000_000)
    net.start()
    net.run_until(30 * NS)
    servo = PtpServo(window_size=32, window_threshold=4)
    samples = [s for m in sl.measurements if (s := servo.sample(m)) is not None]
    assert len(samples) > 100
    cal = servo.published
    assert cal is not None
    # true mapping: master = local - 5 ms + EPOCH (jitter only adds to the measured delay)
    for local in (sl.measurements[-1].t2, sl.measurements[-1].t2 + NS):
        assert abs(cal.to_external(local) - (local - 5_000_000 + EPOCH)) < 3_000
    tail = [abs(s.offset_ns) for s in samples[-50:]]
    assert max(tail) < 5_000
    assert abs(samples[-1].freq_ppb) < 1_000


def test_delay_gate_and_runtime_settings() -> None:
    servo = PtpServo(max_delay_ns=10_000)
    m = Measurement(offset=0, delay=20_000, t1=EPOCH, t2=0, t3=0, t4=0, raw_delay=20_000,
                    correction=0, sequence_id=0)
    assert servo.sample(m) is None and servo.skipped == 1
    servo.configure(max_delay_ns=50_000, offset_median=3, window_size=8, window_threshold=2)
    assert servo.sample(m) is not None
    assert servo.offset_filter.length == 3 and servo.calibration.window_size == 8


def test_delay_filter_median_thresholds_and_outliers() -> None:
    f = DelayFilter(length=3, min_ns=0, max_ns=100_000, outlier_factor=2.0, outlier_slack_ns=0,
                    mode="median")
    assert f.sample(-5) is None and f.rejected == 1
    assert [f.sample(v) for v in (10, 30, 20)] == [10, 20, 20]
    assert f.sample(1_000) == 20 and f.rejected == 2  # > 2 × median
    assert f.sample(200_000) == 20  # above max
    f.configure(length=1, outlier_factor=100.0)
    assert f.sample(35) == 35
    f.configure(mode="min", length=3)
    assert [f.sample(v) for v in (50, 40, 45, 60)] == [35, 35, 40, 40]
    m = MedianFilter(4)
    assert [m.sample(v) for v in (4, 1, 3, 2)] == [4, 2, 3, 2]


def test_offset_stats_and_time_properties() -> None:
    st = OffsetStats()
    assert st.summary() is None
    for v in (3, -4):
        st.add(v)
    rms, mx = st.summary() or (0.0, 0)
    assert mx == 4 and abs(rms - (12.5 ** 0.5)) < 1e-9
    tp = TimePropertiesDS(current_utc_offset=37, ptp_timescale=True)
    assert tp.utc_ns(EPOCH) == EPOCH - 37 * NS
    assert tp.smpte_ns(EPOCH) == EPOCH  # ST 2059-1 epoch = PTP epoch
    assert TimePropertiesDS(ptp_timescale=False).utc_ns(EPOCH) == EPOCH
    flags = TimePropertiesDS(leap61=True, current_utc_offset_valid=True).flags
    back = TimePropertiesDS.from_flags(flags, 37, 0xA0)
    assert back.leap61 and back.current_utc_offset_valid and not back.leap59


def test_window_follows_measurement_rate() -> None:
    servo = PtpServo(window_size=16, window_ns=32 * NS, max_window_size=1024)
    gap = NS // 16
    for i in range(40):
        t2 = i * gap
        servo.sample(Measurement(offset=-EPOCH, delay=1000, t1=EPOCH + t2 - 1000, t2=t2, t3=0,
                                 t4=0, raw_delay=1000, correction=0, sequence_id=i))
    assert servo.calibration.window_size == 512  # 32 s of samples at 16 Hz
    servo.configure(window_ns=0, window_size=20)
    assert servo.window_ns is None and servo.calibration.window_size == 20


def test_instance_feeds_servo_and_publishes_time() -> None:
    import random

    from netclock.ptp.datasets import PortState
    from netclock.ptp.instance import PtpInstance
    from netclock.ptp.port import PtpPort
    from netclock.ptp.wire import ClockIdentity, PortIdentity

    # the instance stands in for the slave node's port in the fake network
    net = Net(delay_ns=20_000)
    net.add(PortConfig(priority1=100, log_sync_interval=-3), 0x0A, ptp_epoch=EPOCH)
    inst = PtpInstance(PortConfig(slave_only=True, log_min_delay_req_interval=-3),
                       PortIdentity(ClockIdentity(b"\x0b" * 8), 1), random.Random(2))
    node = net.add(PortConfig(), 0x0C, offset=123_000)
    node.port = inst  # type: ignore[assignment]
    net.start()
    net.run_until(20 * NS)
    assert inst.state is PortState.SLAVE
    pub = inst.published(node.local(net.now))
    assert pub is not None
    assert abs(pub.ptp_ns - (net.now + EPOCH)) < 1_000
    assert pub.utc_ns == pub.ptp_ns - 37 * NS  # master's Announce: PTP timescale, offset 37
    assert pub.smpte_ns == pub.ptp_ns and not pub.leap61 and not pub.leap59
    assert inst.drain_samples() and inst.drain_samples() == []
    assert isinstance(inst.port, PtpPort)


def bridge_stream(
    seed: int, seconds: int, offset: int = 7_000_000, *, rate: int = 16, tail: bool = False
) -> list[Measurement]:
    """``rate`` Sync/s and as many delay exchanges over a path whose two directions share one
    bimodal delay law (a software bridge: warm ~5 µs or cold ~20 µs; ``tail``: mostly warm,
    with a long cold tail), local = master + ``offset``. The port's filtered delay is the
    median of the round trips so far, as a median filter gives: the first observations, made
    Sync by Sync with it, carry its bias."""
    import random
    import statistics

    rng = random.Random(seed)

    def d() -> int:
        if tail:
            if rng.random() < 0.8:
                return 5_000 + int(rng.expovariate(1 / 1_000))
            return 30_000 + int(rng.expovariate(1 / 10_000))
        if rng.random() < 0.3:
            return 4_000 + int(rng.expovariate(1 / 1_500))
        return 17_000 + int(rng.expovariate(1 / 3_000))

    out, rtts = [], []
    for i in range(seconds * rate):
        t = 10 * NS + i * (NS // rate)  # master time of the Sync
        d_ms, d_sm = d(), d()
        t2 = t + d_ms + offset
        t3 = t2 + 20_000_000
        t4 = t3 - offset + d_sm
        rtts.append(d_ms + d_sm)
        delay = int(statistics.median(rtts[-9:])) // 2
        out.append(Measurement(offset=t2 - t - delay, delay=delay, t1=t, t2=t2, t3=t3, t4=t4,
                               raw_delay=(d_ms + d_sm) // 2, correction=0, sequence_id=i))
    return out


def test_delay_floors_fit_without_the_first_observations() -> None:
    """The observations made before the first fit (Sync by Sync, with the port's filtered
    delay) leave the window once the floored ones can fit alone, and the published time has
    no bias from the path's shape: the same law each way."""
    offset = 7_000_000
    for seed in range(3):
        servo = PtpServo()
        stream = bridge_stream(seed, 40, offset)
        errors = []
        held_early = False  # the window once held observations from before the floors
        for m in stream:
            servo.sample(m)
            cal = servo.published
            if cal is None:
                continue
            window = servo.calibration.observations
            if servo.floor_cut.count and window[0].internal < servo.floor_cut.since:
                held_early = True
            errors.append(cal.to_external(m.t2) - (m.t2 - offset))
        assert held_early and servo.floor_cut.count > 4
        window = servo.calibration.observations
        assert window[0].internal >= servo.floor_cut.since  # none from before the floors
        late = errors[len(errors) // 2:]
        mean = sum(late) / len(late)
        assert abs(mean) < 1_000, (seed, mean)  # against a 13 µs gap between the modes


def _late_errors(servo: PtpServo, stream: list[Measurement], offset: int) -> list[int]:
    errors = []
    for m in stream:
        servo.sample(m)
        if servo.published is not None:
            errors.append(servo.published.to_external(m.t2) - (m.t2 - offset))
    return errors[len(errors) // 2:]


def test_low_sync_rates_group_syncs_for_the_floors() -> None:
    """At 1 Sync/s a span holds one Sync, and a lone Sync with the port's median-filtered
    delay keeps its own queueing against a delay filtered another way (µs of error under a
    long-tailed law, the same both ways). Once a fit exists, groups hold FLOOR_MIN_GROUP
    Syncs and are floored over as many of each direction: the error is a tenth of that."""
    offset = 7_000_000
    for seed in range(3):
        stream = bridge_stream(seed, 240, offset, rate=1, tail=True)
        servo = PtpServo()
        late = _late_errors(servo, stream, offset)
        assert servo._auto_select == FLOOR_MIN_GROUP
        assert servo.floor_cut.count >= 40  # one floored observation per 4 Syncs
        rms = math.sqrt(sum(e * e for e in late) / len(late))
        assert abs(sum(late) / len(late)) < 300 and rms < 500, (seed, late)
        # without the floors (floor_length 0) groups stay as the span gives: lone Syncs
        lone = PtpServo(floor_length=0)
        late = _late_errors(lone, stream, offset)
        assert lone._auto_select == 1
        assert math.sqrt(sum(e * e for e in late) / len(late)) > 4 * rms
