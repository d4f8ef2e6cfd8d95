"""Episodes, rosbag2 (MCAP) recording and reading, LeRobot v3.0 export and import, and offline datasets. ROS-free: no rclpy here."""

from rlvla_ros.data.bag_episodes import EpisodeTopics, episodes_from_bag, image_to_array, scan_bag, write_episode
from rlvla_ros.data.bag_reader import find_bags, open_bag
from rlvla_ros.data.bag_writer import BagWriter, TopicSpec, make_qos
from rlvla_ros.data.benchmark import benchmark_bag_write
from rlvla_ros.data.dataset_index import bag_index, dataset_info, format_dataset_info
from rlvla_ros.data.dataset_sources import check_dataset, dataset_episodes
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.lerobot_export import export_lerobot
from rlvla_ros.data.lerobot_import import episodes_from_lerobot
from rlvla_ros.data.offline_dataset import OfflineDataset, discounted_returns
from rlvla_ros.data.recovery import bag_needs_recovery, recover_bag
from rlvla_ros.data.typestore import find_msg_dir, make_typestore

__all__ = [
    "BagWriter",
    "EpisodeRecord",
    "EpisodeTopics",
    "OfflineDataset",
    "TopicSpec",
    "bag_index",
    "bag_needs_recovery",
    "check_dataset",
    "dataset_episodes",
    "benchmark_bag_write",
    "dataset_info",
    "discounted_returns",
    "episodes_from_bag",
    "episodes_from_lerobot",
    "export_lerobot",
    "find_bags",
    "find_msg_dir",
    "format_dataset_info",
    "image_to_array",
    "make_qos",
    "make_typestore",
    "open_bag",
    "recover_bag",
    "scan_bag",
    "write_episode",
]
