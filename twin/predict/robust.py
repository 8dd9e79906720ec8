"""Robust statistics over a bounded sliding window: the median and the MAD of the last points.

A running mean and variance are pulled by the very outliers a detector looks for; the median
and the median absolute deviation (MAD) of a window are not (their breakdown point is 50%).
The window is kept sorted, so an update costs O(window) element moves and the memory is two
arrays of ``window`` floats, whatever the length of the stream.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

MAD_TO_SIGMA = 1.482602218505602
"""1 / Phi^-1(3/4): the MAD of a normal sample times this estimates its standard deviation."""
MEAN_ABS_TO_SIGMA = 1.2533141373155003
"""sqrt(pi / 2): the mean absolute deviation of a normal sample times this estimates sigma."""


class WindowedMedian:
    """The median and MAD of the last ``window`` finite values pushed."""

    __slots__ = ("_mad", "_mean_abs", "_order", "_recent", "_stale", "refresh", "window")

    def __init__(self, window: int, refresh: int | None = None) -> None:
        """``refresh``: pushes between recomputations of the MAD (an O(window) pass); by
        default a fiftieth of the window, so the MAD lags the window by at most 2%."""
        if window < 3:
            raise ValueError(f"window: at least 3 points expected, got {window}")
        self.window = window
        self.refresh = refresh if refresh is not None else max(1, window // 50)
        self._recent: deque[float] = deque()
        self._order: list[float] = []
        self._mad = 0.0
        self._mean_abs = 0.0
        self._stale = -1  # pushes since the MAD was computed; -1: never computed

    def __len__(self) -> int:
        return len(self._recent)

    def push(self, x: float) -> None:
        """Add a finite value, dropping the oldest once the window is full."""
        if not math.isfinite(x):
            raise ValueError("only finite values enter the window")
        if len(self._recent) == self.window:
            old = self._recent.popleft()
            del self._order[bisect.bisect_left(self._order, old)]
        self._recent.append(x)
        bisect.insort(self._order, x)
        if self._stale >= 0:
            self._stale += 1

    def median(self) -> float:
        """The window's median (0.0 while empty)."""
        return _median_sorted(self._order)

    def mad(self) -> float:
        """The window's median absolute deviation from its median (0.0 while empty).

        Recomputed once every ``refresh`` pushes (and whenever the window is not yet full).
        """
        self._refresh()
        return self._mad

    def mean_abs(self) -> float:
        """The window's mean absolute deviation from its median (refreshed as the MAD)."""
        self._refresh()
        return self._mean_abs

    def _refresh(self) -> None:
        if 0 <= self._stale < self.refresh and len(self._recent) == self.window:
            return
        self._mad, self._mean_abs = self._exact()
        self._stale = 0

    def _exact(self) -> tuple[float, float]:
        n = len(self._order)
        if n == 0:
            return 0.0, 0.0
        med = _median_sorted(self._order)
        # The deviations of a sorted list, merged from the two sides of the median, are
        # themselves sorted in O(n) without a sort.
        lo = bisect.bisect_left(self._order, med)
        left = [med - v for v in reversed(self._order[:lo])]
        right = [v - med for v in self._order[lo:]]
        merged: list[float] = []
        i = j = 0
        while i < len(left) and j < len(right):
            if left[i] <= right[j]:
                merged.append(left[i])
                i += 1
            else:
                merged.append(right[j])
                j += 1
        merged.extend(left[i:])
        merged.extend(right[j:])
        return _median_sorted(merged), sum(merged) / n

    def sigma(self, floor: float = 0.0) -> float:
        """A robust standard deviation: MAD x 1.4826, at least ``floor``.

        When more than half the window sits exactly on its median (a series that mostly
        repeats one value) the MAD is 0 and says nothing of the other points; the mean
        absolute deviation x sqrt(pi/2) stands in for it then.
        """
        mad = self.mad()
        spread = mad * MAD_TO_SIGMA if mad > 0.0 else self._mean_abs * MEAN_ABS_TO_SIGMA
        return max(spread, floor)


def _median_sorted(xs: list[float]) -> float:
    n = len(xs)
    if n == 0:
        return 0.0
    mid = n // 2
    return xs[mid] if n % 2 else 0.5 * (xs[mid - 1] + xs[mid])


class RunningMax:
    """The largest of the last ``window`` values pushed (a monotone deque: amortised O(1))."""

    __slots__ = ("_count", "_deque", "window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window: at least 1 point expected, got {window}")
        self.window = window
        self._deque: deque[tuple[int, float]] = deque()
        self._count = 0

    def __len__(self) -> int:
        return min(self._count, self.window)

    def push(self, x: float) -> None:
        """Add a value, forgetting the one pushed ``window`` pushes ago."""
        while self._deque and self._deque[-1][1] <= x:
            self._deque.pop()
        self._deque.append((self._count, x))
        self._count += 1
        while self._deque[0][0] <= self._count - 1 - self.window:
            self._deque.popleft()

    def max(self) -> float:
        """The largest value in the window (0.0 while empty)."""
        return self._deque[0][1] if self._deque else 0.0
