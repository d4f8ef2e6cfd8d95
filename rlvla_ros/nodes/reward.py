"""reward node: one rlvla_ros/msg/Reward per observation step, from the privileged sim signal or a learned classifier.

Subscribes ``observation``; with ``source: sim_privileged`` also ``sim/success`` (rlvla_ros/msg/TaskSuccess, which
the simulator publishes with every sensor set: an observation is scored with the signal of its own stamp, whichever
of the two comes first, and dropped with a warning if that signal never comes), with ``source: classifier`` it runs
the success classifier checkpoint on the observation's camera image, instruction and (if the checkpoint uses them)
the proprioception entries it names, with the checkpoint's calibrated threshold. Publishes ``reward``.

Step convention (the one of ``EpisodeRecord`` and the env): the reward of step t is the outcome of action t, which
observation t + 1 shows. So observation t + 1 is scored and published as the reward of step t (episode_id copied);
observation 0 of an episode, taken before any action, gets no reward. Optional potential-based shaping (off by
default) uses the classifier's success probability as the potential: ``shaping_weight * (discount * p(o_t+1) -
p(o_t))`` goes into ``shaping_reward``; ``sparse_reward`` is 1.0 on success; ``reward`` is their sum.

Waiting for a classifier: when the source or shaping needs one and ``checkpoint`` is empty or does not load, the node
stays up, says what is missing and how to provide it (every ``reminder_period_s``), and scores nothing until a
classifier arrives through ``~/load_classifier`` (rlvla_ros/srv/LoadCheckpoint: ``path`` -> ``success``,
``message``; a path that does not load is refused with the reason and changes nothing).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node

from rlvla_ros.msg import Observation, Reward, TaskSuccess
from rlvla_ros.rewards.shaping import PotentialShaper
from rlvla_ros.rewards.success_classifier import SuccessClassifier
from rlvla_ros.ros.images import image_to_rgb
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.ros.success_pairing import Pairing, SuccessPairing
from rlvla_ros.srv import LoadCheckpoint

SOURCES = (Reward.SOURCE_SIM_PRIVILEGED, Reward.SOURCE_CLASSIFIER)


@dataclass
class RewardConfig:
    """Parameters of the reward node."""

    source: str = field(default=Reward.SOURCE_SIM_PRIVILEGED, metadata={
        "description": "sim_privileged (sim/success topic) or classifier (success classifier on the observation)"})
    checkpoint: str = field(default="", metadata={
        "description": "success classifier checkpoint directory; needed by source classifier and by shaping"})
    camera: str = field(default="", metadata={
        "description": "observation camera the classifier looks at; empty: the first one"})
    shaping: bool = field(default=False, metadata={
        "description": "add potential-based shaping with the classifier's success probability as potential"})
    shaping_weight: float = field(default=1.0, metadata={"description": "scale of the shaping term"})
    discount: float = field(default=0.99, metadata={"description": "discount factor of the shaping term, in (0, 1]"})
    success_timeout_s: float = field(default=1.0, metadata={
        "description": "sim_privileged: drop an observation when no sim/success with its stamp came within this"})
    reminder_period_s: float = field(default=10.0, metadata={
        "description": "while a needed classifier is missing, repeat how to provide one this often"})

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {self.discount}")
        if self.success_timeout_s <= 0:
            raise ValueError(f"success_timeout_s must be > 0, got {self.success_timeout_s}")
        if not self.reminder_period_s > 0:
            raise ValueError(f"reminder_period_s must be > 0, got {self.reminder_period_s}")

    @property
    def needs_classifier(self) -> bool:
        """Whether the source or shaping scores with a success classifier."""
        return self.source == Reward.SOURCE_CLASSIFIER or self.shaping


class RewardNode(Node):
    """Scores observations; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("reward", **kwargs)
        self.config = declare_config(self, RewardConfig)
        self.classifier: SuccessClassifier | None = None
        self._missing = ""
        """Why the needed classifier is missing (empty: none is missing)."""
        self.unscored_observations = 0
        """Observations that came while the classifier was missing."""
        if self.config.needs_classifier:
            self._missing = self._load_classifier(self.config.checkpoint)
        self.shaper = PotentialShaper(self.config.shaping_weight, self.config.discount) if self.config.shaping else None
        self._pairing: SuccessPairing[tuple[Observation, float | None]] | None = None
        # Observation 0 of an episode is only remembered; later ones are scored as the previous step's outcome.
        self._episode_id: str | None = None
        self._stats = NodeStats(self)
        self._publisher = self.create_publisher(Reward, "reward", 10)
        # Out of the lock-step loop, so it may fall behind the graph for a while: keep 100 observations for it.
        self.create_subscription(Observation, "observation", self._on_observation, 100)
        if self.config.source == Reward.SOURCE_SIM_PRIVILEGED:
            self._pairing = SuccessPairing(self.config.success_timeout_s)
            self.create_subscription(TaskSuccess, "sim/success", self._on_sim_success, 10)
            self.create_timer(min(self.config.success_timeout_s / 2, 0.5),
                              lambda: self._settle(self._pairing.settle(time.monotonic())))
        self.create_service(LoadCheckpoint, "~/load_classifier", self._on_load_classifier)
        self.create_timer(self.config.reminder_period_s, self._remind)
        classifier = (f"classifier {self.config.checkpoint} (threshold {self.classifier.threshold:.3f})"
                      if self.classifier is not None else "no classifier")
        self.get_logger().info(f"source {self.config.source}, {classifier}, "
                               f"shaping {'on' if self.shaper is not None else 'off'}")
        self._remind()

    def _load_classifier(self, path: str) -> str:
        """Load the classifier at ``path``; the reason it did not load ('' when it did)."""
        if not path:
            return "no success classifier checkpoint is set"
        try:
            self.classifier = SuccessClassifier.from_pretrained(path)
        except Exception as error:  # noqa: BLE001 - a bad checkpoint is reported and waited out, never fatal
            return f"success classifier {path!r} does not load: {type(error).__name__}: {error}"
        return ""

    def _remind(self) -> None:
        if self._missing:
            self.get_logger().warning(
                f"scoring nothing ({self.unscored_observations} observations so far): {self._missing}, and source {self.config.source}"
                f"{' with shaping' if self.config.shaping else ''} needs one. Provide a classifier directory (a "
                "SuccessClassifier save_pretrained: config.json + model.safetensors, from "
                "rlvla_ros.rewards.training.train_success_classifier_from_datasets) with "
                f"`ros2 service call {self.resolve_service_name('~/load_classifier')} rlvla_ros/srv/LoadCheckpoint "
                "\"{path: /path/to/classifier}\"` or restart with the checkpoint parameter (reward_checkpoint:= in "
                "the launch files)")

    def _on_load_classifier(self, request: LoadCheckpoint.Request,
                            response: LoadCheckpoint.Response) -> LoadCheckpoint.Response:
        if not self.config.needs_classifier:
            response.success = False
            response.message = f"source {self.config.source} without shaping uses no classifier; nothing loaded"
            return response
        previous = self.classifier
        reason = self._load_classifier(request.path)
        if reason:
            self.classifier = previous
            response.success, response.message = False, f"{reason}; the node keeps its previous state"
            self.get_logger().warning(response.message)
            return response
        self._missing = ""
        response.success = True
        response.message = f"scoring with classifier {request.path} (threshold {self.classifier.threshold:.3f})"
        self.get_logger().info(response.message)
        return response

    def _on_sim_success(self, msg: TaskSuccess) -> None:
        try:
            pairing = self._pairing.add_signal(stamp_ns(msg), bool(msg.success), time.monotonic())
        except ValueError as error:
            self.get_logger().warning(f"sim/success ignored: {error}", throttle_duration_sec=2.0)
            return
        self._settle(pairing)

    def _on_observation(self, msg: Observation) -> None:
        if self._missing:
            self.unscored_observations += 1  # no classifier yet: _remind says so
            return
        try:
            probability = self._success_probability(msg) if self.classifier is not None else None
            pairing = (self._pairing.add_observation(stamp_ns(msg), (msg, probability), time.monotonic())
                       if self._pairing is not None else None)
        except ValueError as error:
            self.get_logger().warning(f"observation {msg.episode_id}/{msg.step} dropped: {error}",
                                      throttle_duration_sec=1.0)
            return
        if pairing is None:
            self._score(msg, probability, probability >= self.classifier.threshold)
        else:
            self._settle(pairing)

    def _settle(self, pairing: Pairing) -> None:
        for (msg, probability), success in pairing.paired:
            self._score(msg, probability, success)
        for (msg, probability), reason in pairing.dropped:
            self.get_logger().warning(f"observation {msg.episode_id}/{msg.step} not scored: {reason}",
                                      throttle_duration_sec=2.0)
            self._score(msg, probability, None)

    def _score(self, msg: Observation, probability: float | None, success: bool | None) -> None:
        """Publish observation ``msg``'s reward (of the previous step), in observation order; ``success`` None: not
        known, only the episode and the shaping potential move on. ``probability`` is the classifier's, if any."""
        shaping = self.shaper.step(msg.episode_id, probability) if self.shaper is not None else None
        first = msg.episode_id != self._episode_id
        self._episode_id = msg.episode_id
        if first or msg.step == 0 or success is None:
            return
        sparse = 1.0 if success else 0.0
        shaping_reward = shaping or 0.0
        self._publisher.publish(Reward(
            header=msg.header, episode_id=msg.episode_id, step=msg.step - 1, reward=sparse + shaping_reward,
            sparse_reward=sparse, shaping_reward=shaping_reward,
            success_probability=probability if self._pairing is None else float(success), success=success,
            source=self.config.source))

    def _success_probability(self, msg: Observation) -> float:
        if not msg.images:
            raise ValueError("observation has no image")
        names = list(msg.camera_names)
        if self.config.camera and self.config.camera not in names:
            raise ValueError(f"camera '{self.config.camera}' not in the observation's cameras {names}")
        image = image_to_rgb(msg.images[names.index(self.config.camera) if self.config.camera else 0])
        proprio = None
        wanted = self.classifier.config.proprio_names
        if wanted:
            have = dict(zip(msg.proprioception_names, msg.proprioception))
            missing = [name for name in wanted if name not in have]
            if missing:
                raise ValueError(f"the classifier needs proprioception {missing}, the observation has "
                                 f"{list(msg.proprioception_names)}")
            proprio = np.array([[have[name] for name in wanted]], dtype=np.float32)
        return float(self.classifier.predict_proba(image[None], [msg.instruction], proprio)[0])


def main(args: list[str] | None = None) -> int:
    return run_node(RewardNode, args)
