"""perception node: the driver's camera images and joint states -> time-synchronised ``observation`` messages.

Subscribes ``<prefix>/image_raw`` (sensor_msgs/Image: rgb8, bgr8, mono8) or, with ``transport: compressed``,
``<prefix>/image_raw/compressed`` (JPEG/PNG) for each prefix in ``cameras``, plus ``joint_states``, ``instruction``
(std_msgs/String, transient local) and ``episode_event``; publishes ``observation`` (rlvla_ros/msg/Observation) and
``~/stats`` (std_msgs/String JSON: ``observations``, ``rate_limited`` and ``refused.<reason>`` counts, the current
``episode_id``, ``in_episode`` and ``instruction``).

Event-driven: once every camera has delivered a new image, the newest image of each camera is paired with the
joint-state sample nearest to it in time (header stamps). When a camera's image has no sample within
``max_sync_offset_s`` the set is refused (``refused.out_of_sync``), unless no joint state at or after the images has
arrived yet: then the set waits for the next joint states (a lock-step simulator may publish them just after the
image), until a newer image set supersedes it. Sets come at most ``rate_hz`` per second of stamp time
(``rate_limited`` counts the skipped ones). Images are decoded, cropped, resized to ``image_size`` and published
rgb8; undecodable images and unsupported encodings are refused (``refused.bad_image``) and logged with the encoding.
Proprioception follows ``proprioception_names``; joint_states messages lacking one of the joints it needs are
refused (``refused.bad_joint_state``).
The step counter counts observations published since the last ``episode_event`` START, which also sets the episode
id. Between an END and the next START nothing is published: the newest image set is held (``between_episodes``
counts the ones replaced) and becomes step 0 of the next episode, since the episode manager resets the driver, whose
reset publishes the episode's first images, before it publishes START. A START can overtake those images on the
way (messages of different publishers keep no order), so the START's ``first_set_stamp`` (the driver's reset reply)
says which set comes first: a set stamped before it shows the scene before the reset (e.g. a step the previous
episode's last command made after its END) and is skipped (``before_reset`` counts them); a zero stamp (a driver that
does not say) skips none. The same holds before the first START unless ``require_episode`` is false: then the node
publishes with an empty episode id until an END (e.g. teleoperation without an episode manager). Pairing and the rate
cap use header stamps (data time), so drivers must stamp images and joint states on one clock (the simulator:
simulated time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from rlvla_ros.contract import FINGER_JOINT_NAMES, PROPRIOCEPTION_NAMES
from rlvla_ros.msg import EpisodeEvent, Observation
from rlvla_ros.ros.images import compressed_to_rgb, image_to_rgb, rgb_to_image
from rlvla_ros.ros.observation_assembly import (
    CROP_MODES,
    JointStateHistory,
    ProprioceptionReader,
    RateGate,
    crop_and_resize,
)
from rlvla_ros.ros.parameters import declare_config
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS, INSTRUCTION_QOS
from rlvla_ros.ros.spinning import run_node
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import NodeStats

TRANSPORTS = ("raw", "compressed")
RELIABLE_CAMERA_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
"""Only the newest image counts: a short queue keeps a slow node from working through a backlog."""


@dataclass
class PerceptionConfig:
    """Parameters of the perception node."""

    cameras: list[str] = field(default_factory=lambda: ["camera"], metadata={
        "description": "camera topic prefixes: <prefix>/image_raw (or <prefix>/image_raw/compressed)"})
    camera_names: list[str] = field(default_factory=lambda: ["front"], metadata={
        "description": "name of each camera in the observation, same order and length as cameras"})
    transport: str = field(default="raw", metadata={
        "description": "raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage, JPEG/PNG)"})
    sensor_data_qos: bool = field(default=False, metadata={
        "description": "subscribe to cameras best effort (sensor-data QoS), as real drivers publish"})
    rate_hz: float = field(default=10.0, metadata={
        "description": "at most this many observations per second of image stamp time; 0: one per image set"})
    max_sync_offset_s: float = field(default=0.05, metadata={
        "description": "refuse image sets with no joint state within this time of every image"})
    image_size: int = field(default=64, metadata={"description": "side of the square output images (pixels)"})
    crop: str = field(default="center", metadata={
        "description": "center (largest centred square), box (crop_box) or none (full image, aspect not kept)"})
    crop_box: list[int] = field(default_factory=list, metadata={
        "description": "crop: box only: [x, y, width, height] in pixels from the top-left corner"})
    proprioception_names: list[str] = field(default_factory=lambda: list(PROPRIOCEPTION_NAMES), metadata={
        "description": "proprio order: joint names of joint_states, and gripper_opening_m"})
    gripper_joint_names: list[str] = field(default_factory=lambda: list(FINGER_JOINT_NAMES), metadata={
        "description": "finger joints whose positions sum to gripper_opening_m"})
    joint_state_history_s: float = field(default=1.0, metadata={
        "description": "joint states kept for matching to image stamps (s of stamp time)"})
    require_episode: bool = field(default=True, metadata={
        "description": "publish only between episode_event START and END; false: also before the first START"})
    stats_period_s: float = field(default=1.0, metadata={"description": "period of ~/stats when counts changed"})

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("cameras must name at least one camera topic prefix")
        if len(self.camera_names) != len(self.cameras):
            raise ValueError(f"camera_names {self.camera_names} must have one name per camera {self.cameras}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {self.transport!r}")
        if self.rate_hz < 0:
            raise ValueError(f"rate_hz must be >= 0, got {self.rate_hz}")
        if not self.max_sync_offset_s > 0:
            raise ValueError(f"max_sync_offset_s must be > 0, got {self.max_sync_offset_s}")
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}")
        if self.crop == "box" and (len(self.crop_box) != 4 or min(self.crop_box[2:]) < 1 or min(self.crop_box) < 0):
            raise ValueError(f"crop_box must be [x, y, width, height] with x, y >= 0 and sizes >= 1, "
                             f"got {self.crop_box}")
        if not self.joint_state_history_s > self.max_sync_offset_s:
            raise ValueError(f"joint_state_history_s ({self.joint_state_history_s}) must exceed "
                             f"max_sync_offset_s ({self.max_sync_offset_s})")
        if not self.stats_period_s > 0:
            raise ValueError(f"stats_period_s must be > 0, got {self.stats_period_s}")


class Perception(Node):
    """Raw driver streams in, one synchronised observation per image set out; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception", **kwargs)
        self.config = config = declare_config(self, PerceptionConfig)
        try:
            self._proprioception = ProprioceptionReader(config.proprioception_names, config.gripper_joint_names)
        except ValueError as error:
            raise ValueError(f"node 'perception': invalid parameters: {error}") from None
        # All callbacks share the node's mutually exclusive default group: the state below needs no lock.
        self._joints = JointStateHistory(config.joint_state_history_s)
        self._gate = RateGate(config.rate_hz)
        self._stats = NodeStats(self, config.stats_period_s)
        self._latest: list[Image | CompressedImage | None] = [None] * len(config.cameras)
        self._fresh: set[int] = set()
        self._pending: list[Image | CompressedImage] | None = None
        self._held: list[Image | CompressedImage] | None = None
        # None: no episode event yet and none required, so publish with an empty episode id.
        self._in_episode: bool | None = False if config.require_episode else None
        self._instruction = ""
        self._episode_id = ""
        self._step = 0
        self._first_set_ns = 0
        """The current episode's first_set_stamp (0: unknown): image sets stamped earlier are from before its reset."""

        self._publisher = self.create_publisher(Observation, "observation", 10)
        # Created first: when an END and the images of the reset that follows it are both waiting, the executor takes
        # them in creation order, so the reset's set is held for the next episode, never published as a step of the
        # ended one (the episode manager publishes the END before it asks for the reset).
        self.create_subscription(EpisodeEvent, "episode_event", self._on_episode_event, EPISODE_EVENT_QOS)
        compressed = config.transport == "compressed"
        image_type = CompressedImage if compressed else Image
        camera_qos = qos_profile_sensor_data if config.sensor_data_qos else RELIABLE_CAMERA_QOS
        for index, prefix in enumerate(config.cameras):
            topic = f"{prefix}/image_raw/compressed" if compressed else f"{prefix}/image_raw"
            self.create_subscription(image_type, topic, partial(self._on_image, index), camera_qos)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, qos_profile_sensor_data)
        self.create_subscription(String, "instruction", self._on_instruction, INSTRUCTION_QOS)
        self.get_logger().info(
            f"cameras {config.cameras} ({config.transport}) -> {config.image_size}x{config.image_size} "
            f"({config.crop} crop), proprio {config.proprioception_names}, <= {config.rate_hz} Hz, "
            f"sync within {config.max_sync_offset_s} s")

    def _on_instruction(self, msg: String) -> None:
        self._instruction = msg.data
        self._stats.set("instruction", msg.data)

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.END:
            self._in_episode = False
            self._stats.set("in_episode", False)
            if self._pending is not None:
                self._pending = None
                self._stats.count("between_episodes")
            return
        if msg.event != EpisodeEvent.START:
            return
        self._in_episode = True
        self._stats.set("in_episode", True)
        self._episode_id = msg.episode_id
        if msg.instruction:
            # The episode's own instruction: the instruction topic's copy may come after the START (no order holds
            # between topics), and the reset's held frame, published below, would carry the previous episode's.
            self._on_instruction(String(data=msg.instruction))
        self._step = 0
        self._first_set_ns = Time.from_msg(msg.first_set_stamp).nanoseconds
        self._stats.set("episode_id", msg.episode_id)
        # The first observation of an episode is never rate limited (a reset may come sooner than one period).
        self._gate.reset()
        held, self._held = self._held, None
        if held is not None and not self._before_reset(held):
            self._pending = held
            self._try_pending()

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            proprio = self._proprioception(msg.name, msg.position)
        except ValueError as error:
            self._stats.refuse("bad_joint_state", str(error))
            return
        self._joints.add(stamp_ns(msg), proprio)
        if self._pending is not None:
            self._try_pending()

    def _on_image(self, index: int, msg: Image | CompressedImage) -> None:
        self._latest[index] = msg
        self._fresh.add(index)
        if len(self._fresh) < len(self._latest):
            return
        self._fresh.clear()
        if self._pending is not None:
            self._refuse_pending()
        if self._in_episode is False:
            if self._held is not None:
                self._stats.count("between_episodes")
            self._held = list(self._latest)
            return
        if self._before_reset(self._latest):
            return
        if not self._gate.ready(max(stamp_ns(m) for m in self._latest) * 1e-9):
            self._stats.count("rate_limited")
            return
        self._pending = list(self._latest)
        self._try_pending()

    def _before_reset(self, images: list[Image | CompressedImage]) -> bool:
        """Whether ``images`` are stamped before the current episode's first set (counted as ``before_reset``): the
        scene before the reset, which a START can overtake on its way here."""
        if max(stamp_ns(m) for m in images) >= self._first_set_ns:
            return False
        self._stats.count("before_reset")
        return True

    def _try_pending(self) -> None:
        """Publish the pending image set if joint states pair with it, refuse it if none ever can, else wait."""
        images = self._pending
        image_stamps_ns = [stamp_ns(m) for m in images]
        match = self._joints.match(image_stamps_ns)
        if match is None or not match.in_sync(self.config.max_sync_offset_s):
            if match is not None and match.settled:
                self._refuse_pending()
            return
        self._pending = None
        processed = []
        for name, message in zip(self.config.camera_names, images, strict=True):
            try:
                pixels = compressed_to_rgb(message) if isinstance(message, CompressedImage) else image_to_rgb(message)
                pixels = crop_and_resize(pixels, self.config.image_size, self.config.crop, self.config.crop_box)
            except ValueError as error:
                self._stats.refuse("bad_image", f"camera '{name}': {error}")
                return
            processed.append(rgb_to_image(pixels, header=message.header))
        observation = Observation(
            images=processed, camera_names=list(self.config.camera_names),
            proprioception=match.proprio.tolist(), proprioception_names=list(self.config.proprioception_names),
            instruction=self._instruction, episode_id=self._episode_id, step=self._step)
        observation.header.stamp = Time(nanoseconds=max(*image_stamps_ns, match.stamp_ns)).to_msg()
        observation.header.frame_id = images[0].header.frame_id
        self._publisher.publish(observation)
        self._gate.mark(max(image_stamps_ns) * 1e-9)
        self._step += 1
        self._stats.count("observations")

    def _refuse_pending(self) -> None:
        images, self._pending = self._pending, None
        match = self._joints.match([stamp_ns(m) for m in images])
        if match is None:
            self._stats.refuse("out_of_sync", "no joint_states received")
            return
        offsets = ", ".join(f"{name} {offset * 1e-6:.1f} ms"
                            for name, offset in zip(self.config.camera_names, match.offsets_ns, strict=True))
        self._stats.refuse("out_of_sync", f"nearest joint state per camera: {offsets} "
                                          f"(max_sync_offset_s {self.config.max_sync_offset_s})")


def main(args: list[str] | None = None) -> int:
    return run_node(Perception, args)
