"""Pairing observations with the success signal of the sensor set they were made from, by header stamp.

The two come on different topics, through different nodes, in either order: an observation may arrive before the
simulator's success signal of its own set. Pairing on the stamp (instead of taking the latest signal) scores every
observation with its own set's outcome, never the previous step's.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True)
class Pairing(Generic[Item]):
    """What a call settled, in the order the observations came: `paired` (item, success) and `dropped` (item,
    reason) for the ones that can never be paired."""

    paired: list[tuple[Item, bool]]
    dropped: list[tuple[Item, str]]


class SuccessPairing(Generic[Item]):
    """Observations wait, in arrival order, for the success signal with their stamp. One is dropped when a signal of
    a later stamp comes first (signals come in stamp order, so its own was lost) or after `timeout_s` without it.
    The last `history` signals are kept for observations that come after their signal."""

    def __init__(self, timeout_s: float, history: int = 256) -> None:
        if timeout_s <= 0 or history < 1:
            raise ValueError(f"timeout_s must be > 0 and history >= 1, got {timeout_s} and {history}")
        self.timeout_s = timeout_s
        self.history = history
        self._signals: OrderedDict[int, bool] = OrderedDict()
        self._waiting: deque[tuple[int, float, Item]] = deque()

    def add_signal(self, stamp_ns: int, success: bool, now_s: float) -> Pairing[Item]:
        """Keep a signal; ValueError if it is unstamped (0: it could pair with nothing, or anything unstamped)."""
        _require_stamp(stamp_ns, "success signal")
        self._signals[stamp_ns] = success
        self._signals.move_to_end(stamp_ns)
        while len(self._signals) > self.history:
            self._signals.popitem(last=False)
        return self.settle(now_s)

    def add_observation(self, stamp_ns: int, item: Item, now_s: float) -> Pairing[Item]:
        """Queue an observation; ValueError if it is unstamped."""
        _require_stamp(stamp_ns, "observation")
        self._waiting.append((stamp_ns, now_s, item))
        return self.settle(now_s)

    def settle(self, now_s: float) -> Pairing[Item]:
        """Pair or drop waiting observations from the oldest on, stopping at the first that may still be paired."""
        paired: list[tuple[Item, bool]] = []
        dropped: list[tuple[Item, str]] = []
        newest_signal_ns = next(reversed(self._signals), None)
        while self._waiting:
            stamp_ns, arrived_s, item = self._waiting[0]
            if stamp_ns in self._signals:
                paired.append((item, self._signals[stamp_ns]))
            elif newest_signal_ns is not None and newest_signal_ns > stamp_ns:
                dropped.append((item, "its sensor set's success signal was lost (a later one came)"))
            elif now_s - arrived_s > self.timeout_s:
                dropped.append((item, f"no success signal with its stamp within {self.timeout_s} s"))
            else:
                break
            self._waiting.popleft()
        return Pairing(paired, dropped)


def _require_stamp(stamp_ns: int, what: str) -> None:
    if stamp_ns <= 0:
        raise ValueError(f"{what} has no header stamp: it cannot be paired by stamp")
