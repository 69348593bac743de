"""PtpInstance: an ordinary clock = one PtpPort + the servo path, sans-IO.

It forwards every entry point to the port, consumes the port's :class:`Measurement` actions
into the :class:`PtpServo` (so they reach the windowed calibration local → PTP ns), and exposes
the published time in the forms consumers ask for: PTP/TAI, UTC (currentUtcOffset), SMPTE
ST 2059-1 (ns since 1970-01-01 TAI), with the leap flags of the grandmaster.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from netclock.calibration import Calibration
from netclock.ptp.actions import Action, Measurement, PortTimer, TxContext
from netclock.ptp.datasets import PortState, TimePropertiesDS
from netclock.ptp.port import PortConfig, PortSnapshot, PtpPort
from netclock.ptp.servo import PtpServo, ServoSample
from netclock.ptp.wire import PortIdentity


@dataclass(frozen=True, slots=True)
class PublishedTime:
    """The instance's view of time at one local instant."""

    local_ns: int
    ptp_ns: int
    utc_ns: int
    smpte_ns: int
    current_utc_offset: int
    leap61: bool
    leap59: bool
    epoch: int


class PtpInstance:
    def __init__(
        self,
        config: PortConfig,
        identity: PortIdentity,
        rng: random.Random,
        servo: PtpServo | None = None,
    ) -> None:
        self.port = PtpPort(config, identity, rng)
        self.servo = servo if servo is not None else PtpServo()
        self.last_sample: ServoSample | None = None
        self.samples: list[ServoSample] = []

    # -- forwarding -------------------------------------------------------------------------

    def _consume(self, actions: list[Action]) -> list[Action]:
        for a in actions:
            if isinstance(a, Measurement):
                s = self.servo.sample(a)
                if s is not None:
                    self.last_sample = s
                    self.samples.append(s)
                    cal = self.servo.published
                    if s.fit is not None and cal is not None:
                        self.port.set_rate_ratio(cal.rate_num, cal.rate_denom)
                    if cal is not None:  # offsetFromMaster for management: slave − master
                        self.port.set_servo_status(-s.offset_ns, cal.to_external(a.t2))
        return actions

    def start(self, now: int) -> list[Action]:
        return self._consume(self.port.start(now))

    def handle_event_receive(self, data: bytes, rx_ts: int, now: int) -> list[Action]:
        return self._consume(self.port.handle_event_receive(data, rx_ts, now))

    def handle_general_receive(self, data: bytes, now: int) -> list[Action]:
        return self._consume(self.port.handle_general_receive(data, now))

    def handle_send_timestamp(self, ctx: TxContext, tx_ts: int, now: int) -> list[Action]:
        return self._consume(self.port.handle_send_timestamp(ctx, tx_ts, now))

    def handle_timer(self, timer: PortTimer, now: int) -> list[Action]:
        return self._consume(self.port.handle_timer(timer, now))

    def observe(self) -> PortSnapshot:
        return self.port.observe()

    def drain_samples(self) -> list[ServoSample]:
        out, self.samples = self.samples, []
        return out

    # -- published time ---------------------------------------------------------------------

    @property
    def state(self) -> PortState:
        return self.port.state

    @property
    def time_properties(self) -> TimePropertiesDS:
        return self.port.time_properties

    def calibration(self) -> Calibration | None:
        """local → PTP ns: the servo's fit while following a master; the time source (what we
        serve) while master; None before the first fit."""
        if self.port.state == PortState.MASTER:
            return self.port.time_source
        return self.servo.published

    def published(self, local_ns: int) -> PublishedTime | None:
        cal = self.calibration()
        if cal is None:
            return None
        tp = self.time_properties
        ptp = cal.to_external(local_ns)
        return PublishedTime(
            local_ns=local_ns,
            ptp_ns=ptp,
            utc_ns=tp.utc_ns(ptp),
            smpte_ns=tp.smpte_ns(ptp),
            current_utc_offset=tp.current_utc_offset,
            leap61=tp.leap61,
            leap59=tp.leap59,
            epoch=cal.epoch,
        )
