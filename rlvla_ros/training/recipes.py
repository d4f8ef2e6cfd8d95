"""Named recipes: every setting of a BC -> RL -> steering run in one YAML file, ``config/recipes/<name>.yaml``.

`rlvla demo`, ``python -m rlvla_ros.training.experiments`` and the learner service (a ``recipe`` key in a job's
overrides) all read these files, so a recipe has one source. Budgets are counts (steps, iterations, episodes), never
seconds: the same recipe and seeds give the same updates on any machine. ROS-free.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).resolve().parents[2] / "config" / "recipes"
"""The recipes of a source checkout (an editable install); ``make setup`` installs a copy to the package's share."""


@dataclass(frozen=True)
class Recipe:
    """The settings of one run. Keys without a default must be in the file."""

    description: str
    """What the recipe is for, one sentence."""
    tasks: list[str]
    """Tasks of the demonstrations, BC, RL and evaluation."""
    image_size: int
    """Camera image side in the graph, the policy and the rollouts."""
    chunk_size: int
    """Action chunk horizon."""
    policy_type: str
    """Registered policy type BC trains from scratch."""
    seed: int
    """Seed of the learning jobs."""
    demo_episodes: int
    """Scripted-expert demonstrations per task (ID split, seeds 10000..)."""
    bc_steps: int
    """BC gradient steps."""
    bc_overrides: dict
    """Config overrides of the BC job."""
    rl_algorithm: str
    """Online RL algorithm (ppo or grpo)."""
    rl_iterations: int
    """Iterations of the online RL job: its budget (a ``time_budget_s`` in ``rl_overrides`` is a safety cap only)."""
    rl_overrides: dict
    """Config overrides of the online RL job."""
    eval_episodes: int
    """Test episodes per task and split (seeds 0 .. eval_episodes - 1)."""
    graph_policy_episodes: int = 0
    """Episodes the BC policy runs on the graph, recorded for the value model (`rlvla demo` only)."""
    value_steps: int = 0
    """Gradient steps of the steering chunk Q-function (`rlvla demo` only)."""
    value_overrides: dict = field(default_factory=dict)
    """Config overrides of the value job (`rlvla demo` only), e.g. ``encoder: policy``, ``rollout_episodes``."""
    steering_candidates: int = 0
    """Candidate chunks per decision with test-time steering, the policy's mode among them (`rlvla demo` only)."""
    steering_temperature: float = 1.0
    """Temperature of the sampled steering candidates (and of the value job's policy samples and rollouts)."""
    steering_margin: float = 0.0
    """A sample replaces the mode only if every critic scores it higher by more than this."""
    name: str = field(default="", compare=False)
    """The file's stem (set by :func:`load_recipe`, not a key of the file)."""
    path: str = field(default="", compare=False)
    """The file it was read from (set by :func:`load_recipe`)."""

    def job(self, algorithm: str) -> tuple[int, dict[str, Any]]:
        """Steps and overrides of this recipe's ``algorithm`` job (bc, its RL algorithm or value); ValueError for
        another algorithm."""
        common = {"seed": self.seed, "tasks": list(self.tasks)}
        policy = {**common, "image_size": self.image_size, "chunk_size": self.chunk_size,
                  "policy_type": self.policy_type}
        if algorithm == "bc":
            return self.bc_steps, {**policy, **self.bc_overrides}
        if algorithm == self.rl_algorithm:
            return self.rl_iterations, {**policy, **self.rl_overrides}
        if algorithm == "value" and self.value_steps > 0:
            return self.value_steps, {**common, "sample_temperature": self.steering_temperature,
                                      **self.value_overrides}
        raise ValueError(f"recipe {self.name or self.path!r} has no {algorithm!r} job "
                         f"(it has bc, {self.rl_algorithm}{', value' if self.value_steps > 0 else ''})")


_FILE_KEYS = [f for f in dataclasses.fields(Recipe) if f.name not in ("name", "path")]
_COUNTS = ("image_size", "chunk_size", "demo_episodes", "bc_steps", "rl_iterations", "eval_episodes")
"""Keys that must be positive; the demo-only ones may be 0 (stage absent)."""


def recipe_path(name_or_path: str) -> Path:
    """The file of a recipe name (``demo``: ``config/recipes/demo.yaml``) or path; ValueError naming the known
    recipes when there is none."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"recipe file {text!r} does not exist")
        return path.resolve()
    for directory in _recipe_dirs():
        if (directory / f"{text}.yaml").is_file():
            return directory / f"{text}.yaml"
    known = sorted({p.stem for d in _recipe_dirs() for p in d.glob("*.yaml")})
    raise ValueError(f"unknown recipe {text!r}; known: {', '.join(known) or 'none'}")


def load_recipe(name_or_path: str) -> Recipe:
    """Read and validate a recipe; ValueError naming the file and what is wrong (unknown or missing keys, wrong
    types, negative counts, non-finite numbers)."""
    path = recipe_path(name_or_path)
    where = f"recipe {path}"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{where} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    names = {f.name for f in _FILE_KEYS}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid: {sorted(names)}")
    required = [f.name for f in _FILE_KEYS
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    hints = typing.get_type_hints(Recipe)
    for key, value in data.items():
        _check_type(where, key, value, hints[key])
        _check_finite(where, key, value)
    for key in _COUNTS:
        if data[key] <= 0:
            raise ValueError(f"{where}: {key} must be > 0, got {data[key]}")
    for key in ("graph_policy_episodes", "value_steps", "steering_candidates"):
        if data.get(key, 0) < 0:
            raise ValueError(f"{where}: {key} must be >= 0, got {data[key]}")
    if data.get("steering_temperature", 1.0) <= 0 or data.get("steering_margin", 0.0) < 0:
        raise ValueError(f"{where}: steering_temperature must be > 0 and steering_margin >= 0")
    if not data["tasks"]:
        raise ValueError(f"{where}: tasks must name at least one task")
    if "time_budget_s" in data["rl_overrides"] and data["rl_overrides"]["time_budget_s"] <= 0:
        raise ValueError(f"{where}: rl_overrides.time_budget_s is a safety cap and must be > 0 where given")
    recipe = Recipe(**data, name=path.stem, path=str(path))
    _check_jobs(where, recipe)
    return recipe


def _check_jobs(where: str, recipe: Recipe) -> None:
    """Each job's overrides build its trainer's config, so a typo fails at load, not minutes into a run."""
    from rlvla_ros.algorithms import ALGORITHMS, apply_overrides

    if recipe.rl_algorithm not in ALGORITHMS:
        raise ValueError(f"{where}: unknown rl_algorithm {recipe.rl_algorithm!r}; valid: {sorted(ALGORITHMS)}")
    for algorithm in ("bc", recipe.rl_algorithm, *(("value",) if recipe.value_steps > 0 else ())):
        # The demo's value job steers its RL checkpoint, known only at run time.
        start = {"init_checkpoint": "<the RL checkpoint>"} if algorithm == "value" else {}
        try:
            apply_overrides(ALGORITHMS[algorithm].config_class, {**start, **recipe.job(algorithm)[1]})
        except ValueError as err:
            raise ValueError(f"{where}: the {algorithm} job: {err}") from None


def _recipe_dirs() -> list[Path]:
    dirs = [RECIPES_DIR]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        dirs.append(Path(get_package_share_directory("rlvla_ros")) / "config" / "recipes")
    except (ImportError, PackageNotFoundError, ValueError, LookupError):
        pass  # no ROS environment: the source tree's recipes only
    return [d for d in dirs if d.is_dir()]


def _check_type(where: str, key: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint) or hint
    if origin is list:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
        expected = "a list of strings"
    elif origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        expected = "a mapping of names to values"
    elif origin is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    else:
        ok, expected = isinstance(value, origin), f"a {origin.__name__}"
    if not ok:
        raise ValueError(f"{where}: {key} must be {expected}, got {value!r}")


def _check_finite(where: str, key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {key} must be a finite number, got {value}")
    if isinstance(value, dict):
        for inner, item in value.items():
            _check_finite(where, f"{key}.{inner}", item)
    if isinstance(value, list):
        for item in value:
            _check_finite(where, key, item)
