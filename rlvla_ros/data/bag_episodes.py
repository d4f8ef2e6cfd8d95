"""Episodes to and from rosbag2 bags: join Observation, ActionChunk, Reward and EpisodeEvent on (episode, step).

A chunk answers the observation that has its header stamp (the policy node copies it; a driver's expert or a
teleop device stamps it with the sensor time it acted on), so it is filed at that observation's step whatever its own
step field says: a lock-step simulator's expert counts steps from the reset, while the perception node counts from
the START it saw, which can come a few sensor sets later. Chunks that match no observation keep their step.

The join (:class:`EpisodeTables`, :func:`file_message`, :func:`tables_to_episode`) works on any message objects
with the interface fields, so the learner's live-graph rollout source uses it on rclpy messages too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReaderError
from rosbags.serde import SerdeError

from rlvla_ros.contract import ACTION_DIM, ACTION_SPACE, EPISODE_END, EPISODE_START, TERMINATION_STALLED
from rlvla_ros.data.bag_reader import open_bag
from rlvla_ros.data.bag_writer import BagWriter
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.typestore import ACTION_CHUNK, EPISODE_EVENT, OBSERVATION, REWARD

_TELEOP = "teleop"
_POLICY = "policy"


@dataclass
class _Chunk:
    step: int
    actions: np.ndarray  # (H, D)
    log_probs: np.ndarray | None  # (H,) or None
    teleop: bool
    stamp_ns: int  # 0: unstamped


@dataclass
class EpisodeTables:
    """Everything a bag holds about one episode, keyed by step."""

    start: object | None = None
    end: object | None = None
    observations: dict[int, tuple[np.ndarray | None, np.ndarray, tuple[str, ...], str]] = field(default_factory=dict)
    observation_steps: dict[int, int] = field(default_factory=dict)
    """Step of the observation with each (non-zero) header stamp."""
    chunks: list[_Chunk] = field(default_factory=list)
    rewards: dict[int, object] = field(default_factory=dict)


@dataclass
class _Joined:
    """The longest run of steps 0..T-1 that has an observation, an executed action and a reward."""

    episode_id: str
    steps: int
    complete: bool
    meta: dict
    actions: np.ndarray
    rewards: np.ndarray
    successes: np.ndarray
    interventions: np.ndarray
    log_probs: np.ndarray | None


def image_to_array(image) -> np.ndarray:
    """(H, W, 3) uint8 RGB view of a sensor_msgs/Image in rgb8 or bgr8."""
    if image.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"unsupported image encoding {image.encoding!r}; expected rgb8 or bgr8")
    rows = np.asarray(image.data, dtype=np.uint8).reshape(image.height, image.step)
    array = rows[:, : image.width * 3].reshape(image.height, image.width, 3)
    return array[..., ::-1] if image.encoding == "bgr8" else array


def _read_tables(
    path: Path, camera: str | None, with_images: bool, topic_stats: dict[str, dict] | None = None
) -> dict[str, EpisodeTables]:
    """Episode tables of one bag; with `topic_stats`, also count every topic's messages and time span into it."""
    tables: dict[str, EpisodeTables] = {}
    with open_bag(path) as reader:
        wanted = (OBSERVATION, ACTION_CHUNK, REWARD, EPISODE_EVENT)
        connections = reader.connections if topic_stats is not None else [
            c for c in reader.connections if c.msgtype in wanted
        ]
        try:
            for connection, timestamp, raw in reader.messages(connections=connections):
                if topic_stats is not None:
                    stats = topic_stats.setdefault(
                        connection.topic, {"type": connection.msgtype, "count": 0, "first_ns": timestamp}
                    )
                    stats["count"] += 1
                    stats["last_ns"] = timestamp
                if connection.msgtype in wanted:
                    msg = reader.deserialize(raw, connection.msgtype)
                    episode = tables.setdefault(msg.episode_id, EpisodeTables())
                    file_message(episode, connection.msgtype, msg, camera, with_images, path)
        except (AnyReaderError, SerdeError) as err:
            raise ValueError(f"corrupt message in bag {path}: {err}") from err
    return tables


def file_message(tables: EpisodeTables, msgtype: str, msg, camera: str | None, with_images: bool, path) -> None:
    """File one Observation / ActionChunk / Reward / EpisodeEvent (``msgtype``) of an episode into its tables;
    ``path`` names the source in error messages."""
    if msgtype == EPISODE_EVENT:
        if msg.event == EPISODE_START:
            tables.start = msg
        elif msg.event == EPISODE_END:
            tables.end = msg
    elif msgtype == OBSERVATION:
        names = tuple(msg.camera_names)
        if camera is None:
            index = 0
        elif camera in names:
            index = names.index(camera)
        else:
            raise ValueError(f"{path}: camera {camera!r} not in observation cameras {names}")
        if index >= len(msg.images):
            raise ValueError(f"{path}: observation {msg.episode_id}/{msg.step} has no image")
        image = image_to_array(msg.images[index]) if with_images else None
        proprio = np.asarray(msg.proprioception, dtype=np.float32)
        tables.observations[msg.step] = (image, proprio, tuple(msg.proprioception_names), msg.instruction)
        if stamp := _stamp_ns(msg):
            tables.observation_steps[stamp] = msg.step
    elif msgtype == ACTION_CHUNK:
        if msg.action_dim != ACTION_DIM:
            raise ValueError(f"{path}: action chunk with action_dim {msg.action_dim}, expected {ACTION_DIM}")
        actions = np.asarray(msg.actions, dtype=np.float32).reshape(msg.horizon, msg.action_dim)
        log_probs = np.asarray(msg.log_probs, dtype=np.float32) if len(msg.log_probs) == msg.horizon else None
        tables.chunks.append(_Chunk(msg.step, actions, log_probs, msg.source == _TELEOP, _stamp_ns(msg)))
    else:
        tables.rewards[msg.step] = msg


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _chunks_by_step(tables: EpisodeTables) -> dict[int, _Chunk]:
    """Chunks keyed by the step of the observation they answer. Of two for one step, a teleop override wins over the
    chunk it replaced, then one that matched an observation's stamp, then the later one."""
    by_step: dict[int, tuple[tuple[bool, bool], _Chunk]] = {}
    for chunk in tables.chunks:
        matched = tables.observation_steps.get(chunk.stamp_ns)  # unstamped (0) never matches
        step = chunk.step if matched is None else matched
        rank = (chunk.teleop, matched is not None)
        if step not in by_step or rank >= by_step[step][0]:
            by_step[step] = (rank, replace(chunk, step=step))
    return {step: chunk for step, (_, chunk) in by_step.items()}


def _covering_chunk(chunks: dict[int, _Chunk], step: int, max_horizon: int) -> _Chunk | None:
    """Newest chunk published at a step s <= `step` whose horizon still covers `step`."""
    for start in range(step, max(step - max_horizon, -1), -1):
        chunk = chunks.get(start)
        if chunk is not None and step - start < len(chunk.actions):
            return chunk
    return None


def _join(episode_id: str, tables: EpisodeTables) -> _Joined:
    """Executed action at step t: row t - s of the newest chunk published at a step s <= t that covers t."""
    limit = tables.end.length if tables.end is not None else None
    chunks = _chunks_by_step(tables)
    max_horizon = max((len(c.actions) for c in chunks.values()), default=0)
    actions, rewards, successes, interventions, log_probs = [], [], [], [], []
    step = 0
    while limit is None or step < limit:
        chunk = _covering_chunk(chunks, step, max_horizon)
        if chunk is None or step not in tables.observations or step not in tables.rewards:
            break
        row = step - chunk.step
        actions.append(chunk.actions[row])
        reward = tables.rewards[step]
        rewards.append(reward.reward)
        successes.append(reward.success)
        interventions.append(chunk.teleop)
        log_probs.append(chunk.log_probs[row] if chunk.log_probs is not None else np.nan)
        step += 1
    event = tables.start if tables.start is not None else tables.end
    first_obs = tables.observations.get(0)
    meta = {
        "instruction": event.instruction if event is not None else (first_obs[3] if first_obs else ""),
        "task": event.task if event is not None else "",
        "split": event.split if event is not None else "",
        "seed": int(event.seed) if event is not None else 0,
        "success": bool(tables.end.success) if tables.end is not None else None,
        "termination_reason": tables.end.termination_reason if tables.end is not None else "",
    }
    log_prob_array = np.asarray(log_probs, dtype=np.float32)
    return _Joined(
        episode_id=episode_id,
        steps=step,
        # A stalled episode is a failure of the graph, not an outcome of the policy, and its recording stops where
        # messages were lost; the episode manager runs its seed again.
        complete=limit is not None and step == limit and meta["termination_reason"] != TERMINATION_STALLED,
        meta=meta,
        actions=np.asarray(actions, dtype=np.float32).reshape(step, ACTION_DIM),
        rewards=np.asarray(rewards, dtype=np.float32),
        successes=np.asarray(successes, dtype=bool),
        interventions=np.asarray(interventions, dtype=bool),
        log_probs=None if np.isnan(log_prob_array).all() else log_prob_array,
    )


def scan_bag(path: Path | str) -> dict:
    """Summary of one bag without decoding images: `{"topics": {name: {type, count, first_ns, last_ns}},
    "episodes": [{episode_id, task, split, seed, instruction, termination_reason, steps, complete, success,
    episode_return, intervention_steps}]}`, episodes in recording order."""
    topics: dict[str, dict] = {}
    tables = _read_tables(Path(path), camera=None, with_images=False, topic_stats=topics)
    episodes = []
    for episode_id, episode_tables in tables.items():
        joined = _join(episode_id, episode_tables)
        success = joined.meta["success"]
        episodes.append(
            {
                "episode_id": episode_id,
                **{k: joined.meta[k] for k in ("task", "split", "seed", "instruction", "termination_reason")},
                "steps": joined.steps,
                "complete": joined.complete,
                "success": bool(joined.successes[-1]) if success is None and joined.steps else bool(success),
                "episode_return": float(joined.rewards.sum(dtype=np.float64)),
                "intervention_steps": int(joined.interventions.sum()),
            }
        )
    return {"topics": topics, "episodes": episodes}


def episodes_from_bag(
    path: Path | str, *, camera: str | None = None, include_incomplete: bool = False
) -> list[EpisodeRecord]:
    """Rebuild the episodes recorded in one bag, in recording order.

    Steps are joined on (episode_id, step). An episode is complete when it has an END event that is not "stalled"
    and all of its `length` steps have an observation, an executed action and a reward. A bag that ends mid-episode
    (or lost messages) yields incomplete episodes: they are dropped unless `include_incomplete`, in which case they keep
    the longest fully joined prefix of steps and have `complete=False`. Episodes with no joined step are always
    dropped. `camera` picks the observation image by camera name (default: the first camera).
    """
    path = Path(path)
    episodes = []
    for episode_id, tables in _read_tables(path, camera, with_images=True).items():
        episode = tables_to_episode(episode_id, tables, include_incomplete=include_incomplete)
        if episode is not None:
            episodes.append(episode)
    return episodes


def tables_to_episode(
    episode_id: str, tables: EpisodeTables, *, include_incomplete: bool = False
) -> EpisodeRecord | None:
    """The joined episode of ``tables`` (filed with images); None when it has no joined step, or is incomplete and
    ``include_incomplete`` is False."""
    joined = _join(episode_id, tables)
    if joined.steps == 0 or not (joined.complete or include_incomplete):
        return None
    observations = [tables.observations[t] for t in range(joined.steps)]
    return EpisodeRecord(
        episode_id=episode_id,
        instruction=joined.meta["instruction"],
        images=np.stack([obs[0] for obs in observations]),
        proprio=np.stack([obs[1] for obs in observations]),
        actions=joined.actions,
        rewards=joined.rewards,
        successes=joined.successes,
        interventions=joined.interventions,
        log_probs=joined.log_probs,
        task=joined.meta["task"],
        split=joined.meta["split"],
        seed=joined.meta["seed"],
        success=joined.meta["success"],
        termination_reason=joined.meta["termination_reason"],
        complete=joined.complete,
        proprio_names=observations[0][2],
    )


@dataclass(frozen=True)
class EpisodeTopics:
    """Topic names `write_episode` records on."""

    observation: str = "/rlvla/observation"
    """rlvla_ros/msg/Observation topic."""
    action_chunk: str = "/rlvla/action_chunk"
    """rlvla_ros/msg/ActionChunk topic."""
    reward: str = "/rlvla/reward"
    """rlvla_ros/msg/Reward topic."""
    episode_event: str = "/rlvla/episode_event"
    """rlvla_ros/msg/EpisodeEvent topic."""


def write_episode(
    writer: BagWriter,
    episode: EpisodeRecord,
    *,
    start_time_ns: int | None = None,
    period_s: float = 0.1,
    camera: str = "front",
    topics: EpisodeTopics = EpisodeTopics(),
) -> int:
    """Record an episode (e.g. a simulated demonstration) as the live graph would: START, then per step an
    Observation, a one-row ActionChunk (source teleop where intervened) and a Reward, then END.

    Returns the timestamp (ns) after the last message, to chain episodes.
    """
    store = writer.typestore
    types = store.types
    writer.add_topic(topics.episode_event, EPISODE_EVENT)
    writer.add_topic(topics.observation, OBSERVATION)
    writer.add_topic(topics.action_chunk, ACTION_CHUNK)
    writer.add_topic(topics.reward, REWARD)
    period_ns = int(period_s * 1e9)
    stamp_ns = time.time_ns() if start_time_ns is None else start_time_ns

    def header(ns: int):
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=camera
        )

    def event(kind: int, ns: int):
        end = kind == EPISODE_END
        first_ns = 0 if end else ns + period_ns  # START names step 0's observation
        return types[EPISODE_EVENT](
            header=header(ns),
            event=kind,
            episode_id=episode.episode_id,
            task=episode.task,
            split=episode.split,
            seed=episode.seed,
            instruction=episode.instruction,
            first_set_stamp=types["builtin_interfaces/msg/Time"](sec=first_ns // 10**9, nanosec=first_ns % 10**9),
            success=episode.success and end,
            episode_return=episode.episode_return if end else 0.0,
            length=len(episode) if end else 0,
            termination_reason=episode.termination_reason if end else "",
            intervention_steps=episode.intervention_steps if end else 0,
        )

    def put(topic: str, msgtype: str, msg, ns: int) -> None:
        writer.write(topic, store.serialize_cdr(msg, msgtype), ns)

    put(topics.episode_event, EPISODE_EVENT, event(EPISODE_START, stamp_ns), stamp_ns)
    height, width = episode.images.shape[1:3]
    for step in range(len(episode)):
        ns = stamp_ns + (step + 1) * period_ns
        image = types["sensor_msgs/msg/Image"](
            header=header(ns),
            height=height,
            width=width,
            encoding="rgb8",
            is_bigendian=0,
            step=width * 3,
            data=np.ascontiguousarray(episode.images[step]).reshape(-1),
        )
        observation = types[OBSERVATION](
            header=header(ns),
            images=[image],
            camera_names=[camera],
            proprioception=episode.proprio[step].astype(np.float64),
            proprioception_names=list(episode.proprio_names),
            instruction=episode.instruction,
            episode_id=episode.episode_id,
            step=step,
        )
        log_prob = episode.log_probs[step : step + 1] if episode.log_probs is not None else np.empty(0, np.float32)
        chunk = types[ACTION_CHUNK](
            header=header(ns),
            episode_id=episode.episode_id,
            step=step,
            horizon=1,
            action_dim=ACTION_DIM,
            actions=episode.actions[step].astype(np.float32),
            action_space=ACTION_SPACE,
            log_probs=log_prob.astype(np.float32),
            value=np.float32(np.nan),
            policy_version=0,
            source=_TELEOP if episode.interventions[step] else _POLICY,
        )
        reward = types[REWARD](
            header=header(ns),
            episode_id=episode.episode_id,
            step=step,
            reward=float(episode.rewards[step]),
            sparse_reward=float(episode.successes[step]),
            shaping_reward=float(episode.rewards[step] - float(episode.successes[step])),
            success_probability=float(episode.successes[step]),
            success=bool(episode.successes[step]),
            source="sim_privileged",
        )
        put(topics.observation, OBSERVATION, observation, ns)
        put(topics.action_chunk, ACTION_CHUNK, chunk, ns + 1)
        put(topics.reward, REWARD, reward, ns + 2)
    end_ns = stamp_ns + (len(episode) + 1) * period_ns
    put(topics.episode_event, EPISODE_EVENT, event(EPISODE_END, end_ns), end_ns)
    return end_ns + period_ns
