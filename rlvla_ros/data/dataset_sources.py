"""Where training episodes come from: a rosbag2 bag, a folder of bags, or a LeRobot v3.0 dataset directory."""

from __future__ import annotations

from pathlib import Path

from rlvla_ros.data.bag_episodes import episodes_from_bag
from rlvla_ros.data.bag_reader import find_bags
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.lerobot_format import is_lerobot_dataset, load_info
from rlvla_ros.data.lerobot_import import episodes_from_lerobot


def check_dataset(path: Path | str) -> None:
    """Raise ValueError naming ``path`` when it is neither a readable bag (folder) nor a LeRobot v3.0 dataset."""
    if is_lerobot_dataset(path):
        load_info(Path(path))
    else:
        find_bags(path)


def dataset_episodes(
    path: Path | str, *, camera: str | None = None, include_incomplete: bool = False
) -> list[EpisodeRecord]:
    """The episodes at ``path``: a LeRobot v3.0 directory (one with meta/info.json) or every bag below it.
    Incomplete episodes exist in bags only (an export holds complete ones); ``include_incomplete`` keeps them."""
    if is_lerobot_dataset(path):
        return episodes_from_lerobot(path, camera=camera)
    return [
        episode
        for bag in find_bags(path)
        for episode in episodes_from_bag(bag, camera=camera, include_incomplete=include_incomplete)
    ]
