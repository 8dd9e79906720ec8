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


class WindowedMedian:
    """The median and MAD of the last ``window`` finite values pushed."""

    __slots__ = ("_order", "_recent", "window")

    def __init__(self, window: int) -> None:
        if window < 3:
            raise ValueError(f"window: at least 3 points expected, got {window}")
        self.window = window
        self._recent: deque[float] = deque()
        self._order: list[float] = []

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

    def median(self) -> float:
        """The window's median (0.0 while empty)."""
        return _median_sorted(self._order)

    def mad(self) -> float:
        """The window's median absolute deviation from its median (0.0 while empty)."""
        n = len(self._order)
        if n == 0:
            return 0.0
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
        return _median_sorted(merged)

    def sigma(self, floor: float = 0.0) -> float:
        """A robust standard deviation: MAD x 1.4826, at least ``floor``."""
        return max(self.mad() * MAD_TO_SIGMA, floor)


def _median_sorted(xs: list[float]) -> float:
    n = len(xs)
    if n == 0:
        return 0.0
    mid = n // 2
    return xs[mid] if n % 2 else 0.5 * (xs[mid - 1] + xs[mid])
