"""The perception node over real topics: synchronised, cropped, resized observations; refusals counted in ~/stats."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PilImage
from rcl_interfaces.msg import Log
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

from rlvla_ros.contract import JOINT_NAMES, PROPRIOCEPTION_NAMES
from rlvla_ros.msg import EpisodeEvent, Observation
from rlvla_ros.nodes.perception import Perception, PerceptionConfig
from rlvla_ros.ros.qos import EPISODE_EVENT_QOS
from rlvla_ros.ros.stamps import stamp_ns
from rlvla_ros.ros.stats import STATS_QOS

LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
"""How long a test waits to be confident that nothing more gets published."""
SIZE = 64

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def scene(height: int = 120, width: int = 160) -> np.ndarray:
    """Red over blue in the centred square, green borders that a centre crop removes."""
    image = np.zeros((height, width, 3), np.uint8)
    border = (width - height) // 2
    image[:, :border] = image[:, width - border:] = GREEN
    image[: height // 2, border:width - border] = RED
    image[height // 2:, border:width - border] = BLUE
    return image


def raw_image(pixels: np.ndarray, encoding: str, t_s: float) -> Image:
    """An Image of `pixels` (RGB, or 2-D for mono8/16UC1) in `encoding`."""
    data = {"rgb8": pixels, "bgr8": pixels[..., ::-1], "mono8": pixels, "16UC1": pixels.astype("<u2")}[encoding]
    data = np.ascontiguousarray(data)
    message = Image(height=data.shape[0], width=data.shape[1], encoding=encoding,
                    step=data.shape[1] * data.itemsize * (data.shape[2] if data.ndim == 3 else 1), data=data.tobytes())
    message.header.stamp = stamp(t_s)
    message.header.frame_id = "front_camera"
    return message


def compressed_image(pixels: np.ndarray, fmt: str, t_s: float) -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(pixels).save(buffer, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
    message = CompressedImage(format=fmt, data=buffer.getvalue())
    message.header.stamp = stamp(t_s)
    return message


def stamp(t_s: float):
    return Time(nanoseconds=round(t_s * 1e9)).to_msg()


def arm_q(t_s: float) -> list[float]:
    return [0.1 * t_s, 0.2, 0.3, 0.4, 0.5]


def joint_state(t_s: float, finger_m: float = 0.015) -> JointState:
    """All joints, in reverse order (the node looks them up by name)."""
    positions = arm_q(t_s) + [finger_m, finger_m + 0.001]
    message = JointState(name=list(reversed(JOINT_NAMES)), position=list(reversed(positions)))
    message.header.stamp = stamp(t_s)
    return message


class Rig:
    """A perception node and a test node playing the driver and the episode manager, recording the outputs."""

    def __init__(self, ros_graph, wait_for, **parameters):
        self.wait_for = wait_for
        # Tests that are not about episodes need no START before their frames.
        parameters = {"image_size": SIZE, "stats_period_s": 0.05, "require_episode": False, **parameters}
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(Perception(context=ros_graph.context, parameter_overrides=overrides))
        self.test = ros_graph.node("perception_test")
        self.observations: list[Observation] = []
        self.stats: dict = {}
        self.logs: list[str] = []
        self.test.create_subscription(Observation, "observation", self.observations.append, 10)
        self.test.create_subscription(String, "perception/stats", self._on_stats, STATS_QOS)
        self.test.create_subscription(Log, "/rosout", lambda m: self.logs.append(m.msg), LATCHED)
        compressed = parameters.get("transport") == "compressed"
        self.cameras = {
            prefix: self.test.create_publisher(CompressedImage if compressed else Image,
                                               f"{prefix}/image_raw" + ("/compressed" if compressed else ""), 10)
            for prefix in parameters.get("cameras", ["camera"])}
        self.joint_states = self.test.create_publisher(JointState, "joint_states", 10)
        self.instruction = self.test.create_publisher(String, "instruction", LATCHED)
        self.episode_events = self.test.create_publisher(EpisodeEvent, "episode_event", EPISODE_EVENT_QOS)
        # Both ends of every topic must have matched, or the first messages can arrive late.
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.node.subscriptions), 10.0)
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in self.test.subscriptions), 10.0)

    def _on_stats(self, msg: String) -> None:
        self.stats = json.loads(msg.data)

    def start_episode(self, episode_id: str, instruction: str = "pick up the red block",
                      first_set_s: float = 0.0) -> None:
        self.instruction.publish(String(data=instruction))
        self.episode_events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=episode_id,
                                                 instruction=instruction, first_set_stamp=stamp(first_set_s)))
        assert self.wait_for(lambda: (self.stats.get("episode_id"), self.stats.get("in_episode"),
                                      self.stats.get("instruction")) == (episode_id, True, instruction), 5.0)

    def count(self, name: str) -> int:
        return self.stats.get(name, 0)

    def refused(self, reason: str) -> int:
        return self.stats.get("refused", {}).get(reason, 0)


@pytest.fixture
def rig(ros_graph, wait_for):
    return lambda **parameters: Rig(ros_graph, wait_for, **parameters)


def test_rgb8_frames_become_cropped_resized_observations_counted_per_episode(rig, wait_for):
    r = rig()
    r.start_episode("ep-1")
    for k in range(3):
        t_s = 10.0 + 0.1 * k
        r.joint_states.publish(joint_state(t_s))
        r.cameras["camera"].publish(raw_image(scene(), "rgb8", t_s))
        assert wait_for(lambda: len(r.observations) == k + 1, 5.0)
    for k, obs in enumerate(r.observations):
        assert (obs.episode_id, obs.step, obs.instruction) == ("ep-1", k, "pick up the red block")
        assert stamp_ns(obs) == round((10.0 + 0.1 * k) * 1e9)
        assert obs.header.frame_id == "front_camera"
        assert list(obs.camera_names) == ["front"] and len(obs.images) == 1
        image = obs.images[0]
        assert (image.encoding, image.height, image.width, image.step) == ("rgb8", SIZE, SIZE, 3 * SIZE)
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(SIZE, SIZE, 3)
        assert (pixels[:, :, 1] == 0).all(), "centre crop removes the green borders"
        assert (pixels[: SIZE // 2 - 2] == RED).all() and (pixels[SIZE // 2 + 2:] == BLUE).all()
        assert list(obs.proprioception_names) == list(PROPRIOCEPTION_NAMES)
        np.testing.assert_allclose(obs.proprioception, arm_q(10.0 + 0.1 * k) + [0.031])

    r.start_episode("ep-2", "push the blue block")
    r.joint_states.publish(joint_state(10.3))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 10.3))
    assert wait_for(lambda: len(r.observations) == 4, 5.0)
    assert (r.observations[-1].episode_id, r.observations[-1].step) == ("ep-2", 0)
    assert r.observations[-1].instruction == "push the blue block"
    assert wait_for(lambda: r.count("observations") == 4, 2.0)
    assert r.stats["refused"] == {}


def test_nothing_is_published_outside_episodes_and_the_reset_frame_opens_the_next(rig, wait_for):
    r = rig(require_episode=True)

    def frame(t_s: float) -> None:
        r.joint_states.publish(joint_state(t_s))
        r.cameras["camera"].publish(raw_image(scene(), "rgb8", t_s))

    # The episode manager resets the driver (whose reset publishes a frame) before it publishes START.
    frame(0.8)
    frame(0.9)
    # The sentinel: the second frame replaced the first, held, so both were handled outside an episode.
    assert wait_for(lambda: r.count("between_episodes") == 1, 5.0)
    r.start_episode("ep-1")
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    assert (r.observations[0].episode_id, r.observations[0].step, stamp_ns(r.observations[0])) == ("ep-1", 0, 9 * 10**8)
    frame(1.0)
    assert wait_for(lambda: len(r.observations) == 2, 5.0)
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="ep-1"))
    assert wait_for(lambda: r.stats.get("in_episode") is False, 5.0)
    frame(1.1)  # after END: the last step's frame, then the next reset's frame
    frame(1.2)
    assert wait_for(lambda: r.count("between_episodes") == 2, 5.0), r.stats
    assert len(r.observations) == 2
    r.start_episode("ep-2")
    assert wait_for(lambda: len(r.observations) == 3, 5.0)
    first = r.observations[-1]
    assert (first.episode_id, first.step, stamp_ns(first)) == ("ep-2", 0, 12 * 10**8)
    frame(1.3)
    assert wait_for(lambda: len(r.observations) == 4, 5.0)
    assert (r.observations[-1].episode_id, r.observations[-1].step) == ("ep-2", 1)


def test_a_start_that_overtakes_its_reset_frame_opens_the_episode_with_the_reset_frame_not_an_older_one(
        rig, wait_for):
    r = rig(require_episode=True)

    def frame(t_s: float) -> None:
        r.joint_states.publish(joint_state(t_s))
        r.cameras["camera"].publish(raw_image(scene(), "rgb8", t_s))

    r.start_episode("ep-1", first_set_s=0.9)
    frame(0.9)
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="ep-1"))
    assert wait_for(lambda: r.stats.get("in_episode") is False, 5.0)
    # The last commands of ep-1 stepped the scene after its END (frames 0.95 and 1.0; the sentinel: the second
    # replaced the first, so 1.0 is held); the reset's frame (1.1) is still on its way when the START naming it comes.
    frame(0.95)
    frame(1.0)
    assert wait_for(lambda: r.count("between_episodes") == 1, 5.0), r.stats
    r.start_episode("ep-2", first_set_s=1.1)
    assert wait_for(lambda: r.count("before_reset") == 1, 5.0), r.stats
    frame(1.05)  # older than the reset too, arriving in the episode: skipped as well
    assert wait_for(lambda: r.count("before_reset") == 2, 5.0), r.stats
    frame(1.1)
    assert wait_for(lambda: len(r.observations) == 2, 5.0)
    first = r.observations[-1]
    assert (first.episode_id, first.step, stamp_ns(first)) == ("ep-2", 0, 11 * 10**8)
    assert wait_for(lambda: r.count("observations") == 2, 5.0)


def test_the_first_observation_carries_the_starts_instruction_when_the_instruction_topic_lags(rig, wait_for):
    # The episode manager publishes the instruction topic and then the START; between topics no order holds, and the
    # START releases the held reset frame at once (a lock-step demo's BC episode got the previous instruction at step 0).
    r = rig(require_episode=True)
    r.start_episode("ep-1", "lift the blue block")
    r.joint_states.publish(joint_state(0.9))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 0.9))
    assert wait_for(lambda: r.count("between_episodes") == 0 and len(r.observations) == 1, 5.0)
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="ep-1"))
    assert wait_for(lambda: r.stats.get("in_episode") is False, 5.0)
    r.joint_states.publish(joint_state(1.0))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 1.0))  # the reset's frame, held
    r.joint_states.publish(joint_state(1.1))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 1.1))
    assert wait_for(lambda: r.count("between_episodes") == 1, 5.0), r.stats  # the sentinel: 1.1 replaced 1.0
    r.episode_events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="ep-2",
                                          instruction="lift the red block", first_set_stamp=stamp(1.1)))
    assert wait_for(lambda: len(r.observations) == 2, 5.0)
    assert (r.observations[-1].episode_id, r.observations[-1].step) == ("ep-2", 0)
    assert r.observations[-1].instruction == "lift the red block"


@pytest.mark.parametrize("encoding", ["bgr8", "mono8", "png", "jpeg"])
def test_other_encodings_decode_to_the_same_rgb8_observation(rig, wait_for, encoding):
    compressed = encoding in ("png", "jpeg")
    r = rig(transport="compressed" if compressed else "raw")
    pixels = scene()
    if encoding == "mono8":
        pixels = pixels.max(axis=2)  # red, green and blue all become 255
    r.joint_states.publish(joint_state(5.0))
    message = compressed_image(pixels, encoding, 5.0) if compressed else raw_image(pixels, encoding, 5.0)
    r.cameras["camera"].publish(message)
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    image = r.observations[0].images[0]
    assert (image.encoding, image.height, image.width) == ("rgb8", SIZE, SIZE)
    got = np.frombuffer(bytes(image.data), np.uint8).reshape(SIZE, SIZE, 3).astype(int)
    expected = np.full((SIZE, SIZE, 3), 255) if encoding == "mono8" else np.zeros((SIZE, SIZE, 3), int)
    if encoding != "mono8":
        expected[: SIZE // 2] = RED
        expected[SIZE // 2:] = BLUE
    # Away from the edges that resizing (and JPEG's subsampled chroma) blends: the red/blue line and the crop border.
    rows, cols = np.r_[2:SIZE // 2 - 2, SIZE // 2 + 2:SIZE - 2], slice(2, SIZE - 2)
    tolerance = 12 if encoding == "jpeg" else 0
    assert np.abs(got[rows, cols] - expected[rows, cols]).max() <= tolerance, f"{encoding} colours differ"


def test_out_of_sync_image_is_refused_and_counted_and_a_late_joint_state_still_pairs(rig, wait_for):
    r = rig(max_sync_offset_s=0.02)
    r.joint_states.publish(joint_state(1.0))
    r.joint_states.publish(joint_state(1.2))
    # 100 ms from both joint states: refused in whatever order the three messages arrive.
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 1.1))
    assert wait_for(lambda: r.refused("out_of_sync") == 1, 5.0)  # refused instead of published
    assert wait_for(lambda: any("out_of_sync" in log and "100.0 ms" in log for log in r.logs), 5.0)  # via /rosout

    # Lock-step order: the image of step t arrives before the joint state of step t; it waits for it.
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 1.3))
    assert wait_for(lambda: r.node._pending is not None, 5.0)  # the image is in and waits
    assert r.observations == []
    r.joint_states.publish(joint_state(1.3))
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    np.testing.assert_allclose(r.observations[0].proprioception[:5], arm_q(1.3))
    assert r.refused("out_of_sync") == 1


def test_unsupported_encoding_is_refused_with_its_name_and_no_observation(rig, wait_for):
    r = rig()
    r.joint_states.publish(joint_state(2.0))
    r.cameras["camera"].publish(raw_image(np.full((120, 160), 1000), "16UC1", 2.0))
    assert wait_for(lambda: r.refused("bad_image") == 1, 5.0)  # refused instead of published
    assert wait_for(lambda: any("16UC1" in log for log in r.logs), 2.0)
    # The stream recovers with the next good frame, whose observation is the first.
    r.joint_states.publish(joint_state(2.1))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 2.1))
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    assert stamp_ns(r.observations[0]) == 21 * 10**8


def test_a_30hz_camera_yields_10hz_observations(rig, wait_for):
    r = rig(rate_hz=10.0)
    frames = 31  # one second at 30 Hz
    for k in range(frames):
        t_s = 3.0 + k / 30
        r.joint_states.publish(joint_state(t_s))
        r.cameras["camera"].publish(raw_image(scene(), "rgb8", t_s))
        # Pace by the node's own accounting, so no frame is dropped by a full queue.
        assert wait_for(lambda: len(r.observations) + r.count("rate_limited") == k + 1, 5.0)
    assert len(r.observations) == 11
    assert r.count("rate_limited") == 20
    stamps = [stamp_ns(o) * 1e-9 for o in r.observations]
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)
    assert [o.step for o in r.observations] == list(range(11))


def test_two_cameras_pair_only_new_images_of_both(rig, wait_for):
    # Best-effort subscriptions, as for real drivers: they also hear reliable publishers.
    r = rig(cameras=["camera", "wrist_camera"], camera_names=["front", "wrist"], sensor_data_qos=True)
    r.joint_states.publish(joint_state(4.0))
    r.cameras["camera"].publish(raw_image(scene(), "rgb8", 4.0))
    assert wait_for(lambda: 0 in r.node._fresh, 5.0)  # the front image is in; the wrist image of its step is not
    assert r.observations == []
    wrist = np.full((SIZE, SIZE, 3), 7, np.uint8)
    r.cameras["wrist_camera"].publish(raw_image(wrist, "rgb8", 4.0))
    assert wait_for(lambda: len(r.observations) == 1, 5.0)
    obs = r.observations[0]
    assert list(obs.camera_names) == ["front", "wrist"]
    assert [(i.height, i.width, i.encoding) for i in obs.images] == [(SIZE, SIZE, "rgb8")] * 2
    assert bytes(obs.images[1].data) == wrist.tobytes()


def test_shipped_parameter_file_loads_and_states_the_defaults(ros_graph):
    path = Path(__file__).parents[2] / "config" / "perception.yaml"
    node = ros_graph.add(Perception(context=ros_graph.context, cli_args=["--ros-args", "--params-file", str(path)]))
    assert node.config == PerceptionConfig()
