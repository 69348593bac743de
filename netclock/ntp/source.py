"""NTP client source (sans-IO): one server association in client mode (RFC 5905 §9-§10, RFC 9769).

Drive it with:

* :meth:`NtpSource.handle_timer` at (or after) the time of the last :class:`SetTimer`;
* :meth:`NtpSource.handle_tx_timestamp` when the transport learns when a request really left
  (the kernel TX stamp replaces the userspace ``now`` taken at :meth:`handle_timer`);
* :meth:`NtpSource.handle_incoming` with each datagram from the server and its receive stamp.

Every local time is CLOCK_MONOTONIC ns; server times are Unix ns (UTC) decoded from the
era-less wire form with a pivot (the current calibration, or ``pivot_unix_ns`` before one
exists). The methods return lists of actions (frozen dataclasses); the source never reads a
clock and never touches a socket.

Requests carry random cookies instead of local times (the local clock is MONOTONIC, and a
random transmit timestamp is what RFC 9109 / data minimisation recommends): the response's
origin timestamp must echo the cookie, which rejects stale, duplicated and spoofed packets.

Interleaved mode (RFC 9769, chrony ``xleave``): each request also carries a second cookie in
its receive field and, in the origin field, the server receive timestamp of the previous
response. A server that still holds the transmit time of that previous response answers with
origin = the second cookie and transmit = that previous response's real TX time; the
measurement then pairs the previous exchange's t1/t2/t4 with this t3. A basic answer to an
interleaved request is used as a basic measurement.

With ``xleave`` the basic sample of a basic request is held back: the next (interleaved)
response measures the same exchange again with the server's real TX time and replaces it. If
that response is basic too, the held sample is used after all.

Authentication (``key``, :mod:`netclock.ntp.auth`): requests carry a MAC under the key, and
a response counts only if its MAC verifies under that same key; anything else (no MAC, a
crypto-NAK, another key, a bad digest, an unsigned KoD) is dropped as bogus.

Clock filter: the source keeps the last ``filter_length`` samples and emits the lowest-delay
one, once, when it is newer than the last emitted sample (RFC 5905 §10).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from enum import Enum

from netclock.ntp import auth
from netclock.ntp.wire import (
    KISS_DENY,
    KISS_RATE,
    KISS_RSTR,
    Leap,
    Mode,
    NtpPacket,
    ParseError,
)
from netclock.time import NS_PER_S, NtpTimestamp

#: 2026-01-01T00:00:00Z: a default era pivot, good until 2094.
DEFAULT_PIVOT_UNIX_NS = 1_767_225_600 * NS_PER_S
MIN_POLL = -7
MAX_POLL = 17


def poll_interval_ns(poll: int) -> int:
    """2^poll seconds in ns (poll may be negative)."""
    return NS_PER_S << poll if poll >= 0 else NS_PER_S >> -poll


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """Client association settings (chrony ``server`` directive equivalents)."""

    #: log2 s of the shortest and longest poll interval (−7..17).
    minpoll: int = 6
    maxpoll: int = 10
    #: start with ``burst_count`` requests at min(2 s, 2^minpoll) spacing.
    iburst: bool = True
    burst_count: int = 4
    #: request interleaved mode (RFC 9769); falls back to basic by itself.
    xleave: bool = False
    #: clock filter register length (1 = every sample passes).
    filter_length: int = 8
    #: NTP version put in requests.
    version: int = 4
    #: samples with a larger round-trip delay are dropped.
    max_delay_ns: int = 3 * NS_PER_S
    #: good samples in a row before the poll interval doubles (toward maxpoll).
    poll_up_after: int = 8

    def __post_init__(self) -> None:
        if not MIN_POLL <= self.minpoll <= self.maxpoll <= MAX_POLL:
            raise ValueError(f"need {MIN_POLL} <= minpoll <= maxpoll <= {MAX_POLL}")
        if not 1 <= self.filter_length <= 64:
            raise ValueError("filter_length outside 1..64")
        if not 1 <= self.version <= 4:
            raise ValueError("version outside 1..4")
        if self.burst_count < 1 or self.poll_up_after < 1 or self.max_delay_ns <= 0:
            raise ValueError("burst_count, poll_up_after and max_delay_ns must be positive")


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to the server; report its TX stamp with ``request_id``."""

    data: bytes
    request_id: int


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call :meth:`NtpSource.handle_timer` at local MONOTONIC ``at_ns``."""

    at_ns: int


@dataclass(frozen=True, slots=True)
class Measured:
    """A sample passed the clock filter: feed it to selection / the calibration."""

    sample: NtpSample


@dataclass(frozen=True, slots=True)
class Demobilize:
    """The server refused service (KoD DENY/RSTR): stop polling it."""

    reason: str


Action = Send | SetTimer | Measured | Demobilize


class SampleMode(Enum):
    BASIC = "basic"
    INTERLEAVED = "interleaved"


@dataclass(frozen=True, slots=True)
class NtpSample:
    """One two-way measurement. t1/t4 local MONOTONIC ns; t2/t3 server Unix ns."""

    t1: int
    t2: int
    t3: int
    t4: int
    mode: SampleMode
    stratum: int
    leap: Leap
    root_delay_ns: int
    root_dispersion_ns: int
    reference_id: bytes
    #: where t1 came from: "kernel" (TX stamp) or "user" (time of handle_timer).
    t1_source: str = "user"

    @property
    def delay_ns(self) -> int:
        return (self.t4 - self.t1) - (self.t3 - self.t2)

    @property
    def internal(self) -> int:
        """Local midpoint (the calibration's internal value)."""
        return (self.t1 + self.t4) // 2

    @property
    def external(self) -> int:
        """Server midpoint, rounded so that external - internal is the exact NTP offset."""
        return self.internal + self.raw_offset_ns

    @property
    def raw_offset_ns(self) -> int:
        """((t2 - t1) + (t3 - t4)) / 2: server time minus local MONOTONIC (floor)."""
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) // 2

    @property
    def error_ns(self) -> int:
        return max(self.delay_ns, 0) // 2


# -- state -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    request_id: int
    cookie: NtpTimestamp
    xleave_cookie: NtpTimestamp | None
    t1: int
    t1_source: str = "user"
    answered: bool = False


@dataclass(slots=True)
class _Answered:
    """A completed exchange kept for the next interleaved measurement."""

    request: _Request
    t4: int
    server_rx: NtpTimestamp
    t2: int


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """What :meth:`NtpSource.observe` reports."""

    reach: int
    poll: int
    requests: int
    responses: int
    bogus: int
    interleaved: int
    kod: int
    demobilized: str | None
    last_sample: NtpSample | None


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    responses: int = 0
    bogus: int = 0
    interleaved: int = 0
    kod: int = 0
    auth_failed: int = 0


class NtpSource:
    """One server association in client mode. See the module docstring."""

    def __init__(
        self,
        config: SourceConfig,
        rng: random.Random,
        *,
        pivot_unix_ns: int = DEFAULT_PIVOT_UNIX_NS,
        key: auth.SymmetricKey | None = None,
    ) -> None:
        self.config = config
        self.key = key
        self._rng = rng
        self._pivot_offset: int | None = None  # server time - local MONOTONIC, last seen
        self._default_pivot = pivot_unix_ns
        self.poll = config.minpoll
        self.reach = 0
        self._next_request_id = 0
        self._cur: _Request | None = None
        self._prev: _Answered | None = None
        self._burst_left = config.burst_count if config.iburst else 0
        self._good_in_row = 0
        self._next_poll: int | None = None
        self._filter: deque[NtpSample] = deque(maxlen=config.filter_length)
        self._last_emitted_t4: int | None = None
        self._last_sample: NtpSample | None = None
        self._held: NtpSample | None = None
        self._demobilized: str | None = None
        self._c = _Counters()
        #: valid samples that entered the clock filter, emitted or held back (a driver can
        #: tell an answer the filter held back from no answer: the server is alive)
        self.filtered = 0

    # -- public ---------------------------------------------------------------------------

    def observe(self) -> SourceSnapshot:
        c = self._c
        return SourceSnapshot(
            self.reach, self.poll, c.requests, c.responses, c.bogus, c.interleaved, c.kod,
            self._demobilized, self._last_sample,
        )

    @property
    def demobilized(self) -> bool:
        return self._demobilized is not None

    @property
    def awaiting_answer(self) -> bool:
        """A request is out and no valid answer to it has come yet."""
        return self._demobilized is None and self._cur is not None and not self._cur.answered

    def handle_timer(self, now: int) -> list[Action]:
        """Send a request if one is due; always returns the next timer (unless demobilized)."""
        if self._demobilized is not None:
            return []
        if self._next_poll is not None and now < self._next_poll:
            return [SetTimer(self._next_poll)]
        actions: list[Action] = [self._make_request(now)]
        self._next_poll = now + self._interval()
        actions.append(SetTimer(self._next_poll))
        return actions

    def handle_tx_timestamp(self, request_id: int, t1: int) -> list[Action]:
        """The request ``request_id`` left at local MONOTONIC ``t1`` (kernel TX stamp)."""
        for req in self._requests():
            if req.request_id == request_id:
                # also after the answer: the next interleaved measurement uses it
                req.t1, req.t1_source = t1, "kernel"
        return []

    def handle_incoming(self, data: bytes, t4: int, now: int) -> list[Action]:
        """A datagram from the server, received at local MONOTONIC ``t4``."""
        del now  # the receive stamp is what matters; kept for interface symmetry
        if self._demobilized is not None:
            return []
        try:
            pkt = NtpPacket.unpack(data)
        except ParseError:
            self._c.bogus += 1
            return []
        if self.key is not None and (
            pkt.mac is None
            or pkt.mac.key_id != self.key.key_id
            or auth.verify(data, {self.key.key_id: self.key}, pkt) is not auth.AuthResult.OK
        ):
            self._c.auth_failed += 1
            self._c.bogus += 1
            return []
        cur = self._cur
        if (
            pkt.mode != Mode.SERVER
            or not 1 <= pkt.version <= 4
            or cur is None
            or cur.answered
            or pkt.transmit_ts.is_zero
        ):
            self._c.bogus += 1
            return []
        if pkt.origin_ts == cur.cookie:
            interleaved = False
        elif cur.xleave_cookie is not None and pkt.origin_ts == cur.xleave_cookie:
            interleaved = True
        else:
            self._c.bogus += 1  # origin check: not an answer to our latest request
            return []
        cur.answered = True
        self._c.responses += 1
        if pkt.is_kod:
            return self._kiss(pkt)
        self.reach |= 1
        pivot = self._pivot(t4)
        t2 = pkt.receive_ts.to_unix_ns(pivot)
        t3 = pkt.transmit_ts.to_unix_ns(pivot)
        prev = self._prev
        self._prev = _Answered(cur, t4, pkt.receive_ts, t2)
        if pkt.leap == Leap.UNSYNCHRONIZED or not 1 <= pkt.stratum <= 15:
            self._good_in_row = 0
            return []  # the server is not synchronised: reachable, but no sample
        if interleaved:
            if prev is None or prev.request.request_id != cur.request_id - 1:
                self._c.bogus += 1
                return []
            self._c.interleaved += 1
            sample = self._sample(pkt, prev.request.t1, prev.t2, t3, prev.t4,
                                  SampleMode.INTERLEAVED, prev.request.t1_source)
        else:
            sample = self._sample(pkt, cur.t1, t2, t3, t4, SampleMode.BASIC, cur.t1_source)
        if not -1000 <= sample.delay_ns <= self.config.max_delay_ns:
            return []  # impossible or too slow an exchange
        self._pivot_offset = sample.raw_offset_ns
        self._last_sample = sample
        self._adapt_poll_on_good()
        if interleaved:
            self._held = None  # superseded by this better measurement of the same exchange
            return self._clock_filter(sample)
        if self.config.xleave and cur.xleave_cookie is None:
            # A basic exchange that the next interleaved response will measure again, better.
            self._held = sample
            return []
        out: list[Action] = []
        if self._held is not None:
            out += self._clock_filter(self._held)  # the server answered basic: use both
            self._held = None
        return out + self._clock_filter(sample)

    # -- internals --------------------------------------------------------------------------

    def _requests(self) -> list[_Request]:
        out = [] if self._cur is None else [self._cur]
        if self._prev is not None and self._prev.request is not self._cur:
            out.append(self._prev.request)
        return out

    def _pivot(self, local: int) -> int:
        if self._pivot_offset is None:
            return self._default_pivot
        return local + self._pivot_offset

    def _cookie(self) -> NtpTimestamp:
        while True:
            v = self._rng.getrandbits(64)
            if v:
                return NtpTimestamp.from_u64(v)

    def _make_request(self, now: int) -> Send:
        rid = self._next_request_id
        self._next_request_id += 1
        self.reach = (self.reach << 1) & 0xFF
        if self._cur is not None and not self._cur.answered:
            self._good_in_row = 0
            if self.reach == 0 and self.poll > self.config.minpoll:
                self.poll = self.config.minpoll
        cookie = self._cookie()
        origin = NtpTimestamp(0, 0)
        receive = NtpTimestamp(0, 0)
        xcookie: NtpTimestamp | None = None
        prev = self._prev
        if (
            self.config.xleave
            and prev is not None
            and self._cur is not None
            and prev.request is self._cur
            and self._cur.answered
        ):
            xcookie = self._cookie()
            while xcookie == cookie:
                xcookie = self._cookie()
            origin, receive = prev.server_rx, xcookie
        self._cur = _Request(rid, cookie, xcookie, now)
        self._c.requests += 1
        pkt = NtpPacket(
            leap=Leap.NO_WARNING,
            version=self.config.version,
            mode=Mode.CLIENT,
            poll=self.poll,
            origin_ts=origin,
            receive_ts=receive,
            transmit_ts=cookie,
        )
        raw = pkt.pack()
        return Send(raw if self.key is None else auth.sign(raw, self.key), rid)

    def _interval(self) -> int:
        base = poll_interval_ns(self.poll)
        if self._burst_left > 0:
            self._burst_left -= 1
            base = min(base, 2 * NS_PER_S)
        # ±1/16 of jitter so several clients do not stay in phase
        return base + (self._rng.randrange(-(base >> 4), (base >> 4) + 1) if base >= 16 else 0)

    def _adapt_poll_on_good(self) -> None:
        self._good_in_row += 1
        if self._good_in_row >= self.config.poll_up_after and self.poll < self.config.maxpoll:
            self.poll += 1
            self._good_in_row = 0

    def _kiss(self, pkt: NtpPacket) -> list[Action]:
        self._c.kod += 1
        code = pkt.reference_id
        if code == KISS_RATE:
            # back off: double the interval (beyond maxpoll if the server insists)
            self.poll = min(max(self.poll + 1, pkt.poll), MAX_POLL)
            self._burst_left = 0
            if self._next_poll is not None and self._cur is not None:
                self._next_poll = self._cur.t1 + poll_interval_ns(self.poll)
                return [SetTimer(self._next_poll)]
            return []
        if code in (KISS_DENY, KISS_RSTR):
            self._demobilized = code.decode("ascii")
            return [Demobilize(self._demobilized)]
        return []  # other kiss codes: ignore the packet

    def _sample(
        self, pkt: NtpPacket, t1: int, t2: int, t3: int, t4: int, mode: SampleMode, src: str
    ) -> NtpSample:
        return NtpSample(
            t1=t1, t2=t2, t3=t3, t4=t4, mode=mode, stratum=pkt.stratum, leap=pkt.leap,
            root_delay_ns=pkt.root_delay.to_ns(), root_dispersion_ns=pkt.root_dispersion.to_ns(),
            reference_id=pkt.reference_id, t1_source=src,
        )

    def _clock_filter(self, sample: NtpSample) -> list[Action]:
        self.filtered += 1
        self._filter.append(sample)
        best = min(self._filter, key=lambda s: (max(s.delay_ns, 0), -s.t4))
        if self._last_emitted_t4 is not None and best.t4 <= self._last_emitted_t4:
            return []
        self._last_emitted_t4 = best.t4
        return [Measured(best)]


__all__ = [
    "Action",
    "Demobilize",
    "Measured",
    "NtpSample",
    "NtpSource",
    "SampleMode",
    "Send",
    "SetTimer",
    "SourceConfig",
    "SourceSnapshot",
    "poll_interval_ns",
]
