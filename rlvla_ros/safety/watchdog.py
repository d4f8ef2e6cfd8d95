"""Staleness watchdog: tells when a stream (valid commands, teleop, joint states) has gone quiet."""

from __future__ import annotations

import time
from collections.abc import Callable


class Watchdog:
    """Stale when not fed within ``timeout_s``; :meth:`poll_stop` reports each lapse of a fed stream once."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self._clock = clock
        self._last_feed_s: float | None = None
        self._lapse_pending = False

    def feed(self) -> None:
        """Record a fresh message now."""
        self._last_feed_s = self._clock()
        self._lapse_pending = True

    def clear(self) -> None:
        """Forget the last feed: stale, with no lapse left to report (e.g. after an explicit stop)."""
        self._last_feed_s = None
        self._lapse_pending = False

    def stale(self) -> bool:
        """True when never fed, cleared, or not fed for more than ``timeout_s``."""
        return self._last_feed_s is None or self._clock() - self._last_feed_s > self.timeout_s

    def poll_stop(self) -> bool:
        """True exactly once each time the stream goes stale after being fed."""
        if self._lapse_pending and self.stale():
            self._lapse_pending = False
            return True
        return False
