"""The LeRobotDataset v3.0 layout as this project writes and reads it: paths, feature names, info.json checks.

Field by field in docs/lerobot-datasets.md. The format is LeRobot's (`docs/source/lerobot-dataset-v3.mdx` and
`src/lerobot/datasets/utils.py` in huggingface/lerobot); lerobot itself needs Python 3.12 and torchvision, so this is
written against the spec with pyarrow and PyAV.
"""

from __future__ import annotations

import json
from pathlib import Path


CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Files per chunk directory."""
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 500
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

INDEX_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
"""Columns every LeRobot frame row has, with their dtypes (each shape (1,), names null)."""
STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
REWARD = "next.reward"
DONE = "next.done"
SUCCESS = "next.success"
INTERVENTION = "intervention"
LOG_PROB = "log_prob"
REQUIRED_FEATURES = (STATE, ACTION, REWARD, DONE, SUCCESS, INTERVENTION, LOG_PROB)
"""Features the reader needs besides at least one camera; LeRobot datasets from elsewhere lack the RL ones."""


def image_key(camera: str) -> str:
    """Feature name of a camera stream (LeRobot's `observation.images.<camera>`)."""
    if "/" in camera or not camera:
        raise ValueError(f"camera name {camera!r} cannot name a LeRobot feature (empty or contains '/')")
    return IMAGE_PREFIX + camera


def file_path(template: str, chunk_index: int, file_index: int, **keys: str) -> str:
    """A relative path from one of the templates."""
    return template.format(chunk_index=chunk_index, file_index=file_index, **keys)


def next_file(chunk_index: int, file_index: int) -> tuple[int, int]:
    """(chunk, file) after this one: CHUNKS_SIZE files per chunk."""
    return (chunk_index + 1, 0) if file_index == CHUNKS_SIZE - 1 else (chunk_index, file_index + 1)


def is_lerobot_dataset(path: Path | str) -> bool:
    """Whether ``path`` is a directory with a meta/info.json (a LeRobot dataset of any version)."""
    return (Path(path) / INFO_PATH).is_file()


def load_info(root: Path) -> dict:
    """meta/info.json of a v3.0 dataset; ValueError naming the path for a missing or unreadable file, another
    codebase version, or a feature without dtype / shape / names."""
    path = root / INFO_PATH
    if not root.is_dir():
        raise ValueError(f"{root} does not exist or is not a directory")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{root} is not a LeRobot dataset (no {INFO_PATH})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        raise ValueError(f"{path} has no features table")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise ValueError(f"{root} is a LeRobot dataset of codebase_version {version!r}; only {CODEBASE_VERSION} is "
                         "read (convert older ones with lerobot's convert_dataset_v21_to_v30)")
    for name, feature in info["features"].items():
        if not isinstance(feature, dict) or not {"dtype", "shape", "names"} <= feature.keys():
            raise ValueError(f"{path}: feature {name!r} needs dtype, shape and names")
    return info
