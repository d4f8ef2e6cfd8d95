"""policy node: ``observation`` (rlvla_ros/msg/Observation) -> ``action_chunk`` (rlvla_ros/msg/ActionChunk).

Runs a VLA policy of ``rlvla_ros.policies`` on every observation it can use and publishes one ``ee_delta`` chunk per
observation (horizon rows, per-step log-probs, value, the version of the weights, episode id and step copied).
Observations it cannot use (no image from the camera, an encoding other than rgb8, an image size or proprio length
the model does not take, non-finite proprio) are refused with a logged reason and counted on ``~/stats``
(std_msgs/String JSON: ``chunks``, ``policy_version``, ``refused.bad_observation``).

Each chunk is sampled with a seed drawn from the node's ``seed``, the observation's step and its content (image,
proprioception, instruction), never from what the node answered before: the same observation at the same step gets
the same chunk, so lock-step episodes with a sampling policy reproduce whatever reached the node earlier (a sensor set
before the first episode, an episode of another run). A checkpoint loading meanwhile builds its model from the same
process-wide torch stream, so chunks answered during a load may differ from run to run.

Inference runs in the node's own thread on the newest observation (one that a newer one replaced before inference
took it is counted as ``dropped_observations``), so the executor thread only hands messages over.
``~/load_checkpoint`` (rlvla_ros/srv/LoadCheckpoint) loads a ``save_pretrained`` directory in another thread of the
node while control goes on with the old weights, then swaps them in under a lock and bumps ``policy_version``; a path
that does not load (missing, not safetensors, another chunk size or input size) is answered success=false and the old
weights stay.

Test-time steering (``steering_candidates`` > 1 and a ``steering_model``): each observation gets the policy's mode
and that many minus one chunks sampled at ``temperature``; the chunk Q-function
(``rlvla_ros.policies.chunk_q.ChunkQFunction``) keeps the mode unless all its critics agree that a sample gains more
than ``steering_margin`` (``rlvla_ros.policies.steering``). The chosen chunk is published with its log-prob under the
policy and its (ensemble-minimum) Q-value as the value. The weights never change; a hot-swapped policy is steered by
the same Q-function.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node

from rlvla_ros.contract import ACTION_DIM, ACTION_SPACE
from rlvla_ros.msg import ActionChunk, Observation
from rlvla_ros.policies import Policy, PolicyOutput, load_policy, new_policy, steering
from rlvla_ros.policies.chunk_q import ChunkQFunction
from rlvla_ros.ros.images import image_to_rgb
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stats import NodeStats
from rlvla_ros.ros.worker import BackgroundCalls, LatestItemWorker
from rlvla_ros.srv import LoadCheckpoint

FRESH_MODELS = ("film_keypoints", "flow_matching", "frozen_encoder", "token_vla")
"""Policy types the node can build untrained (the others, hf_vlm and llava_adapter, need a base model directory)."""


@dataclass
class PolicyNodeConfig:
    """Parameters of the policy node."""

    checkpoint: str = field(default="", metadata={
        "description": "save_pretrained directory to start from; empty: a freshly initialised model of type model"})
    model: str = field(default="film_keypoints", metadata={
        "description": "type of the fresh model when checkpoint is empty: film_keypoints, flow_matching, "
                       "frozen_encoder or token_vla"})
    device: str = field(default="cpu", metadata={"description": "torch device of the model, e.g. cpu or cuda"})
    horizon: int = field(default=4, metadata={
        "description": "actions per chunk; must equal the checkpoint's chunk_size"})
    image_size: int = field(default=64, metadata={
        "description": "input image side of the fresh model (a checkpoint brings its own); match perception's"})
    temperature: float = field(default=1.0, metadata={"description": "sampling temperature (> 0)"})
    deterministic: bool = field(default=False, metadata={
        "description": "publish the mode of the action distribution instead of a sample"})
    num_threads: int = field(default=1, metadata={"description": "torch intra-op threads"})
    seed: int = field(default=0, metadata={
        "description": "torch seed of the fresh model's weights, and with each observation the seed of its chunk"})
    camera: str = field(default="", metadata={
        "description": "camera_names entry whose image the policy sees; empty: the observation's first image"})
    stats_period_s: float = field(default=1.0, metadata={"description": "period of ~/stats when counts changed"})
    steering_candidates: int = field(default=0, metadata={
        "description": "chunks sampled per observation and ranked by steering_model; 0 or 1: no steering"})
    steering_model: str = field(default="", metadata={
        "description": "ChunkQFunction save_pretrained directory that ranks the steering candidates"})
    steering_margin: float = field(default=0.0, metadata={
        "description": "a sample replaces the mode only if every critic scores it higher by more than this"})

    def __post_init__(self) -> None:
        if not self.checkpoint and self.model not in FRESH_MODELS:
            raise ValueError(f"model must be one of {FRESH_MODELS} when no checkpoint is given, got {self.model!r}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if not self.stats_period_s > 0:
            raise ValueError(f"stats_period_s must be > 0, got {self.stats_period_s}")
        if self.steering_candidates < 0:
            raise ValueError(f"steering_candidates must be >= 0, got {self.steering_candidates}")
        if not 0.0 <= self.steering_margin < float("inf"):
            raise ValueError(f"steering_margin must be finite and >= 0, got {self.steering_margin}")
        if self.steering_candidates > 1 and not self.steering_model:
            raise ValueError("steering_candidates > 1 needs a steering_model directory")


class PolicyNode(Node):
    """Observation in, action chunk out, hot-swappable weights; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("policy", **kwargs)
        # When inference falls behind, the worker acts on the newest observation, never on a backlog.
        self._inference = LatestItemWorker("policy_inference", self._answer_observation, self._on_inference_error)
        # A checkpoint loads in its own thread while observations keep being answered.
        self._loads = BackgroundCalls(self, "policy_load")
        try:
            self.config = config = declare_config(self, PolicyNodeConfig)
            torch.set_num_threads(config.num_threads)
            torch.manual_seed(config.seed)
            self._policy = (self._load(config.checkpoint, running=None) if config.checkpoint else new_policy(
                config.model, chunk_size=config.horizon, image_size=config.image_size).to(config.device).eval())
            self._q_model = self._load_steering_model() if config.steering_candidates > 1 else None
        except BaseException:
            # The workers' threads hold this node: a refused one would keep its DDS participant for good.
            self.destroy_node()
            raise
        self._version = 0
        # Guards the (policy, version) pair: inference takes a consistent snapshot, the service swaps both at once.
        self._lock = threading.Lock()
        self._stats = NodeStats(self, config.stats_period_s)
        self._stats.set("policy_version", self._version)

        self._publisher = self.create_publisher(ActionChunk, "action_chunk", 10)
        self.create_subscription(Observation, "observation", self._on_observation, 10)
        self.create_service(LoadCheckpoint, "~/load_checkpoint", self._on_load_checkpoint,
                            callback_group=MutuallyExclusiveCallbackGroup())
        source = config.checkpoint or f"fresh {config.model} (seed {config.seed})"
        self.get_logger().info(
            f"{type(self._policy).__name__} from {source} on {config.device}: horizon {config.horizon}, "
            f"{'deterministic' if config.deterministic else f'temperature {config.temperature}'}, "
            f"{self._policy.config.image_size}px images, proprio of {self._policy.config.proprio_dim}"
            + (f", steered: best of {config.steering_candidates} by {config.steering_model}" if self._q_model else ""))

    def _load(self, path: str, running: Policy | None) -> Policy:
        """A checkpoint's policy, checked against the horizon and against the inputs of the ``running`` one."""
        if not path:
            raise ValueError("empty checkpoint path")
        policy = load_policy(path, device=self.config.device)
        if policy.chunk_size != self.config.horizon:
            raise ValueError(f"{path} predicts chunks of {policy.chunk_size}, the node's horizon is "
                             f"{self.config.horizon}")
        if running is not None:
            for name in ("image_size", "proprio_dim"):
                new, old = getattr(policy.config, name), getattr(running.config, name)
                if new != old:
                    raise ValueError(f"{path} has {name} {new}, the running policy {old}: observations would not fit")
        return policy

    def _load_steering_model(self) -> ChunkQFunction:
        """The steering Q-function, checked against the horizon and the policy's proprio."""
        q_model = ChunkQFunction.from_pretrained(self.config.steering_model, device=self.config.device)
        if q_model.config.chunk_size != self.config.horizon:
            raise ValueError(f"steering_model {self.config.steering_model} scores chunks of {q_model.config.chunk_size}"
                             f", the node's horizon is {self.config.horizon}")
        if q_model.config.proprio_dim != self._policy.config.proprio_dim:
            raise ValueError(f"steering_model takes proprio of {q_model.config.proprio_dim}, the policy "
                             f"{self._policy.config.proprio_dim}")
        return q_model

    def destroy_node(self) -> None:
        self._inference.stop()
        self._loads.shutdown()
        super().destroy_node()

    async def _on_load_checkpoint(self, request: LoadCheckpoint.Request,
                                  response: LoadCheckpoint.Response) -> LoadCheckpoint.Response:
        with self._lock:
            running = self._policy
        try:
            policy = await self._loads.run(self._load, request.path, running)
        except Exception as error:  # noqa: BLE001 - any load failure is an answer to the caller, never a dead node
            with self._lock:
                response.policy_version = self._version
            response.success = False
            response.message = f"cannot load '{request.path}': {error}; keeping version {response.policy_version}"
            self.get_logger().warning(response.message)
            return response
        with self._lock:
            self._policy = policy
            self._version += 1
            response.policy_version = self._version
        self._stats.set("policy_version", response.policy_version)
        response.success = True
        response.message = f"loaded {type(policy).__name__} from '{request.path}' as version {response.policy_version}"
        self.get_logger().info(response.message)
        return response

    def _on_observation(self, msg: Observation) -> None:
        if self._inference.submit(msg):
            self._stats.count("dropped_observations")

    def _on_inference_error(self, error: BaseException) -> None:
        self._stats.refuse("inference_error", repr(error))

    def _answer_observation(self, msg: Observation) -> None:
        with self._lock:
            policy, version = self._policy, self._version
        try:
            obs = self._policy_input(msg, policy)
        except ValueError as error:
            self._stats.refuse("bad_observation", f"episode '{msg.episode_id}' step {msg.step}: {error}")
            return
        torch.manual_seed(observation_seed(self.config.seed, obs, msg.step))
        output = self.choose_chunk(policy, obs)
        self._publisher.publish(ActionChunk(
            header=msg.header, episode_id=msg.episode_id, step=msg.step, horizon=policy.chunk_size,
            action_dim=ACTION_DIM, actions=output.actions[0].float().cpu().numpy().ravel().tolist(),
            action_space=ACTION_SPACE, log_probs=output.log_probs[0].float().cpu().numpy().tolist(),
            value=float(output.values[0]), policy_version=version, source=ActionChunk.SOURCE_POLICY))
        self._stats.count("chunks")

    def choose_chunk(self, policy: Policy, obs: dict[str, Any]) -> PolicyOutput:
        """The chunk to execute for one observation, as a batch of one.

        Without steering the policy's own sample (or mode); with it, the mode or a sample that the Q-function's
        critics agree is better (:func:`rlvla_ros.policies.steering.choose_chunks`).
        """
        batch = {"image": obs["image"][None], "proprio": obs["proprio"][None], "instruction": [obs["instruction"]]}
        if self._q_model is None:
            return policy.predict(batch, deterministic=self.config.deterministic, temperature=self.config.temperature)
        temperature = self.config.temperature
        chunks, _, q_values = steering.choose_chunks(policy, self._q_model, batch, self.config.steering_candidates,
                                                     temperature, self.config.steering_margin)
        with torch.no_grad():
            log_probs, _ = policy.log_prob(batch, chunks, temperature=temperature)
        return PolicyOutput(actions=chunks, log_probs=log_probs, values=q_values)

    def _policy_input(self, msg: Observation, policy: Policy) -> dict[str, Any]:
        """The contract observation of ``msg`` for ``policy``; ValueError saying why it cannot be used."""
        camera = self.config.camera
        if camera:
            if camera not in msg.camera_names:
                raise ValueError(f"no image from camera '{camera}' (cameras: {list(msg.camera_names)})")
            index = list(msg.camera_names).index(camera)
        elif not msg.images:
            raise ValueError("no image")
        else:
            index = 0
        if index >= len(msg.images):
            raise ValueError(f"camera_names lists '{camera}' but there are only {len(msg.images)} images")
        image = msg.images[index]
        if image.encoding != "rgb8":
            raise ValueError(f"image encoding '{image.encoding}', observations carry rgb8")
        size = policy.config.image_size
        if (image.height, image.width) != (size, size):
            raise ValueError(f"image is {image.width}x{image.height}, the policy takes {size}x{size}")
        proprio = np.asarray(msg.proprioception, dtype=np.float32)
        if proprio.shape != (policy.config.proprio_dim,):
            raise ValueError(f"proprioception has {proprio.size} values, the policy takes {policy.config.proprio_dim}")
        if not np.isfinite(proprio).all():
            raise ValueError(f"proprioception is not finite: {proprio.tolist()}")
        return {"image": image_to_rgb(image), "proprio": proprio, "instruction": msg.instruction}


def observation_seed(seed: int, obs: dict[str, Any], step: int) -> int:
    """The sampling seed of one observation: a hash of ``seed``, ``step`` and the observation's content."""
    digest = hashlib.blake2b(f"{seed}/{step}/{obs['instruction']}".encode(), digest_size=8)
    digest.update(np.ascontiguousarray(obs["proprio"]).tobytes())
    digest.update(np.ascontiguousarray(obs["image"]).tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1  # torch takes seeds below 2**63


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyNode, args)
