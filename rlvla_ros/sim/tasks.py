"""Language-conditioned tabletop tasks and their generalisation splits.

Tasks (:data:`TASKS`):

- ``lift``: "lift the red block"; success when that cube's centre is 5 cm above its resting height.
- ``push``: "push the blue block onto the green target"; success when the cube's centre is within 3.5 cm of the
  named pad's centre and it rests on the table (pads are flat, 5 cm radius).
- ``stack``: "put the red block on the yellow block"; success when the first cube rests on the second (centred
  within 2 cm, 4 cm higher) and the fingers have let go of it.
- ``place_side``: "move the green block to the left side of the table"; success when the cube rests on the table
  at least 20 cm to that side of the centre line and the fingers have let go. Left and right are as seen in the
  front camera image (left is world -y).

Every episode also has one or more other cubes (and, for ``push``, a second pad), so the instruction is needed to
know which object is meant.

Splits (:data:`SPLITS`):

- ``id``: colours from :data:`ID_COLORS`; objects spawn in the central box x in [0.36, 0.54] m, |y| <= 0.14 m;
  small jitter of light intensity and front camera pose.
- ``ood_color``: as ``id`` but every cube and pad colour (hence every colour word) is from :data:`OOD_COLORS`,
  which ``id`` never uses.
- ``ood_position``: objects spawn in the band around the ``id`` box (x in [0.28, 0.62] m, |y| <= 0.22 m, at least
  2 cm outside the ``id`` box); ``place_side`` keeps |y| <= 0.14 m there (the sides are its goal) so its band is
  the near and far strips in x.
- ``ood_distractor``: two more cubes than ``id``, in ``id`` colours and positions.
- ``ood_visual``: light intensity far outside the ``id`` jitter (x0.45-0.6 or x1.3-1.45), moved key light, a table
  colour ``id`` never shows, and the front camera moved by 4-7 cm and tilted by 0.06-0.10 rad.

Under one seed, ``ood_color``, ``ood_distractor`` and ``ood_visual`` keep the ``id`` layout of the task's own
objects (only the named factor changes), so their results pair up with ``id`` episode by episode.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rlvla_ros.contract import SPLITS
from rlvla_ros.sim.experts import Expert, PickAndPlaceExpert, PushExpert
from rlvla_ros.sim.kinematics import EeDeltaConfig
from rlvla_ros.sim.tabletop_sim import (
    BLOCK_HALF_SIZE_M,
    NUM_BLOCKS,
    NUM_PADS,
    TABLE_TOP_Z_M,
    TabletopSim,
    VisualVariation,
)


ID_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.85),
    "yellow": (0.92, 0.82, 0.10),
}
"""Object colours of the in-distribution split."""

OOD_COLORS: dict[str, tuple[float, float, float]] = {
    "orange": (0.98, 0.50, 0.05),
    "purple": (0.50, 0.15, 0.70),
    "cyan": (0.05, 0.80, 0.80),
    "pink": (0.98, 0.55, 0.75),
}
"""Object colours only the ``ood_color`` split uses."""

OOD_TABLE_COLORS = ((0.30, 0.34, 0.42), (0.20, 0.35, 0.22), (0.70, 0.70, 0.68))
"""Table colours only the ``ood_visual`` split uses."""

MIN_OBJECT_SPACING_M = 0.08
"""Smallest distance between the centres of two cubes, or a cube and a pad, at spawn."""
RESTING_TOLERANCE_M = 0.005
"""How far a cube's centre may be above its resting height and still count as resting."""


@dataclass(frozen=True)
class SpawnRegion:
    """Axis-aligned box of spawn positions on the table, minus an optional inner box."""

    x_m: tuple[float, float]
    y_m: tuple[float, float]
    exclude_x_m: tuple[float, float] | None = None
    exclude_y_m: tuple[float, float] | None = None

    def contains(self, xy: np.ndarray) -> bool:
        """Whether ``xy`` is inside the box and outside the excluded box."""
        inside = self.x_m[0] <= xy[0] <= self.x_m[1] and self.y_m[0] <= xy[1] <= self.y_m[1]
        if not inside or self.exclude_x_m is None or self.exclude_y_m is None:
            return inside
        excluded = (
            self.exclude_x_m[0] <= xy[0] <= self.exclude_x_m[1] and self.exclude_y_m[0] <= xy[1] <= self.exclude_y_m[1]
        )
        return not excluded

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform sample by rejection."""
        for _ in range(1000):
            xy = rng.uniform([self.x_m[0], self.y_m[0]], [self.x_m[1], self.y_m[1]])
            if self.contains(xy):
                return xy
        raise RuntimeError(f"could not sample from {self}")


ID_REGION = SpawnRegion(x_m=(0.36, 0.54), y_m=(-0.14, 0.14))
OOD_REGION = SpawnRegion(x_m=(0.28, 0.62), y_m=(-0.22, 0.22), exclude_x_m=(0.34, 0.56), exclude_y_m=(-0.16, 0.16))


def _visual_variation(rng: np.random.Generator, split: str) -> VisualVariation:
    if split != "ood_visual":
        return VisualVariation(
            light_scale=rng.uniform(0.9, 1.1),
            front_camera_shift_m=rng.uniform(-0.01, 0.01, size=3),
            front_camera_tilt_rad=rng.uniform(-0.02, 0.02),
        )
    shift_dir = rng.normal(size=3)
    tilt_sign = rng.choice([-1.0, 1.0])
    table = OOD_TABLE_COLORS[rng.integers(len(OOD_TABLE_COLORS))]
    return VisualVariation(
        light_scale=rng.choice([rng.uniform(0.45, 0.6), rng.uniform(1.3, 1.45)]),
        light_shift_m=rng.uniform(-0.5, 0.5, size=3),
        table_rgb=table,
        front_camera_shift_m=shift_dir / np.linalg.norm(shift_dir) * rng.uniform(0.04, 0.07),
        front_camera_tilt_rad=tilt_sign * rng.uniform(0.06, 0.10),
    )


@dataclass
class Scene:
    """What :meth:`Task.build_scene` placed: colour names per cube and pad slot, in slot order."""

    block_colors: list[str]
    pad_colors: list[str]


class Task(abc.ABC):
    """One language-conditioned task; an instance holds the current episode's choices after :meth:`reset`."""

    name: ClassVar[str]
    max_steps: ClassVar[int]
    """Episode length limit in control steps."""
    num_blocks: ClassVar[int]
    """Cubes in the ``id`` split (the ones the instruction names come first)."""
    num_pads: ClassVar[int] = 0
    ood_region: ClassVar[SpawnRegion] = OOD_REGION

    def __init__(self, config: EeDeltaConfig | None = None) -> None:
        self.config = config if config is not None else EeDeltaConfig()
        self.scene = Scene([], [])

    def reset(self, sim: TabletopSim, rng: np.random.Generator, split: str) -> str:
        """Set up a fresh episode in ``sim`` (already reset to home) and return its instruction."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.scene = self.build_scene(sim, rng, split)
        return self.instruction()

    def build_scene(self, sim: TabletopSim, rng: np.random.Generator, split: str) -> Scene:
        """Place cubes and pads with colours and positions drawn for ``split``, and vary the appearance."""
        palette = OOD_COLORS if split == "ood_color" else ID_COLORS
        region = self.ood_region if split == "ood_position" else ID_REGION
        num_blocks = self.num_blocks + (2 if split == "ood_distractor" else 0)
        if num_blocks > NUM_BLOCKS or self.num_pads > NUM_PADS:
            raise ValueError(f"{self.name}: scene has {NUM_BLOCKS} cubes and {NUM_PADS} pads")
        names = list(palette)
        block_colors = [names[i] for i in rng.permutation(len(names))[:num_blocks]]
        # the named cube never shares its colour with a pad, so the instruction is unambiguous
        pad_names = [name for name in names if name != block_colors[0]]
        pad_colors = [pad_names[i] for i in rng.permutation(len(pad_names))[: self.num_pads]]
        pads_xy: list[np.ndarray] = []
        for _ in range(self.num_pads):
            pads_xy.append(_sample_apart(rng, region, pads_xy, 2 * MIN_OBJECT_SPACING_M))
        placed = list(pads_xy)
        for i, color in enumerate(block_colors):
            accept = functools.partial(self.accepts_block, i, pads_xy=pads_xy)
            xy = _sample_apart(rng, region, placed, MIN_OBJECT_SPACING_M, accept)
            placed.append(xy)
            sim.place_block(i, xy, rng.uniform(-np.pi / 4, np.pi / 4), palette[color])
        for i, (xy, color) in enumerate(zip(pads_xy, pad_colors)):
            sim.place_pad(i, xy, palette[color])
        sim.apply_visual_variation(_visual_variation(rng, split))
        sim.forward()
        return Scene(block_colors, pad_colors)

    def accepts_block(self, index: int, xy: np.ndarray, pads_xy: list[np.ndarray]) -> bool:
        """Task-specific constraint on where cube ``index`` may spawn, beyond region and spacing."""
        return True

    @abc.abstractmethod
    def instruction(self) -> str:
        """The language instruction of the current episode."""

    @abc.abstractmethod
    def is_success(self, sim: TabletopSim) -> bool:
        """Privileged success predicate on the current sim state."""

    @abc.abstractmethod
    def expert(self) -> Expert:
        """A fresh scripted expert for the current episode."""

    def progress_potential(self, sim: TabletopSim) -> float:
        """Privileged progress in [0, 1] for dense rewards: half for the gripper's closeness to the named cube,
        half for the task's own progress (:meth:`goal_progress`)."""
        reach = _closeness(sim.tcp_position(), sim.block_position(0))
        return 0.5 * reach + 0.5 * float(np.clip(self.goal_progress(sim), 0.0, 1.0))

    @abc.abstractmethod
    def goal_progress(self, sim: TabletopSim) -> float:
        """How far the named cube is towards the task's goal, 1 at the goal."""


def _sample_apart(
    rng: np.random.Generator,
    region: SpawnRegion,
    placed: list[np.ndarray],
    spacing_m: float,
    accept: Callable[[np.ndarray], bool] = lambda xy: True,
) -> np.ndarray:
    for _ in range(1000):
        xy = region.sample(rng)
        if all(np.linalg.norm(xy - other) >= spacing_m for other in placed) and accept(xy):
            return xy
    raise RuntimeError(f"could not place an object {spacing_m} m from {len(placed)} others in {region}")


def _resting_on_table(sim: TabletopSim, block: int) -> bool:
    return sim.block_position(block)[2] < TABLE_TOP_Z_M + BLOCK_HALF_SIZE_M + RESTING_TOLERANCE_M


def _released(sim: TabletopSim, block: int) -> bool:
    return not any(sim.block_in_finger_contact(block))


def _closeness(position_m: np.ndarray, goal_m: np.ndarray) -> float:
    """1 at the goal, falling to about 0.24 at 10 cm and 0.05 at 20 cm away."""
    return 1.0 - float(np.tanh(5.0 * np.linalg.norm(np.asarray(position_m) - np.asarray(goal_m))))


class LiftTask(Task):
    """Grasp the named cube and lift it."""

    name = "lift"
    max_steps = 50
    num_blocks = 2
    LIFT_HEIGHT_M = 0.05

    def instruction(self) -> str:
        return f"lift the {self.scene.block_colors[0]} block"

    def is_success(self, sim: TabletopSim) -> bool:
        return bool(sim.block_position(0)[2] > TABLE_TOP_Z_M + BLOCK_HALF_SIZE_M + self.LIFT_HEIGHT_M)

    def goal_progress(self, sim: TabletopSim) -> float:
        return float(sim.block_position(0)[2] - TABLE_TOP_Z_M - BLOCK_HALF_SIZE_M) / self.LIFT_HEIGHT_M

    def expert(self) -> Expert:
        return PickAndPlaceExpert(0, self.config)


class PushTask(Task):
    """Push the named cube onto the named pad without lifting it."""

    name = "push"
    max_steps = 80
    num_blocks = 1
    num_pads = 2
    SUCCESS_RADIUS_M = 0.035
    PUSH_DISTANCE_M = (0.10, 0.18)
    """Range of the spawn distance between the cube and its target pad."""

    def accepts_block(self, index: int, xy: np.ndarray, pads_xy: list[np.ndarray]) -> bool:
        if index != 0:
            return True
        distance = np.linalg.norm(xy - pads_xy[0])
        return bool(self.PUSH_DISTANCE_M[0] <= distance <= self.PUSH_DISTANCE_M[1])

    def instruction(self) -> str:
        return f"push the {self.scene.block_colors[0]} block onto the {self.scene.pad_colors[0]} target"

    def is_success(self, sim: TabletopSim) -> bool:
        offset = sim.block_position(0)[:2] - sim.pad_position(0)[:2]
        return bool(np.linalg.norm(offset) < self.SUCCESS_RADIUS_M and _resting_on_table(sim, 0))

    def goal_progress(self, sim: TabletopSim) -> float:
        return _closeness(sim.block_position(0)[:2], sim.pad_position(0)[:2])

    def expert(self) -> Expert:
        return PushExpert(0, lambda sim: sim.pad_position(0)[:2], self.config)


class StackTask(Task):
    """Put the first named cube on top of the second."""

    name = "stack"
    max_steps = 80
    num_blocks = 2
    ALIGN_TOLERANCE_M = 0.02

    def instruction(self) -> str:
        return f"put the {self.scene.block_colors[0]} block on the {self.scene.block_colors[1]} block"

    def is_success(self, sim: TabletopSim) -> bool:
        top, bottom = sim.block_position(0), sim.block_position(1)
        height_m = top[2] - bottom[2]
        return bool(
            np.linalg.norm(top[:2] - bottom[:2]) < self.ALIGN_TOLERANCE_M
            and abs(height_m - 2 * BLOCK_HALF_SIZE_M) < RESTING_TOLERANCE_M
            and _resting_on_table(sim, 1)
            and _released(sim, 0)
        )

    def goal_progress(self, sim: TabletopSim) -> float:
        return _closeness(sim.block_position(0), sim.block_position(1) + [0.0, 0.0, 2 * BLOCK_HALF_SIZE_M])

    def expert(self) -> Expert:
        # release the carried cube 5 mm above where it rests on the bottom cube
        return PickAndPlaceExpert(
            0, self.config, place_at=lambda sim: sim.block_position(1) + [0.0, 0.0, 2 * BLOCK_HALF_SIZE_M + 0.005]
        )


class PlaceSideTask(Task):
    """Carry the named cube to the named side of the table."""

    name = "place_side"
    max_steps = 60
    num_blocks = 2
    ood_region = SpawnRegion(x_m=(0.28, 0.62), y_m=(-0.14, 0.14), exclude_x_m=(0.34, 0.56), exclude_y_m=(-0.16, 0.16))
    SIDE_OFFSET_M = 0.20
    """Distance from the centre line (y = 0) the cube must reach."""
    PLACE_OFFSET_M = 0.26
    """Distance from the centre line at which the expert sets the cube down."""
    PLACE_X_M = (0.32, 0.52)
    """Range of x the expert sets the cube down in (the arm's comfortable reach at that distance)."""
    SIDES = {"left": -1.0, "right": 1.0}
    """Side name to the sign of world y (as seen from the front camera)."""

    def reset(self, sim: TabletopSim, rng: np.random.Generator, split: str) -> str:
        self.side = str(rng.choice(list(self.SIDES)))
        instruction = super().reset(sim, rng, split)
        self.place_xy_m = np.array(
            [np.clip(sim.block_position(0)[0], *self.PLACE_X_M), self.SIDES[self.side] * self.PLACE_OFFSET_M]
        )
        return instruction

    def instruction(self) -> str:
        return f"move the {self.scene.block_colors[0]} block to the {self.side} side of the table"

    def is_success(self, sim: TabletopSim) -> bool:
        y = sim.block_position(0)[1] * self.SIDES[self.side]
        return bool(y > self.SIDE_OFFSET_M and _resting_on_table(sim, 0) and _released(sim, 0))

    def goal_progress(self, sim: TabletopSim) -> float:
        return float(sim.block_position(0)[1] * self.SIDES[self.side]) / self.SIDE_OFFSET_M

    def expert(self) -> Expert:
        place_m = np.append(self.place_xy_m, TABLE_TOP_Z_M + BLOCK_HALF_SIZE_M + 0.005)
        return PickAndPlaceExpert(0, self.config, place_at=lambda sim: place_m)


TASKS: dict[str, type[Task]] = {t.name: t for t in (LiftTask, PushTask, StackTask, PlaceSideTask)}
"""Task name to task class."""
