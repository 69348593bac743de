"""Pre-filters for the PTP servo path (linuxptp mmedian.c / tsproc.c roles). Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice


class MedianFilter:
    """Moving median over the last ``length`` samples (length settable at run time)."""

    def __init__(self, length: int = 10) -> None:
        self._samples: deque[int] = deque()
        self._length = 1
        self.set_length(length)

    @property
    def length(self) -> int:
        return self._length

    def set_length(self, length: int) -> None:
        if length < 1:
            raise ValueError("median filter length must be >= 1")
        self._length = length
        while len(self._samples) > length:
            self._samples.popleft()

    def sample(self, value: int) -> int:
        self._samples.append(value)
        while len(self._samples) > self._length:
            self._samples.popleft()
        return self.value()

    def value(self) -> int:
        s = sorted(self._samples)
        n = len(s)
        if n == 0:
            raise ValueError("empty filter")
        mid = n // 2
        return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2

    def minimum(self) -> int:
        if not self._samples:
            raise ValueError("empty filter")
        return min(self._samples)

    def __len__(self) -> int:
        return len(self._samples)

    def reset(self) -> None:
        self._samples.clear()


DELAY_FILTER_MODES = ("median", "min")


class DelayFilter:
    """Mean-path-delay filter: thresholds, then a moving median.

    A raw delay below ``min_ns`` or above ``max_ns`` is rejected, as is one larger than
    ``outlier_factor`` × the current median plus ``outlier_slack_ns`` (once the median has
    ``length`` samples). ``mode`` picks the estimate over the last ``length`` accepted samples:
    ``"median"`` (linuxptp's default) or ``"min"`` (the least-queued exchange, for paths whose
    noise is one-sided queueing). Every parameter may be changed while running.
    """

    def __init__(
        self,
        length: int = 10,
        min_ns: int = 0,
        max_ns: int = 1_000_000_000,
        outlier_factor: float = 3.0,
        outlier_slack_ns: int = 20_000,
        mode: str = "min",
    ) -> None:
        if mode not in DELAY_FILTER_MODES:
            raise ValueError(f"delay filter mode {mode!r} not in {DELAY_FILTER_MODES}")
        self.mode = mode
        self.median = MedianFilter(length)
        self.min_ns = min_ns
        self.max_ns = max_ns
        self.outlier_factor = outlier_factor
        self.outlier_slack_ns = outlier_slack_ns
        self.rejected = 0

    def configure(
        self,
        *,
        length: int | None = None,
        min_ns: int | None = None,
        max_ns: int | None = None,
        outlier_factor: float | None = None,
        outlier_slack_ns: int | None = None,
        mode: str | None = None,
    ) -> None:
        if mode is not None:
            if mode not in DELAY_FILTER_MODES:
                raise ValueError(f"delay filter mode {mode!r} not in {DELAY_FILTER_MODES}")
            self.mode = mode
        if length is not None:
            self.median.set_length(length)
        if min_ns is not None:
            self.min_ns = min_ns
        if max_ns is not None:
            self.max_ns = max_ns
        if outlier_factor is not None:
            self.outlier_factor = outlier_factor
        if outlier_slack_ns is not None:
            self.outlier_slack_ns = outlier_slack_ns

    def sample(self, raw_delay: int) -> int | None:
        """Feed a raw delay; returns the filtered delay, or None if the sample was rejected and
        no estimate exists yet (a rejected sample otherwise returns the unchanged estimate)."""
        ok = self.min_ns <= raw_delay <= self.max_ns
        if ok and len(self.median) >= self.median.length:
            limit = abs(self.median.value()) * self.outlier_factor + self.outlier_slack_ns
            ok = raw_delay <= limit
        if not ok:
            self.rejected += 1
            return self.value()
        self.median.sample(raw_delay)
        return self.value()

    def value(self) -> int | None:
        if not len(self.median):
            return None
        return self.median.minimum() if self.mode == "min" else self.median.value()

    def reset(self) -> None:
        self.median.reset()


class DirectionFloors:
    """Per-direction delay floors ("lucky packets"): a path delay without queueing bias.

    A two-way exchange measures the offset with an error of half the difference of its two
    one-way delays. Where each direction's delay is a floor plus a one-sided, variable excess
    (queueing, a bridge, a cold kernel path after idling), the least-delayed Sync combined with
    a path delay filtered over whole exchanges keeps a bias as large as that excess (µs on this
    kernel's bridge). Here each direction is filtered on its own: over the last ``n`` Syncs
    and the last ``n`` delay exchanges, the smallest master→slave and slave→master delays
    as seen through a local→master mapping ``to_master`` (the current fit). Those are
    ``floor_ms + e`` and ``floor_sm − e``, ``e`` being the mapping's error, so their mean
    (:meth:`delay`) is the mean of the two floors whatever ``e`` is (to first order: a rate
    error ``ρ`` adds ``ρ × Δt / 2`` between the two picked samples). Master time at a
    least-queued Sync's ``t2`` is then ``t1 + c + delay``: still one raw Sync per observation,
    so the fit keeps its rate information. Recomputed from the raw stamps at each call, so a
    refitted mapping leaves no stale residuals. Pure: stamps in, ns out.

    ``n`` should be the size of the group the observed Sync was the least queued of. The
    least of ``n`` draws is then taken in both directions, and that Sync *is* the
    master→slave pick: its observation is the two-way offset of the earliest of its ``n``
    Syncs and the earliest of the last ``n`` exchanges. Where the two directions share one
    delay distribution, whatever its shape (on this kernel's bridge a warm path of ~5 µs and
    a cold one of ~20 µs), the two picks are the same order statistic and the error has mean
    zero. A longer exchange window than the Sync group (or the reverse) picks a lower floor
    on one side and leaves a bias as large as the gap between the two order statistics:
    about −1.4 µs on the bridge with the least of 16 exchanges against the least of 8 Syncs.
    """

    def __init__(self, length: int = 16) -> None:
        if length < 1:
            raise ValueError("floor filter length must be >= 1")
        self.length = length
        self._sync: deque[tuple[int, int]] = deque(maxlen=length)
        self._exchange: deque[tuple[int, int]] = deque(maxlen=length)

    def add_sync(self, t2: int, master_tx: int) -> None:
        """A Sync received at local ``t2``, sent at master time ``master_tx`` (t1 + corrections)."""
        self._sync.append((t2, master_tx))

    def add_exchange(self, t3: int, master_rx: int) -> None:
        """A Delay_Req sent at local ``t3``, received at master time ``master_rx`` (t4 − c_resp).

        The same exchange offered twice (every Measurement repeats the latest one) counts once.
        """
        if not self._exchange or self._exchange[-1] != (t3, master_rx):
            self._exchange.append((t3, master_rx))

    def ready(self) -> bool:
        return bool(self._sync) and bool(self._exchange)

    def floors(self, to_master: Callable[[int], int], n: int = 0) -> tuple[int, int] | None:
        """(smallest master→slave, smallest slave→master) delay through ``to_master`` over the
        last ``n`` samples of each direction (0 or above ``length``: all kept); None before
        both directions have a sample."""
        if not self.ready():
            return None
        syncs: Iterable[tuple[int, int]] = self._sync
        exchanges: Iterable[tuple[int, int]] = self._exchange
        if 0 < n < self.length:
            syncs = islice(self._sync, max(len(self._sync) - n, 0), None)
            exchanges = islice(self._exchange, max(len(self._exchange) - n, 0), None)
        ms = min(to_master(t2) - tx for t2, tx in syncs)
        sm = min(rx - to_master(t3) for t3, rx in exchanges)
        return ms, sm

    def delay(self, to_master: Callable[[int], int], n: int = 0) -> int | None:
        """The mean of the two floors over the last ``n`` samples (see :meth:`floors`); None
        before both directions have a sample, or when the round trip is negative (the master's
        time stepped inside the window: the samples are dropped)."""
        f = self.floors(to_master, n)
        if f is None:
            return None
        if f[0] + f[1] < 0:
            self.reset()
            return None
        return (f[0] + f[1]) // 2

    def reset(self) -> None:
        self._sync.clear()
        self._exchange.clear()


class FlooredSince:
    """When to drop a window's observations made before the delay floors could be used.

    The first observations of a fit (Sync by Sync, with the port's filtered delay, before a fit
    existed to read the floors through) carry that delay's bias, and would tilt every fit for
    a whole window length (+2 µs decaying over 30 s on this kernel's bridge). :meth:`note`
    counts the observations made with the floors in the window's current epoch and, once
    ``threshold`` of them can fit on their own, returns (once) the local time before which
    the window's observations should go. Pure.
    """

    def __init__(self) -> None:
        self.epoch = -1
        #: local time of the first floored observation of the epoch, and how many since
        self.since = 0
        self.count = 0

    def note(self, epoch: int, internal: int, threshold: int) -> int | None:
        """A floored observation at ``internal`` in window ``epoch`` (a new epoch: a new fit,
        after a start, a step or a lost fit); the cut-off time when it is the ``threshold``-th."""
        if epoch != self.epoch:
            self.epoch, self.since, self.count = epoch, internal, 0
        self.count += 1
        return self.since if self.count == threshold else None

    def reset(self) -> None:
        self.epoch = -1
