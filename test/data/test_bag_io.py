"""BagWriter output opens in rosbags' AnyReader and in the mcap library, with matching counts and metadata."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader

from rlvla_ros.data import BagWriter, make_qos, make_typestore, write_episode
from rlvla_ros.data.typestore import ACTION_CHUNK, EPISODE_EVENT, OBSERVATION, REWARD


def _mcap_counts(bag: Path) -> Counter:
    (mcap_path,) = bag.glob("*.mcap")
    with mcap_path.open("rb") as stream:
        return Counter(channel.topic for _, channel, _ in make_reader(stream).iter_messages())


def _anyreader_counts(bag: Path) -> Counter:
    with AnyReader([bag]) as reader:
        return Counter(connection.topic for connection, _, _ in reader.messages())


def test_anyreader_and_mcap_reader_count_the_same_messages(record_bags, episodes):
    (bag,) = record_bags(episodes)
    steps = sum(len(e) for e in episodes)
    expected = {
        "/rlvla/observation": steps,
        "/rlvla/action_chunk": steps,
        "/rlvla/reward": steps,
        "/rlvla/episode_event": 2 * len(episodes),
    }
    assert _anyreader_counts(bag) == expected
    assert _mcap_counts(bag) == expected


def test_bag_embeds_our_type_definitions_and_decodes_with_them(record_bags, episodes):
    (bag,) = record_bags(episodes[:1])
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert set(types.values()) == {OBSERVATION, ACTION_CHUNK, REWARD, EPISODE_EVENT}
        connection = next(c for c in reader.connections if c.msgtype == OBSERVATION)
        _, _, raw = next(reader.messages(connections=[connection]))
        observation = reader.deserialize(raw, OBSERVATION)
    assert observation.step == 0 and observation.camera_names == ["front"]
    np.testing.assert_array_equal(observation.images[0].data.reshape(16, 16, 3), episodes[0].images[0])


def test_metadata_yaml_lists_topics_counts_and_offered_qos(tmp_path):
    store = make_typestore()
    types = store.types
    joint_state = types["sensor_msgs/msg/JointState"](
        header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id=""),
        name=["a"],
        position=np.zeros(1),
        velocity=np.zeros(1),
        effort=np.zeros(1),
    )
    data = store.serialize_cdr(joint_state, "sensor_msgs/msg/JointState")
    with BagWriter(tmp_path) as writer:
        writer.add_topic("/joint_states", "sensor_msgs/msg/JointState", [make_qos(depth=7, reliable=False)])
        for i in range(12):
            writer.write("/joint_states", data, 10**9 + i * 10**8)
    metadata = yaml.safe_load((writer.bag_paths[0] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["storage_identifier"] == "mcap"
    assert metadata["message_count"] == 12
    (topic,) = metadata["topics_with_message_count"]
    assert topic["message_count"] == 12
    assert topic["topic_metadata"]["type"] == "sensor_msgs/msg/JointState"
    (qos,) = topic["topic_metadata"]["offered_qos_profiles"]
    assert qos["depth"] == 7 and qos["reliability"] == "best_effort"
    assert metadata["duration"]["nanoseconds"] == 11 * 10**8


def test_writer_counts_the_episode_ends_it_writes_with_or_without_splitting(tmp_path, episodes):
    for episodes_per_bag in (0, 2):
        with BagWriter(tmp_path / str(episodes_per_bag), episodes_per_bag=episodes_per_bag) as writer:
            ends = []
            for episode in episodes:
                write_episode(writer, episode, start_time_ns=1_700_000_000 * 10**9, period_s=0.1)
                ends.append(writer.episode_ends)
        assert ends == list(range(1, len(episodes) + 1))


def test_writer_splits_a_new_bag_every_n_episodes(record_bags, episodes):
    bags = record_bags(episodes, episodes_per_bag=2)
    assert [p.name for p in bags] == ["rlvla_0000", "rlvla_0001"]
    assert [_mcap_counts(b)["/rlvla/episode_event"] for b in bags] == [4, 4]
    assert [_mcap_counts(b)["/rlvla/observation"] for b in bags] == [4 + 5, 6 + 7]


def test_split_on_demand_and_restart_never_overwrite(tmp_path):
    store = make_typestore()
    data = store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String")
    with BagWriter(tmp_path, prefix="rec") as writer:
        writer.add_topic("/note", "std_msgs/msg/String")
        writer.write("/note", data, 1)
        assert writer.split() == tmp_path / "rec_0000"
        assert writer.split() is None  # nothing written since
        writer.write("/note", data, 2)
    with BagWriter(tmp_path, prefix="rec") as again:
        again.add_topic("/note", "std_msgs/msg/String")
        again.write("/note", data, 3)
    assert [p.name for p in writer.bag_paths + again.bag_paths] == ["rec_0000", "rec_0001", "rec_0002"]
    assert all((p / "metadata.yaml").is_file() for p in tmp_path.iterdir())


def test_writer_rejects_unknown_topics_and_types(tmp_path):
    writer = BagWriter(tmp_path)
    with pytest.raises(ValueError, match="add_topic"):
        writer.write("/nope", b"", 0)
    with pytest.raises(ValueError, match="unknown message type"):
        writer.add_topic("/x", "not_a_pkg/msg/Nothing")
    writer.add_topic("/x", "std_msgs/msg/String")
    with pytest.raises(ValueError, match="already recorded"):
        writer.add_topic("/x", "std_msgs/msg/Float64")
    writer.close()
    assert writer.bag_paths == []
