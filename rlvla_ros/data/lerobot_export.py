"""Write recorded episodes as a LeRobotDataset v3.0 directory, RL columns included (`rlvla dataset export-lerobot`).

Every complete episode of the bags becomes one LeRobot episode: a run of frame rows in a data parquet file, a run of
frames in one MP4 per camera, and a row of meta/episodes. The dataset is built in a temporary directory beside the
target and renamed into place at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rlvla_ros.contract import ACTION_DIM, ACTION_NAMES
from rlvla_ros.data import lerobot_format as fmt
from rlvla_ros.data.bag_episodes import episodes_from_bag
from rlvla_ros.data.bag_reader import find_bags, open_bag
from rlvla_ros.data.episodes import EpisodeRecord
from rlvla_ros.data.lerobot_stats import array_stats, image_stats, merge_stats, to_json
from rlvla_ros.data.typestore import OBSERVATION
from rlvla_ros.data.video import VIDEO_CODECS, VideoWriter

_SCALAR = (1,)


def camera_names(bag: Path) -> tuple[str, ...] | None:
    """Camera names of the first Observation in a bag; None when it holds no Observation."""
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.msgtype == OBSERVATION]
        for connection, _, raw in reader.messages(connections=connections):
            return tuple(reader.deserialize(raw, connection.msgtype).camera_names)
    return None


def _episodes_with_cameras(paths: Sequence[Path | str]) -> list[dict[str, EpisodeRecord]]:
    """Per complete episode of every bag under ``paths``: {camera: the episode with that camera's images}."""
    episodes = []
    for path in paths:
        for bag in find_bags(path):
            cameras = camera_names(bag)
            if cameras is None:
                continue
            if not cameras:
                raise ValueError(f"{bag}: the recorded observations have no camera; a LeRobot dataset needs one")
            per_camera = {camera: episodes_from_bag(bag, camera=camera) for camera in cameras}
            episodes.extend(dict(zip(cameras, views)) for views in zip(*per_camera.values()))
    return episodes


def _frame_features(first: dict[str, EpisodeRecord], codec_name: str, fps: int) -> dict[str, dict]:
    episode = next(iter(first.values()))
    codec = VIDEO_CODECS[codec_name]
    features: dict[str, dict] = {}
    for camera, view in first.items():
        height, width = view.images.shape[1:3]
        features[fmt.image_key(camera)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": height,
                "video.width": width,
                "video.codec": codec.codec_name,
                "video.pix_fmt": codec.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    names = list(episode.proprio_names) or None
    if names and any("/" in name for name in names):
        raise ValueError(f"proprioception names may not contain '/': {names}")
    features[fmt.STATE] = {"dtype": "float32", "shape": [episode.proprio.shape[1]], "names": names}
    features[fmt.ACTION] = {"dtype": "float32", "shape": [ACTION_DIM], "names": list(ACTION_NAMES)}
    for name, dtype in ((fmt.REWARD, "float32"), (fmt.DONE, "bool"), (fmt.SUCCESS, "bool"),
                        (fmt.INTERVENTION, "bool"), (fmt.LOG_PROB, "float32")):
        features[name] = {"dtype": dtype, "shape": list(_SCALAR), "names": None}
    for name, dtype in fmt.INDEX_FEATURES.items():
        features[name] = {"dtype": dtype, "shape": list(_SCALAR), "names": None}
    return features


def _check_consistent(views: dict[str, EpisodeRecord], features: dict[str, dict], cameras: tuple[str, ...]) -> None:
    episode = next(iter(views.values()))
    if tuple(views) != cameras:
        raise ValueError(f"episode {episode.episode_id} has cameras {tuple(views)}, the dataset {cameras}")
    for camera, view in views.items():
        expected = tuple(features[fmt.image_key(camera)]["shape"])
        if view.images.shape[1:] != expected:
            raise ValueError(f"episode {episode.episode_id} camera {camera}: images {view.images.shape[1:]}, "
                             f"the dataset {expected}")
    state = features[fmt.STATE]
    if episode.proprio.shape[1] != state["shape"][0] or list(episode.proprio_names) != (state["names"] or []):
        raise ValueError(f"episode {episode.episode_id}: proprioception {episode.proprio_names} differs from the "
                         f"dataset's {state['names']}")


def _fixed_list(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def _frame_table(episode: EpisodeRecord, episode_index: int, first_index: int, task_index: int, fps: int) -> pa.Table:
    length = len(episode)
    frame_index = np.arange(length, dtype=np.int64)
    log_probs = episode.log_probs if episode.log_probs is not None else np.full(length, np.nan, np.float32)
    return pa.table({
        fmt.STATE: _fixed_list(episode.proprio),
        fmt.ACTION: _fixed_list(episode.actions),
        fmt.REWARD: pa.array(episode.rewards, pa.float32()),
        fmt.DONE: pa.array(frame_index == length - 1),
        fmt.SUCCESS: pa.array(episode.successes),
        fmt.INTERVENTION: pa.array(episode.interventions),
        fmt.LOG_PROB: pa.array(log_probs, pa.float32()),
        "timestamp": pa.array((frame_index / fps).astype(np.float32)),
        "frame_index": pa.array(frame_index),
        "episode_index": pa.array(np.full(length, episode_index, np.int64)),
        "index": pa.array(first_index + frame_index),
        "task_index": pa.array(np.full(length, task_index, np.int64)),
    })


def _column_stats(table: pa.Table) -> dict[str, dict[str, np.ndarray]]:
    stats = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)
        else:
            values = column.to_numpy(zero_copy_only=False)
        if name == fmt.LOG_PROB and np.isnan(values).all():
            continue  # no policy log-probabilities recorded: stats of NaN would say nothing
        stats[name] = array_stats(values)
    return stats


class _ShardedFiles:
    """The (chunk, file) index of one stream of files, moving on when the current file passes its size limit."""

    def __init__(self, limit_mb: float) -> None:
        self.limit_mb = limit_mb
        self.limit_bytes = limit_mb * 2**20
        self.chunk_index, self.file_index = 0, 0

    def advance(self) -> None:
        self.chunk_index, self.file_index = fmt.next_file(self.chunk_index, self.file_index)


class _DatasetWriter:
    """Builds one LeRobot v3.0 dataset under ``root``, episode by episode."""

    def __init__(self, root: Path, features: dict[str, dict], codec: str, fps: int,
                 data_file_size_mb: float, video_file_size_mb: float) -> None:
        self.root, self.features, self.codec, self.fps = root, features, VIDEO_CODECS[codec], fps
        self.cameras = tuple(name.removeprefix(fmt.IMAGE_PREFIX) for name, f in features.items()
                             if f["dtype"] == "video")
        self.tasks: dict[str, int] = {}
        self.episode_rows: list[dict] = []
        self.stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.total_frames = 0
        self._data = _ShardedFiles(data_file_size_mb)
        self._data_tables: list[pa.Table] = []
        self._videos = {camera: _ShardedFiles(video_file_size_mb) for camera in self.cameras}
        self._video_writers: dict[str, VideoWriter] = {}

    def add(self, views: dict[str, EpisodeRecord]) -> None:
        episode = next(iter(views.values()))
        _check_consistent(views, self.features, self.cameras)
        episode_index = len(self.episode_rows)
        task_index = self.tasks.setdefault(episode.instruction, len(self.tasks))
        table = _frame_table(episode, episode_index, self.total_frames, task_index, self.fps)
        row = {
            "episode_index": episode_index,
            "tasks": [episode.instruction],
            "length": len(episode),
            "data/chunk_index": self._data.chunk_index,
            "data/file_index": self._data.file_index,
            "dataset_from_index": self.total_frames,
            "dataset_to_index": self.total_frames + len(episode),
        }
        stats = _column_stats(table)
        for camera, view in views.items():
            key = fmt.image_key(camera)
            writer = self._video_writer(camera, view)
            row[f"videos/{key}/chunk_index"] = self._videos[camera].chunk_index
            row[f"videos/{key}/file_index"] = self._videos[camera].file_index
            row[f"videos/{key}/from_timestamp"] = writer.frames / self.fps
            writer.append(view.images)
            row[f"videos/{key}/to_timestamp"] = writer.frames / self.fps
            stats[key] = image_stats(view.images)
            if writer.size_bytes() >= self._videos[camera].limit_bytes:
                writer.close()
                del self._video_writers[camera]
                self._videos[camera].advance()
        row.update({
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "episode_id": episode.episode_id,
            "task_name": episode.task,
            "split": episode.split,
            "seed": episode.seed,
            "success": episode.success,
            "termination_reason": episode.termination_reason,
            "episode_return": episode.episode_return,
            "intervention_steps": episode.intervention_steps,
        })
        for feature, entry in stats.items():
            for key, value in entry.items():
                row[f"stats/{feature}/{key}"] = np.asarray(value).tolist()
        self.episode_rows.append(row)
        self.stats.append(stats)
        self.total_frames += len(episode)
        self._data_tables.append(table)
        if sum(t.nbytes for t in self._data_tables) >= self._data.limit_bytes:
            self._flush_data()

    def _video_writer(self, camera: str, view: EpisodeRecord) -> VideoWriter:
        if camera not in self._video_writers:
            shard = self._videos[camera]
            path = self.root / fmt.file_path(fmt.VIDEO_PATH, shard.chunk_index, shard.file_index,
                                             video_key=fmt.image_key(camera))
            self._video_writers[camera] = VideoWriter(path, self.codec, self.fps, *view.images.shape[1:3])
        return self._video_writers[camera]

    def _flush_data(self) -> None:
        path = self.root / fmt.file_path(fmt.DATA_PATH, self._data.chunk_index, self._data.file_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self._data_tables), path)
        self._data_tables = []
        self._data.advance()

    def finish(self, robot_type: str) -> dict:
        """Close every file and write the metadata; returns info.json's content."""
        if self._data_tables:
            self._flush_data()
        for writer in self._video_writers.values():
            writer.close()
        self._write_parquet(fmt.file_path(fmt.EPISODES_PATH, 0, 0), pa.Table.from_pylist(self.episode_rows))
        self._write_parquet(fmt.TASKS_PATH, _tasks_table(self.tasks))
        features = set(self.stats[0])
        stats = {f: merge_stats([s[f] for s in self.stats if f in s]) for f in sorted(features)}
        (self.root / fmt.STATS_PATH).write_text(json.dumps(to_json(stats), indent=1), encoding="utf-8")
        info = {
            "codebase_version": fmt.CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": len(self.episode_rows),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": fmt.CHUNKS_SIZE,
            "data_files_size_in_mb": self._data.limit_mb,
            "video_files_size_in_mb": next(iter(self._videos.values())).limit_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episode_rows)}"},
            "data_path": fmt.DATA_PATH,
            "video_path": fmt.VIDEO_PATH,
            "features": self.features,
        }
        (self.root / fmt.INFO_PATH).write_text(json.dumps(info, indent=4), encoding="utf-8")
        return info

    def _write_parquet(self, relative: str, table: pa.Table) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def _tasks_table(tasks: dict[str, int]) -> pa.Table:
    """meta/tasks.parquet: LeRobot writes a pandas frame indexed by the task string with a task_index column; the
    pandas metadata makes `pandas.read_parquet` give back exactly that index."""
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()), "task": pa.array(list(tasks))})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def export_lerobot(
    bags: Sequence[Path | str],
    root: Path | str,
    *,
    fps: int = 10,
    codec: str = "lossless",
    robot_type: str = "rlvla_arm",
    data_file_size_mb: int = fmt.DATA_FILES_SIZE_MB,
    video_file_size_mb: int = fmt.VIDEO_FILES_SIZE_MB,
) -> dict:
    """Write the complete episodes of ``bags`` (bag directories or folders of bags) as a LeRobot v3.0 dataset at
    ``root``, which must not exist yet (or be an empty directory); returns its info.json. ``fps`` is the control
    rate the frames were recorded at (timestamps are frame_index / fps). ValueError for bad input."""
    root = Path(root)
    if codec not in VIDEO_CODECS:
        raise ValueError(f"unknown video codec {codec!r}; valid: {', '.join(VIDEO_CODECS)}")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"{root} already exists and is not an empty directory; choose a new output directory")
    episodes = _episodes_with_cameras(bags)
    if not episodes:
        raise ValueError(f"no complete episodes in {[str(b) for b in bags]}")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        writer = _DatasetWriter(staging, _frame_features(episodes[0], codec, fps), codec, fps,
                                data_file_size_mb, video_file_size_mb)
        for views in episodes:
            writer.add(views)
        info = writer.finish(robot_type)
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info
