"""Dataset index and info, corrupt / missing paths, the offline dataset and the write benchmark."""

import json
import os

import numpy as np
import pytest

from rlvla_ros.data import (
    OfflineDataset,
    bag_index,
    benchmark_bag_write,
    dataset_info,
    discounted_returns,
    episodes_from_bag,
    format_dataset_info,
)
from rlvla_ros.data.dataset_index import INDEX_FILE


def test_dataset_info_counts_episodes_tasks_splits_and_topic_rates(record_bags, episodes):
    bags = record_bags(episodes, episodes_per_bag=2)
    info = dataset_info(bags[0].parent)
    assert len(info["bags"]) == 2 and [b["episodes"] for b in info["bags"]] == [2, 2]
    assert (info["episodes"], info["incomplete_episodes"], info["steps"]) == (4, 0, 22)
    assert (info["successes"], info["success_rate"]) == (3, 0.75)
    assert info["intervention_steps"] == 1 + 2 + 2 + 2
    assert info["tasks"] == {
        "lift": {"episodes": 2, "successes": 1, "steps": 9},
        "stack": {"episodes": 2, "successes": 2, "steps": 13},
    }
    assert info["splits"] == {
        "id": {"episodes": 3, "successes": 2, "steps": 15},
        "ood_color": {"episodes": 1, "successes": 1, "steps": 7},
    }
    observation = info["topics"]["/rlvla/observation"]
    assert observation["type"] == "rlvla_ros/msg/Observation" and observation["count"] == 22
    # 10 Hz within episodes, with two idle periods (END, next START) between them: bag 0 spans 1.0 s with
    # 9 observations, bag 1 spans 1.4 s with 13, so (8 + 12) intervals in 2.4 s.
    assert observation["rate_hz"] == pytest.approx(20 / 2.4, rel=1e-9)
    assert info["message_count"] == 3 * 22 + 8
    text = format_dataset_info(info)
    assert "4 complete, 0 incomplete" in text and "75.0%" in text and "/rlvla/observation" in text


def test_index_is_cached_beside_the_bag_and_rebuilt_when_it_changes(record_bags, episodes):
    (bag,) = record_bags(episodes[:2])
    first = bag_index(bag)
    cache = bag / INDEX_FILE
    assert json.loads(cache.read_text())["episodes"] == first["episodes"]
    # A valid cache is used as is: prove it by editing it.
    tampered = dict(first, episodes=first["episodes"][:1])
    cache.write_text(json.dumps(tampered))
    assert len(bag_index(bag)["episodes"]) == 1
    # Touching the MCAP file changes the fingerprint: the index is rebuilt from the bag.
    (mcap_path,) = bag.glob("*.mcap")
    stat = mcap_path.stat()
    os.utime(mcap_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(bag_index(bag)["episodes"]) == 2
    assert len(json.loads(cache.read_text())["episodes"]) == 2


def test_missing_and_corrupt_paths_raise_clear_value_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        dataset_info(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        dataset_info(tmp_path / "file.txt")
    with pytest.raises(ValueError, match="no rosbag2 bag"):
        dataset_info(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    (bad / "bad.mcap").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot open bag"):
        dataset_info(bad)
    with pytest.raises(ValueError, match="cannot open bag"):
        episodes_from_bag(bad)
    (bad / "metadata.yaml").unlink()
    with pytest.raises(ValueError, match="unfinished"):
        episodes_from_bag(bad)


def test_offline_dataset_gives_padded_chunks_returns_and_done_flags(record_bags, episodes):
    bags = record_bags(episodes, episodes_per_bag=2)
    dataset = OfflineDataset.from_path(bags[0].parent, horizon=3, gamma=0.5, tasks=["lift"])
    assert len(dataset) == 4 + 5 and dataset.locate(5) == (1, 1)
    first = episodes[0]
    item = dataset[2]  # episode 0, step 2 of 4: one real action row is past the end
    np.testing.assert_array_equal(item["actions"][:2], first.actions[2:4])
    np.testing.assert_array_equal(item["actions"][2], np.zeros(5))
    np.testing.assert_array_equal(item["action_mask"], [True, True, False])
    assert item["return_to_go"] == pytest.approx(first.rewards[2] + 0.5 * first.rewards[3])
    assert not item["done"] and item["intervention"] is False and item["episode_success"]
    np.testing.assert_array_equal(item["next_image"], first.images[3])
    last = dataset[3]
    assert last["done"] and last["terminated"] and last["success"] and last["reward"] == first.rewards[3]
    failed_last = dataset[8]
    assert failed_last["done"] and not failed_last["terminated"]
    batch = dataset.sample(6, np.random.default_rng(0))
    assert batch["image"].shape == (6, 16, 16, 3) and batch["actions"].shape == (6, 3, 5)
    assert batch["action_mask"].dtype == bool and len(batch["instruction"]) == 6
    with pytest.raises(IndexError):
        dataset[9]


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 0.0, 2.0]), 0.5), [1.5, 1.0, 2.0])


def test_benchmark_keeps_up_with_224px_images_at_30_hz():
    result = benchmark_bag_write(rate_hz=30, seconds=1.0, size=224)
    assert result["dropped"] == 0 and result["images_written"] == 30
    assert result["bytes_written"] > 30 * 224 * 224 * 3
    assert result["max_images_per_s"] > 30
