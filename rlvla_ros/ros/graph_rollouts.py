"""Episodes from the live ROS graph: the rollout source of the learner node with ``rollout_source: graph``.

:class:`EpisodeAssembler` (ROS-free) files streamed ``observation``, ``executed_action`` (ActionChunk rows as the
safety filter ran them, log-probs kept), ``reward`` and ``episode_event`` messages with the same join as recorded
bags (:func:`rlvla_ros.data.bag_episodes.file_message` / :func:`tables_to_episode`) and releases an episode once its
END event and every step's messages are in; an episode still missing messages ``episode_timeout_s`` after its END
is dropped, and so is one that ended ``stalled`` (the graph stopped: its end says nothing about the policy).

:class:`GraphRolloutSource` subscribes those topics on the learner node. Each ``collect`` first publishes the
current weights to the policy node (a checkpoint in ``sync_dir`` and a ``LoadCheckpoint`` call), forgets episodes
that started before the new weights were in force (they are off-policy), then waits for as many complete episodes
as were asked for. The episode manager decides tasks and seeds: for GRPO it must repeat each initial state
``group_size`` times (groups are formed by (task, split, seed)); the policy node's temperature must equal the job's
``temperature`` (the log-probs are computed under it) and the safety filter should execute whole chunks
(``execute_steps`` = chunk size) for exact chunk-level ratios. Rollout workers on other hosts join through DDS: any
sim_bridge or real arm with its policy node in the same domain and namespace feeds this source.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvla_ros.contract import EPISODE_END, UNCOUNTED_TERMINATIONS
from rlvla_ros.data.bag_episodes import EpisodeTables, file_message, tables_to_episode
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.typestore import ACTION_CHUNK, EPISODE_EVENT, OBSERVATION, REWARD
from rlvla_ros.policies import Policy
from rlvla_ros.rollouts.sim_rollouts import EpisodeSpec


class EpisodeAssembler:
    """Joins streamed episode messages into :class:`EpisodeRecord`s; thread-safe."""

    def __init__(self, episode_timeout_s: float = 120.0, camera: str | None = None) -> None:
        self.episode_timeout_s = episode_timeout_s
        self.camera = camera
        self._tables: dict[str, EpisodeTables] = {}
        self._first_seen_s: dict[str, float] = {}
        self._ended_s: dict[str, float] = {}
        self._ready: list[tuple[float, EpisodeRecord]] = []
        """Complete episodes with the arrival time of their first message."""
        self._lock = threading.Lock()
        self.dropped = 0
        """Episodes given up on (messages still missing after the timeout)."""

    def add(self, msgtype: str, msg: Any, now_s: float | None = None) -> None:
        """File one message (``msgtype`` is the ROS type name, e.g. ``rlvla_ros/msg/Observation``)."""
        now_s = time.monotonic() if now_s is None else now_s
        ended = msgtype == EPISODE_EVENT and msg.event == EPISODE_END
        with self._lock:
            if ended and msg.termination_reason in UNCOUNTED_TERMINATIONS:
                self.dropped += 1
                self._forget(msg.episode_id)
                return
            tables = self._tables.setdefault(msg.episode_id, EpisodeTables())
            self._first_seen_s.setdefault(msg.episode_id, now_s)
            file_message(tables, msgtype, msg, self.camera, True, "graph")
            if ended:
                self._ended_s[msg.episode_id] = now_s
            self._release(now_s)

    def _release(self, now_s: float) -> None:
        for episode_id, ended_s in list(self._ended_s.items()):
            episode = tables_to_episode(episode_id, self._tables[episode_id])
            if episode is not None:
                self._ready.append((self._first_seen_s[episode_id], episode))
            elif now_s - ended_s < self.episode_timeout_s:
                continue
            else:
                self.dropped += 1
            self._forget(episode_id)

    def _forget(self, episode_id: str) -> None:
        self._tables.pop(episode_id, None)
        self._first_seen_s.pop(episode_id, None)
        self._ended_s.pop(episode_id, None)

    def forget_before(self, time_s: float) -> None:
        """Drop every episode (ready or in progress) whose first message arrived before ``time_s``."""
        with self._lock:
            self._ready = [(first_s, e) for first_s, e in self._ready if first_s >= time_s]
            for episode_id, first_s in list(self._first_seen_s.items()):
                if first_s < time_s:
                    self._forget(episode_id)

    @property
    def num_ready(self) -> int:
        """Complete episodes waiting to be taken."""
        with self._lock:
            return len(self._ready)

    def take(self, count: int, now_s: float | None = None) -> list[EpisodeRecord]:
        """Up to ``count`` complete episodes, oldest first (removed from the assembler)."""
        with self._lock:
            self._release(time.monotonic() if now_s is None else now_s)
            taken, self._ready = self._ready[:count], self._ready[count:]
            return [episode for _, episode in taken]


class GraphRolloutSource:
    """A ``RolloutSource`` fed by the live graph through subscriptions on ``node``; see the module docstring."""

    def __init__(
        self,
        node: Any,
        *,
        episode_timeout_s: float = 120.0,
        load_service: str = "policy/load_checkpoint",
        action_topic: str = "executed_action",
        sync_dir: str | Path | None = None,
        wait_timeout_s: float = 600.0,
    ) -> None:
        from rclpy.callback_groups import ReentrantCallbackGroup

        from rlvla_ros.msg import ActionChunk, EpisodeEvent, Observation, Reward
        from rlvla_ros.srv import LoadCheckpoint

        self.node = node
        self.assembler = EpisodeAssembler(episode_timeout_s)
        self.wait_timeout_s = wait_timeout_s
        self.sync_dir = Path(sync_dir) if sync_dir else Path(tempfile.mkdtemp(prefix="rlvla-graph-policy-"))
        group = ReentrantCallbackGroup()
        self._subscriptions = [
            node.create_subscription(msg_class, topic, lambda msg, t=msgtype: self.assembler.add(t, msg), 100,
                                     callback_group=group)
            for msg_class, topic, msgtype in (
                (Observation, "observation", OBSERVATION),
                (ActionChunk, action_topic, ACTION_CHUNK),
                (Reward, "reward", REWARD),
                (EpisodeEvent, "episode_event", EPISODE_EVENT),
            )
        ]
        self._load_request = LoadCheckpoint.Request
        self._client = node.create_client(LoadCheckpoint, load_service, callback_group=group) if load_service else None
        self._synced = 0

    def sync(self, policy: Policy) -> None:
        """Make the policy node act with ``policy``'s weights; RuntimeError when it refuses or cannot be reached."""
        if self._client is None:
            return
        self._synced += 1
        path = self.sync_dir / f"weights_{self._synced % 2}"
        policy.save_pretrained(path)
        if not self._client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError(f"{self._client.srv_name} is not available: cannot hand the policy node new weights")
        done = threading.Event()
        future = self._client.call_async(self._load_request(path=str(path)))
        future.add_done_callback(lambda _: done.set())
        if not done.wait(60.0) or future.result() is None or not future.result().success:
            reason = future.result().message if future.done() and future.result() is not None else "no answer"
            raise RuntimeError(f"policy node did not load the learner's weights: {reason}")

    def collect(self, policy: Policy, specs: Sequence[EpisodeSpec], temperature: float) -> list[EpisodeRecord]:
        """Sync the weights, then wait for ``len(specs)`` complete on-policy episodes (the graph picks them)."""
        self.sync(policy)
        self.assembler.forget_before(time.monotonic())
        episodes: list[EpisodeRecord] = []
        deadline = time.monotonic() + self.wait_timeout_s
        while len(episodes) < len(specs):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"graph rollouts: {len(episodes)} of {len(specs)} episodes after {self.wait_timeout_s:.0f} s; "
                    "is the episode manager running?"
                )
            episodes += self.assembler.take(len(specs) - len(episodes))
            time.sleep(0.05)
        return episodes

    def close(self) -> None:
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        if self._client is not None:
            self.node.destroy_client(self._client)
