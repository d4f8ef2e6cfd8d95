"""Hypothesis strategies for malformed input to the running graph: service requests, messages, parameter changes.

Every :class:`ServiceCase` and :class:`ParameterCase` is built to be wrong (an unknown algorithm, a non-finite or
out-of-range override, a dataset outside the learner's data root, a checkpoint that is no checkpoint, a parameter of
the wrong type or a non-finite one, ...): the graph must refuse each with a reason. :class:`MessageCase`s are
published as they are (images of any size and encoding, joint states with NaN or 10 rad, chunks with NaN rows,
trajectories to the driver): no reply, but nothing may die and nothing unsafe may reach the arm. Messages on topics
that :class:`~rlvla_ros.graph_bench.command_monitor.CommandMonitor` reads carry its ``INJECTED_FRAME_ID``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from builtin_interfaces.msg import Duration, Time
from hypothesis import strategies as st
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rlvla_ros.algorithms import ALGORITHMS
from rlvla_ros.contract import ACTION_SPACE, ARM_JOINT_NAMES, SPLITS
from rlvla_ros.graph_bench.command_monitor import INJECTED_FRAME_ID
from rlvla_ros.msg import ActionChunk, EpisodeEvent, Observation, Reward, TaskSuccess
from rlvla_ros.sim.tasks import TASKS
from rlvla_ros.srv import GetFineTuneStatus, LoadCheckpoint, ResetEpisode, StartFineTune, StopFineTune

NON_FINITE = (math.nan, math.inf, -math.inf)
REPEAT_PERIOD_S = 0.02


@dataclass(frozen=True)
class ServiceCase:
    """A request that must be refused: ``service`` (relative to the graph's namespace) of type ``srv_type``."""

    service: str
    srv_type: Any
    request: Any


@dataclass(frozen=True)
class ParameterCase:
    """A parameter change that must be refused, sent to ``node``'s ``~/set_parameters``."""

    node: str
    parameter: Parameter


@dataclass(frozen=True)
class MessageCase:
    """A message published once on ``topic`` (relative to the graph's namespace)."""

    topic: str
    msg_type: Any
    message: Any
    repeats: int = 1
    """Times it is published, :data:`REPEAT_PERIOD_S` apart: a stream, as from a faulty or spoofed sensor."""
    follow_up: MessageCase | None = None
    """Published right after the stream (e.g. a command that meets the faulty state)."""


# Text the middleware carries unchanged (no NUL, no lone surrogates).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
floats = st.one_of(st.sampled_from(NON_FINITE + (10.0, -10.0, 1e300, 0.0, 1.0, -1.0)), st.floats(-5.0, 5.0))
floats32 = st.one_of(st.sampled_from(NON_FINITE + (10.0, -10.0, 3e38, 0.0, 1.0, -1.0)), st.floats(-5.0, 5.0))
"""For float32 fields (rosidl refuses finite values beyond float32's range)."""


def _fuzz_header() -> Header:
    return Header(frame_id=INJECTED_FRAME_ID)


def _not_a_mapping_of_overrides(text: str) -> bool:
    try:
        return not isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return True


def _numeric_fields(config_class: type) -> dict[str, type]:
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class) if hints[f.name] in (int, float)}


@st.composite
def bad_overrides(draw) -> tuple[str, str]:
    """(algorithm, overrides_yaml) where the overrides are sure to be refused."""
    algorithm = draw(st.sampled_from(sorted(ALGORITHMS)))
    config_class = ALGORITHMS[algorithm].config_class
    numeric = _numeric_fields(config_class)
    kind = draw(st.sampled_from(["unknown", "non_finite", "negative", "huge", "wrong_type", "not_a_mapping"]))
    if kind == "not_a_mapping":
        return algorithm, draw(st.one_of(st.just("{a: ["), st.lists(st.integers(), min_size=1).map(str),
                                         texts.filter(_not_a_mapping_of_overrides)))
    name = draw(st.sampled_from(sorted(numeric)))
    if kind == "unknown":
        name, value = "no_such_" + draw(texts), draw(floats)
    elif kind == "non_finite":
        value = draw(st.sampled_from(NON_FINITE))
    elif kind == "negative":
        value = -draw(st.integers(1, 2**64))
    elif kind == "huge":
        value = draw(st.integers(2**31, 2**64))
    else:
        value = draw(st.one_of(texts.map(lambda t: "x" + t), st.lists(st.integers(), min_size=1),
                               st.dictionaries(texts, st.integers(), min_size=1)))
    return algorithm, yaml.safe_dump({name: value}, default_flow_style=True)


@st.composite
def start_finetune_requests(draw) -> StartFineTune.Request:
    """A StartFineTune request with at least one defect: algorithm, overrides, datasets or steps."""
    defect = draw(st.sampled_from(["algorithm", "overrides", "datasets", "steps"]))
    algorithm, overrides, datasets, steps = draw(st.sampled_from(sorted(ALGORITHMS))), "", [], 0
    if defect == "algorithm":
        algorithm = draw(texts.filter(lambda t: t not in ALGORITHMS))
    elif defect == "overrides":
        algorithm, overrides = draw(bad_overrides())
    elif defect == "datasets":
        # Outside the data root, or below it but missing.
        datasets = draw(st.lists(st.one_of(st.sampled_from(["/", "/proc/1/cwd", "/proc/self/fd", "..", "../..",
                                                             "/etc", "/dev/null"]),
                                           texts.map(lambda t: "missing/" + t)), min_size=1, max_size=3))
    else:
        steps = draw(st.integers(10**9 + 1, 2**64 - 1))
    return StartFineTune.Request(algorithm=algorithm, datasets=datasets, steps=steps, overrides_yaml=overrides)


def service_cases() -> st.SearchStrategy[ServiceCase]:
    """Requests every node must refuse (no job runs, no checkpoint or classifier exists at these paths)."""
    paths = st.one_of(st.sampled_from(["", "/", "/proc/self", "/dev/null", "/etc/passwd", ".", ".."]), texts)
    return st.one_of(
        start_finetune_requests().map(lambda r: ServiceCase("learner/start_finetune", StartFineTune, r)),
        texts.map(lambda job: ServiceCase("learner/stop_finetune", StopFineTune, StopFineTune.Request(job_id=job))),
        texts.filter(bool).map(lambda job: ServiceCase(
            "learner/get_status", GetFineTuneStatus, GetFineTuneStatus.Request(job_id="no-such-job-" + job))),
        paths.map(lambda p: ServiceCase("policy/load_checkpoint", LoadCheckpoint, LoadCheckpoint.Request(path=p))),
        paths.map(lambda p: ServiceCase("reward/load_classifier", LoadCheckpoint, LoadCheckpoint.Request(path=p))),
        st.builds(lambda task, split, seed: ServiceCase("reset_episode", ResetEpisode, ResetEpisode.Request(
            task=task, split=split, seed=seed)),
            texts.filter(lambda t: t not in TASKS and t != ""), st.sampled_from(SPLITS), st.integers(-5, 2**31)),
        st.builds(lambda task, split: ServiceCase("reset_episode", ResetEpisode, ResetEpisode.Request(
            task=task, split=split, seed=0)), st.sampled_from(sorted(TASKS)), texts.filter(
            lambda t: t not in SPLITS and t != "")),
    )


def _parameter(name: str, value: Any) -> Parameter:
    if isinstance(value, bool):
        return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value))
    if isinstance(value, int):
        return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value))
    if isinstance(value, float):
        return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
    if isinstance(value, str):
        return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    return Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY,
                                                     string_array_value=list(value)))


def parameter_cases(node_configs: dict[str, type]) -> st.SearchStrategy[ParameterCase]:
    """Changes each node must refuse: undeclared names, values of another type, non-finite numbers.
    ``node_configs``: node name -> its parameter dataclass."""

    @st.composite
    def case(draw) -> ParameterCase:
        node = draw(st.sampled_from(sorted(node_configs)))
        hints = typing.get_type_hints(node_configs[node])
        fields = sorted(f.name for f in dataclasses.fields(node_configs[node]))
        kind = draw(st.sampled_from(["undeclared", "wrong_type", "non_finite"]))
        if kind == "undeclared":
            return ParameterCase(node, _parameter("no_such_" + draw(texts), draw(st.one_of(floats, texts))))
        float_fields = [name for name in fields if hints[name] is float]
        if kind == "non_finite" and float_fields:
            return ParameterCase(node, _parameter(draw(st.sampled_from(float_fields)), draw(
                st.sampled_from(NON_FINITE))))
        name = draw(st.sampled_from(fields))
        # A value of a type the field never takes (a float field takes ints too).
        int64 = st.integers(-2**63, 2**63 - 1)  # what a parameter message carries
        wrong = {bool: texts.map(lambda t: "x" + t), int: texts.map(lambda t: "x" + t), float: st.lists(
            texts, min_size=1), str: int64, list[str]: int64, list[float]: texts, list[int]: texts}[hints[name]]
        return ParameterCase(node, _parameter(name, draw(wrong)))

    return case()


@st.composite
def images(draw) -> Image:
    """An image of any size, encoding and data length (mostly consistent, so that it reaches the decoders)."""
    encoding = draw(st.sampled_from(["rgb8", "bgr8", "mono8", "rgba8", "16UC1", "jpeg", ""]))
    width, height = draw(st.integers(0, 160)), draw(st.integers(0, 160))
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "16UC1": 2}.get(encoding, 3)
    length = max(width * height * channels + draw(st.sampled_from([0, 0, 0, -1, 1, -width])), 0)
    data = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, length, dtype=np.uint8)
    step = width * channels + draw(st.sampled_from([0, 0, 1, -1]))
    return Image(header=_fuzz_header(), height=height, width=width, encoding=encoding,
                 step=max(step, 0) % 2**32, data=data.tobytes())


@st.composite
def joint_states(draw) -> JointState:
    names = draw(st.one_of(st.just(list(ARM_JOINT_NAMES)), st.permutations(ARM_JOINT_NAMES).map(list),
                           st.lists(st.one_of(st.sampled_from(ARM_JOINT_NAMES + ("finger_left",)), texts), max_size=7)))
    size = draw(st.sampled_from([len(names), len(names), len(names) - 1, len(names) + 1]))
    # Each value drawn on its own, or one implausible value on every joint (a faulty encoder, a spoofed topic).
    positions = draw(st.one_of(st.lists(floats, min_size=max(size, 0), max_size=max(size, 0)),
                               st.sampled_from([10.0, -10.0, math.nan]).map(lambda v: [v] * max(size, 0))))
    return JointState(header=_fuzz_header(), name=names, position=positions,
                      velocity=draw(st.lists(floats, max_size=3)))


@st.composite
def action_chunks(draw) -> ActionChunk:
    horizon, dim = draw(st.integers(0, 6)), draw(st.sampled_from([5, 5, 5, 0, 4, 6]))
    size = max(horizon * dim + draw(st.sampled_from([0, 0, 0, -1, 1])), 0)
    # Mostly in range, with a few NaN, infinite or huge values anywhere (a later row included).
    actions = draw(st.lists(st.one_of(st.floats(-1.0, 1.0, width=32), floats32), min_size=size, max_size=size))
    return ActionChunk(
        episode_id=draw(texts), step=draw(st.integers(0, 2**31)), horizon=horizon, action_dim=dim, actions=actions,
        action_space=draw(st.sampled_from([ACTION_SPACE, ACTION_SPACE, "joint", ""])),
        log_probs=draw(st.lists(floats32, max_size=6)), value=draw(floats32), policy_version=draw(st.integers(0, 9)),
        source=draw(st.sampled_from(["policy", "teleop", "expert", ""])))


def valid_teleop_chunks() -> st.SearchStrategy[MessageCase]:
    """A well-formed teleop chunk (in range, unstamped: executed at once on the newest joint state)."""
    return st.lists(st.floats(-1.0, 1.0, width=32), min_size=20, max_size=20).map(lambda actions: MessageCase(
        "teleop/action_chunk", ActionChunk, ActionChunk(horizon=4, action_dim=5, actions=actions,
                                                        action_space=ACTION_SPACE, source="teleop")))


@st.composite
def trajectories(draw) -> JointTrajectory:
    names = draw(st.one_of(st.just(list(ARM_JOINT_NAMES)), st.lists(texts, max_size=6)))
    points = []
    for _ in range(draw(st.integers(0, 4))):
        width = draw(st.sampled_from([len(names), len(names), len(names) + 1]))
        seconds = draw(st.integers(0, 3))
        points.append(JointTrajectoryPoint(
            positions=draw(st.lists(floats, min_size=width, max_size=width)),
            time_from_start=Duration(sec=seconds, nanosec=draw(st.integers(0, 999_999_999)))))
    return JointTrajectory(header=_fuzz_header(), joint_names=names, points=points)


@st.composite
def observations(draw) -> Observation:
    return Observation(
        images=draw(st.lists(images(), max_size=2)), camera_names=draw(st.lists(texts, max_size=2)),
        proprioception=draw(st.lists(floats, max_size=7)), proprioception_names=draw(st.lists(texts, max_size=7)),
        instruction=draw(texts), episode_id=draw(texts), step=draw(st.integers(0, 2**31)))


def message_cases() -> st.SearchStrategy[MessageCase]:
    """Messages for every topic the graph's nodes read."""
    chunk = action_chunks()
    return st.one_of(
        images().map(lambda m: MessageCase("camera/image_raw", Image, m)),
        st.builds(lambda m, repeats, chunk: MessageCase("joint_states", JointState, m, repeats, chunk),
                  joint_states(), st.sampled_from([1, 10]), st.one_of(st.none(), valid_teleop_chunks())),
        chunk.map(lambda m: MessageCase("action_chunk", ActionChunk, m)),
        chunk.map(lambda m: MessageCase("teleop/action_chunk", ActionChunk, m)),
        chunk.map(lambda m: MessageCase("executed_action", ActionChunk, m)),
        trajectories().map(lambda m: MessageCase("arm_controller/joint_trajectory", JointTrajectory, m)),
        observations().map(lambda m: MessageCase("observation", Observation, m)),
        st.builds(lambda s, ok: MessageCase("sim/success", TaskSuccess, TaskSuccess(
            header=Header(stamp=Time(sec=s)), success=ok)),
            st.integers(0, 2**31 - 1), st.booleans()),
        st.builds(lambda episode, step, value: MessageCase("reward", Reward, Reward(
            episode_id=episode, step=step, reward=value, sparse_reward=value, success_probability=value)),
            texts, st.integers(0, 2**31), floats32),
        st.builds(lambda text: MessageCase("instruction", String, String(data=text)), texts),
        st.builds(lambda event, episode, seed: MessageCase("episode_event", EpisodeEvent, EpisodeEvent(
            event=event, episode_id=episode, seed=seed)), st.integers(0, 255), texts, st.integers(-2**31, 2**31)),
    )


def graph_cases(node_configs: dict[str, type]) -> st.SearchStrategy[ServiceCase | ParameterCase | MessageCase]:
    """One malformed request, parameter change or message, the three kinds equally often."""
    kinds = [service_cases(), parameter_cases(node_configs), message_cases()]
    # A wide integer modulo 3 picks the kinds about equally often (sampled_from favours its first element).
    return st.integers(0, 2**16 - 1).flatmap(lambda n: kinds[n % len(kinds)])
