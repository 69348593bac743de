"""Pre-filters for the PTP servo path (linuxptp mmedian.c / tsproc.c roles). Pure."""

from __future__ import annotations

from collections import deque


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
