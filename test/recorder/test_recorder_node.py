"""The recorder node in-process: every published image of the recorded window lands in a bag that opens with
rosbags and the mcap library; QoS matching; bags per episodes; refused service requests; per-topic counts; no
latched history from before a session; an empty session still leaves a valid bag."""

import json
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from rlvla_ros.data import dataset_info, open_bag
from rlvla_ros.data.bag_reader import recording_counts
from rlvla_ros.msg import EpisodeEvent
from rlvla_ros.nodes.recorder import Recorder
from rlvla_ros.srv import StartRecording, StopRecording

IMAGE_SIZE = 64


class Rig:
    """A recorder (autostart off) and a test node with publishers and service clients."""

    def __init__(self, ros_graph, wait_for, tmp_path, **parameters):
        self.wait_for = wait_for
        self.tmp_path = tmp_path
        parameters = {"autostart": False, "output_dir": str(tmp_path / "bags"), "discovery_period_s": 0.1,
                      **parameters}
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        self.node = ros_graph.add(Recorder(context=ros_graph.context, parameter_overrides=overrides))
        self.test = ros_graph.node("recorder_test")
        self.start_client = self.test.create_client(StartRecording, "recorder/start_recording")
        self.stop_client = self.test.create_client(StopRecording, "recorder/stop_recording")
        self.status_client = self.test.create_client(Trigger, "recorder/get_status")
        for client in (self.start_client, self.stop_client, self.status_client):
            assert client.wait_for_service(timeout_sec=10.0)

    def call(self, client, request):
        future = client.call_async(request)
        assert self.wait_for(future.done, 30.0)
        return future.result()

    def start(self, **fields) -> StartRecording.Response:
        return self.call(self.start_client, StartRecording.Request(**fields))

    def stop(self) -> StopRecording.Response:
        return self.call(self.stop_client, StopRecording.Request())

    def status(self) -> dict:
        response = self.call(self.status_client, Trigger.Request())
        assert response.success
        return json.loads(response.message)

    def wait_subscribed(self, *publishers) -> None:
        """Until the recorder's subscription of each publisher's topic is matched on both ends."""
        def matched(publisher) -> bool:
            subscription = self.node._recorded_subscriptions.get(publisher.topic_name)
            return subscription is not None and subscription.get_publisher_count() > 0 and \
                publisher.get_subscription_count() > 0
        assert self.wait_for(lambda: all(matched(p) for p in publishers), 10.0)

    def wait_received(self, counts: dict[str, int]) -> None:
        """The sentinel before a stop: the recorder has taken `counts[topic]` messages of each topic."""
        assert self.wait_for(lambda: all(self.status()["per_topic"].get(t, {}).get("received", 0) >= n
                                         for t, n in counts.items()), 30.0), self.status()


def image(index: int) -> Image:
    msg = Image(height=IMAGE_SIZE, width=IMAGE_SIZE, encoding="rgb8", step=IMAGE_SIZE * 3)
    msg.data = bytes([index % 256]) * (IMAGE_SIZE * IMAGE_SIZE * 3)
    msg.header.frame_id = f"frame{index}"
    return msg


def read_topics(bag: Path) -> dict[str, list]:
    messages: dict[str, list] = {}
    with open_bag(bag) as reader:
        for connection, _, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(reader.deserialize(raw, connection.msgtype))
    return messages


def test_every_image_published_while_recording_is_in_the_bag(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    images = rig.test.create_publisher(Image, "camera/image_raw", 10)
    joints = rig.test.create_publisher(JointState, "joint_states", QoSProfile(
        depth=10, reliability=ReliabilityPolicy.BEST_EFFORT))
    images.publish(image(255))  # before the recording: not in the bag
    response = rig.start(topics=["camera/image_raw", "joint_states"])
    assert response.success, response.message
    assert Path(response.bag_path).parent.parent == tmp_path / "bags"
    rig.wait_subscribed(images, joints)
    qos = {t: s.qos_profile.reliability for t, s in rig.node._recorded_subscriptions.items()}
    assert qos == {"/camera/image_raw": ReliabilityPolicy.RELIABLE, "/joint_states": ReliabilityPolicy.BEST_EFFORT}
    for index in range(60):  # 2 s of a 30 Hz camera
        images.publish(image(index))
        joints.publish(JointState(name=["a"], position=[float(index)]))
        time.sleep(1 / 30)
    # The sentinel before the stop: every image, and the joint states best effort delivers on localhost (all, or
    # nearly), so the stop cannot overtake the last ones still queued.
    rig.wait_received({"/camera/image_raw": 60, "/joint_states": 57})
    stopped = rig.stop()
    assert stopped.success and stopped.bag_paths == [response.bag_path]
    images.publish(image(254))  # after the recording: not in the bag

    messages = read_topics(Path(response.bag_path))
    frames = [m.header.frame_id for m in messages["/camera/image_raw"]]
    assert frames == [f"frame{i}" for i in range(60)]
    assert messages["/camera/image_raw"][7].data[0] == 7
    assert len(messages["/joint_states"]) >= 57  # best effort on localhost: all, or nearly
    assert stopped.message_count == 60 + len(messages["/joint_states"])

    mcap_files = list(Path(response.bag_path).glob("*.mcap"))
    assert len(mcap_files) == 1
    with open(mcap_files[0], "rb") as stream:
        reader = make_reader(stream)
        counts = reader.get_summary().statistics.channel_message_counts
        topics = {channel.id: channel.topic for channel in reader.get_summary().channels.values()}
        assert {topics[c]: n for c, n in counts.items()}["/camera/image_raw"] == 60
        assert sum(1 for _ in reader.iter_messages(topics=["/camera/image_raw"])) == 60


def test_a_new_bag_starts_every_n_episodes(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    events = rig.test.create_publisher(EpisodeEvent, "episode_event", 10)
    joints = rig.test.create_publisher(JointState, "joint_states", 10)
    response = rig.start(topics=["episode_event", "joint_states"], episodes_per_bag=1)
    assert response.success, response.message
    rig.wait_subscribed(events, joints)
    for k, episode in enumerate(("e1", "e2"), start=1):
        events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=episode))
        for step in range(3):
            joints.publish(JointState(name=[episode], position=[float(step)]))
        events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id=episode))
        # Topics are not ordered with each other: the next START waits until this episode's messages are in.
        rig.wait_received({"/episode_event": 2 * k, "/joint_states": 3 * k})
    stopped = rig.stop()
    assert len(stopped.bag_paths) == 2 and stopped.bag_paths[0] == response.bag_path
    for bag, episode in zip(stopped.bag_paths, ("e1", "e2")):
        messages = read_topics(Path(bag))
        assert [e.episode_id for e in messages["/episode_event"]] == [episode, episode]
        assert [j.name[0] for j in messages["/joint_states"]] == [episode] * 3


def test_status_reports_the_session_and_the_episode_ends_written_so_far(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    assert rig.status() == {"recording": False}
    events = rig.test.create_publisher(EpisodeEvent, "episode_event", 10)
    response = rig.start(topics=["episode_event", "joint_states"])
    assert response.success, response.message
    rig.wait_subscribed(events)
    status = rig.status()
    assert status["bags"] == [] and status["topics"] == ["/episode_event"] and status["pending_topics"] == [
        "/joint_states"]  # nobody publishes joint_states
    assert not status["ready"] and status["unmatched_topics"] == []
    joint_states = rig.test.create_publisher(JointState, "joint_states", 10)
    assert wait_for(lambda: rig.status()["ready"], 10.0)  # both topics subscribed and matched: episodes may start
    assert rig.status()["topics"] == ["/episode_event", "/joint_states"]
    rig.test.destroy_publisher(joint_states)
    events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="e1"))
    events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="e1"))
    assert wait_for(lambda: rig.status()["episode_ends"] == 1, 10.0)
    status = rig.status()
    assert status["messages"] == 2 and status["dropped"] == 0 and status["bags"] == [response.bag_path]
    assert rig.stop().bag_paths == [response.bag_path]
    assert rig.status() == {"recording": False}


def test_bad_requests_get_success_false_with_a_reason(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    stopped = rig.stop()
    assert not stopped.success and "not recording" in stopped.message
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    refused = rig.start(output_dir=str(blocker / "bags"), topics=["joint_states"])
    assert not refused.success and "output_dir" in refused.message
    refused = rig.start(topics=["bad topic!"])
    assert not refused.success and "invalid topic" in refused.message
    refused = rig.start(topics=["joint_states"], episodes_per_bag=2)
    assert not refused.success and "episode_event" in refused.message
    started = rig.start(topics=["joint_states"])
    assert started.success
    again = rig.start(topics=["joint_states"])
    assert not again.success and "already recording" in again.message
    stopped = rig.stop()
    assert stopped.success and stopped.message_count == 0


def test_autostart_with_an_unwritable_output_dir_fails_at_start(ros_graph, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="output_dir"):
        Recorder(context=ros_graph.context, parameter_overrides=[
            Parameter("output_dir", value=str(tmp_path / "a_file" / "bags"))])


def test_the_start_reply_counts_every_requested_topic_already_published(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    publishers = [rig.test.create_publisher(JointState, "joint_states", 10),
                  rig.test.create_publisher(EpisodeEvent, "episode_event", 10)]
    assert wait_for(lambda: all(rig.node.get_publishers_info_by_topic(p.topic_name) for p in publishers), 10.0)
    response = rig.start(topics=["joint_states", "episode_event", "reward"])  # reward has no publisher yet
    assert response.success and "recording 3 topics" in response.message, response.message
    assert rig.status()["topics"] == ["/episode_event", "/joint_states"]


def test_a_session_whose_topics_never_had_a_publisher_ends_in_an_empty_valid_bag(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    response = rig.start(topics=["nobody_publishes_this"])
    assert response.success, response.message
    stopped = rig.stop()
    assert stopped.success and stopped.bag_paths == [response.bag_path] and stopped.message_count == 0
    assert read_topics(Path(response.bag_path)) == {}
    info = dataset_info(response.bag_path)
    assert info["message_count"] == 0 and info["episodes"] == 0


def test_latched_history_from_before_the_session_does_not_leak_into_its_bag(ros_graph, wait_for, tmp_path):
    rig = Rig(ros_graph, wait_for, tmp_path)
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    events = rig.test.create_publisher(EpisodeEvent, "episode_event", latched)
    instruction = rig.test.create_publisher(String, "instruction", latched)
    for episode in ("old1", "old2"):  # a previous session's episodes, kept by the latched publisher
        events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=episode))
        events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id=episode))
    instruction.publish(String(data="stale instruction"))
    instruction.publish(String(data="current instruction"))
    response = rig.start(topics=["episode_event", "instruction"])
    assert response.success, response.message
    rig.wait_subscribed(events, instruction)
    events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="new"))
    events.publish(EpisodeEvent(event=EpisodeEvent.END, episode_id="new"))  # the sentinel: the session's first END
    assert wait_for(lambda: rig.status()["per_topic"].get("/episode_event", {}).get("written") == 2, 10.0)
    status = rig.status()
    assert status["episode_ends"] == 1
    assert status["per_topic"]["/episode_event"] == {"received": 2, "written": 2, "dropped": 0}
    stopped = rig.stop()
    messages = read_topics(Path(stopped.bag_paths[0]))
    assert [(e.event, e.episode_id) for e in messages["/episode_event"]] == [
        (EpisodeEvent.START, "new"), (EpisodeEvent.END, "new")]
    assert [m.data for m in messages["/instruction"]] == ["current instruction"]
    assert recording_counts([Path(stopped.bag_paths[0])]) == {  # what `rlvla dataset info` shows
        "/episode_event": {"received": 2, "written": 2, "dropped": 0},
        "/instruction": {"received": 1, "written": 1, "dropped": 0}}
