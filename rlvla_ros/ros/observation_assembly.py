"""The parts of the perception node that work on plain arrays and stamps: proprioception from joint states, a
history of joint-state samples matched to image stamps, a rate gate on data time, and the image crop/resize.

Times are the messages' header stamps (data time, not the node's clock), so a lock-step simulator that runs faster
than real time with simulated stamps is neither throttled nor declared out of sync.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image as PilImage

from rlvla_ros.contract import GRIPPER_OPENING_NAME


CROP_MODES = ("center", "box", "none")
"""center: the largest centred square; box: an explicit [x, y, width, height] pixel box; none: the full image."""


class ProprioceptionReader:
    """Proprio vectors in the order of ``names`` from joint_states names and positions.

    Every name is a joint of ``joint_states`` except :data:`GRIPPER_OPENING_NAME`, the gap between the finger pads:
    the sum of the ``gripper_joint_names`` positions (each finger joint is the distance from the gripper centre line
    to its pad), exactly as ``TabletopSim.gripper_opening_m`` computes it.
    """

    def __init__(self, names: Sequence[str], gripper_joint_names: Sequence[str]) -> None:
        if not names:
            raise ValueError("proprioception names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"proprioception names repeat: {list(names)}")
        if GRIPPER_OPENING_NAME in names and not gripper_joint_names:
            raise ValueError(f"'{GRIPPER_OPENING_NAME}' needs the gripper joint names")
        self.names = tuple(names)
        self.gripper_joint_names = tuple(gripper_joint_names) if GRIPPER_OPENING_NAME in names else ()
        self.required_joints = tuple(n for n in self.names if n != GRIPPER_OPENING_NAME) + self.gripper_joint_names

    def __call__(self, joint_names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """float64 vector in ``names`` order; ValueError when joints are missing or positions do not match names."""
        if len(joint_names) != len(positions):
            raise ValueError(f"joint_states has {len(joint_names)} names but {len(positions)} positions")
        index = {name: i for i, name in enumerate(joint_names)}
        missing = [name for name in self.required_joints if name not in index]
        if missing:
            raise ValueError(f"joint_states lacks {missing} (has {list(joint_names)})")
        gripper_opening_m = sum(positions[index[name]] for name in self.gripper_joint_names)
        return np.array([gripper_opening_m if name == GRIPPER_OPENING_NAME else positions[index[name]]
                         for name in self.names], dtype=np.float64)


@dataclass(frozen=True)
class JointMatch:
    """The joint-state sample nearest to a set of image stamps."""

    stamp_ns: int
    """Stamp of the sample nearest in time to the first image."""
    proprio: np.ndarray
    """That sample's proprio vector."""
    offsets_ns: tuple[int, ...]
    """Per image: distance to the sample nearest in time to it."""
    settled: bool
    """True when a sample at or after the newest image is in the history, so later samples cannot come closer."""

    def in_sync(self, max_offset_s: float) -> bool:
        """Every image has a joint-state sample within ``max_offset_s``."""
        max_offset_ns = round(max_offset_s * 1e9)
        return all(offset <= max_offset_ns for offset in self.offsets_ns)


class JointStateHistory:
    """Proprio samples of the last ``history_s`` seconds (data time), sorted by stamp, for nearest-stamp lookups.

    Stamps are integer nanoseconds (``rclpy.time.Time.nanoseconds``) so that they compare and come back exactly.
    """

    def __init__(self, history_s: float) -> None:
        if not history_s > 0:
            raise ValueError(f"history_s must be > 0, got {history_s}")
        self._history_ns = round(history_s * 1e9)
        self._stamps: list[int] = []
        self._values: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_ns: int, proprio: np.ndarray) -> None:
        """Insert a sample (replacing one of the same stamp); samples more than ``history_s`` away from it are dropped,
        so a clock that jumps back (a restarted simulation) leaves no samples of the old timeline behind."""
        keep_from = bisect.bisect_left(self._stamps, stamp_ns - self._history_ns)
        keep_to = bisect.bisect_right(self._stamps, stamp_ns + self._history_ns)
        del self._stamps[keep_to:], self._values[keep_to:]
        del self._stamps[:keep_from], self._values[:keep_from]
        position = bisect.bisect_left(self._stamps, stamp_ns)
        if position < len(self._stamps) and self._stamps[position] == stamp_ns:
            # A re-sent sample (a lock-step simulator's heartbeat) replaces the one of its stamp.
            self._values[position] = proprio
            return
        # Drivers publish in order; an out-of-order sample is inserted where it belongs.
        self._stamps.insert(position, stamp_ns)
        self._values.insert(position, proprio)

    def _nearest(self, stamp_ns: int) -> int:
        position = bisect.bisect_left(self._stamps, stamp_ns)
        if position == len(self._stamps):
            return position - 1
        if position > 0 and stamp_ns - self._stamps[position - 1] <= self._stamps[position] - stamp_ns:
            return position - 1
        return position

    def match(self, image_stamps_ns: Sequence[int]) -> JointMatch | None:
        """The samples nearest to each image stamp (proprio from the first image's), or None while empty."""
        if not self._stamps:
            return None
        nearest = [self._nearest(stamp) for stamp in image_stamps_ns]
        offsets = tuple(abs(self._stamps[i] - stamp) for i, stamp in zip(nearest, image_stamps_ns, strict=True))
        return JointMatch(stamp_ns=self._stamps[nearest[0]], proprio=self._values[nearest[0]], offsets_ns=offsets,
                          settled=self._stamps[-1] >= max(image_stamps_ns))


class RateGate:
    """Admits at most ``rate_hz`` samples per second of data time on average; 0 admits everything.

    Admission times are scheduled one period apart (not one period after the last admitted sample), so a 30 Hz
    camera yields 10 Hz rather than the 7.5 Hz of "every 4th frame"; a sample up to ``tolerance`` of a period early
    still counts as on time, so stamps exactly one period apart pass despite floating-point rounding.
    """

    def __init__(self, rate_hz: float, tolerance: float = 0.1) -> None:
        if rate_hz < 0:
            raise ValueError(f"rate_hz must be >= 0, got {rate_hz}")
        self.period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._slack_s = tolerance * self.period_s
        self._due_s: float | None = None
        self._last_s: float | None = None

    def reset(self) -> None:
        """Forget the schedule: the next sample is admitted."""
        self._due_s = self._last_s = None

    def ready(self, stamp_s: float) -> bool:
        """Whether a sample stamped ``stamp_s`` would be admitted now (a clock that went backwards restarts)."""
        if self._due_s is None or stamp_s < self._last_s:
            return True
        return stamp_s >= self._due_s - self._slack_s

    def mark(self, stamp_s: float) -> None:
        """Record that a sample stamped ``stamp_s`` was used."""
        on_schedule = self._due_s is not None and self._last_s <= stamp_s < self._due_s + self.period_s
        self._due_s = (self._due_s if on_schedule else stamp_s) + self.period_s
        self._last_s = stamp_s


def crop_and_resize(pixels: np.ndarray, size: int, crop: str = "center", box: Sequence[int] = ()) -> np.ndarray:
    """Crop an (H, W, 3) uint8 image (see :data:`CROP_MODES`; box is [x, y, width, height] from the top-left
    corner) and resize it to (size, size, 3) with antialiased bilinear filtering; ValueError for a box that does not
    fit the image."""
    height, width = pixels.shape[:2]
    if crop == "center":
        side = min(height, width)
        x, y, w, h = (width - side) // 2, (height - side) // 2, side, side
    elif crop == "box":
        if len(box) != 4:
            raise ValueError(f"crop box must be [x, y, width, height], got {list(box)}")
        x, y, w, h = box
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > width or y + h > height:
            raise ValueError(f"crop box {list(box)} does not fit a {width}x{height} image")
    elif crop == "none":
        x, y, w, h = 0, 0, width, height
    else:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    cropped = pixels[y:y + h, x:x + w]
    if cropped.shape[:2] == (size, size):
        return np.ascontiguousarray(cropped)
    # Pillow's bilinear resize widens its kernel when shrinking (antialiasing), like the policies' own resize.
    return np.asarray(PilImage.fromarray(np.ascontiguousarray(cropped)).resize((size, size), PilImage.BILINEAR))
