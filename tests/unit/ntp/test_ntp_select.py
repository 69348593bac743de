"""Intersection / falseticker rejection / combining, and NtpClient feeding the calibration."""

from __future__ import annotations

import random
from collections.abc import Callable

from netclock.calibration import WindowedCalibration
from netclock.ntp.select import Candidate, NtpClient, combine, intersect, select
from netclock.ntp.server import DisciplineState, NtpServer
from netclock.ntp.source import Measured, NtpSource, Send, SetTimer, SourceConfig
from netclock.ntp.wire import Leap
from netclock.time import NS_PER_S

US = 1_000


def c(key: str, off_us: float, lam_us: float) -> Candidate:
    return Candidate(key, int(off_us * US), int(lam_us * US))


def test_intersection_of_agreeing_sources() -> None:
    assert intersect([c("a", 0, 10), c("b", 5, 10), c("c", 8, 10)]) == (-2 * US, 10 * US)


def test_one_falseticker_out_of_four_is_rejected() -> None:
    cands = [c("a", 0, 10), c("b", 5, 10), c("c", -3, 10), c("bad", 500, 10)]
    sel = select(cands)
    assert sel is not None
    assert {x.key for x in sel.falsetickers} == {"bad"}
    assert {x.key for x in sel.truechimers} == {"a", "b", "c"}
    assert -3 * US <= sel.combined_offset_ns <= 5 * US


def test_no_majority_gives_none() -> None:
    assert select([c("a", 0, 1), c("b", 100, 1)]) is None
    assert select([]) is None
    assert intersect([c("a", 0, 1), c("b", 100, 1), c("c", 200, 1)]) is None


def test_combine_weights_by_inverse_square_distance() -> None:
    # b has half the distance of a: four times the weight
    got = combine([c("a", 0, 20), c("b", 10, 10)])
    assert got == 8 * US
    assert combine([Candidate("x", 10**18 + 7, 1)]) == 10**18 + 7


def test_large_absolute_offsets_keep_ns_precision() -> None:
    base = 1_790_000_000 * NS_PER_S
    sel = select([Candidate("a", base + 1001, 500), Candidate("b", base + 999, 500),
                  Candidate("c", base + 1000, 500)])
    assert sel is not None and sel.combined_offset_ns == base + 1000


UNIX_BASE = 1_790_000_000 * NS_PER_S


def _served_with(err: int) -> Callable[[int], int]:
    return lambda mono: mono + UNIX_BASE + err


def _run(servers: dict[str, int], seconds: int) -> tuple[NtpClient, dict[str, int]]:
    """Client clock = true time (MONOTONIC 0 at T=0, 20 ppm fast); servers with given errors."""
    client = NtpClient(WindowedCalibration(window_size=16, window_threshold=4))
    rng = random.Random(7)
    sources = {k: NtpSource(SourceConfig(minpoll=-2, maxpoll=-2, filter_length=1),
                            random.Random(i), pivot_unix_ns=UNIX_BASE)
               for i, k in enumerate(servers)}
    state = DisciplineState(stratum=1, leap=Leap.NO_WARNING)
    srvs = {k: NtpServer(_served_with(err), state, rate_limit=None) for k, err in servers.items()}
    fed: dict[str, int] = dict.fromkeys(servers, 0)

    def local(t: int) -> int:
        return t + t * 20 // 1_000_000

    timers = {k: 0 for k in servers}
    t = 0
    while t < seconds * NS_PER_S:
        for k, src in sources.items():
            if local(t) < timers[k]:
                continue
            for a in src.handle_timer(local(t)):
                if isinstance(a, SetTimer):
                    timers[k] = a.at_ns
                elif isinstance(a, Send):
                    up, down = 30_000 + rng.randrange(5_000), 30_000 + rng.randrange(5_000)
                    resp = srvs[k].respond(a.data, t + up, t + up + 1000)
                    assert resp is not None
                    t4 = local(t + up + 1000 + down)
                    for m in src.handle_incoming(resp.data, t4, t4):
                        if isinstance(m, Measured):
                            upd = client.add_sample(k, m.sample)
                            fed[k] += upd.observation is not None
        t += NS_PER_S // 100
    return client, fed


def test_client_feeds_calibration_and_ignores_a_falseticker() -> None:
    client, fed = _run({"a": 0, "b": 2_000, "c": -2_000, "liar": 50_000_000}, 30)
    assert fed["liar"] == 0 and min(fed["a"], fed["b"], fed["c"]) > 50
    cal = client.calibration.calibration
    assert cal is not None
    # at T = 30 s: local = T + 600 us; served truth = T + UNIX_BASE (+-2 us among truechimers)
    t = 30 * NS_PER_S
    err = cal.to_external(t + t * 20 // 1_000_000) - (t + UNIX_BASE)
    assert abs(err) < 5_000
    # about -20 ppm; a 4 s window with +-2.5 us path jitter resolves it to about 1 ppm
    assert abs(cal.rate_ppb() - (-20 / 1.00002 * 1000)) < 2_500


def test_single_source_calibration_error_bounded_by_path_jitter() -> None:
    client, fed = _run({"only": 0}, 20)
    cal = client.calibration.calibration
    assert cal is not None and fed["only"] > 50
    t = 20 * NS_PER_S
    assert abs(cal.to_external(t + t * 20 // 1_000_000) - (t + UNIX_BASE)) < 3_000
